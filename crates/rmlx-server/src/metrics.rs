//! `GET /metrics`: the worker's counters in Prometheus' text format (version 0.0.4).

use crate::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use rmlx_lm::metrics::TTFT_BUCKETS;
use rmlx_lm::WorkerStats;
use std::fmt::Write;

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        render(&state.worker.stats()),
    )
}

/// One metric family: its help and type lines, then `(labels, value)` samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

pub fn render(s: &WorkerStats) -> String {
    let mut out = String::new();
    let o = &mut out;
    let n = |v: u64| v as f64;
    family(
        o,
        "rmlx_requests_total",
        "counter",
        "Requests ended, by how they ended.",
        &[
            ("{status=\"finished\"}", n(s.finished)),
            ("{status=\"cancelled\"}", n(s.cancelled)),
            ("{status=\"failed\"}", n(s.failed)),
        ],
    );
    let counters = [
        (
            "rmlx_prompt_tokens_total",
            "Prompt tokens of the requests admitted.",
            s.prompt_tokens,
        ),
        (
            "rmlx_prompt_tokens_cached_total",
            "Prompt tokens reused from a slot's KV cache (not computed).",
            s.cached_prompt_tokens,
        ),
        (
            "rmlx_generated_tokens_total",
            "Tokens generated.",
            s.generated_tokens,
        ),
        (
            "rmlx_steps_total",
            "Forward passes run (each over every running request).",
            s.steps,
        ),
        (
            "rmlx_step_sequences_total",
            "Requests run by the forward passes, summed (over steps: the mean batch).",
            s.step_sequences,
        ),
    ];
    for (name, help, v) in counters {
        family(o, name, "counter", help, &[("", n(v))]);
    }
    let gauges = [
        (
            "rmlx_queue_depth",
            "Requests waiting for a free slot.",
            n(s.queued),
        ),
        ("rmlx_slots_active", "Slots running a request.", n(s.active)),
        ("rmlx_slots", "Slots (requests run at once).", n(s.parallel)),
        (
            "rmlx_generated_tokens_per_second",
            "Tokens generated per second, all requests, over the last 10 seconds.",
            s.tokens_per_second,
        ),
    ];
    for (name, help, v) in gauges {
        family(o, name, "gauge", help, &[("", v)]);
    }
    let name = "rmlx_time_to_first_token_seconds";
    let _ = writeln!(
        o,
        "# HELP {name} Time from a request's submission to its first token."
    );
    let _ = writeln!(o, "# TYPE {name} histogram");
    for (le, count) in TTFT_BUCKETS.iter().zip(s.ttft_buckets) {
        let _ = writeln!(o, "{name}_bucket{{le=\"{le}\"}} {count}");
    }
    let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {}", s.ttft_count);
    let _ = writeln!(o, "{name}_sum {}", s.ttft_sum_s);
    let _ = writeln!(o, "{name}_count {}", s.ttft_count);
    out
}
