#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/, harnesses in crates/rmlx-fuzz) for a fixed time each,
# all targets in parallel, and writes a summary (executions, crashes) to a log.
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS] [JOBS]
#   scripts/fuzz.sh pack        # build, then write fuzz/fuzzbin.tar.xz (stripped targets, ~40 MB)
#
# TARGET   one of fuzz/fuzz_targets/*.rs, several joined by commas, or all (the default); the
#          targets run side by side
# SECONDS  time per target (default 60); the long runs use 1800 or more
# JOBS     libFuzzer worker processes per target (default: cores / targets, at least 1)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Builds the targets
# (optimized, debug assertions and overflow checks on, AddressSanitizer) and runs each in
# libFuzzer's fork mode, which keeps fuzzing past a crash and saves every crashing input:
#   corpus:    crates/rmlx-fuzz/corpus/TARGET (committed seeds, read only) and
#              fuzz/corpus/TARGET (what this run adds; not committed)
#   artifacts: fuzz/artifacts/TARGET/{crash,leak,timeout,oom}-*
#   logs:      fuzz/logs/STAMP/TARGET.log and fuzz/logs/STAMP/summary.txt
# A crashing input replays with: fuzz/target/x86_64-unknown-linux-gnu/release/TARGET FILE
# Exit status 1 when any target found a crash, leak, timeout or out-of-memory input.
#
# On a machine without the toolchain (or network), run binaries built elsewhere: `pack` here,
# copy fuzz/fuzzbin.tar.xz there, `tar -xJf fuzz/fuzzbin.tar.xz -C fuzz`, then
# FUZZ_BIN=fuzz/bin scripts/fuzz.sh all 1800 2
set -euo pipefail
cd "$(dirname "$0")/.."
build=fuzz/target/x86_64-unknown-linux-gnu/release

if [ "${1:-}" = pack ]; then
    (cd fuzz && cargo +nightly fuzz build)
    rm -rf fuzz/bin && mkdir -p fuzz/bin
    for t in $(ls fuzz/fuzz_targets | sed 's/\.rs$//'); do
        # Symbols stay (ASan reports name functions); line tables go.
        strip --strip-debug -o "fuzz/bin/$t" "$build/$t"
    done
    tar -C fuzz -cf - bin | xz -T0 -6 >fuzz/fuzzbin.tar.xz
    echo "fuzz.sh: wrote fuzz/fuzzbin.tar.xz ($(du -h fuzz/fuzzbin.tar.xz | cut -f1))"
    exit 0
fi

target=${1:-all}
seconds=${2:-60}
all=$(ls fuzz/fuzz_targets | sed 's/\.rs$//')
if [ "$target" = all ]; then targets=$all; else targets=$(tr ',' ' ' <<<"$target"); fi
for t in $targets; do
    grep -qx "$t" <<<"$all" || { echo "fuzz.sh: no target '$t' (have: $(echo $all))" >&2; exit 2; }
done
count=$(wc -w <<<"$targets")
jobs=${3:-$(( $(nproc) / count > 0 ? $(nproc) / count : 1 ))}

if [ -n "${FUZZ_BIN:-}" ]; then
    bin=$FUZZ_BIN
else
    (cd fuzz && cargo +nightly fuzz build)
    bin=$build
fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)
logs=fuzz/logs/$stamp
mkdir -p "$logs"
touch "$logs/.start"

# One thread per process for the CPU kernels: parallelism comes from the workers.
export RAYON_NUM_THREADS=1
for t in $targets; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    dict=()
    [ -f "fuzz/dict/$t.dict" ] && dict=("-dict=fuzz/dict/$t.dict")
    # -timeout: one input running 20 s is a hang; -rss_limit_mb also caps single allocations.
    "$bin/$t" "fuzz/corpus/$t" "crates/rmlx-fuzz/corpus/$t" "${dict[@]}" \
        -fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$logs/$t.log" 2>&1 &
done
echo "fuzz.sh: $count target(s) x $jobs job(s) for ${seconds}s; logs in $logs"
wait || true

status=0
{
    echo "fuzz run $stamp: ${seconds}s per target, $jobs job(s) each, on $(nproc) cores"
    if git rev-parse --short HEAD >/dev/null 2>&1; then
        echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (modified)'), binaries from $bin"
    fi
    printf '%-20s %14s %8s %10s %16s  %s\n' target executions corpus coverage crash/timeout/oom artifacts
    for t in $targets; do
        # Fork mode's progress lines: "#EXECS: cov: C ft: F corp: N exec/s: E
        # oom/timeout/crash: O/T/C time: S job: J dft_time: D"; the last one has the totals.
        last=$(grep -E '^#[0-9]+: cov:' "$logs/$t.log" | tail -n 1 || true)
        execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
        corp=$(sed -E 's/.* corp: ([0-9]+).*/\1/' <<<"$last")
        cov=$(sed -E 's/.* cov: ([0-9]+).*/\1/' <<<"$last")
        otc=$(sed -E 's|.*oom/timeout/crash: ([0-9]+)/([0-9]+)/([0-9]+).*|\3/\2/\1|' <<<"$last")
        found=$(find "fuzz/artifacts/$t" -newer "$logs/.start" -type f | wc -l)
        if [ -z "$last" ]; then
            execs=?; corp=?; cov=?; otc="no stats (see $t.log)"; status=1
        fi
        [ "$found" -gt 0 ] && status=1
        printf '%-20s %14s %8s %10s %16s  %s\n' "$t" "$execs" "$corp" "$cov" "$otc" "$found"
    done
} | tee "$logs/summary.txt"
exit $status
