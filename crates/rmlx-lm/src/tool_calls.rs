//! Tool calls in generated text, in the format each model family was trained to write (what
//! vLLM's and llama.cpp's tool parsers read): gpt-oss addresses a harmony message to
//! `functions.NAME`; Qwen 2.5/3 (Hermes style) wrap `{"name", "arguments"}` in `<tool_call>`
//! tags; Llama 3.1–3.3 answer with a bare `{"name", "parameters"}` object (after
//! `<|python_tag|>` for some). The tools themselves reach the model through its chat template
//! (`tools`). Text that only looks like a call (not JSON, no name) stays text.

use crate::harmony;
use serde_json::Value as Json;

/// One call: the function's name and its arguments as JSON text (OpenAI's `arguments`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    pub name: String,
    pub arguments: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolFormat {
    /// gpt-oss: `<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{…}<|call|>`
    /// (the recipient may also stand before `<|channel|>`).
    Harmony,
    /// Qwen 2.5/3, Hermes: `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`, any number.
    Hermes,
    /// Llama 3.1–3.3: the reply is `{"name": …, "parameters": {…}}` (several joined by `;`),
    /// optionally after `<|python_tag|>`.
    Llama3,
}

const HERMES_OPEN: &str = "<tool_call>";
const HERMES_CLOSE: &str = "</tool_call>";
const PYTHON_TAG: &str = "<|python_tag|>";

impl ToolFormat {
    /// The format a model writes calls in: harmony for gpt-oss, else what its chat template
    /// renders tool calls as; None when the template has no tool support.
    pub fn detect(architecture: &str, template_source: Option<&str>) -> Option<ToolFormat> {
        if architecture == "gpt_oss" {
            return Some(ToolFormat::Harmony);
        }
        let src = template_source?;
        if src.contains(HERMES_OPEN) {
            Some(ToolFormat::Hermes)
        } else if src.contains(PYTHON_TAG) || (src.contains("ipython") && src.contains("tools")) {
            Some(ToolFormat::Llama3)
        } else {
            None
        }
    }

    /// Splits a whole reply into its text and its calls (harmony: the raw generated text).
    pub fn parse(self, text: &str) -> (String, Vec<ToolCall>) {
        match self {
            ToolFormat::Harmony => (harmony::final_text(text), harmony_calls(text)),
            ToolFormat::Hermes => hermes(text),
            ToolFormat::Llama3 => llama3(text),
        }
    }

