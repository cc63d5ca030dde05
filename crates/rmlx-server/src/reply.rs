//! Turning the worker's events into OpenAI response objects and stream chunks.

use rmlx_lm::tool_calls::{ToolCall, ToolFormat};
use rmlx_lm::{harmony, FinishReason, GenerationStats};
use serde_json::{json, Value as Json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completion,
}

/// Identity shared by a response and all its chunks.
pub struct Head {
    pub endpoint: Endpoint,
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl Head {
    pub fn new(endpoint: Endpoint, model: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let prefix = match endpoint {
            Endpoint::Chat => "chatcmpl",
            Endpoint::Completion => "cmpl",
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Head {
            endpoint,
            id: format!("{prefix}-{created:x}{n:06x}"),
            created,
            model: model.to_string(),
        }
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.endpoint, chunk) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completion, _) => "text_completion",
        }
    }

    fn wrap(&self, chunk: bool, choices: Json, usage: Json) -> Json {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": choices,
            "usage": usage,
        })
    }

    /// The whole (non-streamed) response.
    pub fn response(&self, text: &Reply, stats: &GenerationStats) -> Json {
        let finish = finish_of(text, stats.finish);
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let mut message = json!({"role": "assistant", "content": text.content});
                if let Some(r) = &text.reasoning {
                    message["reasoning_content"] = json!(r);
                }
                if !text.tool_calls.is_empty() {
                    message["tool_calls"] = self.tool_calls(&text.tool_calls, false);
                    if text.content.is_empty() {
                        message["content"] = Json::Null;
                    }
                }
                json!({"index": 0, "message": message, "logprobs": null, "finish_reason": finish})
            }
            Endpoint::Completion => {
                json!({"index": 0, "text": text.content, "logprobs": null, "finish_reason": finish})
            }
        };
        self.wrap(false, json!([choice]), usage(stats))
    }

    /// A chunk with new text (`reasoning` goes to `reasoning_content`), the role (first chat
    /// chunk), or the finish reason (last chunk); `usage: null` when usage comes at the end.
    pub fn chunk(&self, delta: Delta, finish: Option<&'static str>, with_usage: bool) -> Json {
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let mut d = json!({});
                match delta {
                    Delta::Role => {
                        d = json!({"role": "assistant", "content": ""});
                    }
                    Delta::Content(t) => d["content"] = json!(t),
                    Delta::Reasoning(t) => d["reasoning_content"] = json!(t),
                    Delta::ToolCalls(calls) => d["tool_calls"] = self.tool_calls(calls, true),
                    Delta::None => {}
                }
                json!({"index": 0, "delta": d, "logprobs": null, "finish_reason": finish})
            }
            Endpoint::Completion => {
                let text = match delta {
                    Delta::Content(t) | Delta::Reasoning(t) => t,
                    Delta::Role | Delta::ToolCalls(_) | Delta::None => String::new(),
                };
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
            }
        };
        let mut c = self.wrap(true, json!([choice]), Json::Null);
        if !with_usage {
            c.as_object_mut().expect("object").remove("usage");
        }
        c
    }

    /// OpenAI's `tool_calls` (with each call's `index` in a stream chunk); ids unique to this
    /// response.
    fn tool_calls(&self, calls: &[ToolCall], indexed: bool) -> Json {
        let tail = self.id.rsplit('-').next().unwrap_or("");
        Json::Array(
            calls
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut v = json!({
                        "id": format!("call_{tail}_{i}"),
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    });
                    if indexed {
                        v["index"] = json!(i);
                    }
                    v
                })
                .collect(),
        )
    }

    /// The last chunk of `stream_options.include_usage`: no choices, the usage.
    pub fn usage_chunk(&self, stats: &GenerationStats) -> Json {
        self.wrap(true, json!([]), usage(stats))
    }
}

pub enum Delta<'a> {
    Role,
    Content(String),
    Reasoning(String),
    /// The reply's tool calls, whole, once it has ended.
    ToolCalls(&'a [ToolCall]),
    None,
}

/// OpenAI's finish reason: "tool_calls" when the reply called tools (and was not cut off).
pub fn finish_of(reply: &Reply, f: FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "length",
        _ if !reply.tool_calls.is_empty() => "tool_calls",
        FinishReason::Eos | FinishReason::Stop | FinishReason::Cancelled => "stop",
    }
}

