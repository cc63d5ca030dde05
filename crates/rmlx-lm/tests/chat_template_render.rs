//! Chat templates rendered by minijinja == jinja2 as transformers sets it up (fixtures from
//! scripts/reference/smollm2_llamacpp.py): SmolLM2's template and a harmony-like one.

use std::path::Path;

use rmlx_lm::ChatTemplate;
use serde_json::{json, Map, Value};

fn fixture() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2/chat_render.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("fixture exists")).expect("json")
}

fn render_case(templates: &Value, case: &Value) -> String {
    let src = templates[case["template"].as_str().unwrap()]
        .as_str()
        .unwrap();
    let ctx = case["context"].as_object().unwrap();
    let t = ChatTemplate::new(src, None, None).unwrap();
    let messages = ctx["messages"].as_array().unwrap();
    let add_gen = ctx["add_generation_prompt"].as_bool().unwrap();
    let extra: Map<String, Value> = ctx
        .iter()
        .filter(|(k, _)| *k != "messages" && *k != "add_generation_prompt")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    t.render_with(messages, add_gen, &extra).unwrap()
}

#[test]
fn renders_like_jinja2() {
    let fx = fixture();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 7);
    for (i, case) in cases.iter().enumerate() {
        let got = render_case(&fx["templates"], case);
        assert_eq!(
            got,
            case["expected"].as_str().unwrap(),
            "case {i} ({})",
            case["template"]
        );
    }
}

#[test]
fn harmony_like_raises_on_unknown_role() {
    let fx = fixture();
    let t = ChatTemplate::new(
        fx["templates"]["harmony_like"].as_str().unwrap(),
        None,
        None,
    )
    .unwrap();
    let err = t
        .render(&[json!({"role": "wizard", "content": "x"})], true)
        .unwrap_err();
    assert!(err.to_string().contains("unknown role: wizard"), "{err}");
    // Without a date_string the template calls strftime_now: today's date, 10 chars.
    let out = t
        .render(&[json!({"role": "user", "content": "hi"})], true)
        .unwrap();
    let date = out
        .split("Current date: ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap();
    assert_eq!(date.len(), 10, "{date:?}");
}

#[test]
fn long_conversations_fit_the_render_limits() {
    // The fuel and output limits stop hostile templates; a 5,000-message chat with tools through
    // the harmony-like template (loops, namespaces, macros, tojson) must still render.
    let fx = fixture();
    let t = ChatTemplate::new(
        fx["templates"]["harmony_like"].as_str().unwrap(),
        None,
        None,
    )
    .unwrap();
    let messages: Vec<Value> = (0..5000)
        .map(|i| match i % 3 {
            0 => json!({"role": "user", "content": format!("question {i}")}),
            1 => json!({"role": "assistant", "content": format!("answer {i}"), "thinking": "t"}),
            _ => json!({"role": "tool", "name": "f", "content": {"result": i}}),
        })
        .collect();
    let mut extra = Map::new();
    extra.insert("date_string".into(), json!("2026-12-01"));
    extra.insert(
        "tools".into(),
        json!([{"type": "function", "function": {"name": "f", "description": "d",
            "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}]),
    );
    let out = t.render_with(&messages, true, &extra).unwrap();
    assert!(out.contains("<|start|>user<|message|>question 4998<|end|>"));
    assert!(out.contains("type f = (_: {\"type\": \"object\""));
    assert!(out.ends_with("<|start|>assistant"));
}
