#!/usr/bin/env bash
# On the GPU machine, after peer_bench.sh made the models (same warm machine) or making them:
# device tests, rmlx benches with profiles, and optional ncu runs. Env: TESTS, LM_TESTS, NCU.
set -uo pipefail
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export RMLX_HOME=/tmp/rmlx-home
out=${OUT:-/tmp/out}; work=/tmp/models; mkdir -p "$work"
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
rm -rf .gpu/bin; tar -C .gpu -xJf .gpu/bin.tar.xz
ln -sfn "$PWD" /work/main 2>/dev/null || true
[ -f "$work/smollm2.gguf" ] || python3 .gpu/tools/gguf_like.py make .gpu/layouts/smollm2.json "$work/smollm2.gguf" >/dev/null
[ -d "$work/gpt-oss-20b" ] || (python3 .gpu/tools/make_gpt_oss_checkpoint.py "$work/gpt-oss-20b" --preset 20b >/dev/null) &
for t in ${TESTS:-}; do el "test $t"; .gpu/bin/$t --test-threads 1 2>&1 | grep -E "^test .*(FAILED|ok)$|panicked|test result" | tail -12; done
for t in ${LM_TESTS:-}; do el "lm test $t (cuda)"; RMLX_DEVICE=cuda .gpu/bin/$t --test-threads 1 ${TEST_ARGS:-} 2>&1 | grep -E "FAILED|panicked|test result" | tail -8; done
wait
rb() { timeout 200 .gpu/bin/rmlx --device cuda bench --model "$1" -p "$2" -n "$3" --json "${@:4}" 2>>"$out/rmlx_stderr.log" | tee -a "$out/rmlx.jsonl"; }
el "benches"
rb "$work/smollm2.gguf" 512 128; rb "$work/gpt-oss-20b" 2048 128
rb "$work/gpt-oss-20b" 16 32 --profile >/dev/null; rb "$work/smollm2.gguf" 16 64 --profile >/dev/null
grep -A14 "decode profile" "$out/rmlx_stderr.log" | cut -c1-110
[ -n "${NCU:-}" ] && { el ncu; bash scripts/gpu/ncu.sh "$work/gpt-oss-20b" "$NCU" 200 6; }
el done
