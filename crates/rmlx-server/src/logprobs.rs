//! Token log-probabilities in OpenAI's two shapes: chat's `{"content": [{token, logprob,
//! bytes, top_logprobs}]}` and the legacy completions' `{tokens, token_logprobs, top_logprobs,
//! text_offset}`. Entries gather as the worker sends them and go out with the next chunk (or
//! the whole response).

use crate::reply::Endpoint;
use rmlx_lm::{LogprobToken, TokenLogprob};
use serde_json::{json, Map, Value as Json};

pub struct Logprobs {
    endpoint: Endpoint,
    /// Not asked for: every `take` is null.
    enabled: bool,
    pending: Vec<TokenLogprob>,
    /// Completions: characters of the text before the pending tokens.
    text_offset: usize,
}

impl Logprobs {
    pub fn new(endpoint: Endpoint, enabled: bool) -> Self {
        Logprobs {
            endpoint,
            enabled,
            pending: Vec::new(),
            text_offset: 0,
        }
    }

    pub fn push(&mut self, l: TokenLogprob) {
        if self.enabled {
            self.pending.push(l);
        }
    }

    /// The choice's `logprobs` for the tokens gathered since the last call (null when none).
    pub fn take(&mut self) -> Json {
        if self.pending.is_empty() {
            return Json::Null;
        }
        let entries = std::mem::take(&mut self.pending);
        match self.endpoint {
            Endpoint::Chat => {
                json!({"content": entries.iter().map(chat_entry).collect::<Vec<_>>(), "refusal": null})
            }
            Endpoint::Completion => self.completion(&entries),
        }
    }

    fn completion(&mut self, entries: &[TokenLogprob]) -> Json {
        let mut offsets = Vec::with_capacity(entries.len());
        for e in entries {
            offsets.push(self.text_offset);
            self.text_offset += e.chosen.text.chars().count();
        }
        let top = |e: &TokenLogprob| {
            // Keyed by text, as OpenAI's legacy shape is; the sampled token is always in it.
            let mut m = Map::new();
            for t in e.top.iter().chain(std::iter::once(&e.chosen)) {
                m.insert(t.text.clone(), json!(t.logprob));
            }
            Json::Object(m)
        };
        json!({
            "tokens": entries.iter().map(|e| e.chosen.text.clone()).collect::<Vec<_>>(),
            "token_logprobs": entries.iter().map(|e| e.chosen.logprob).collect::<Vec<_>>(),
            "top_logprobs": entries.iter().map(top).collect::<Vec<_>>(),
            "text_offset": offsets,
        })
    }
}

fn token(t: &LogprobToken) -> Json {
    json!({"token": t.text, "logprob": t.logprob, "bytes": t.bytes})
}

fn chat_entry(e: &TokenLogprob) -> Json {
    let mut v = token(&e.chosen);
    v["top_logprobs"] = e.top.iter().map(token).collect();
    v
}

/// `chunk` (a response or stream chunk of one choice) with that choice's `logprobs` set.
pub fn attach(mut chunk: Json, logprobs: Json) -> Json {
    if !logprobs.is_null() {
        if let Some(choice) = chunk["choices"].get_mut(0) {
            choice["logprobs"] = logprobs;
        }
    }
    chunk
}