/// Token counts; `cached_tokens`: prompt tokens whose keys and values a slot's cache already
/// held (not computed again), as OpenAI reports its prompt caching.
fn usage(s: &GenerationStats) -> Json {
    json!({
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.generated_tokens,
        "total_tokens": s.prompt_tokens + s.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": s.prompt_tokens - s.prefilled_tokens},
    })
}

/// A reply's text: the answer, the reasoning of a model that has a channel for it, and the
/// tool calls (when tools were offered).
pub struct Reply {
    pub content: String,
    pub reasoning: Option<String>,
    pub tool_calls: Vec<ToolCall>,
}

/// Accumulates generated text and tells what is new since the last call. Plain models: all
/// text is content. gpt-oss (harmony): the `analysis` channel is reasoning, `final` is
/// content, the rest (headers, control tokens, commentary) is not shown.
/// With tools offered, text where a call may begin is held back until the reply ends and its
/// calls are parsed out (`ToolFormat::shown_len`).
pub struct Accumulator {
    harmony: bool,
    tools: Option<ToolFormat>,
    raw: String,
    sent: Reply,
}

impl Accumulator {
    pub fn new(harmony: bool, tools: Option<ToolFormat>) -> Self {
        Accumulator {
            harmony,
            tools,
            raw: String::new(),
            sent: Reply {
                content: String::new(),
                reasoning: harmony.then(String::new),
                tool_calls: vec![],
            },
        }
    }

    /// Adds generated text; returns the new (reasoning, content) text to stream.
    pub fn push(&mut self, text: &str) -> (String, String) {
        self.raw.push_str(text);
        if self.harmony {
            return self.advance(&split_harmony(&self.raw, false));
        }
        let shown = match self.tools {
            Some(f) => f.shown_len(&self.raw),
            None => self.raw.len(),
        };
        let c = extension(&mut self.sent.content, &self.raw[..shown]);
        (String::new(), c)
    }

    /// The end of the text: what is left to stream, and the whole reply.
    pub fn finish(mut self) -> ((String, String), Reply) {
        let mut all = if self.harmony {
            split_harmony(&self.raw, true)
        } else {
            Reply {
                content: self.raw.clone(),
                reasoning: None,
                tool_calls: vec![],
            }
        };
        if let Some(f) = self.tools {
            let (content, calls) = f.parse(&self.raw);
            if !self.harmony {
                all.content = content;
            }
            all.tool_calls = calls;
        }
        let rest = self.advance(&all);
        (rest, all)
    }

    fn advance(&mut self, now: &Reply) -> (String, String) {
        let sent_r = self.sent.reasoning.get_or_insert_with(String::new);
        let r = extension(sent_r, now.reasoning.as_deref().unwrap_or(""));
        let c = extension(&mut self.sent.content, &now.content);
        (r, c)
    }
}

/// What `now` adds to `sent` (and records it); nothing while `now` does not extend `sent`
/// (a control token not yet complete).
fn extension(sent: &mut String, now: &str) -> String {
    if now.len() > sent.len() && now.starts_with(sent.as_str()) {
        let d = now[sent.len()..].to_string();
        sent.push_str(&d);
        d
    } else {
        String::new()
    }
}

