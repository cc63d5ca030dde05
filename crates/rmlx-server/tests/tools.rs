//! Tool calling over the chat API: `tools` reach the chat template (Qwen/Hermes-style template
//! here), `tool_choice: "none"` withholds them, earlier calls and tool results in the messages
//! are rendered (with `arguments` as the object templates expect, earlier reasoning as
//! `thinking`), and bad tools, a bad
//! `tool_choice` or tools for a template without tool support are 400s. (The random tiny
//! model never writes a call: turning calls in generated text into `tool_calls` is tested on
//! each format's text in rmlx-lm's `tool_calls` and this crate's `reply` unit tests.)

mod support;

use serde_json::{json, Value as Json};
use support::{start, start_with, tiny_chat, TestServer, MODEL_ID};

/// A template in the Hermes (Qwen 2.5) style: tools listed in the system turn, earlier calls as
/// `<tool_call>` blocks that read `arguments` as an object, tool results as their own turns.
const TOOL_TEMPLATE: &str = r#"{% if tools %}[system] Tools:{% for t in tools %} {{ t.function.name }}({{ t.function.parameters | tojson }}){% endfor %}
{% endif %}{% for m in messages %}[{{ m.role }}] {% if m.thinking %}(thinking: {{ m.thinking }}) {% endif %}{{ m.content }}{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{"name": "{{ c.function.name }}", "city": "{{ c.function.arguments.city }}"}</tool_call>{% endfor %}{% endif %}
{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"#;

fn weather_tool() -> Json {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}
    }})
}

async fn post(server: &TestServer, body: Json) -> (u16, Json) {
    let r = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.v1()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn request(extra: Json) -> Json {
    let mut b = json!({
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "max_tokens": 2,
        "temperature": 0,
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

fn prompt_tokens(v: &Json) -> u64 {
    v["usage"]["prompt_tokens"]
        .as_u64()
        .unwrap_or_else(|| panic!("{v}"))
}

#[tokio::test]
async fn tools_reach_the_template_and_bad_ones_are_400s() {
    let dir = tiny_chat::llama_chat(512);
    std::fs::write(dir.path().join("chat_template.jinja"), TOOL_TEMPLATE).unwrap();
    let server = start_with(dir, 4, |_| {}).await;

    let (s, plain) = post(&server, request(json!({}))).await;
    assert_eq!(s, 200, "{plain}");
    let (s, with) = post(&server, request(json!({"tools": [weather_tool()]}))).await;
    assert_eq!(s, 200, "{with}");
    assert!(
        prompt_tokens(&with) > prompt_tokens(&plain) + 5,
        "the tool list is rendered into the prompt: {} vs {}",
        prompt_tokens(&with),
        prompt_tokens(&plain)
    );
    let (s, none) = post(
        &server,
        request(json!({"tools": [weather_tool()], "tool_choice": "none"})),
    )
    .await;
    assert_eq!((s, prompt_tokens(&none)), (200, prompt_tokens(&plain)));
    for choice in [
        json!("auto"),
        json!("required"),
        json!({"type": "function", "function": {"name": "get_weather"}}),
    ] {
        let (s, v) = post(
            &server,
            request(json!({"tools": [weather_tool()], "tool_choice": choice})),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }

    // A conversation that already called the tool: the call's JSON-text arguments reach the
    // template as an object (`arguments.city` renders), the result as a tool turn.
    let history = |args: &str| {
        json!({"tools": [weather_tool()], "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": args}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
        ]})
    };
    let (s, a) = post(&server, request(history("{\"city\": \"Paris\"}"))).await;
    assert_eq!(s, 200, "{a}");
    let (s, b) = post(&server, request(history("{}"))).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        prompt_tokens(&a) > prompt_tokens(&b),
        "arguments.city rendered: {} vs {}",
        prompt_tokens(&a),
        prompt_tokens(&b)
    );

    // Earlier reasoning sent back as `reasoning_content` reaches the template as `thinking`.
    let reasoned = |r: Option<&str>| {
        let mut assistant = json!({"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]});
        if let Some(r) = r {
            assistant["reasoning_content"] = json!(r);
        }
        json!({"tools": [weather_tool()], "messages": [
            {"role": "user", "content": "Weather in Paris?"}, assistant,
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}]})
    };
    let (_, without) = post(&server, request(reasoned(None))).await;
    let (s, with) = post(
        &server,
        request(reasoned(Some("The user wants the weather in Paris."))),
    )
    .await;
    assert_eq!(s, 200, "{with}");
    assert!(
        prompt_tokens(&with) > prompt_tokens(&without) + 5,
        "{with} vs {without}"
    );

    for (extra, what) in [
        (json!({"tools": {"name": "x"}}), "tools"),
        (
            json!({"tools": [{"type": "function", "function": {}}]}),
            "tools[0]",
        ),
        (json!({"tools": [{"type": "retrieval"}]}), "tools[0]"),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}]}),
            "tools[0]",
        ),
        (
            json!({"tools": [weather_tool()], "tool_choice": "always"}),
            "tool_choice",
        ),
        (
            json!({"messages": [{"role": "assistant", "content": "", "tool_calls": [{"type": "function"}]}]}),
            "tool_calls",
        ),
    ] {
        let (s, v) = post(&server, request(extra.clone())).await;
        assert_eq!(s, 400, "{extra}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(what), "{extra}: {msg}");
    }
}

#[tokio::test]
async fn tools_for_a_template_without_tool_support_are_a_400() {
    let server = start(512, 4, |_| {}).await;
    let (s, v) = post(&server, request(json!({"tools": [weather_tool()]}))).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["param"], "tools");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("takes no tools"),
        "{v}"
    );
    // Without tools the same model answers.
    let (s, v) = post(&server, request(json!({}))).await;
    assert_eq!(s, 200, "{v}");
}
