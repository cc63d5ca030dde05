//! rmlx's tokenizer as llguidance sees it: a trie of every token id's bytes, the EOS ids, and a
//! way to tokenize the text a grammar forces.
//!
//! `toktrie_hf_tokenizers` does this for a Hugging Face `tokenizers::Tokenizer`, but it guesses
//! the byte mapping from the decoder again (and panics on what it does not know), and our GGUF
//! vocabularies are rebuilt tokenizers whose decoders it does not recognize. The `Tokenizer`
//! already knows each id's bytes (byte-level, SentencePiece `▁` and `<0xXX>` byte fallback),
//! so the trie is built from those. Special tokens get llguidance's marker byte 0xFF in front
//! (its convention: no grammar text can produce them, only an explicit special-token rule).

use crate::tokenizer::Tokenizer;
use rmlx_core::{Error, Result};
use std::sync::Arc;
use toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

struct Env {
    trie: TokTrie,
    /// For the text a grammar forces; the trie's greedy split covers what this cannot (bytes
    /// that are not UTF-8).
    hf: tokenizers::Tokenizer,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.trie.tokenize_with_greedy_fallback(s, |text| {
            match self.hf.encode(text, false) {
                Ok(e) => e.get_ids().to_vec(),
                // Never fails for plain text; if it did, the trie's own split is still valid.
                Err(_) => self.trie.greedy_tokenize(text.as_bytes()),
            }
        })
    }
}

fn err(m: impl std::fmt::Display) -> Error {
    Error::msg(format!("constraint: {m}"))
}

/// The llguidance view of `tok`: its vocabulary (`tok.vocab_size()` ids) and EOS ids.
pub(crate) fn tok_env(tok: &Tokenizer) -> Result<TokEnv> {
    let pieces = tok.byte_pieces().ok_or_else(|| {
        err(
            "this tokenizer maps tokens to no bytes (neither byte-level nor SentencePiece): \
             grammars cannot be matched against it",
        )
    })?;
    let words: Vec<Vec<u8>> = pieces
        .iter()
        .enumerate()
        .map(|(id, bytes)| {
            if tok.is_special(id as u32) && !bytes.is_empty() {
                let mut w = Vec::with_capacity(bytes.len() + 1);
                w.push(TokTrie::SPECIAL_TOKEN_MARKER);
                w.extend_from_slice(bytes);
                w
            } else {
                bytes.clone()
            }
        })
        .collect();
    let n = words.len();
    let eos: Vec<u32> = tok
        .eos_ids()
        .iter()
        .copied()
        .filter(|&e| (e as usize) < n)
        .collect();
    let Some(&first) = eos.first() else {
        return Err(err(
            "this tokenizer names no end-of-sequence token: a grammar could never end",
        ));
    };
    let vocab = u32::try_from(n).map_err(|_| err(format!("vocabulary of {n} tokens")))?;
    let mut info = TokRxInfo::new(vocab, first);
    info.tok_bos = tok.bos_id().filter(|&b| b < vocab);
    info.tok_pad = tok.pad_id().filter(|&p| p < vocab);
    // toktrie checks its own structure with asserts: a vocabulary it cannot take must be an
    // error here, not a panic in the server.
    let trie = std::panic::catch_unwind(|| TokTrie::from(&info, &words).with_eos_tokens(&eos))
        .map_err(|_| err("toktrie refused this vocabulary"))?;
    Ok(Arc::new(Env {
        trie,
        hf: tok.inner().clone(),
    }))
}
