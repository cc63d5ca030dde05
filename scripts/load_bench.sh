#!/usr/bin/env bash
# The load benchmark of `rmlx serve` beside llama.cpp's `llama-server`, and the soak test.
#
#   scripts/load_bench.sh [bench|soak|all]      (default: all)
#
# bench: for each stream count in STREAMS, one server at a time on the same model, the same
#   prompts, max_tokens, context per slot and thread count: `rmlx serve --parallel N` and
#   `llama-server -np N -c CTX*N`, each driven by rmlx-loadgen with N concurrent streams for
#   DURATION seconds; then one table (aggregate tok/s, TTFT and ITL p50/p90, rmlx/llama-server).
#   About (DURATION + ~15 s) x 2 servers x 4 stream counts: ~10 minutes with the defaults.
# soak: rmlx serve --parallel SOAK_PARALLEL under SOAK_STREAMS streams for SOAK_DURATION seconds
#   (default 600), each request dropped mid-stream with probability SOAK_DROP; fails when a
#   request errs or is lost, when the server's /metrics shows a failed request, a busy slot or
#   a waiting request afterwards, or when its log has a panic.
#
# Numbers are only worth reading on a quiet machine: run nothing else beside it.
# Env: MODEL (default: SmolLM2-135M-Instruct Q4_1, fetched by rmlx on first use),
#   STREAMS ("1 4 8 16"), DURATION (60), MAX_TOKENS (128), CTX (context per slot, 2048),
#   THREADS (2), PORT (18080), OUT (results folder, default bench/results/load-DATE-COMMIT),
#   SOAK_STREAMS (16), SOAK_PARALLEL (rmlx's --parallel in the soak, default SOAK_STREAMS; fewer
#   makes requests wait, and some hang up while queued), SOAK_DURATION (600), SOAK_DROP (0.3),
#   RMLX_ARGS / LLAMA_ARGS (more server flags), LLAMA_SERVER (a llama-server binary; default:
#   built by scripts/build_llama_server.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
case "$what" in bench | soak | all) ;; *)
    echo "usage: $0 [bench|soak|all]" >&2
    exit 2
    ;;
esac
STREAMS=${STREAMS:-1 4 8 16}
DURATION=${DURATION:-60}
MAX_TOKENS=${MAX_TOKENS:-128}
CTX=${CTX:-2048}
THREADS=${THREADS:-2}
PORT=${PORT:-18080}
SOAK_STREAMS=${SOAK_STREAMS:-16}
SOAK_PARALLEL=${SOAK_PARALLEL:-$SOAK_STREAMS}
SOAK_DURATION=${SOAK_DURATION:-600}
SOAK_DROP=${SOAK_DROP:-0.3}
OUT=${OUT:-bench/results/load-$(date -u +%Y%m%d-%H%M%S)-$(git rev-parse --short HEAD)}
mkdir -p "$OUT"

cargo build --release -q -p rmlx-cli -p rmlx-loadgen
bin=${CARGO_TARGET_DIR:-target}/release
RMLX=$bin/rmlx
LOADGEN=$bin/rmlx-loadgen
MODEL=${MODEL:-$HOME/.cache/rmlx/SmolLM2-135M-Instruct.Q4_1.gguf}
if [ ! -f "$MODEL" ]; then
    # The default model is fetched on first use by any command that runs it.
    "$RMLX" bench -p 1 -n 1 >/dev/null
fi

server_pid=
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
trap stop_server EXIT

# start_server NAME STREAMS LOG: one server in the background; rmlx-loadgen waits for /health.
start_server() {
    local name=$1 n=$2 log=$3
    # Something else answering on the port would be measured in our server's place.
    if curl -s -o /dev/null "http://127.0.0.1:$PORT/health"; then
        echo "load_bench: port $PORT is already in use; set PORT" >&2
        exit 1
    fi
    case "$name" in
    rmlx)
        # shellcheck disable=SC2086 # RMLX_ARGS is a list of flags
        "$RMLX" -t "$THREADS" serve --model "$MODEL" --port "$PORT" --parallel "$n" \
            --ctx "$CTX" ${RMLX_ARGS:-} >"$log" 2>&1 &
        ;;
    llama-server)
        # shellcheck disable=SC2086
        "$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port "$PORT" -np "$n" \
            -c $((CTX * n)) -t "$THREADS" -tb "$THREADS" ${LLAMA_ARGS:-} >"$log" 2>&1 &
        ;;
    esac
    server_pid=$!
}

# Fails (after saying why) when a line of the server's Prometheus text is not the value asked.
expect_metric() {
    local metrics=$1 name=$2 want=$3 got
    got=$(awk -v n="$name" '$1 == n {print $2}' <<<"$metrics")
    if [ "$got" != "$want" ]; then
        echo "soak: $name is ${got:-missing}, expected $want" >&2
        return 1
    fi
}

