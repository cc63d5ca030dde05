//! Several clients at once over HTTP: concurrent streams, run batched, each get the text they
//! get alone (greedy); a repeated prompt reports its reused prefix in
//! `usage.prompt_tokens_details.cached_tokens`; `/metrics` counts it all in Prometheus text.

mod support;

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequest,
    CreateChatCompletionRequestArgs,
};
use async_openai::Client;
use rmlx_lm::{Engine, GenerateOptions, Prompt, SamplerConfig, WorkerOptions};
use serde_json::json;
use std::time::Duration;
use support::{block_worker, start_batched, tiny_chat, TestServer, MODEL_ID};
use tokio_stream::StreamExt;

const QUESTIONS: [&str; 4] = [
    "What is the capital of France?",
    "Name three colors.",
    "Hi",
    "Write one long sentence about the sea and the wind.",
];

fn request(question: &str, max_tokens: u32) -> CreateChatCompletionRequest {
    CreateChatCompletionRequestArgs::default()
        .model(MODEL_ID)
        .max_completion_tokens(max_tokens)
        .temperature(0.0)
        .messages(vec![ChatCompletionRequestUserMessageArgs::default()
            .content(question)
            .build()
            .unwrap()
            .into()])
        .build()
        .unwrap()
}

/// What the library generates for `question` alone (greedy).
fn alone(server: &TestServer, question: &str, max_tokens: usize) -> String {
    let engine = Engine::load(server.model_dir()).unwrap();
    let opts = GenerateOptions {
        max_tokens: Some(max_tokens),
        sampler: SamplerConfig::greedy(),
        ..GenerateOptions::default()
    };
    let prompt = Prompt::Chat(vec![json!({"role": "user", "content": question})]);
    engine
        .generate(&prompt, &opts, None, &mut |_| {})
        .unwrap()
        .text
}

/// The streamed content of a chat request.
async fn streamed(client: Client<OpenAIConfig>, req: CreateChatCompletionRequest) -> String {
    let mut stream = client.chat().create_stream(req).await.unwrap();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        for c in chunk.unwrap().choices {
            text.push_str(c.delta.content.as_deref().unwrap_or(""));
        }
    }
    text
}

async fn server(parallel: usize) -> TestServer {
    let opts = WorkerOptions {
        queue: 8,
        parallel,
        step_tokens: 32,
    };
    start_batched(tiny_chat::llama_chat(512), opts, |_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_get_the_text_each_gets_alone() {
    let server = server(4).await;
    let lengths = [24, 40, 8, 32];
    // Hold the worker while the four streams queue, so they run together.
    let release = block_worker(&server);
    let tasks: Vec<_> = QUESTIONS
        .iter()
        .zip(lengths)
        .map(|(q, n)| tokio::spawn(streamed(server.client(), request(q, n))))
        .collect();
    while server.worker.stats().queued < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    release.send(()).unwrap();
    for ((task, q), n) in tasks.into_iter().zip(QUESTIONS).zip(lengths) {
        let got = task.await.unwrap();
        assert_eq!(got, alone(&server, q, n as usize), "{q}");
    }
    let stats = server.worker.stats();
    assert_eq!((stats.finished, stats.cancelled, stats.failed), (5, 0, 0));
    assert!(
        stats.step_sequences >= stats.steps + 24,
        "the streams ran batched: {stats:?}"
    );
}

#[tokio::test]
async fn a_repeated_prompt_reports_its_cached_tokens() {
    let server = server(2).await;
    let chat = server.client();
    let first = chat.chat().create(request(QUESTIONS[0], 6)).await.unwrap();
    let again = chat.chat().create(request(QUESTIONS[0], 6)).await.unwrap();
    assert_eq!(
        first.choices[0].message.content,
        again.choices[0].message.content
    );
    let cached = |u: &async_openai::types::chat::CompletionUsage| {
        u.prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
    };
    let (u1, u2) = (first.usage.unwrap(), again.usage.unwrap());
    assert_eq!(cached(&u1), Some(0));
    // All but the last prompt token (its logits give the first reply token).
    assert_eq!(cached(&u2), Some(u2.prompt_tokens - 1));
    // Another question shares the template's head (`[user] `) with the first: that much is
    // reused, and the text is what it is alone.
    let text = streamed(server.client(), request(QUESTIONS[1], 6)).await;
    assert_eq!(text, alone(&server, QUESTIONS[1], 6));
    let engine = Engine::load(server.model_dir()).unwrap();
    let tokens = |q: &str| {
        let chat = Prompt::Chat(vec![json!({"role": "user", "content": q})]);
        engine.encode_prompt(&chat).unwrap()
    };
    let (a, b) = (tokens(QUESTIONS[0]), tokens(QUESTIONS[1]));
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    assert!(head >= "[user] ".len(), "{head}");
    let stats = server.worker.stats();
    let want = u2.prompt_tokens as usize - 1 + head;
    assert_eq!(stats.cached_prompt_tokens, want as u64);
}

/// `name{labels} value` lines of a Prometheus text body, each checked to parse.
fn samples(body: &str) -> Vec<(String, f64)> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("`name value`");
            let v: f64 = value.parse().unwrap_or_else(|_| panic!("number in {l:?}"));
            (name.to_string(), v)
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_time_to_first_token() {
    let server = server(3).await;
    for q in &QUESTIONS[..2] {
        server.client().chat().create(request(q, 5)).await.unwrap();
    }
    let r = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let body = r.text().await.unwrap();
    let all = samples(&body);
    let get = |name: &str| {
        all.iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} in:\n{body}"))
            .1
    };
    assert_eq!(get("rmlx_requests_total{status=\"finished\"}"), 2.0);
    assert_eq!(get("rmlx_requests_total{status=\"cancelled\"}"), 0.0);
    assert_eq!(get("rmlx_generated_tokens_total"), 10.0);
    assert_eq!(get("rmlx_slots"), 3.0);
    assert_eq!(get("rmlx_slots_active"), 0.0);
    assert_eq!(get("rmlx_queue_depth"), 0.0);
    assert_eq!(get("rmlx_time_to_first_token_seconds_count"), 2.0);
    assert_eq!(
        get("rmlx_time_to_first_token_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );
    assert!(get("rmlx_time_to_first_token_seconds_sum") > 0.0);
    assert!(get("rmlx_generated_tokens_per_second") > 0.0);
    assert!(get("rmlx_prompt_tokens_total") > 0.0);
    // Buckets are cumulative.
    let buckets: Vec<f64> = all
        .iter()
        .filter(|(n, _)| n.starts_with("rmlx_time_to_first_token_seconds_bucket"))
        .map(|(_, v)| *v)
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
}

#[tokio::test]
async fn metrics_need_the_api_key_when_one_is_set() {
    let opts = WorkerOptions::default();
    let server = start_batched(tiny_chat::llama_chat(64), opts, |c| {
        c.api_key = Some("k".into())
    })
    .await;
    let url = format!("{}/metrics", server.base);
    let client = reqwest::Client::new();
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client.get(&url).bearer_auth("k").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
