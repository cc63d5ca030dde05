//! One streamed request: send it, read its SSE chunks as they arrive, time them, and judge how
//! it ended.

use crate::sse::SseReader;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Serialize;
use serde_json::Value as Json;
use std::time::{Duration, Instant};

/// How a request ended. `Ok` and `Dropped` are the only good ones.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    /// A whole answer: a finish reason, the usage (when asked for) and `[DONE]`.
    Ok,
    /// The client hung up on purpose (`--disconnect-prob`).
    Dropped,
    /// A non-200, a connection that could not be made, an error object in the stream, a chunk
    /// that is not JSON, or an answer that breaks the protocol (no finish reason, no usage).
    Error(String),
    /// Never finished: no end within the timeout, or the stream stopped before `[DONE]`.
    Lost(String),
}

/// What one request measured. Times are seconds.
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    pub stream: usize,
    /// Index into the prompt set.
    pub prompt: usize,
    /// When it was sent, from the start of the run.
    pub start_s: f64,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Sent to first text chunk.
    pub ttft_s: Option<f64>,
    /// Sent to end (or to the hang-up).
    pub e2e_s: f64,
    /// Gaps between consecutive text chunks (not written to the JSON: the summary has them).
    #[serde(skip)]
    pub itl_s: Vec<f64>,
    /// Chunks that carried text (content, reasoning or tool calls).
    pub text_chunks: usize,
    pub completion_tokens: Option<u64>,
    pub prompt_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    pub finish_reason: Option<String>,
}

impl Record {
    /// Generated tokens: the usage's count, else one per text chunk.
    pub fn tokens(&self) -> u64 {
        self.completion_tokens.unwrap_or(self.text_chunks as u64)
    }

    /// Time per output token after the first: (last chunk − first chunk) / (tokens − 1).
    pub fn tpot_s(&self) -> Option<f64> {
        self.ttft_s?;
        let n = self.tokens();
        let decode: f64 = self.itl_s.iter().sum();
        (n > 1).then(|| decode / (n - 1) as f64)
    }
}

/// What every request of a run shares.
pub struct Target {
    pub client: reqwest::Client,
    /// The endpoint's full URL.
    pub url: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    /// `stream_options.include_usage` was asked for: a usage chunk must come.
    pub want_usage: bool,
    pub max_tokens: u64,
}

/// Runs one request with `body`; hangs up after `drop_after` text chunks when given (0: as
/// soon as the response's headers arrive).
pub async fn run(
    target: &Target,
    body: String,
    drop_after: Option<usize>,
    stream: usize,
    prompt: usize,
    run_start: Instant,
) -> Record {
    let sent = Instant::now();
    let mut rec = Record {
        stream,
        prompt,
        start_s: (sent - run_start).as_secs_f64(),
        outcome: Outcome::Ok,
        ttft_s: None,
        e2e_s: 0.0,
        itl_s: Vec::new(),
        text_chunks: 0,
        completion_tokens: None,
        prompt_tokens: None,
        cached_tokens: None,
        finish_reason: None,
    };
    let outcome = tokio::time::timeout(
        target.timeout,
        read(target, body, drop_after, sent, &mut rec),
    )
    .await
    .unwrap_or_else(|_| {
        Outcome::Lost(format!(
            "no end after {} s ({} text chunks read)",
            target.timeout.as_secs(),
            rec.text_chunks
        ))
    });
    rec.outcome = outcome;
    rec.e2e_s = sent.elapsed().as_secs_f64();
    rec
}

