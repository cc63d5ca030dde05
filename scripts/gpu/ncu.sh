#!/usr/bin/env bash
# On the GPU machine: Nsight Compute on a few decode kernels of `rmlx bench` (real clocks), a
# summary per kernel on stdout and the full report in $OUT/ncu_<name>.txt.
# Usage: ncu.sh MODEL 'regex:qmv1|gemv' [SKIP] [COUNT]
set -uo pipefail
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export RMLX_HOME=${RMLX_HOME:-/tmp/rmlx-home}
model=$1 kernels=$2 skip=${3:-200} count=${4:-6}
out=${OUT:-/tmp/out}; tag=$(basename "$model" | tr -c 'a-zA-Z0-9\n' _)
ncu --clock-control none -k "$kernels" --launch-skip "$skip" --launch-count "$count" \
  --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
  --section MemoryWorkloadAnalysis \
  .gpu/bin/rmlx --device cuda bench --model "$model" -p 16 -n 8 >"$out/ncu_$tag.txt" 2>&1
grep -E '^  [a-z_0-9]+.*\(|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Block Size|Grid Size|Theoretical Occ|Stall' \
  "$out/ncu_$tag.txt" | head -150
