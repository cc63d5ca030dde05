#!/usr/bin/env bash
# On the GPU machine: speed runs of the carried `rmlx` binary on random-weight models in the exact
# layouts of the real ones (SmolLM2-135M Q4_1 from a gguf_like layout, gpt-oss-20b from
# make_gpt_oss_checkpoint.py --preset 20b). Needs numpy and gguf (carried as a wheel in .whl).
set -uo pipefail
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export RMLX_HOME=${RMLX_HOME:-/tmp/rmlx-home}
out=${OUT:-/tmp/out}
work=/tmp/models; mkdir -p "$work"
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
[ -d .gpu/bin ] || tar -C .gpu -xJf .gpu/bin.tar.xz
bin=.gpu/bin/rmlx
if [ -f .gpu/layouts/smollm2.json ]; then
  python3 .gpu/tools/gguf_like.py make .gpu/layouts/smollm2.json "$work/smollm2.gguf" >/dev/null
  for dev in ${BENCH_DEVICES:-cuda}; do
    timeout 120 $bin --device $dev bench --model "$work/smollm2.gguf" -p 512 -n 128 --json \
      | tee -a "$out/bench.jsonl"
  done
fi
if [ "${BENCH_20B:-1}" = 1 ]; then
  t0=$(date +%s)
  python3 .gpu/tools/make_gpt_oss_checkpoint.py "$work/gpt-oss-20b" --preset 20b >/dev/null 2>&1
  echo "20b checkpoint made in $(( $(date +%s) - t0 )) s"
  timeout 240 $bin --device cuda bench --model "$work/gpt-oss-20b" -p 2048 -n 128 --json \
    | tee -a "$out/bench.jsonl"
fi