    /// How much of the text streamed so far can be shown as content: up to where a call may
    /// start (the rest is held back until the reply ends and is parsed). Harmony calls are
    /// never content, so all of it.
    pub fn shown_len(self, text: &str) -> usize {
        match self {
            ToolFormat::Harmony => text.len(),
            ToolFormat::Hermes => match text.find(HERMES_OPEN) {
                Some(i) => i,
                // A partial tag at the end may become one.
                None => text.len() - partial_suffix(text, HERMES_OPEN),
            },
            ToolFormat::Llama3 => {
                let t = text.trim_start();
                let may_be_call = t.is_empty()
                    || t.starts_with('{')
                    || t.starts_with(PYTHON_TAG)
                    || PYTHON_TAG.starts_with(t);
                if may_be_call {
                    0
                } else {
                    text.len()
                }
            }
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `tag`.
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len())
        .rev()
        .find(|&n| {
            text.len() >= n
                && text.is_char_boundary(text.len() - n)
                && tag.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

/// A call object `{"name": …, <args_key>: {…} or "…"}`; None if it is not one.
fn call_from(v: &Json, args_keys: &[&str]) -> Option<ToolCall> {
    let obj = v.as_object()?;
    let name = obj.get("name")?.as_str()?.to_string();
    let args = args_keys
        .iter()
        .find_map(|k| obj.get(*k))
        .cloned()
        .unwrap_or(Json::Object(Default::default()));
    let arguments = match args {
        Json::String(s) => s,
        other => other.to_string(),
    };
    Some(ToolCall { name, arguments })
}

fn hermes(text: &str) -> (String, Vec<ToolCall>) {
    let mut calls = Vec::new();
    let mut content = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(HERMES_OPEN) {
        let body_start = i + HERMES_OPEN.len();
        let (body, after, closed) = match rest[body_start..].find(HERMES_CLOSE) {
            Some(j) => (
                &rest[body_start..body_start + j],
                &rest[body_start + j + HERMES_CLOSE.len()..],
                true,
            ),
            // Generation ended inside the block (max_tokens, a stop token): parse what is there.
            None => (&rest[body_start..], "", false),
        };
        match serde_json::from_str::<Json>(body.trim())
            .ok()
            .and_then(|v| call_from(&v, &["arguments", "parameters"]))
        {
            Some(c) => {
                content.push_str(&rest[..i]);
                calls.push(c);
            }
            None => {
                let end = if closed {
                    rest.len() - after.len()
                } else {
                    rest.len()
                };
                content.push_str(&rest[..end]);
            }
        }
        rest = after;
    }
    content.push_str(rest);
    (content.trim().to_string(), calls)
}

fn llama3(text: &str) -> (String, Vec<ToolCall>) {
    let t = text.trim();
    let mut rest = t.strip_prefix(PYTHON_TAG).unwrap_or(t).trim();
    if !rest.starts_with('{') {
        return (text.to_string(), vec![]);
    }
    // One JSON object after another, `;` between them; anything else makes it all text.
    let mut calls = Vec::new();
    loop {
        rest = rest.trim_start().trim_start_matches(';').trim_start();
        if rest.is_empty() {
            return (String::new(), calls);
        }
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Json>();
        let call = match values.next() {
            Some(Ok(v)) => call_from(&v, &["parameters", "arguments"]),
            _ => None,
        };
        match call {
            Some(c) => calls.push(c),
            None => return (text.to_string(), vec![]),
        }
        rest = &rest[values.byte_offset()..];
    }
}

/// gpt-oss: each message addressed to `functions.NAME` is a call; its text is the arguments.
fn harmony_calls(text: &str) -> Vec<ToolCall> {
    harmony::parse(text)
        .into_iter()
        .filter_map(|m| {
            let name = m
                .recipient
                .as_deref()?
                .strip_prefix("functions.")?
                .to_string();
            Some(ToolCall {
                name,
                arguments: m.text.trim().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: &str) -> ToolCall {
        ToolCall {
            name: name.into(),
            arguments: args.into(),
        }
    }

    #[test]
    fn hermes_blocks_become_calls_and_the_rest_content() {
        let t = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"time\", \"arguments\": {}}\n</tool_call>";
        let (content, calls) = ToolFormat::Hermes.parse(t);
        assert_eq!(content, "Let me check.");
        assert_eq!(
            calls,
            vec![
                call("get_weather", "{\"city\":\"Paris\"}"),
                call("time", "{}")
            ]
        );
        // Not JSON, or no name: text. An unclosed block at the end still parses.
        let (c, calls) = ToolFormat::Hermes.parse("a <tool_call>not json</tool_call> b");
        assert_eq!(
            (c.as_str(), calls.len()),
            ("a <tool_call>not json</tool_call> b", 0)
        );
        let (_, calls) = ToolFormat::Hermes
            .parse("<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"x\\\":1}\"}");
        assert_eq!(calls, vec![call("f", "{\"x\":1}")]);
        // What may be shown while streaming: up to the (possibly partial) tag.
        assert_eq!(ToolFormat::Hermes.shown_len("Hi <tool_c"), 3);
        assert_eq!(ToolFormat::Hermes.shown_len("Hi <tool_call>{"), 3);
        assert_eq!(ToolFormat::Hermes.shown_len("Hi there"), 8);
    }

    #[test]
    fn llama3_json_replies_are_calls() {
        let (c, calls) = ToolFormat::Llama3
            .parse("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}");
        assert_eq!(
            (c.as_str(), calls),
            ("", vec![call("get_weather", "{\"city\":\"Oslo\"}")])
        );
        let (_, calls) = ToolFormat::Llama3.parse(
            "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"q\": \"x;y\"}}",
        );
        assert_eq!(
            calls,
            vec![call("a", "{}"), call("b", "{\"q\":\"x;y\"}")],
            "two calls; a ';' inside a value does not split them"
        );
        let (c, calls) = ToolFormat::Llama3.parse("The weather is {nice}.");
        assert_eq!((c.as_str(), calls.len()), ("The weather is {nice}.", 0));
        assert_eq!(ToolFormat::Llama3.shown_len("  {\"na"), 0);
        assert_eq!(ToolFormat::Llama3.shown_len("Sure"), 4);
    }

    #[test]
    fn harmony_messages_to_functions_are_calls() {
        // Recipient in the channel header, and before it.
        let t = "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Rome\"}<|call|>";
        let (content, calls) = ToolFormat::Harmony.parse(t);
        assert_eq!(content, "");
        assert_eq!(calls, vec![call("get_weather", "{\"city\":\"Rome\"}")]);
        let t = " to=functions.lookup<|channel|>commentary json<|message|>{\"q\":1}<|call|>";
        assert_eq!(
            ToolFormat::Harmony.parse(t).1,
            vec![call("lookup", "{\"q\":1}")]
        );
        // A final answer is content, not a call.
        let t = "<|channel|>final<|message|>Done.<|return|>";
        assert_eq!(ToolFormat::Harmony.parse(t), ("Done.".to_string(), vec![]));
    }

    #[test]
    fn formats_are_detected_from_the_template() {
        assert_eq!(
            ToolFormat::detect("gpt_oss", None),
            Some(ToolFormat::Harmony)
        );
        assert_eq!(
            ToolFormat::detect(
                "qwen2",
                Some("{% for tool in tools %}<tool_call>{% endfor %}")
            ),
            Some(ToolFormat::Hermes)
        );
        assert_eq!(
            ToolFormat::detect("llama", Some("{%- if tools %}<|python_tag|>{% endif %}")),
            Some(ToolFormat::Llama3)
        );
        assert_eq!(ToolFormat::detect("llama", Some("{{ messages }}")), None);
        assert_eq!(ToolFormat::detect("llama", None), None);
    }
}
