//! Tool calling over the chat API: `tools` reach the chat template (Qwen/Hermes-style template
//! here), `tool_choice: "none"` withholds them, earlier calls and tool results in the messages
//! are rendered (with `arguments` as the object templates expect, earlier reasoning as
//! `thinking`), and bad tools, a bad
//! `tool_choice` or tools for a template without tool support are 400s. Left to itself ("auto")
//! the random tiny model never writes a call (turning calls in generated text into
//! `tool_calls` is tested on each format's text in rmlx-lm's `tool_calls` and this crate's
//! `reply` unit tests); a forcing `tool_choice` ("required", a named function) makes it call,
//! through a grammar, in each format (Hermes, Llama 3 JSON, gpt-oss harmony).

mod support;

use async_openai::types::chat::{
    ChatCompletionMessageToolCalls, ChatCompletionNamedToolChoice, ChatCompletionTool,
    ChatCompletionToolChoiceOption, ChatCompletionTools, CreateChatCompletionRequest, FinishReason,
    FunctionName, FunctionObject, ToolChoiceOptions,
};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use support::{chat_request, start, start_with, tiny_chat, TestServer, MODEL_ID};
use tokio_stream::StreamExt;

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
        // The message reads as one line (no run of spaces from a wrapped format string).
        assert!(!msg.contains("  "), "{msg}");
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

/// A template in the Llama 3.x style as `ToolFormat::detect` knows it (tool results in an
/// `ipython` turn): calls are bare JSON objects with `parameters`.
const LLAMA3_TEMPLATE: &str = r#"{% if tools %}[system] Tools:{% for t in tools %} {{ t.function.name }}({{ t.function.parameters | tojson }}){% endfor %}
{% endif %}{% for m in messages %}[{% if m.role == "tool" %}ipython{% else %}{{ m.role }}{% endif %}] {{ m.content }}
{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"#;

/// Two tools whose arguments a random model cannot make endless (a bounded string; no
/// properties at all), so that a forced call ends within the test's token budget.
fn forcing_tools() -> Vec<ChatCompletionTools> {
    let tool = |name: &str, parameters: Json| {
        ChatCompletionTools::Function(ChatCompletionTool {
            function: FunctionObject {
                name: name.into(),
                description: Some(format!("{name} tool")),
                parameters: Some(parameters),
                strict: None,
            },
        })
    };
    vec![
        tool(
            "get_weather",
            json!({"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}},
                   "required": ["city"], "additionalProperties": false}),
        ),
        tool(
            "get_time",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
        ),
    ]
}

fn parameters_of(name: &str) -> Json {
    forcing_tools()
        .into_iter()
        .find_map(|t| match t {
            ChatCompletionTools::Function(f) if f.function.name == name => f.function.parameters,
            _ => None,
        })
        .unwrap_or_else(|| panic!("a call to {name:?}, which is not a tool"))
}

fn named(name: &str) -> ChatCompletionToolChoiceOption {
    ChatCompletionToolChoiceOption::Function(ChatCompletionNamedToolChoice {
        function: FunctionName { name: name.into() },
    })
}

/// A request forcing `choice` (`seed`: sampled at temperature 1 with it, else greedy).
fn tool_request(
    choice: ChatCompletionToolChoiceOption,
    max_tokens: u32,
    seed: Option<i64>,
) -> CreateChatCompletionRequest {
    chat_request("Weather in Paris?", max_tokens, |a| {
        a.tools(forcing_tools()).tool_choice(choice);
        if let Some(seed) = seed {
            a.temperature(1.0).seed(seed);
        }
    })
}

/// A reply: (finish reason, content, calls as (name, arguments)), whole or streamed (the
/// streamed calls put together by index).
async fn reply(
    server: &TestServer,
    r: CreateChatCompletionRequest,
    stream: bool,
) -> (FinishReason, String, Vec<(String, String)>) {
    let client = server.client();
    if !stream {
        let v = client.chat().create(r).await.unwrap();
        let c = &v.choices[0];
        let calls = c
            .message
            .tool_calls
            .iter()
            .flatten()
            .map(|t| match t {
                ChatCompletionMessageToolCalls::Function(f) => {
                    (f.function.name.clone(), f.function.arguments.clone())
                }
                other => panic!("not a function call: {other:?}"),
            })
            .collect();
        let content = c.message.content.clone().unwrap_or_default();
        return (c.finish_reason.unwrap(), content, calls);
    }
    let mut s = client.chat().create_stream(r).await.unwrap();
    let (mut content, mut finish) = (String::new(), None);
    let mut calls = BTreeMap::<u32, (String, String)>::new();
    while let Some(chunk) = s.next().await {
        for c in chunk.unwrap().choices {
            content.push_str(c.delta.content.as_deref().unwrap_or(""));
            for t in c.delta.tool_calls.into_iter().flatten() {
                let e = calls.entry(t.index).or_default();
                let f = t.function.unwrap_or_default();
                e.0.push_str(f.name.as_deref().unwrap_or(""));
                e.1.push_str(f.arguments.as_deref().unwrap_or(""));
            }
            finish = finish.or(c.finish_reason);
        }
    }
    (
        finish.expect("a finish reason"),
        content,
        calls.into_values().collect(),
    )
}

/// Forced choices in one format: each reply, whole and streamed, is a call to an allowed
/// tool with arguments valid for its schema, and ends with finish_reason "tool_calls".
/// `seed`: sample (temperature 1) with it instead of greedy decoding.
async fn forced_calls_are_valid(server: &TestServer, what: &str, seed: Option<i64>) {
    let choices = [
        (
            ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::Required),
            None,
        ),
        (named("get_weather"), Some("get_weather")),
        (named("get_time"), Some("get_time")),
    ];
    for (choice, only) in choices {
        for stream in [false, true] {
            let r = tool_request(choice.clone(), 3000, seed);
            let (finish, _, calls) = reply(server, r, stream).await;
            let at = format!("{what}, {choice:?}, stream {stream}");
            assert_eq!(finish, FinishReason::ToolCalls, "{at}: {calls:?}");
            // One call: parallel calls are off by default (`parallel_tool_calls`).
            assert_eq!(calls.len(), 1, "{at}: {calls:?}");
            let (name, args) = &calls[0];
            if let Some(n) = only {
                assert_eq!(name, n, "{at}");
            }
            let args: Json = serde_json::from_str(args).unwrap_or_else(|e| panic!("{at}: {e}"));
            let validator = jsonschema::validator_for(&parameters_of(name)).unwrap();
            assert!(validator.is_valid(&args), "{at}: {args}");
        }
    }
}

