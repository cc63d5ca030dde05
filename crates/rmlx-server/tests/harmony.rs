//! gpt-oss over the chat API: the analysis channel as `reasoning_content`, the final channel as
//! `content`, the same whether streamed or not, and as the library's harmony parser splits
//! the library's own greedy generation.

mod support;

use rmlx_lm::{harmony, Engine, GenerateOptions, Prompt, SamplerConfig};
use serde_json::{json, Value as Json};
use support::{start_with, tiny_chat, MODEL_ID};

fn body(stream: bool) -> String {
    json!({
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "What is 2+2?"}],
        "max_tokens": 40,
        "temperature": 0,
        "stream": stream,
    })
    .to_string()
}

async fn post(url: &str, body: String) -> String {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.text().await.unwrap()
}

#[tokio::test]
async fn harmony_channels_split_into_reasoning_and_content() {
    let dir = tiny_chat::harmony_chat(256);
    let engine = Engine::load(dir.path()).unwrap();
    assert!(engine.uses_harmony());
    let opts = GenerateOptions {
        max_tokens: Some(40),
        sampler: SamplerConfig::greedy(),
        keep_special: true,
        ..GenerateOptions::default()
    };
    let prompt = Prompt::Chat(vec![json!({"role": "user", "content": "What is 2+2?"})]);
    let raw = engine
        .generate(&prompt, &opts, None, &mut |_| {})
        .unwrap()
        .text;
    let server = start_with(dir, 4, |_| {}).await;
    let url = format!("{}/chat/completions", server.v1());

    let whole: Json = serde_json::from_str(&post(&url, body(false)).await).unwrap();
    let message = &whole["choices"][0]["message"];
    let content = message["content"].as_str().unwrap();
    let reasoning = message["reasoning_content"].as_str().unwrap();
    assert_eq!(reasoning, harmony::analysis_text(&raw), "raw: {raw:?}");
    // The random fixture rarely writes channel headers (the split of real harmony text is
    // unit-tested in src/reply.rs); text without any is shown whole, less control tokens.
    if harmony::parse(&raw).is_empty() {
        assert_eq!(content, harmony::history_text(&raw));
    } else if harmony::parse(&raw).iter().any(|m| m.channel == "final") {
        assert_eq!(content, harmony::final_text(&raw));
    }
    assert!(
        !content.contains("<|"),
        "no control tokens in content: {content:?}"
    );

    let sse = post(&url, body(true)).await;
    let (mut r, mut c, mut done) = (String::new(), String::new(), false);
    for event in sse.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let data = event.strip_prefix("data: ").expect("SSE data lines");
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Json = serde_json::from_str(data).unwrap();
        let delta = &chunk["choices"][0]["delta"];
        r.push_str(delta["reasoning_content"].as_str().unwrap_or(""));
        c.push_str(delta["content"].as_str().unwrap_or(""));
    }
    assert!(done, "the stream ends with [DONE]");
    assert_eq!((r.as_str(), c.as_str()), (reasoning, content));
}

/// gpt-oss's template writes `reasoning_effort` into the system message ("medium" when not
/// given), as this stand-in does.
const EFFORT_TEMPLATE: &str = "{%- if reasoning_effort is not defined %}{%- set reasoning_effort \
= 'medium' %}{%- endif -%}<|start|>system<|message|>Reasoning: {{ reasoning_effort }}<|end|>\
{%- for m in messages -%}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{%- endfor -%}\
{%- if add_generation_prompt -%}<|start|>assistant{%- endif -%}";

#[tokio::test]
async fn reasoning_effort_reaches_the_template() {
    let dir = tiny_chat::harmony_chat(256);
    std::fs::write(dir.path().join("chat_template.jinja"), EFFORT_TEMPLATE).unwrap();
    let engine = Engine::load(dir.path()).unwrap();
    let messages = vec![json!({"role": "user", "content": "What is 2+2?"})];
    let rendered = |effort: Option<&str>| {
        let prompt = match effort {
            None => Prompt::Chat(messages.clone()),
            Some(e) => Prompt::ChatWith {
                messages: messages.clone(),
                vars: json!({"reasoning_effort": e}).as_object().unwrap().clone(),
            },
        };
        let ids = engine.encode_prompt(&prompt).unwrap();
        (engine.tokenizer.decode(&ids, false).unwrap(), ids.len())
    };
    assert!(rendered(None).0.contains("Reasoning: medium"));
    let server = start_with(dir, 4, |_| {}).await;
    let url = format!("{}/chat/completions", server.v1());
    for effort in ["low", "high"] {
        let (text, tokens) = rendered(Some(effort));
        assert!(text.contains(&format!("Reasoning: {effort}")), "{text}");
        let mut b: Json = serde_json::from_str(&body(false)).unwrap();
        b["reasoning_effort"] = json!(effort);
        b["max_tokens"] = json!(2);
        let v: Json = serde_json::from_str(&post(&url, b.to_string()).await).unwrap();
        assert_eq!(v["usage"]["prompt_tokens"], json!(tokens), "{effort}: {v}");
    }
    let mut b: Json = serde_json::from_str(&body(false)).unwrap();
    b["reasoning_effort"] = json!("extreme");
    let r = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(b.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Json = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "reasoning_effort", "{v}");
}
