#!/usr/bin/env bash
# On the GPU machine: the GPU time of every kernel of a window of decode launches (one step or
# more), from Nsight Compute (real clocks, each kernel alone), summed by kernel name. Shows what
# a decode step costs on the GPU itself, without the launch gaps that event timing includes.
# Usage: ncu_step.sh MODEL SKIP COUNT   (kernels to skip — past the prompt — and to measure)
set -uo pipefail
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export RMLX_HOME=${RMLX_HOME:-/tmp/rmlx-home}
model=$1 skip=${2:-3000} count=${3:-400}
out=${OUT:-/tmp/out}; tag=$(basename "$model" | tr -c 'a-zA-Z0-9\n' _)
RMLX_CUDA_GRAPHS=0 ncu --clock-control none --launch-skip "$skip" --launch-count "$count" \
  --metrics gpu__time_duration.sum --csv --page raw \
  .gpu/bin/rmlx --device cuda bench --model "$model" -p 16 -n 24 --sync-decode \
  >"$out/ncu_step_$tag.csv" 2>"$out/ncu_step_$tag.err"
python3 - "$out/ncu_step_$tag.csv" "$count" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
head, data = rows[0], rows[2:]  # second row: units
ki, ti = head.index("Kernel Name"), head.index("gpu__time_duration.sum")
scale = {"nsecond": 1.0, "usecond": 1e3, "msecond": 1e6}.get(rows[1][ti], 1.0)  # to ns
agg = collections.defaultdict(lambda: [0, 0.0])
for r in data:
    a = agg[r[ki].split("(")[0]]; a[0] += 1; a[1] += float(r[ti].replace(",", "")) * scale
total = sum(v[1] for v in agg.values())
print(f"{len(data)} kernels, {total/1e3:.1f} us of GPU time in all")
for name, (n, t) in sorted(agg.items(), key=lambda x: -x[1][1])[:25]:
    print(f"{t/1e3:9.1f} us {100*t/total:5.1f}% {n:5d} calls {t/n/1e3:7.2f} us/call  {name}")
PY
