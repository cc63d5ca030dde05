//! Build a `tokenizers::Tokenizer` from the `tokenizer.ggml.*` metadata of a GGUF file.
//!
//! Two vocabulary kinds, as llama.cpp names them:
//! - `gpt2`: byte-level BPE (vocab + merges), pre-split by the regex chain of `pre`;
//! - `llama`: SentencePiece BPE (scores, `▁` for spaces, `<0xXX>` byte fallback, dummy prefix).

use rmlx_core::{Error, Result};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, DecoderWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

use super::pretok::{ignores_merges, regexes_for_pre};

/// GGUF token types (`tokenizer.ggml.token_type`), as in llama.cpp.
pub const TOKEN_TYPE_NORMAL: i32 = 1;
pub const TOKEN_TYPE_UNKNOWN: i32 = 2;
pub const TOKEN_TYPE_CONTROL: i32 = 3;
pub const TOKEN_TYPE_USER_DEFINED: i32 = 4;
pub const TOKEN_TYPE_UNUSED: i32 = 5;
pub const TOKEN_TYPE_BYTE: i32 = 6;

/// The tokenizer part of a GGUF file's metadata, filled by the GGUF reader (rmlx-io).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model`: "gpt2" or "llama".
    pub model: String,
    /// `tokenizer.ggml.pre`: pre-tokenizer name (gpt2 models only).
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    pub scores: Option<Vec<f32>>,
    pub token_types: Option<Vec<i32>>,
    /// "left right" pairs, highest priority first.
    pub merges: Option<Vec<String>>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub pad_id: Option<u32>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix` (SentencePiece only; llama.cpp defaults it to true).
    #[serde(default)]
    pub add_space_prefix: Option<bool>,
    pub chat_template: Option<String>,
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::format(format!("tokenizer: {e}"))
}

impl GgufVocab {
    fn token_type(&self, id: usize) -> i32 {
        self.token_types
            .as_ref()
            .and_then(|t| t.get(id).copied())
            .unwrap_or(TOKEN_TYPE_NORMAL)
    }

    fn check(&self) -> Result<()> {
        let n = self.tokens.len();
        if n == 0 {
            return Err(tok_err("GGUF vocab: expected tokens, found none"));
        }
        if let Some(t) = &self.token_types {
            if t.len() != n {
                return Err(tok_err(format!(
                    "GGUF vocab: expected {n} token types, found {}",
                    t.len()
                )));
            }
        }
        if let Some(s) = &self.scores {
            if s.len() != n {
                return Err(tok_err(format!(
                    "GGUF vocab: expected {n} scores, found {}",
                    s.len()
                )));
            }
        }
        for (name, id) in [
            ("bos", self.bos_id),
            ("eos", self.eos_id),
            ("unk", self.unk_id),
        ] {
            if let Some(id) = id {
                if id as usize >= n {
                    return Err(tok_err(format!(
                        "GGUF vocab: {name} id {id} out of range for {n} tokens"
                    )));
                }
            }
        }
        Ok(())
    }

    /// token -> id; on duplicate strings the first id wins (as llama.cpp's `token_to_id`).
    fn vocab_map(&self) -> Vocab {
        let mut m = Vocab::default();
        for (i, t) in self.tokens.iter().enumerate() {
            m.entry(t.clone()).or_insert(i as u32);
        }
        m
    }

    /// Control tokens become special added tokens (split out of text, skippable when decoding);
    /// user-defined ones become plain added tokens (always split out, always decoded).
    fn added_tokens(&self) -> (Vec<AddedToken>, Vec<AddedToken>) {
        let (mut special, mut user) = (Vec::new(), Vec::new());
        for (i, t) in self.tokens.iter().enumerate() {
            match self.token_type(i) {
                TOKEN_TYPE_CONTROL => special.push(AddedToken::from(t.clone(), true)),
                // Matched on the raw text, like llama.cpp: each text piece after it is then
                // normalized on its own (gets its own dummy prefix).
                TOKEN_TYPE_USER_DEFINED => {
                    user.push(AddedToken::from(t.clone(), false).normalized(false))
                }
                _ => {}
            }
        }
        (special, user)
    }

    /// Build the `tokenizers` pipeline that tokenizes as llama.cpp does for this vocab.
    pub fn build(&self) -> Result<tokenizers::Tokenizer> {
        self.check()?;
        let mut tk = match self.model.as_str() {
            "gpt2" => self.build_byte_level()?,
            "llama" => self.build_spm()?,
            other => {
                return Err(tok_err(format!(
                    "GGUF vocab: expected tokenizer.ggml.model 'gpt2' or 'llama', found '{other}'"
                )))
            }
        };
        let (special, user) = self.added_tokens();
        tk.add_special_tokens(special).map_err(tok_err)?;
        tk.add_tokens(user).map_err(tok_err)?;
        Ok(tk)
    }

    fn build_byte_level(&self) -> Result<tokenizers::Tokenizer> {
        let merges = self
            .merges
            .as_ref()
            .ok_or_else(|| tok_err("GGUF vocab: gpt2 model needs tokenizer.ggml.merges"))?;
        let vocab = self.vocab_map();
        let mut pairs = Vec::with_capacity(merges.len());
        for (i, m) in merges.iter().enumerate() {
            // llama.cpp splits at the first space after position 0.
            let pos = m
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(p, _)| p);
            let Some(p) = pos else {
                return Err(tok_err(format!("GGUF vocab: merge {i} '{m}' has no space")));
            };
            let (left, right) = (&m[..p], &m[p + 1..]);
            // `tokenizers` rejects such a merge too, but panics instead when the merged text
            // is longer than every token: check first.
            if !vocab.contains_key(&format!("{left}{right}")) {
                return Err(tok_err(format!(
                    "GGUF vocab: merge {i} '{m}': expected '{left}{right}' in the vocabulary, found no such token"
                )));
            }
            pairs.push((left.to_string(), right.to_string()));
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, pairs)
            .ignore_merges(ignores_merges(self.pre.as_deref()))
            .build()
            .map_err(tok_err)?;
        let mut pre: Vec<PreTokenizerWrapper> = Vec::new();
        for r in regexes_for_pre(self.pre.as_deref())? {
            let split = Split::new(
                SplitPattern::Regex(r.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(tok_err)?;
            pre.push(split.into());
        }
        pre.push(ByteLevel::new(false, false, false).into());
        let mut tk = tokenizers::Tokenizer::new(bpe);
        tk.with_pre_tokenizer(Some(PreSequence::new(pre)));
        tk.with_decoder(Some(ByteLevel::new(false, false, false)));
        Ok(tk)
    }

    fn build_spm(&self) -> Result<tokenizers::Tokenizer> {
        let scores = self
            .scores
            .as_ref()
            .ok_or_else(|| tok_err("GGUF vocab: llama model needs tokenizer.ggml.scores"))?;
        let vocab = self.vocab_map();
        let merges = spm_merges(&self.tokens, scores, &vocab, |i| {
            !matches!(
                self.token_type(i),
                TOKEN_TYPE_CONTROL | TOKEN_TYPE_BYTE | TOKEN_TYPE_UNUSED | TOKEN_TYPE_UNKNOWN
            )
        });
        let mut b = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .byte_fallback(true);
        if let Some(unk) = self.unk_id {
            b = b.unk_token(self.tokens[unk as usize].clone());
        }
        let bpe = b.build().map_err(tok_err)?;
        let prefix = self.add_space_prefix.unwrap_or(true);
        let replace = Replace::new(" ", "▁").map_err(tok_err)?;
        let mut norms = Vec::new();
        if prefix {
            norms.push(Prepend::new("▁".to_string()).into());
        }
        norms.push(replace.into());
        let mut decs: Vec<DecoderWrapper> = vec![
            Replace::new("▁", " ").map_err(tok_err)?.into(),
            ByteFallback::new().into(),
            Fuse::new().into(),
        ];
        if prefix {
            decs.push(Strip::new(' ', 1, 0).into());
        }
        let mut tk = tokenizers::Tokenizer::new(bpe);
        tk.with_normalizer(Some(NormalizerSequence::new(norms)))
            .map_err(tok_err)?;
        tk.with_decoder(Some(DecoderSequence::new(decs)));
        Ok(tk)
    }
}

/// SentencePiece BPE as merges: llama.cpp merges the adjacent pair whose concatenation is a
/// token with the highest score, so every split of a token into two tokens is a merge ranked
/// by the merged token's score (what HF's SentencePieceExtractor does as well).
fn spm_merges(
    tokens: &[String],
    scores: &[f32],
    vocab: &Vocab,
    mergeable: impl Fn(usize) -> bool,
) -> Vec<(String, String)> {
    let mut ranked: Vec<(f32, u32, u32, u32)> = Vec::new();
    for (id, t) in tokens.iter().enumerate() {
        if !mergeable(id) || t.chars().nth(1).is_none() {
            continue;
        }
        for (pos, _) in t.char_indices().skip(1) {
            if let (Some(&l), Some(&r)) = (vocab.get(&t[..pos]), vocab.get(&t[pos..])) {
                ranked.push((scores[id], id as u32, l, r));
            }
        }
    }
    ranked.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then((a.1, a.2, a.3).cmp(&(b.1, b.2, b.3)))
    });
    ranked
        .into_iter()
        .map(|(_, _, l, r)| (tokens[l as usize].clone(), tokens[r as usize].clone()))
        .collect()
}
