//! Text <-> token ids: a thin layer over Hugging Face `tokenizers` that also knows the model's
//! BOS/EOS conventions, its chat template, and how to stream text out as tokens arrive.

mod config;
mod gguf;
mod json_check;
mod pretok;
mod stream;

use std::path::Path;
use std::sync::OnceLock;

use rmlx_core::{Error, Result};

pub use config::TokenizerConfig;
pub use gguf::GgufVocab;
pub use stream::StreamDecoder;

/// Token texts that end a generation, as llama.cpp lists them (`special_eog_ids`).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
];

/// The metadata's EOS ids first, then every token llama.cpp treats as end-of-generation.
/// Harmony (gpt-oss) ends turns with `<|return|>`/`<|call|>`; its `<|end|>` only ends a message.
fn eog_ids(inner: &tokenizers::Tokenizer, mut ids: Vec<u32>) -> Vec<u32> {
    for t in EOG_TEXTS {
        if let Some(id) = inner.token_to_id(t) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let has = |t: &str| inner.token_to_id(t).is_some();
    if has("<|return|>") && (has("<|call|>") || has("<|calls|>")) {
        if let Some(end) = inner.token_to_id("<|end|>") {
            ids.retain(|&i| i != end);
        }
    }
    ids
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::format(format!("tokenizer: {e}"))
}

/// How a token's text maps back to bytes (decides how streaming works).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceKind {
    /// GPT-2 byte-level BPE: every char of a token stands for one byte.
    ByteLevel,
    /// SentencePiece: `▁` is a space, `<0xXX>` a raw byte.
    SentencePiece,
    /// Anything else: stream by re-decoding the tail of the ids.
    Other,
}

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos_id: Option<u32>,
    eos_ids: Vec<u32>,
    pad_id: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    /// True when we add BOS/EOS ourselves (GGUF); false when a post-processor does (HF files).
    manual_specials: bool,
    chat_template: Option<String>,
    /// Raw bytes of every token (for streaming), and which ids are special (control) tokens.
    pieces: Vec<Vec<u8>>,
    special: Vec<bool>,
    kind: PieceKind,
    /// SentencePiece with a dummy prefix: the first decoded space is not part of the text.
    strip_first_space: bool,
    /// A copy that reads special-token text literally, built on first use (user content).
    literal: OnceLock<tokenizers::Tokenizer>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos_id", &self.bos_id)
            .field("eos_ids", &self.eos_ids)
            .field("add_bos", &self.add_bos)
            .field("kind", &self.kind)
            .finish()
    }
}

