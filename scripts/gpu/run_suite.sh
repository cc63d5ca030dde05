#!/usr/bin/env bash
# On the GPU machine: runs every test binary carried in .gpu/bin (scripts/gpu/build_carry.sh),
# logging each to $OUT. The binaries look for fixtures under the path they were built at, so
# that path is linked to this checkout first.
set -uo pipefail
root=$(pwd)
built_at=${BUILT_AT:-/work/main}
if [ ! -e "$built_at" ]; then mkdir -p "$(dirname "$built_at")" && ln -s "$root" "$built_at"; fi
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export RMLX_HOME=${RMLX_HOME:-/tmp/rmlx-home}
out=${OUT:-/tmp/out}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
fail=0
for t in .gpu/bin/*; do
  name=$(basename "$t")
  case "$name" in rmlx|*bench*) continue;; esac
  start=$(date +%s.%N)
  if "$t" --test-threads=1 >"$out/$name.log" 2>&1; then status=ok; else status=FAIL; fail=1; fi
  printf '%-28s %s %6.1fs  %s\n' "$name" "$status" "$(echo "$(date +%s.%N) - $start" | bc)" \
    "$(grep -E '^test result' "$out/$name.log" | tail -1 | cut -c1-60)"
done
for t in .gpu/bin/*; do
  grep -l -E "panicked|FAILED" "$out/$(basename "$t").log" 2>/dev/null | head -3
done
exit $fail