#[tokio::test]
async fn forced_tool_choice_makes_valid_calls_in_each_format() {
    for (template, what) in [(TOOL_TEMPLATE, "hermes"), (LLAMA3_TEMPLATE, "llama3")] {
        let dir = tiny_chat::llama_chat(4096);
        std::fs::write(dir.path().join("chat_template.jinja"), template).unwrap();
        let server = start_with(dir, 4, |_| {}).await;
        forced_calls_are_valid(&server, what, None).await;
        // "auto" is not forced: this model answers in text.
        let auto = ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::Auto);
        let (finish, content, calls) = reply(&server, tool_request(auto, 8, None), false).await;
        assert_eq!(
            (finish, calls.len()),
            (FinishReason::Length, 0),
            "{what}: {content:?}"
        );
        assert!(!content.is_empty(), "{what}");
    }
    // gpt-oss may reason first, freely: greedy, this random model's analysis never ends (as
    // with free generation); sampled, it closes the analysis within a few hundred tokens and
    // then must call.
    let server = start_with(tiny_chat::harmony_chat(4096), 4, |_| {}).await;
    forced_calls_are_valid(&server, "harmony", Some(7)).await;
}

#[tokio::test]
async fn bad_forced_tool_choices_are_400s() {
    let dir = tiny_chat::llama_chat(512);
    std::fs::write(dir.path().join("chat_template.jinja"), TOOL_TEMPLATE).unwrap();
    let server = start_with(dir, 4, |_| {}).await;
    let schema =
        json!({"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}});
    for (extra, param, what) in [
        (
            json!({"tools": [weather_tool()], "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            "tool_choice",
            "\"nope\" is not one of the tools (get_weather)",
        ),
        (
            json!({"tool_choice": "required"}),
            "tool_choice",
            "needs `tools`",
        ),
        (
            json!({"tools": [weather_tool()], "tool_choice": "required", "response_format": schema}),
            "response_format",
            "cannot be combined",
        ),
    ] {
        let (s, v) = post(&server, request(extra.clone())).await;
        assert_eq!(s, 400, "{extra}: {v}");
        assert_eq!(v["error"]["param"], param, "{v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(what), "{extra}: {msg}");
    }
    // A tool schema llguidance refuses is a 400 too, not a crash.
    let bad_tool = json!({"type": "function", "function": {"name": "f",
        "parameters": {"type": "object", "properties": {"x": {"type": "nonsense"}}}}});
    let (s, v) = post(
        &server,
        request(json!({"tools": [bad_tool], "tool_choice": "required"})),
    )
    .await;
    assert_eq!((s, &v["error"]["param"]), (400, &json!("tools")), "{v}");
}