async fn read(
    target: &Target,
    body: String,
    drop_after: Option<usize>,
    sent: Instant,
    rec: &mut Record,
) -> Outcome {
    let mut req = target
        .client
        .post(&target.url)
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(key) = &target.api_key {
        req = req.header(AUTHORIZATION, format!("Bearer {key}"));
    }
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Outcome::Error(format!("send: {}", chain(&e))),
    };
    let status = resp.status();
    if status != reqwest::StatusCode::OK {
        let text = resp.text().await.unwrap_or_default();
        return Outcome::Error(format!("HTTP {status}: {}", clip(&text)));
    }
    if drop_after == Some(0) {
        return Outcome::Dropped;
    }
    let mut sse = SseReader::default();
    let mut last_text: Option<Instant> = None;
    let mut done = false;
    loop {
        let bytes = match resp.chunk().await {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(e) => return Outcome::Lost(format!("stream broken: {}", chain(&e))),
        };
        for data in sse.push(&bytes) {
            if done {
                return Outcome::Error(format!("data after [DONE]: {}", clip(&data)));
            }
            if data.trim() == "[DONE]" {
                done = true;
                continue;
            }
            let v: Json = match serde_json::from_str(&data) {
                Ok(v) => v,
                Err(e) => {
                    return Outcome::Error(format!("chunk is not JSON ({e}): {}", clip(&data)))
                }
            };
            if let Some(err) = v.get("error") {
                return Outcome::Error(format!("error in stream: {}", clip(&err.to_string())));
            }
            if carries_text(&v) {
                let now = Instant::now();
                match last_text {
                    None => rec.ttft_s = Some((now - sent).as_secs_f64()),
                    Some(t) => rec.itl_s.push((now - t).as_secs_f64()),
                }
                last_text = Some(now);
                rec.text_chunks += 1;
                if drop_after.is_some_and(|k| rec.text_chunks >= k) {
                    return Outcome::Dropped;
                }
            }
            if let Some(f) = v.pointer("/choices/0/finish_reason").and_then(Json::as_str) {
                rec.finish_reason = Some(f.to_string());
            }
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                rec.completion_tokens = u.get("completion_tokens").and_then(Json::as_u64);
                rec.prompt_tokens = u.get("prompt_tokens").and_then(Json::as_u64);
                rec.cached_tokens = u
                    .pointer("/prompt_tokens_details/cached_tokens")
                    .and_then(Json::as_u64);
            }
        }
    }
    if !done {
        let cut = if sse.pending() { " (mid-event)" } else { "" };
        return Outcome::Lost(format!(
            "stream ended without [DONE]{cut} after {} text chunks",
            rec.text_chunks
        ));
    }
    if rec.finish_reason.is_none() {
        return Outcome::Error("no chunk carried a finish_reason".into());
    }
    if target.want_usage && rec.completion_tokens.is_none() {
        return Outcome::Error("include_usage was asked for but no usage chunk came".into());
    }
    if rec.tokens() > target.max_tokens {
        return Outcome::Error(format!(
            "{} tokens generated, more than max_tokens {}",
            rec.tokens(),
            target.max_tokens
        ));
    }
    Outcome::Ok
}

/// A chunk with generated text: chat's `delta.content` / reasoning / tool calls, or the legacy
/// completions' `text`.
fn carries_text(v: &Json) -> bool {
    let Some(choice) = v.pointer("/choices/0") else {
        return false;
    };
    let nonempty = |j: Option<&Json>| j.and_then(Json::as_str).is_some_and(|s| !s.is_empty());
    match choice.get("delta") {
        Some(d) => {
            nonempty(d.get("content"))
                || nonempty(d.get("reasoning_content"))
                || nonempty(d.get("reasoning"))
                || d.get("tool_calls").is_some_and(|t| !t.is_null())
        }
        None => nonempty(choice.get("text")),
    }
}

/// An error with its causes (reqwest's own message alone is often just "error sending request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// At most 300 characters of a server's text, for messages.
fn clip(s: &str) -> String {
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_chunks_of_both_endpoints() {
        assert!(carries_text(
            &json!({"choices": [{"delta": {"content": "Hi"}}]})
        ));
        assert!(carries_text(
            &json!({"choices": [{"delta": {"reasoning_content": "hm"}}]})
        ));
        assert!(carries_text(&json!({"choices": [{"text": " the"}]})));
        // The role chunk, an empty delta, the usage chunk (no choices) carry none.
        assert!(!carries_text(
            &json!({"choices": [{"delta": {"role": "assistant", "content": null}}]})
        ));
        assert!(!carries_text(
            &json!({"choices": [{"delta": {}, "finish_reason": "stop"}]})
        ));
        assert!(!carries_text(
            &json!({"choices": [], "usage": {"completion_tokens": 3}})
        ));
    }

    #[test]
    fn tokens_and_time_per_output_token() {
        let mut r = Record {
            stream: 0,
            prompt: 0,
            start_s: 0.0,
            outcome: Outcome::Ok,
            ttft_s: Some(0.5),
            e2e_s: 1.0,
            itl_s: vec![0.1, 0.1, 0.2],
            text_chunks: 4,
            completion_tokens: None,
            prompt_tokens: None,
            cached_tokens: None,
            finish_reason: Some("length".into()),
        };
        assert_eq!(r.tokens(), 4);
        assert!((r.tpot_s().unwrap() - 0.4 / 3.0).abs() < 1e-12);
        // The usage's count wins (a chunk may carry several tokens).
        r.completion_tokens = Some(5);
        assert!((r.tpot_s().unwrap() - 0.1).abs() < 1e-12);
    }

    #[test]
    fn clip_keeps_short_text_and_cuts_on_a_char_boundary() {
        assert_eq!(clip("abc"), "abc");
        let long = "é".repeat(400);
        assert_eq!(clip(&long).chars().count(), 301);
    }
}
