//! Turning the worker's events into OpenAI response objects and stream chunks.

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
        let finish = finish_reason(stats.finish);
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let mut message = json!({"role": "assistant", "content": text.content});
                if let Some(r) = &text.reasoning {
                    message["reasoning_content"] = json!(r);
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
    pub fn chunk(&self, delta: Delta, finish: Option<FinishReason>, with_usage: bool) -> Json {
        let finish = finish.map(finish_reason);
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let mut d = json!({});
                match delta {
                    Delta::Role => {
                        d = json!({"role": "assistant", "content": ""});
                    }
                    Delta::Content(t) => d["content"] = json!(t),
                    Delta::Reasoning(t) => d["reasoning_content"] = json!(t),
                    Delta::None => {}
                }
                json!({"index": 0, "delta": d, "logprobs": null, "finish_reason": finish})
            }
            Endpoint::Completion => {
                let text = match delta {
                    Delta::Content(t) | Delta::Reasoning(t) => t,
                    Delta::Role | Delta::None => String::new(),
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

    /// The last chunk of `stream_options.include_usage`: no choices, the usage.
    pub fn usage_chunk(&self, stats: &GenerationStats) -> Json {
        self.wrap(true, json!([]), usage(stats))
    }
}

pub enum Delta {
    Role,
    Content(String),
    Reasoning(String),
    None,
}

fn finish_reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "length",
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

/// A reply's text: the answer, and the reasoning of a model that has a channel for it.
pub struct Reply {
    pub content: String,
    pub reasoning: Option<String>,
}

/// Accumulates generated text and tells what is new since the last call. Plain models: all
/// text is content. gpt-oss (harmony): the `analysis` channel is reasoning, `final` is
/// content, the rest (headers, control tokens, commentary) is not shown.
pub struct Accumulator {
    harmony: bool,
    raw: String,
    sent: Reply,
}

impl Accumulator {
    pub fn new(harmony: bool) -> Self {
        Accumulator {
            harmony,
            raw: String::new(),
            sent: Reply {
                content: String::new(),
                reasoning: harmony.then(String::new),
            },
        }
    }

    /// Adds generated text; returns the new (reasoning, content) text to stream.
    pub fn push(&mut self, text: &str) -> (String, String) {
        self.raw.push_str(text);
        if !self.harmony {
            self.sent.content.push_str(text);
            return (String::new(), text.to_string());
        }
        self.advance(&split_harmony(&self.raw, false))
    }

    /// The end of the text: what is left to stream, and the whole reply.
    pub fn finish(mut self) -> ((String, String), Reply) {
        if !self.harmony {
            return ((String::new(), String::new()), self.sent);
        }
        let all = split_harmony(&self.raw, true);
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
        let mut a = Accumulator::new(true);
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

    #[test]
    fn plain_text_is_all_content() {
        let mut a = Accumulator::new(false);
        assert_eq!(a.push("ab").1, "ab");
        assert_eq!(a.push("c").1, "c");
        let (_, all) = a.finish();
        assert_eq!(all.content, "abc");
        assert!(all.reasoning.is_none());
    }
}
