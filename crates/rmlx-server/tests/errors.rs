//! Bad requests get a 4xx with an OpenAI-style error object, over plain HTTP.

mod support;

use rmlx_lm::{GenerateOptions, Prompt, SamplerConfig};
use serde_json::{json, Value as Json};
use support::{block_worker, start, wait_done, TestServer, MODEL_ID};

/// POSTs `body` (raw bytes) to `path`; returns the status and the JSON answer.
async fn post(
    server: &TestServer,
    path: &str,
    body: impl Into<reqwest::Body>,
    key: Option<&str>,
) -> (u16, Json) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", server.base))
        .header("content-type", "application/json")
        .body(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"));
    (status, v)
}

/// Checks the error object's shape and returns its message.
fn error_message(v: &Json) -> String {
    let e = &v["error"];
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
    e["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string()
}

fn chat(extra: Json) -> String {
    let mut v = json!({"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v.to_string()
}

#[tokio::test]
async fn malformed_or_ill_typed_requests_are_400s() {
    let server = start(64, 4, |_| {}).await;
    let cases: Vec<(String, &str)> = vec![
        ("{\"model\": ".into(), "malformed JSON"),
        ("[1, 2]".into(), "invalid request"),
        (chat(json!({"temperature": "hot"})), "invalid type"),
        (chat(json!({"messages": []})), "at least one message"),
        (chat(json!({"messages": "Hi"})), "array of messages"),
        (chat(json!({"messages": [{"content": "Hi"}]})), "role"),
        (
            chat(json!({"messages": [{"role": "user", "content": 5}]})),
            "content",
        ),
        (chat(json!({"n": 2})), "only 1 choice"),
        (chat(json!({"temperature": 3.0})), "temperature"),
        (chat(json!({"top_p": 0.0})), "top_p"),
        (chat(json!({"max_tokens": 0})), "max_tokens"),
        (chat(json!({"stop": 5})), "invalid request"),
        (chat(json!({"logprobs": 3})), "logprobs: expected a boolean"),
        (
            chat(json!({"top_logprobs": 2})),
            "requires `logprobs: true`",
        ),
        (
            chat(json!({"logprobs": true, "top_logprobs": 21})),
            "top_logprobs: expected 0 to 20",
        ),
        (chat(json!({"seed": "x"})), "invalid type"),
        (json!({"model": MODEL_ID}).to_string(), "messages"),
    ];
    for (body, needle) in cases {
        let (status, v) = post(&server, "/v1/chat/completions", body.clone(), None).await;
        assert_eq!(status, 400, "{body} -> {v}");
        let m = error_message(&v);
        assert!(m.contains(needle), "{body}: expected {needle:?} in {m:?}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    let completions = [
        (json!({"prompt": 3}), "prompt"),
        (
            json!({"prompt": "Hi", "logprobs": 21}),
            "logprobs: expected 0 to 20",
        ),
        (
            json!({"prompt": "Hi", "logprobs": true}),
            "expected an integer",
        ),
        (
            json!({"prompt": "Hi", "logprobs": 2, "top_logprobs": 2}),
            "number of alternatives in `logprobs`",
        ),
    ];
    for (mut body, needle) in completions {
        body["model"] = json!(MODEL_ID);
        let (status, v) = post(&server, "/v1/completions", body.to_string(), None).await;
        assert_eq!(status, 400, "{body} -> {v}");
        let m = error_message(&v);
        assert!(m.contains(needle), "{body}: expected {needle:?} in {m:?}");
    }
}

#[tokio::test]
async fn prompts_past_the_context_are_400s_naming_the_numbers() {
    let server = start(64, 4, |_| {}).await;
    // One token per byte: 100 bytes cannot fit 64 positions.
    let long = "x".repeat(100);
    let (status, v) = post(
        &server,
        "/v1/completions",
        json!({"model": MODEL_ID, "prompt": long}).to_string(),
        None,
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(v["error"]["param"], "prompt");
    let m = error_message(&v);
    assert!(m.contains("100 prompt tokens") && m.contains("64"), "{m}");
    // A short prompt asking for more tokens than the context leaves.
    let (status, v) = post(
        &server,
        "/v1/chat/completions",
        chat(json!({"max_tokens": 64})),
        None,
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(v["error"]["param"], "messages");
}

#[tokio::test]
async fn unknown_models_and_routes_are_404s() {
    let server = start(64, 4, |_| {}).await;
    let (status, v) = post(
        &server,
        "/v1/chat/completions",
        chat(json!({"model": "gpt-4o"})),
        None,
    )
    .await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], "model_not_found");
    assert!(error_message(&v).contains("gpt-4o"));
    // No model at all is the served one (llama-server and vLLM accept that too).
    let body = r#"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}"#;
    let (status, v) = post(&server, "/v1/chat/completions", body, None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model"], MODEL_ID);
    let (status, v) = post(&server, "/v1/embeddings", "{}", None).await;
    assert_eq!(status, 404, "{v}");
    assert!(error_message(&v).contains("/v1/embeddings"));
    let r = reqwest::get(format!("{}/v1/chat/completions", server.base))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let v: Json = r.json().await.unwrap();
    assert!(error_message(&v).contains("GET"), "{v}");
}

#[tokio::test]
async fn oversized_bodies_are_413s() {
    let server = start(64, 4, |c| c.max_body_bytes = 1024).await;
    let big = chat(json!({"messages": [{"role": "user", "content": "y".repeat(2000)}]}));
    let (status, v) = post(&server, "/v1/chat/completions", big, None).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["code"], "body_too_large");
    // Under the limit, the same server answers.
    let (status, v) = post(&server, "/v1/chat/completions", chat(json!({})), None).await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn an_api_key_is_required_when_set() {
    let server = start(64, 4, |c| c.api_key = Some("sesame".into())).await;
    for key in [None, Some("wrong"), Some("sesam")] {
        let (status, v) = post(&server, "/v1/chat/completions", chat(json!({})), key).await;
        assert_eq!(status, 401, "{key:?}: {v}");
        assert_eq!(v["error"]["code"], "invalid_api_key");
    }
    let (status, v) = post(
        &server,
        "/v1/chat/completions",
        chat(json!({})),
        Some("sesame"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let r = reqwest::get(format!("{}/v1/models", server.base))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Health checks need no key.
    let r = reqwest::get(format!("{}/health", server.base))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn a_full_queue_is_a_429() {
    // One request runs, one waits (queue of 1): a third is refused.
    let server = start(64, 1, |_| {}).await;
    let opts = GenerateOptions {
        max_tokens: Some(4),
        sampler: SamplerConfig::greedy(),
        ..GenerateOptions::default()
    };
    let prompt = Prompt::Text("Hi".into());
    let release = block_worker(&server);
    let waiting = server.worker.submit_channel(&prompt, opts).unwrap();

    let (status, v) = post(&server, "/v1/chat/completions", chat(json!({})), None).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"]["code"], "queue_full");

    release.send(()).unwrap();
    let done = wait_done(waiting).await;
    assert_eq!(done.generated_tokens, 4);
    // The queue drained: requests are served again.
    let (status, v) = post(&server, "/v1/chat/completions", chat(json!({})), None).await;
    assert_eq!(status, 200, "{v}");
}
