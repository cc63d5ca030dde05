//! Chat templates: arbitrary template source rendered over arbitrary messages. Fuel,
//! recursion and output limits must turn every hostile template into an error, quickly.

use crate::split::{fields, text};
use rmlx_lm::chat_template::{ChatTemplate, MAX_OUTPUT_BYTES};
use serde_json::{json, Map, Value};

/// The conversation used when the input's messages are not a JSON array.
fn conversation() -> Vec<Value> {
    vec![
        json!({"role": "system", "content": "You are terse."}),
        json!({"role": "user", "content": "What is 2+2?"}),
        json!({"role": "assistant", "content": "4", "thinking": "Add.",
               "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": 2}}}]}),
        json!({"role": "tool", "name": "add", "content": "4"}),
        json!({"role": "user", "content": "Thanks"}),
    ]
}

/// Template source, messages (a JSON array), extra variables (a JSON object), NUL-separated.
pub fn run(data: &[u8]) -> bool {
    let [source, messages, extra] = fields::<3>(data);
    let Ok(t) = ChatTemplate::new(&text(source), Some("<s>"), Some("</s>")) else {
        return false;
    };
    let messages = match serde_json::from_slice::<Value>(messages) {
        Ok(Value::Array(m)) => m,
        _ => conversation(),
    };
    let extra = match serde_json::from_slice::<Value>(extra) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for add_generation_prompt in [true, false] {
        if let Ok(out) = t.render_with(&messages, add_generation_prompt, &extra) {
            assert!(out.len() <= MAX_OUTPUT_BYTES);
        }
    }
    true
}
