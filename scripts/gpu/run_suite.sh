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
[ -d .gpu/bin ] || tar -C .gpu -xJf .gpu/bin.tar.xz
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
fail=0
run() { # name, log suffix, env...
  local t=.gpu/bin/$1 log=$out/$1$2.log; shift 2
  local start=$(date +%s)
  # The GPU machine has no internet: tests of the default model (fetched from PyPI) are skipped.
  if env "$@" "$t" --test-threads=1 --skip default_model >"$log" 2>&1; then status=ok; else status=FAIL; fail=1; fi
  printf '%-24s %-14s %-4s %4ss  %s\n' "$(basename "$t")" "${1:-}" "$status" "$(( $(date +%s) - start ))" \
    "$(grep -E '^test result' "$log" | tail -1 | cut -c14-60)"
}
# Core kernel tests compare every GPU with the CPU themselves; model tests run whole on the GPU
# through RMLX_DEVICE (hf_reference loops over the devices itself).
for t in .gpu/bin/*; do
  name=$(basename "$t")
  case "$name" in
    rmlx|*bench*) ;;
    formats|gpt_oss_runtime|kv_cache_kinds|rmlx_lm-lib) run "$name" .cuda RMLX_DEVICE=cuda ;;
    *) run "$name" "" ;;
  esac
done
grep -l -E "panicked|FAILED" "$out"/*.log 2>/dev/null
# One file with every log (what comes back from the machine is limited to a few files).
for f in "$out"/*.log; do echo "=== $f"; cat "$f"; done > /tmp/suite.log; rm -f "$out"/*.log; mv /tmp/suite.log "$out/suite.log"
exit $fail
