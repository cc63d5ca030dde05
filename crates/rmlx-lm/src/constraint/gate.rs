//! Where a grammar begins in harmony (gpt-oss) output: the content of the `final` channel.
//!
//! gpt-oss reasons in the `analysis` channel, may call tools in `commentary`, and answers in
//! `final`. A response format constrains the answer only (vLLM's gpt-oss reasoning parser and
//! llama.cpp do the same: reasoning is free text), so the grammar starts after a header
//! `<|channel|>final…<|message|>` — the header may carry `<|constrain|>json` or a space before
//! `<|message|>`. The gate reads control tokens by id (the model writes them as single special
//! tokens), the channel name by its bytes.

use crate::tokenizer::Tokenizer;

/// Most header bytes kept: enough for "final <|constrain|>json" and then some.
const MAX_HEADER: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Outside a final message (analysis, commentary, between messages).
    Closed,
    /// After `<|channel|>`: the header's text so far.
    Header(Vec<u8>),
    /// In a final message's content: the grammar applies.
    Open,
}

#[derive(Clone, Debug)]
pub(crate) struct HarmonyGate {
    channel: Option<u32>,
    message: Option<u32>,
    /// Tokens that end a message or begin the next one.
    closers: Vec<u32>,
    state: State,
}

impl HarmonyGate {
    pub fn new(tok: &Tokenizer) -> Self {
        let id = |t: &str| tok.token_to_id(t);
        HarmonyGate {
            channel: id("<|channel|>"),
            message: id("<|message|>"),
            closers: ["<|start|>", "<|end|>", "<|return|>", "<|call|>"]
                .iter()
                .filter_map(|t| id(t))
                .collect(),
            state: State::Closed,
        }
    }

    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Follows one token (`bytes`: what it stands for).
    pub fn push(&mut self, token: u32, bytes: &[u8]) {
        if Some(token) == self.channel {
            self.state = State::Header(Vec::new());
        } else if Some(token) == self.message {
            self.state = match &self.state {
                State::Header(h) if names_final(h) => State::Open,
                _ => State::Closed,
            };
        } else if self.closers.contains(&token) {
            self.state = State::Closed;
        } else if let State::Header(h) = &mut self.state {
            let room = MAX_HEADER.saturating_sub(h.len());
            h.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }
}

/// The header names the `final` channel: "final", then nothing, a space or a control token
/// (`final<|constrain|>json`; llguidance's trie writes a control token with the marker byte
/// 0xFF first), never a longer word.
fn names_final(header: &[u8]) -> bool {
    let h = header.trim_ascii_start();
    h.strip_prefix(b"final").is_some_and(|rest| {
        rest.first()
            .is_none_or(|&c| c == b' ' || c == b'<' || c == toktrie::TokTrie::SPECIAL_TOKEN_MARKER)
    })
}

#[cfg(test)]
mod tests {
    use super::names_final;

    #[test]
    fn final_headers() {
        for h in [
            "final",
            " final",
            "final <|constrain|>json",
            "final<|constrain|>json",
        ] {
            assert!(names_final(h.as_bytes()), "{h}");
        }
        assert!(names_final(b"final\xff<|constrain|>json"));
        for h in ["analysis", "finally", "commentary to=functions.f", ""] {
            assert!(!names_final(h.as_bytes()), "{h}");
        }
    }
}
