//! Streaming detokenization: text goes out as soon as it is whole UTF-8.
//!
//! A byte-level or byte-fallback token can carry part of a multi-byte character (emoji are
//! often split over 2–4 tokens), so bytes are buffered and only complete characters emitted.

use std::sync::LazyLock;

use rmlx_core::Result;

use super::{tok_err, PieceKind, Tokenizer};

/// GPT-2's byte <-> printable char table, inverted: char -> byte.
static CHAR_TO_BYTE: LazyLock<std::collections::HashMap<char, u8>> = LazyLock::new(|| {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    let mut m = std::collections::HashMap::with_capacity(256);
    let mut n = 0u32;
    for b in 0..=255u8 {
        let c = if printable(b) {
            b as u32
        } else {
            n += 1;
            255 + n
        };
        m.insert(char::from_u32(c).unwrap_or('\u{FFFD}'), b);
    }
    m
});

/// The bytes a byte-level BPE token stands for (raw UTF-8 for chars outside the table).
pub(super) fn byte_level_bytes(token: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.len());
    for c in token.chars() {
        match CHAR_TO_BYTE.get(&c) {
            Some(&b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// The bytes of a SentencePiece token: `<0xXX>` is one raw byte, `▁` a space.
pub(super) fn sentencepiece_bytes(token: &str) -> Vec<u8> {
    if let Some(hex) = token.strip_prefix("<0x").and_then(|s| s.strip_suffix('>')) {
        if hex.len() == 2 {
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                return vec![b];
            }
        }
    }
    token.replace('\u{2581}', " ").into_bytes()
}

pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    skip_special: bool,
    /// Bytes not yet emitted (an incomplete UTF-8 sequence at most, for byte kinds).
    pending: Vec<u8>,
    at_start: bool,
    /// `PieceKind::Other`: ids since the last point where the text was complete.
    ids: Vec<u32>,
    emitted: usize,
}

impl<'a> StreamDecoder<'a> {
    pub(super) fn new(tok: &'a Tokenizer, skip_special: bool) -> Self {
        Self {
            tok,
            skip_special,
            pending: Vec::new(),
            at_start: true,
            ids: Vec::new(),
            emitted: 0,
        }
    }

    /// Feed one id; returns the text that became complete (often empty mid-character).
    pub fn push(&mut self, id: u32) -> Result<String> {
        let piece = self.tok.pieces.get(id as usize).ok_or_else(|| {
            tok_err(format!(
                "stream: id {id} out of range for vocab of {}",
                self.tok.vocab_size()
            ))
        })?;
        if self.skip_special && self.tok.is_special(id) {
            return Ok(String::new());
        }
        if self.tok.kind == PieceKind::Other {
            return self.push_redecode(id);
        }
        self.pending.extend_from_slice(piece);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // Safe: `valid_up_to` bytes are valid UTF-8.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // Invalid bytes (not just unfinished): replace, as a full decode would.
                        Some(len) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + len);
                        }
                        None => {
                            self.pending.drain(..valid);
                            break;
                        }
                    }
                }
            }
        }
        Ok(self.strip_start(out))
    }

    /// Whatever is still held back (an unfinished character becomes U+FFFD).
    pub fn finish(&mut self) -> Result<String> {
        if self.tok.kind == PieceKind::Other {
            let text = self.tok.decode(&self.ids, self.skip_special)?;
            let rest = text.get(self.emitted..).unwrap_or_default().to_string();
            self.ids.clear();
            self.emitted = 0;
            return Ok(rest);
        }
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        Ok(self.strip_start(out))
    }

    fn strip_start(&mut self, s: String) -> String {
        if !self.at_start || s.is_empty() {
            return s;
        }
        self.at_start = false;
        match (self.tok.strip_first_space, s.strip_prefix(' ')) {
            (true, Some(rest)) => rest.to_string(),
            _ => s,
        }
    }

    /// Generic path: decode the ids since the last complete point and emit the new suffix,
    /// holding it back while it ends in a replacement char (an unfinished byte sequence).
    fn push_redecode(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = self.tok.decode(&self.ids, self.skip_special)?;
        if text.ends_with('\u{FFFD}') || !text.is_char_boundary(self.emitted.min(text.len())) {
            return Ok(String::new());
        }
        let new = text.get(self.emitted..).unwrap_or_default().to_string();
        self.emitted = text.len();
        // Restart the window at a whitespace boundary so decoding stays O(window).
        if text.ends_with(char::is_whitespace) {
            self.ids.clear();
            self.emitted = 0;
        }
        Ok(new)
    }
}
