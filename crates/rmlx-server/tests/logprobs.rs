//! `logprobs` / `top_logprobs` as a real OpenAI client reads them: chat (whole and streamed)
//! and completions carry, token for token, the values the library computes.

mod support;

use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, ChatCompletionTokenLogprob, CreateChatCompletionRequest,
    CreateChatCompletionRequestArgs,
};
use async_openai::types::completions::CreateCompletionRequestArgs;
use rmlx_lm::{Engine, GenerateOptions, Prompt, SamplerConfig, TokenLogprob};
use serde_json::json;
use support::{start, TestServer, MODEL_ID};
use tokio_stream::StreamExt;

const QUESTION: &str = "What is the capital of France?";
const TOKENS: usize = 8;

fn chat_request(stream: bool) -> CreateChatCompletionRequest {
    CreateChatCompletionRequestArgs::default()
        .model(MODEL_ID)
        .max_completion_tokens(TOKENS as u32)
        .temperature(0.0)
        .logprobs(true)
        .top_logprobs(2)
        .stream(stream)
        .messages(vec![ChatCompletionRequestUserMessageArgs::default()
            .content(QUESTION)
            .build()
            .unwrap()
            .into()])
        .build()
        .unwrap()
}

/// The library's log-probabilities for `prompt` (greedy, 2 alternatives).
fn library(server: &TestServer, prompt: Prompt) -> Vec<TokenLogprob> {
    let engine = Engine::load(server.model_dir()).unwrap();
    let opts = GenerateOptions {
        max_tokens: Some(TOKENS),
        sampler: SamplerConfig::greedy(),
        logprobs: Some(2),
        ..GenerateOptions::default()
    };
    let g = engine.generate(&prompt, &opts, None, &mut |_| {}).unwrap();
    assert_eq!(g.logprobs.len(), TOKENS);
    g.logprobs
}

/// Equal up to float rounding: a request that reuses a cached prefix computes its last prompt
/// token alone, whose projections take another summation order (~1e-6 here).
fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5
}

fn check_chat(got: &[ChatCompletionTokenLogprob], want: &[TokenLogprob]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.token, w.chosen.text);
        assert!(close(g.logprob, w.chosen.logprob), "{g:?} / {w:?}");
        assert_eq!(g.bytes.as_deref(), Some(w.chosen.bytes.as_slice()));
        assert_eq!(g.top_logprobs.len(), 2);
        for (t, wt) in g.top_logprobs.iter().zip(&w.top) {
            assert_eq!(t.token, wt.text);
            assert!(close(t.logprob, wt.logprob), "{t:?} / {wt:?}");
        }
        // Greedy: the chosen token is the most likely one.
        assert_eq!(g.logprob, g.top_logprobs[0].logprob);
        assert!(g.logprob <= 0.0);
    }
}

#[tokio::test]
async fn chat_logprobs_whole_and_streamed_are_the_librarys() {
    let server = start(256, 4, |_| {}).await;
    let want = library(
        &server,
        Prompt::Chat(vec![json!({"role": "user", "content": QUESTION})]),
    );
    let client = server.client();
    let r = client.chat().create(chat_request(false)).await.unwrap();
    let content = r.choices[0].logprobs.as_ref().unwrap().content.clone();
    check_chat(&content.unwrap(), &want);

    let mut stream = client
        .chat()
        .create_stream(chat_request(true))
        .await
        .unwrap();
    let mut streamed = Vec::new();
    while let Some(chunk) = stream.next().await {
        for c in chunk.unwrap().choices {
            if let Some(lp) = c.logprobs.and_then(|l| l.content) {
                streamed.extend(lp);
            }
        }
    }
    check_chat(&streamed, &want);

    // Without the flag, no logprobs.
    let mut plain = chat_request(false);
    plain.logprobs = None;
    plain.top_logprobs = None;
    let r = client.chat().create(plain).await.unwrap();
    assert!(r.choices[0].logprobs.is_none());
}

#[tokio::test]
async fn completion_logprobs_use_the_legacy_shape() {
    let server = start(256, 4, |_| {}).await;
    let prompt = "Once upon a time";
    let want = library(&server, Prompt::Text(prompt.into()));
    let req = CreateCompletionRequestArgs::default()
        .model(MODEL_ID)
        .prompt(prompt)
        .max_tokens(TOKENS as u32)
        .temperature(0.0)
        .logprobs(2)
        .build()
        .unwrap();
    let r = server.client().completions().create(req).await.unwrap();
    let lp = r.choices[0].logprobs.clone().expect("logprobs");
    let tokens: Vec<&str> = want.iter().map(|w| w.chosen.text.as_str()).collect();
    assert_eq!(lp.tokens, tokens);
    for (got, w) in lp.token_logprobs.iter().zip(&want) {
        assert!(close(got.expect("a value"), w.chosen.logprob));
    }
    // Offsets: where each token's text starts.
    let mut at = 0;
    for (off, t) in lp.text_offset.iter().zip(&tokens) {
        assert_eq!(*off as usize, at);
        at += t.chars().count();
    }
    for (top, w) in lp.top_logprobs.iter().zip(&want) {
        let top = top.as_object().expect("an object per token");
        for t in w.top.iter().chain([&w.chosen]) {
            let got = top[&t.text].as_f64().expect("a number") as f32;
            assert!(close(got, t.logprob), "{top:?} / {w:?}");
        }
    }
}