impl Tokenizer {
    /// Load `tokenizer.json`; a sibling `tokenizer_config.json`, `generation_config.json` and
    /// `chat_template.jinja` are read when present.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("tokenizer: reading {}", path.display()), e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let read_opt = |name: &str| -> Result<Option<String>> {
            let p = dir.join(name);
            match std::fs::read_to_string(&p) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(format!("tokenizer: reading {}", p.display()), e)),
            }
        };
        Self::from_texts(
            &json,
            read_opt("tokenizer_config.json")?.as_deref(),
            read_opt("chat_template.jinja")?.as_deref(),
            read_opt("generation_config.json")?.as_deref(),
        )
    }

    /// Build from the texts of a model directory's tokenizer files: `tokenizer.json` and,
    /// when present, `tokenizer_config.json`, `chat_template.jinja` (overrides the config's
    /// template) and `generation_config.json` (extra EOS ids).
    pub fn from_texts(
        tokenizer_json: &str,
        tokenizer_config: Option<&str>,
        chat_template: Option<&str>,
        generation_config: Option<&str>,
    ) -> Result<Self> {
        let mut cfg = match tokenizer_config {
            Some(s) => config::TokenizerConfig::parse(s)?,
            None => config::TokenizerConfig::default(),
        };
        if let Some(t) = chat_template {
            cfg.chat_template = Some(t.to_string());
        }
        if let Some(s) = generation_config {
            cfg.extra_eos_ids = config::generation_eos_ids(s)?;
        }
        Self::from_json(tokenizer_json, cfg)
    }

    /// Build from the text of `tokenizer.json` and a parsed `tokenizer_config.json`.
    pub fn from_json(json: &str, cfg: TokenizerConfig) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(tok_err)?;
        json_check::check(&value)?;
        // Defence in depth: `tokenizers` may panic on other malformed files we do not know of
        // yet; that must reach the caller as an error.
        let inner: tokenizers::Tokenizer =
            std::panic::catch_unwind(|| json.parse::<tokenizers::Tokenizer>())
                .map_err(|_| tok_err("tokenizers panicked while reading tokenizer.json"))?
                .map_err(tok_err)?;
        let id = |t: &Option<String>| t.as_deref().and_then(|t| inner.token_to_id(t));
        let bos_id = id(&cfg.bos_token);
        let mut eos_ids: Vec<u32> = id(&cfg.eos_token).into_iter().collect();
        for e in &cfg.extra_eos_ids {
            if !eos_ids.contains(e) {
                eos_ids.push(*e);
            }
        }
        let pad_id = id(&cfg.pad_token);
        let manual_specials = inner.get_post_processor().is_none();
        let mut tk = Self::assemble(inner, bos_id, eos_ids, pad_id, cfg.chat_template, 0)?;
        tk.manual_specials = manual_specials;
        if manual_specials {
            tk.add_bos = cfg.add_bos_token.unwrap_or(false);
            tk.add_eos = cfg.add_eos_token.unwrap_or(false);
        } else {
            // The post-processor decides; report what it does.
            let ids = tk
                .inner
                .encode("", true)
                .map_err(tok_err)?
                .get_ids()
                .to_vec();
            tk.add_bos = bos_id.is_some() && ids.first().copied() == bos_id;
            tk.add_eos = !ids.is_empty() && tk.eos_ids.contains(&ids[ids.len() - 1]);
        }
        Ok(tk)
    }

    /// Build from GGUF `tokenizer.ggml.*` metadata, tokenizing as llama.cpp does.
    pub fn from_gguf_vocab(v: &GgufVocab) -> Result<Self> {
        let inner = v.build()?;
        let eos_ids = v.eos_id.into_iter().collect();
        // A padding id outside the vocabulary (files write -1 for none) means none.
        let n = v.tokens.len();
        let pad_id = v.pad_id.filter(|&p| (p as usize) < n);
        let template = v.chat_template.clone();
        let mut tk = Self::assemble(inner, v.bos_id, eos_ids, pad_id, template, n)?;
        tk.manual_specials = true;
        // llama.cpp: SentencePiece (and Tekken) add BOS unless told otherwise; other BPEs only
        // when told.
        let default_bos = v.model == "llama" || v.pre.as_deref() == Some("tekken");
        tk.add_bos = v.add_bos.unwrap_or(default_bos) && v.bos_id.is_some();
        tk.add_eos = v.add_eos.unwrap_or(false) && v.eos_id.is_some();
        Ok(tk)
    }

    /// `vocab_size` at least `min_vocab` (a GGUF vocabulary's token count: ids of duplicate
    /// token texts are not in `tokenizers`' maps).
    fn assemble(
        inner: tokenizers::Tokenizer,
        bos_id: Option<u32>,
        eos_ids: Vec<u32>,
        pad_id: Option<u32>,
        chat_template: Option<String>,
        min_vocab: usize,
    ) -> Result<Self> {
        let eos_ids = eog_ids(&inner, eos_ids);
        let decoder = match inner.get_decoder() {
            Some(d) => serde_json::to_string(d).map_err(tok_err)?,
            None => String::new(),
        };
        let kind = if decoder.contains("\"ByteLevel\"") {
            PieceKind::ByteLevel
        } else if decoder.contains("\"ByteFallback\"") || decoder.contains("\"Metaspace\"") {
            PieceKind::SentencePiece
        } else {
            PieceKind::Other
        };
        let strip_first_space = kind == PieceKind::SentencePiece
            && (decoder.contains("\"Strip\"") || decoder.contains("\"prepend_scheme\":\"first\""));
        // Every id the tokenizer can produce: its count of tokens is lower than the highest id
        // plus one when ids have holes or token texts repeat.
        let max_id = inner.get_vocab(true).into_values().max();
        let count = inner.get_vocab_size(true).max(min_vocab);
        let n = count.max(max_id.map_or(0, |m| m as usize + 1));
        // Tables below are indexed by id: holes are fine, but a file must not make a handful
        // of tokens cost billions of entries.
        if n > (2 * count).max(1 << 16) {
            return Err(tok_err(format!(
                "expected token ids below {}, found id {} for {count} tokens",
                (2 * count).max(1 << 16),
                n - 1
            )));
        }
        let added = inner.get_added_tokens_decoder();
        let mut special = vec![false; n];
        let mut pieces = Vec::with_capacity(n);
        for id in 0..n as u32 {
            let text = inner.id_to_token(id).unwrap_or_default();
            let added_tok = added.get(&id);
            if added_tok.is_some_and(|t| t.special) {
                special[id as usize] = true;
            }
            pieces.push(match (kind, added_tok) {
                (_, Some(_)) | (PieceKind::Other, _) => text.into_bytes(),
                (PieceKind::ByteLevel, None) => stream::byte_level_bytes(&text),
                (PieceKind::SentencePiece, None) => stream::sentencepiece_bytes(&text),
            });
        }
        Ok(Self {
            inner,
            bos_id,
            eos_ids,
            pad_id,
            add_bos: false,
            add_eos: false,
            manual_specials: true,
            chat_template,
            pieces,
            special,
            kind,
            strip_first_space,
            literal: OnceLock::new(),
        })
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`) are parsed as
    /// such; `add_special_tokens` adds BOS/EOS as the model's metadata asks.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.encode_with(text, add_special_tokens, true)
    }

    /// Like `encode`; with `parse_special` false, special-token text such as `<|im_end|>` in
    /// `text` is tokenized as plain text (llama.cpp's `parse_special = false`), so user content
    /// cannot inject control tokens.
    pub fn encode_with(
        &self,
        text: &str,
        add_special_tokens: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>> {
        let tk = if parse_special {
            &self.inner
        } else {
            self.literal.get_or_init(|| {
                let mut t = self.inner.clone();
                t.set_encode_special_tokens(true);
                t
            })
        };
        let post = add_special_tokens && !self.manual_specials;
        let enc = tk.encode(text, post).map_err(tok_err)?;
        let ids = enc.get_ids();
        if !(add_special_tokens && self.manual_specials) {
            return Ok(ids.to_vec());
        }
        let mut out = Vec::with_capacity(ids.len() + 2);
        if let (true, Some(b)) = (self.add_bos, self.bos_id) {
            out.push(b);
        }
        out.extend_from_slice(ids);
        // EOS ids from generation_config.json may lie past the tokenizer's vocabulary (in the
        // model's padding): add one this tokenizer knows.
        let eos = self
            .eos_ids
            .iter()
            .find(|&&e| (e as usize) < self.vocab_size());
        if let (true, Some(&e)) = (self.add_eos, eos) {
            out.push(e);
        }
        Ok(out)
    }

    /// Text of `ids`; `skip_special` drops control tokens such as `<|im_end|>`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let n = self.vocab_size();
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= n) {
            return Err(tok_err(format!(
                "decode: id {bad} out of range for vocab of {n}"
            )));
        }
        self.inner.decode(ids, skip_special).map_err(tok_err)
    }

    /// The bytes token `id` stands for, which may be part of a character's UTF-8 (OpenAI's
    /// logprob `bytes`); for tokenizers without a byte mapping, its text decoded alone.
    pub fn token_bytes(&self, id: u32) -> Result<Vec<u8>> {
        match (self.kind, self.pieces.get(id as usize)) {
            (PieceKind::Other, _) => Ok(self.decode(&[id], false)?.into_bytes()),
            (_, Some(piece)) => Ok(piece.clone()),
            (_, None) => Err(tok_err(format!(
                "token_bytes: id {id} out of range for vocab of {}",
                self.vocab_size()
            ))),
        }
    }

    /// Every id's bytes (a special token's: its text), as `token_bytes` gives them one by one;
    /// None for tokenizers without a byte mapping, whose tokens have no bytes of their own.
    pub(crate) fn byte_pieces(&self) -> Option<&[Vec<u8>]> {
        (self.kind != PieceKind::Other).then_some(self.pieces.as_slice())
    }

    /// A streaming detokenizer: feed ids one at a time, get text as soon as it is complete.
    pub fn stream(&self, skip_special: bool) -> StreamDecoder<'_> {
        StreamDecoder::new(self, skip_special)
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }
    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }
    /// Add an end-of-generation id (e.g. `<|im_end|>`, `<|return|>`) beyond the metadata's.
    pub fn add_eos_id(&mut self, id: u32) {
        if !self.eos_ids.contains(&id) {
            self.eos_ids.push(id);
        }
    }
    pub fn pad_id(&self) -> Option<u32> {
        self.pad_id
    }
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    pub fn bos_token(&self) -> Option<String> {
        self.bos_id.and_then(|i| self.inner.id_to_token(i))
    }
    pub fn eos_token(&self) -> Option<String> {
        self.eos_ids
            .first()
            .and_then(|&i| self.inner.id_to_token(i))
    }
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }
    /// The underlying `tokenizers` object, for what this wrapper does not expose.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}