bench() {
    if [ -z "${LLAMA_SERVER:-}" ]; then
        LLAMA_SERVER=$(scripts/build_llama_server.sh | tail -1)/llama-server
    fi
    echo "# load bench: $(git rev-parse --short HEAD), $(date -u +%FT%TZ), $MODEL" | tee "$OUT/about.txt"
    echo "# $(lscpu | grep 'Model name' | sed 's/ \+/ /g'); load: $(cat /proc/loadavg)" | tee -a "$OUT/about.txt"
    local failed=0
    for n in $STREAMS; do
        for name in rmlx llama-server; do
            start_server "$name" "$n" "$OUT/$name-$n.log"
            "$LOADGEN" --url "http://127.0.0.1:$PORT" --label "$name" -c "$n" -d "$DURATION" \
                --max-tokens "$MAX_TOKENS" --wait-ready 300 --json "$OUT/$name-$n.json" ||
                failed=1
            stop_server
        done
    done
    python3 - "$OUT" "$STREAMS" >"$OUT/table.md" <<'EOF'
import json, os, sys
out, streams = sys.argv[1], sys.argv[2].split()
def load(name, n):
    p = os.path.join(out, f"{name}-{n}.json")
    return json.load(open(p))["summary"] if os.path.exists(p) else None
first = {name: load(name, streams[0]) for name in ("rmlx", "llama-server")}
print(f"| streams | server | tok/s | vs {streams[0]} stream(s) | TTFT p50 ms | TTFT p90 ms "
      "| ITL p50 ms | ITL p90 ms | tokens/request | ok / failed | rmlx / llama-server |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for n in streams:
    r, l = load("rmlx", n), load("llama-server", n)
    for name, s in (("rmlx", r), ("llama-server", l)):
        if s is None:
            print(f"| {n} | {name} | (no result) | | | | | | | | |")
            continue
        q = s["requests"]
        ratio = ""
        if name == "rmlx" and l and l["window_tok_s"] > 0:
            ratio = f"{s['window_tok_s'] / l['window_tok_s']:.2f}x"
        base = first[name]
        scale = f"{s['window_tok_s'] / base['window_tok_s']:.2f}x" if base and base["window_tok_s"] > 0 else ""
        print(f"| {n} | {name} | {s['window_tok_s']:.1f} | {scale} | {s['ttft_ms']['p50']:.0f} "
              f"| {s['ttft_ms']['p90']:.0f} | {s['itl_ms']['p50']:.1f} | {s['itl_ms']['p90']:.1f} "
              f"| {s['tokens_per_request']:.0f} | {q['ok']} / {q['errors'] + q['lost']} | {ratio} |")
EOF
    cat "$OUT/table.md"
    echo "(tok/s: tokens received by all streams together within the ${DURATION} s window)"
    return "$failed"
}

soak() {
    local log=$OUT/soak-rmlx.log failed=0 metrics
    start_server rmlx "$SOAK_PARALLEL" "$log"
    "$LOADGEN" --url "http://127.0.0.1:$PORT" --label "soak rmlx" -c "$SOAK_STREAMS" \
        -d "$SOAK_DURATION" --max-tokens "$MAX_TOKENS" --disconnect-prob "$SOAK_DROP" \
        --progress 60 --wait-ready 300 --json "$OUT/soak.json" || failed=1
    # Every dropped request must have freed its slot and nothing may wait or have failed.
    if metrics=$(curl -fsS "http://127.0.0.1:$PORT/metrics"); then
        expect_metric "$metrics" 'rmlx_requests_total{status="failed"}' 0 || failed=1
        expect_metric "$metrics" rmlx_slots_active 0 || failed=1
        expect_metric "$metrics" rmlx_queue_depth 0 || failed=1
        grep -E '^rmlx_requests_total' <<<"$metrics"
    else
        echo "soak: the server does not answer /metrics after the run" >&2
        failed=1
    fi
    stop_server
    if grep -qiE 'panick|panic' "$log"; then
        echo "soak: the server's log has a panic:" >&2
        grep -iE -A5 'panick|panic' "$log" >&2
        failed=1
    fi
    if [ "$failed" = 0 ]; then
        echo "soak: passed (nothing errored or was lost)"
    else
        echo "soak: FAILED (see $OUT)" >&2
    fi
    return "$failed"
}

status=0
case "$what" in
bench) bench || status=1 ;;
soak) soak || status=1 ;;
all)
    bench || status=1
    soak || status=1
    ;;
esac
echo "results: $OUT"
exit "$status"