/// Harmony text split into reasoning (analysis messages) and content (final messages). A
/// text that has no channel at all shows as content without control tokens once complete
/// (`done`); until then nothing (it may still become a channel header).
fn split_harmony(raw: &str, done: bool) -> Reply {
    let msgs = harmony::parse(raw);
    let join = |ch: &str| {
        msgs.iter()
            .filter(|m| m.channel == ch)
            .map(|m| without_partial_token(&m.text))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let content = if msgs.is_empty() && done {
        harmony::history_text(raw)
    } else {
        join("final")
    };
    Reply {
        content,
        reasoning: Some(join("analysis")),
        tool_calls: vec![],
    }
}

/// Text up to a trailing `<|` that is not closed yet (the start of a control token).
fn without_partial_token(t: &str) -> &str {
    match t.rfind("<|") {
        Some(i) if !t[i..].contains("|>") => &t[..i],
        _ => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harmony_stream_splits_reasoning_and_content() {
        let mut a = Accumulator::new(true, None);
        let mut reasoning = String::new();
        let mut content = String::new();
        for piece in [
            "<|channel|>",
            "analysis",
            "<|message|>",
            "Think",
            " hard.<|",
            "end|><|start|>assistant<|channel|>final<|message|>",
            "4",
            "<|return|>",
        ] {
            let (r, c) = a.push(piece);
            reasoning.push_str(&r);
            content.push_str(&c);
        }
        let ((r, c), all) = a.finish();
        reasoning.push_str(&r);
        content.push_str(&c);
        assert_eq!(reasoning, "Think hard.");
        assert_eq!(content, "4");
        assert_eq!(all.content, "4");
        assert_eq!(all.reasoning.as_deref(), Some("Think hard."));
    }

    /// Streams `pieces` through `a`: (reasoning, content) streamed, and the whole reply.
    fn feed(mut a: Accumulator, pieces: &[&str]) -> (String, String, Reply) {
        let (mut reasoning, mut content) = (String::new(), String::new());
        for p in pieces {
            let (r, c) = a.push(p);
            reasoning.push_str(&r);
            content.push_str(&c);
        }
        let ((r, c), reply) = a.finish();
        reasoning.push_str(&r);
        content.push_str(&c);
        (reasoning, content, reply)
    }

    fn stats(finish: FinishReason) -> GenerationStats {
        GenerationStats {
            prompt_tokens: 5,
            prefilled_tokens: 5,
            generated_tokens: 9,
            prefill_s: 0.1,
            decode_s: 0.1,
            finish,
        }
    }

    /// Qwen-style output with tools offered: the text before the call streams as content, the
    /// call is held back and comes out as `tool_calls` (whole and streamed) with finish reason
    /// "tool_calls".
    #[test]
    fn hermes_tool_calls_become_openai_tool_calls() {
        let (_, streamed, reply) = feed(
            Accumulator::new(false, Some(ToolFormat::Hermes)),
            &[
                "Checking",
                " now.\n<tool",
                "_call>\n{\"name\": \"get_weather\", ",
                "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
            ],
        );
        assert_eq!(streamed, "Checking now.\n");
        assert_eq!(reply.content, "Checking now.");
        assert_eq!(reply.tool_calls.len(), 1);
        let head = Head::new(Endpoint::Chat, "m");
        let whole = head.response(&reply, &stats(FinishReason::Eos));
        let choice = &whole["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert!(call["id"].as_str().unwrap().starts_with("call_"));
        let chunk = head.chunk(Delta::ToolCalls(&reply.tool_calls), None, false);
        let d = &chunk["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!((d["index"].as_u64(), &d["id"]), (Some(0), &call["id"]));
        // Cut off by max_tokens: "length" wins.
        assert_eq!(finish_of(&reply, FinishReason::Length), "length");
        // A call-only reply has null content.
        let mut a = Accumulator::new(false, Some(ToolFormat::Llama3));
        assert_eq!(a.push("{\"name\": \"f\", \"parameters\": {}}").1, "");
        let (_, reply) = a.finish();
        let whole = head.response(&reply, &stats(FinishReason::Eos));
        assert!(whole["choices"][0]["message"]["content"].is_null());
    }

    /// gpt-oss: a commentary message to `functions.*` is a call; the reasoning still streams.
    #[test]
    fn harmony_tool_calls_come_out_with_the_reasoning() {
        let (reasoning, _, reply) = feed(
            Accumulator::new(true, Some(ToolFormat::Harmony)),
            &[
                "<|channel|>analysis<|message|>Need the weather.<|end|>",
                "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json",
                "<|message|>{\"city\":\"Rome\"}<|call|>",
            ],
        );
        assert_eq!(reasoning, "Need the weather.");
        assert_eq!(reply.content, "");
        assert_eq!(
            reply.tool_calls,
            vec![ToolCall {
                name: "get_weather".into(),
                arguments: "{\"city\":\"Rome\"}".into()
            }]
        );
    }

    #[test]
    fn plain_text_is_all_content() {
        let mut a = Accumulator::new(false, None);
        assert_eq!(a.push("ab").1, "ab");
        assert_eq!(a.push("c").1, "c");
        let (_, all) = a.finish();
        assert_eq!(all.content, "abc");
        assert!(all.reasoning.is_none());
    }
}
