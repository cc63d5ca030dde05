#!/usr/bin/env bash
# rmlx vs llama.cpp side by side, same machine, same run (CPU).
#   bench/compare.sh LLAMA_BENCH_BIN [REPS]
# Measures SmolLM2-135M-Instruct Q4_1 (pp512, tg128) and, when present, the synthetic
# gpt-oss-20b (safetensors for rmlx: /tmp/gptoss-20b; GGUF for llama.cpp: /tmp/gptoss-20b.gguf;
# both from ../shared/tools). Run with nothing else on the machine.
set -euo pipefail
LB=${1:?path to llama-bench}
REPS=${2:-5}
cd "$(dirname "$0")/.."
RMLX=target/release/rmlx
cargo build --release -q -p rmlx-cli
SMOL=$($RMLX inspect --json 2>/dev/null >/dev/null || true; python3 -c 'import os;print(os.path.expanduser("~/.cache/rmlx/SmolLM2-135M-Instruct.Q4_1.gguf"))')
[ -f "$SMOL" ] || $RMLX bench -p 1 -n 1 >/dev/null
echo "## $(date -u +%F) $(git rev-parse --short HEAD) $(lscpu | grep 'Model name' | sed 's/ \+/ /g')"
echo "load: $(cat /proc/loadavg)"
for i in $(seq "$REPS"); do
  $RMLX -t 2 bench --model "$SMOL" -p 512 -n 128 --json
  $LB -m "$SMOL" -t 2 -p 512 -n 128 -r 1 -o json | python3 -c 'import json,sys; [print(json.dumps({"llama_cpp": r["n_prompt"] and "pp" or "tg", "n_prompt": r["n_prompt"], "n_gen": r["n_gen"], "avg_ts": r["avg_ts"]})) for r in json.load(sys.stdin)]'
done
if [ -d /tmp/gptoss-20b ]; then
  for i in $(seq 2); do
    $RMLX -t 2 bench --model /tmp/gptoss-20b -p 16 -n 8 --json
    [ -f /tmp/gptoss-20b.gguf ] && $LB -m /tmp/gptoss-20b.gguf -t 1 -p 16 -n 8 -r 1 -o json | python3 -c 'import json,sys; [print(json.dumps({"llama_cpp": "gpt-oss t1", "n_prompt": r["n_prompt"], "n_gen": r["n_gen"], "avg_ts": r["avg_ts"]})) for r in json.load(sys.stdin)]'
  done
fi
