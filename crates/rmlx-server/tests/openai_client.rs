//! The server as a real OpenAI client library (async-openai, written elsewhere) sees it: chat,
//! completions, streaming, usage, stop strings, seeds; greedy output equals the library's own.

mod support;

use async_openai::types::chat::{
    ChatCompletionStreamOptions, CreateChatCompletionRequest, CreateChatCompletionRequestArgs,
    FinishReason, StopConfiguration,
};
use async_openai::types::completions::CreateCompletionRequestArgs;
use rmlx_lm::{Engine, GenerateOptions, Prompt, SamplerConfig};
use serde_json::json;
use support::{start, TestServer, MODEL_ID};
use tokio_stream::StreamExt;

const QUESTION: &str = "What is the capital of France?";

fn chat_request(
    max_tokens: u32,
    edit: impl FnOnce(&mut CreateChatCompletionRequestArgs),
) -> CreateChatCompletionRequest {
    support::chat_request(QUESTION, max_tokens, edit)
}

/// The library's greedy generation for `prompt` on the served model's files.
fn library_greedy(server: &TestServer, prompt: Prompt, max_tokens: usize) -> rmlx_lm::Generation {
    let engine = Engine::load(server.model_dir()).unwrap();
    let opts = GenerateOptions {
        max_tokens: Some(max_tokens),
        sampler: SamplerConfig::greedy(),
        ..GenerateOptions::default()
    };
    engine.generate(&prompt, &opts, None, &mut |_| {}).unwrap()
}

fn user_chat() -> Prompt {
    Prompt::Chat(vec![json!({"role": "user", "content": QUESTION})])
}

#[tokio::test]
async fn greedy_chat_equals_the_library_and_reports_usage() {
    let server = start(256, 4, |_| {}).await;
    let want = library_greedy(&server, user_chat(), 12);
    assert!(!want.text.is_empty());
    let r = server
        .client()
        .chat()
        .create(chat_request(12, |_| {}))
        .await
        .unwrap();
    assert_eq!(r.model, MODEL_ID);
    assert_eq!(r.object, "chat.completion");
    assert_eq!(r.choices.len(), 1);
    let c = &r.choices[0];
    assert_eq!(c.message.content.as_deref(), Some(want.text.as_str()));
    // The tiny model never samples EOS: it stops at max_tokens.
    assert_eq!(c.finish_reason, Some(FinishReason::Length));
    let u = r.usage.unwrap();
    assert_eq!(u.prompt_tokens as usize, want.stats.prompt_tokens);
    assert_eq!(u.completion_tokens, 12);
    assert_eq!(u.total_tokens, u.prompt_tokens + 12);
}

#[tokio::test]
async fn streamed_chat_joins_to_the_whole_reply_and_ends_with_usage() {
    let server = start(256, 4, |_| {}).await;
    let client = server.client();
    let whole = client
        .chat()
        .create(chat_request(16, |_| {}))
        .await
        .unwrap();
    let request = chat_request(16, |a| {
        a.stream_options(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        });
    });
    let mut stream = client.chat().create_stream(request).await.unwrap();
    let (mut text, mut finish, mut usage, mut chunks) = (String::new(), None, None, 0);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        chunks += 1;
        assert_eq!(chunk.object, "chat.completion.chunk");
        for c in &chunk.choices {
            text.push_str(c.delta.content.as_deref().unwrap_or(""));
            if c.finish_reason.is_some() {
                finish = c.finish_reason;
            }
        }
        if let Some(u) = chunk.usage {
            assert!(
                chunk.choices.is_empty(),
                "usage comes in its own last chunk"
            );
            usage = Some(u);
        }
    }
    assert!(chunks > 3, "streamed in pieces, found {chunks} chunks");
    assert_eq!(Some(text), whole.choices[0].message.content);
    assert_eq!(finish, Some(FinishReason::Length));
    // The same prompt again: the slot's cache held all of it but the last token.
    let (usage, whole) = (usage.unwrap(), whole.usage.unwrap());
    assert_eq!(
        (usage.prompt_tokens, usage.completion_tokens),
        (whole.prompt_tokens, whole.completion_tokens)
    );
    let cached = |u: &async_openai::types::chat::CompletionUsage| {
        u.prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
    };
    assert_eq!(cached(&whole), Some(0));
    assert_eq!(cached(&usage), Some(usage.prompt_tokens - 1));
}

#[tokio::test]
async fn completions_equal_the_library_whole_and_streamed() {
    let server = start(256, 4, |_| {}).await;
    let prompt = "Once upon a time";
    let want = library_greedy(&server, Prompt::Text(prompt.into()), 10);
    let client = server.client();
    let args = || {
        let mut a = CreateCompletionRequestArgs::default();
        a.model(MODEL_ID)
            .prompt(prompt)
            .max_tokens(10u32)
            .temperature(0.0);
        a
    };
    let r = client
        .completions()
        .create(args().build().unwrap())
        .await
        .unwrap();
    assert_eq!(r.choices[0].text, want.text);
    let u = r.usage.unwrap();
    assert_eq!(u.prompt_tokens as usize, want.stats.prompt_tokens);
    assert_eq!(u.completion_tokens, 10);

    let mut stream = client
        .completions()
        .create_stream(args().stream(true).build().unwrap())
        .await
        .unwrap();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        for c in chunk.unwrap().choices {
            text.push_str(&c.text);
        }
    }
    assert_eq!(text, want.text);
}

#[tokio::test]
async fn stop_strings_cut_the_reply_before_them() {
    let server = start(256, 4, |_| {}).await;
    let client = server.client();
    let full = client
        .chat()
        .create(chat_request(24, |_| {}))
        .await
        .unwrap();
    let full = full.choices[0].message.content.clone().unwrap();
    // Two characters from the middle of the greedy reply.
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() >= 8, "reply too short: {full:?}");
    let stop: String = chars[5..7].iter().collect();
    let expected = &full[..full.find(&stop).unwrap()];
    for stop_cfg in [
        StopConfiguration::String(stop.clone()),
        StopConfiguration::StringArray(vec!["\u{1}never".into(), stop.clone()]),
    ] {
        let r = client
            .chat()
            .create(chat_request(24, |a| {
                a.stop(stop_cfg);
            }))
            .await
            .unwrap();
        let c = &r.choices[0];
        assert_eq!(
            c.message.content.as_deref(),
            Some(expected),
            "stop {stop:?}"
        );
        assert_eq!(c.finish_reason, Some(FinishReason::Stop));
    }
}

#[tokio::test]
async fn the_same_seed_gives_the_same_text() {
    let server = start(256, 4, |_| {}).await;
    let client = server.client();
    let sample = |seed: i64| {
        let client = client.clone();
        async move {
            let r = client
                .chat()
                .create(chat_request(24, |a| {
                    a.temperature(1.0).seed(seed);
                }))
                .await
                .unwrap();
            r.choices[0].message.content.clone().unwrap()
        }
    };
    let a = sample(7).await;
    assert_eq!(a, sample(7).await);
    // The seed is what fixes it: another seed draws other tokens from the random model.
    assert_ne!(a, sample(8).await);
}

#[tokio::test]
async fn models_lists_the_served_model() {
    let server = start(256, 4, |_| {}).await;
    let list = server.client().models().list().await.unwrap();
    let ids: Vec<_> = list.data.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [MODEL_ID]);
}
