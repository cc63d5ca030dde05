#!/usr/bin/env bash
# On the GPU machine, one call: rmlx against llama.cpp's CUDA build, side by side on the same card.
# Builds llama-bench (background, cores 4-15) while the models are made and the device tests
# run, then benches both engines with nothing else running. Logs and JSON go to $OUT.
# Carry: .gpu/bin.tar.xz .gpu/layouts .gpu/tools .gpu/llama.cpp.tar.xz .whl
# Env: TESTS="device_quantized streams" (test binaries to run first, with RMLX_DEVICE=cuda),
# TEST_ARGS (extra test-harness arguments, e.g. "--skip default_model"), BENCHES="compile_fusion"
# (carried bench binaries, run after the tests), PROFILE=1 (rmlx --profile runs), UNCOMPILED=1 (each round also benches rmlx with RMLX_COMPILE=0),
# VARIANTS="RMLX_CUDA_GRAPHS=0 RMLX_CUDA_GRAPH_NODES=32" (each round also benches rmlx once per setting),
# SETUP_ONLY=1 (tests, models and the llama.cpp build only: a later call on the warm machine benches),
# ROUNDS=2
set -uo pipefail
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export RMLX_HOME=/tmp/rmlx-home
out=${OUT:-/tmp/out}; mkdir -p "$out"
work=/tmp/models; mkdir -p "$work"
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
tar -C .gpu -xJf .gpu/bin.tar.xz
bin=.gpu/bin/rmlx
ln -sfn "$PWD" /work/main 2>/dev/null || true
(taskset -c 4-15 nice scripts/gpu/build_llamacpp.sh 12 >"$out/llamacpp_build.log" 2>&1; echo "build rc=$?" >>"$out/llamacpp_build.log") &
build=$!
# Models already made on this (warm) machine by an earlier call are kept.
(([ -e "$work/smollm2.gguf" ] || taskset -c 4-15 python3 .gpu/tools/gguf_like.py make .gpu/layouts/smollm2.json "$work/smollm2.gguf" >/dev/null) &&
 ([ -e "$work/gpt-oss-20b/config.json" ] || taskset -c 4-15 python3 .gpu/tools/make_gpt_oss_checkpoint.py "$work/gpt-oss-20b" --preset 20b --threads 8 >/dev/null) &&
 ([ -e "$work/gpt-oss-20b.gguf" ] || taskset -c 4-15 python3 .gpu/tools/make_gpt_oss_gguf.py "$work/gpt-oss-20b.gguf" --preset 20b --threads 8 >/dev/null);
 echo "models rc=$?") >"$out/models.log" 2>&1 &
models=$!
for t in ${TESTS:-}; do
  el "test $t"
  RMLX_DEVICE=cuda taskset -c 0-3 .gpu/bin/$t --test-threads 1 ${TEST_ARGS:-} 2>&1 | tee -a "$out/tests.log" | grep -E "FAILED|panicked|test result" | tail -8
done
for b in ${BENCHES:-}; do el "bench $b"; taskset -c 0-3 .gpu/bin/bench-$b 2>&1 | tail -20; done
wait $models; el "models: $(cat "$out/models.log")"
rb() { # rmlx bench: MODEL PROMPT GEN [extra]
  local m=$1 p=$2 n=$3; shift 3
  taskset -c 0-3 timeout 200 $bin --device cuda bench --model "$m" -p "$p" -n "$n" --json "$@" ${RB_ARGS:-} 2>>"$out/rmlx_stderr.log" | tee -a "$out/rmlx.jsonl"
}
if [ "${PROFILE:-1}" = 1 ]; then
  el "profiles"
  rb "$work/gpt-oss-20b" 16 32 --profile >/dev/null
  rb "$work/smollm2.gguf" 16 64 --profile >/dev/null
fi
el "waiting for the llama.cpp build"; wait $build; tail -3 "$out/llamacpp_build.log"
lb=/tmp/lc/llama.cpp/build/bin/llama-bench
[ "${SETUP_ONLY:-0}" = 1 ] && { wait $build; tail -2 "$out/llamacpp_build.log"; el "setup done"; exit 0; }
for round in $(seq 1 "${ROUNDS:-2}"); do
  el "round $round"
  rb "$work/smollm2.gguf" 512 128
  rb "$work/gpt-oss-20b" 2048 128
  [ "$round" = 1 ] && for v in ${VARIANTS:-}; do
    echo "# $v" | tee -a "$out/rmlx.jsonl"
    (export "$v"; rb "$work/smollm2.gguf" 512 128; rb "$work/gpt-oss-20b" 2048 128)
  done
  if [ "${UNCOMPILED:-0}" = 1 ]; then
    echo "# RMLX_COMPILE=0" | tee -a "$out/rmlx.jsonl"
    RMLX_COMPILE=0 rb "$work/gpt-oss-20b" 2048 128
  fi
  if [ -x $lb ]; then
    taskset -c 0-3 timeout 200 $lb -m "$work/smollm2.gguf" -ngl 99 -fa 1 -p 512 -n 128 -r 3 -o json 2>>"$out/llama_stderr.log" | tee -a "$out/llama.json" | grep -E '"(n_prompt|n_gen|avg_ts)"' | tr -d '\n'; echo
    taskset -c 0-3 timeout 200 $lb -m "$work/gpt-oss-20b.gguf" -ngl 99 -fa 1 -p 2048 -n 128 -r 3 -o json 2>>"$out/llama_stderr.log" | tee -a "$out/llama.json" | grep -E '"(n_prompt|n_gen|avg_ts)"' | tr -d '\n'; echo
  fi
done
[ -x $lb ] && { strip -o /tmp/llama-bench $lb; xz -T8 -c /tmp/llama-bench > "$out/llama-bench.xz"; ls -la "$out/llama-bench.xz"; }
grep -A14 "decode profile" "$out/rmlx_stderr.log" | cut -c1-100
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv
el done
