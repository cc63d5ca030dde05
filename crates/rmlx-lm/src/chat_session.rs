//! `ChatSession`: a conversation whose KV cache is reused across turns. When the history no
//! longer fits the context, the oldest turns are dropped (never the leading system/developer
//! messages, never the turn being answered), the template renders what is left, and the cache
//! keeps the token prefix the old and new sequences share: only the rest is computed. This is
//! what chat apps do (Ollama, LM Studio's rolling window); each turn that drops history
//! recomputes what follows the system message, as the positions of everything after it moved.

use crate::cache::{CacheKind, ModelCache};
use crate::context::{reply_room, requested_new_tokens};
use crate::engine::Engine;
use crate::generate::{GenerateOptions, Generation};
use rmlx_core::{Error, Result};
use serde_json::{json, Value as Json};
use std::ops::Range;
use std::sync::atomic::AtomicBool;

/// A conversation: history of messages and a KV cache reused across turns.
pub struct ChatSession<'a> {
    engine: &'a Engine,
    /// The conversation as the template renders it. An app may put system (or developer)
    /// messages first; they are never dropped. gpt-oss replies are kept as their `final`
    /// text (`harmony::history_text`).
    pub messages: Vec<Json>,
    cache: ModelCache,
    /// Tokens whose keys/values are in the cache.
    in_cache: Vec<u32>,
    kind: CacheKind,
    /// Turns dropped to stay within the context since the session began or was reset.
    dropped_turns: usize,
}

impl<'a> ChatSession<'a> {
    pub fn new(engine: &'a Engine, kind: CacheKind) -> Result<Self> {
        Ok(ChatSession {
            engine,
            messages: vec![],
            cache: engine.model.make_cache_of(kind)?,
            in_cache: vec![],
            kind,
            dropped_turns: 0,
        })
    }

    pub fn reset(&mut self) -> Result<()> {
        self.messages.clear();
        self.dropped_turns = 0;
        self.start_over()
    }

    /// Turns dropped from the front of the history to stay within the context, since the
    /// session began or was last reset.
    pub fn dropped_turns(&self) -> usize {
        self.dropped_turns
    }

    /// Adds a user message, generates the assistant's reply and adds it to the history,
    /// dropping the oldest turns first if the history would leave too little room for the
    /// reply (`context::reply_room`). An error (nothing older left to drop and still too long,
    /// or a failed generation) leaves the history as it was.
    pub fn send(
        &mut self,
        user: &str,
        opts: &GenerateOptions,
        cancel: Option<&AtomicBool>,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        // A bad request is refused before the cache is touched.
        requested_new_tokens(opts.max_tokens)?;
        let mut messages = self.messages.clone();
        messages.push(json!({"role": "user", "content": user}));
        let context = self.engine.model.info().context_length;
        let room = reply_room(opts.max_tokens, context);
        let (dropped, tokens) = self.fit(&mut messages, room, context)?;
        self.reuse_prefix(&tokens)?;
        let cached = self.in_cache.len();
        let g = match self.engine.generate_tokens(
            &mut self.cache,
            &tokens,
            cached,
            opts,
            cancel,
            on_text,
        ) {
            Ok(g) => g,
            Err(e) => {
                self.start_over()?;
                return Err(e);
            }
        };
        self.in_cache = tokens;
        self.in_cache
            .extend(&g.tokens[..g.tokens.len().saturating_sub(1)]);
        let content = if self.engine.uses_harmony() {
            crate::harmony::history_text(&g.text)
        } else {
            g.text.clone()
        };
        messages.push(json!({"role": "assistant", "content": content}));
        self.messages = messages;
        self.dropped_turns += dropped;
        Ok(g)
    }

    /// Drops the oldest turns of `messages` until its prompt leaves `room` positions of the
    /// context free; returns how many turns went and the prompt's tokens.
    fn fit(
        &self,
        messages: &mut Vec<Json>,
        room: usize,
        context: usize,
    ) -> Result<(usize, Vec<u32>)> {
        let mut dropped = 0;
        loop {
            let tokens = self.engine.encode_chat(messages)?;
            if tokens.len() + room <= context {
                return Ok((dropped, tokens));
            }
            let Some(turn) = oldest_turn(messages) else {
                return Err(Error::msg(format!(
                    "chat: {} prompt tokens + {room} tokens kept for the reply exceed the \
                     context of {context} tokens, with no older turn left to drop",
                    tokens.len()
                )));
            };
            messages.drain(turn);
            dropped += 1;
        }
    }

    /// Rewinds the cache to the token prefix the new prompt shares with what it holds, so
    /// only the rest is computed. A cache that cannot rewind that far starts over and the
    /// whole prompt is computed: a sliding-window layer that has wrapped no longer holds the
    /// positions the new tokens would attend to (`RotatingCache::can_truncate`).
    fn reuse_prefix(&mut self, tokens: &[u32]) -> Result<()> {
        let common = self
            .in_cache
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count()
            // At least one prompt token is computed: its logits give the first reply token.
            .min(tokens.len().saturating_sub(1));
        if self.cache.truncate(common) {
            self.in_cache.truncate(common);
            Ok(())
        } else {
            self.start_over()
        }
    }

    fn start_over(&mut self) -> Result<()> {
        self.cache = self.engine.model.make_cache_of(self.kind)?;
        self.in_cache.clear();
        Ok(())
    }
}

fn role(m: &Json) -> &str {
    m.get("role").and_then(Json::as_str).unwrap_or("")
}

/// The oldest turn that may go: after the leading system/developer messages, from the first
/// message up to the next user message (a user message and the replies and tool results that
/// follow it). The last turn, from the last user message on, is the one being answered and
/// never goes; None when nothing else is left.
fn oldest_turn(messages: &[Json]) -> Option<Range<usize>> {
    let start = messages
        .iter()
        .take_while(|m| matches!(role(m), "system" | "developer"))
        .count();
    let last_user = messages.iter().rposition(|m| role(m) == "user")?;
    let end = (start + 1..=last_user).find(|&i| role(&messages[i]) == "user")?;
    Some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(roles: &[&str]) -> Vec<Json> {
        roles
            .iter()
            .map(|r| json!({"role": r, "content": ""}))
            .collect()
    }

    #[test]
    fn oldest_turn_spares_the_system_messages_and_the_last_turn() {
        let m = msgs(&["system", "user", "assistant", "user", "assistant", "user"]);
        assert_eq!(oldest_turn(&m), Some(1..3));
        // Tool results belong to their turn.
        let m = msgs(&[
            "developer",
            "user",
            "assistant",
            "tool",
            "assistant",
            "user",
        ]);
        assert_eq!(oldest_turn(&m), Some(1..5));
        // A greeting before the first user message goes on its own.
        let m = msgs(&["assistant", "user", "assistant", "user"]);
        assert_eq!(oldest_turn(&m), Some(0..1));
        // Only the system message and the turn being answered: nothing to drop.
        assert_eq!(oldest_turn(&msgs(&["system", "user"])), None);
        assert_eq!(oldest_turn(&msgs(&["user"])), None);
        assert_eq!(oldest_turn(&msgs(&["system"])), None);
    }
}
