//! A client that goes away mid-stream cancels its request: the worker stops generating for it
//! and goes on with the next.

mod support;

use rmlx_lm::{GenerateOptions, Prompt, SamplerConfig};
use serde_json::json;
use support::{block_worker, start, wait_done, MODEL_ID};

#[tokio::test]
async fn a_dropped_stream_cancels_its_request() {
    let server = start(2048, 4, |_| {}).await;
    // Hold the worker so the streamed request waits in the queue while its client leaves.
    let release = block_worker(&server);
    let body = json!({
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "max_tokens": 2000,
        "stream": true,
    });
    let mut response = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.v1()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // The role chunk comes before any token; then the client hangs up.
    let first = response.chunk().await.unwrap().expect("a first chunk");
    assert!(String::from_utf8_lossy(&first).contains("\"role\":\"assistant\""));
    drop(response);

    release.send(()).unwrap();
    let opts = GenerateOptions {
        max_tokens: Some(3),
        sampler: SamplerConfig::greedy(),
        ..GenerateOptions::default()
    };
    let next = server
        .worker
        .submit_channel(&Prompt::Text("Hi".into()), opts)
        .unwrap();
    assert_eq!(wait_done(next).await.generated_tokens, 3);
    // Requests run in order: the streamed one has ended, cancelled long before its 2000 tokens.
    let stats = server.worker.stats();
    assert_eq!((stats.cancelled, stats.finished), (1, 2), "{stats:?}");
    assert!(stats.generated_tokens < 4 + 3 + 1000, "{stats:?}");
}
