//! GGUF vocabularies: a structured vocabulary (`arbitrary`) is written as the
//! `tokenizer.ggml.*` metadata of a GGUF file, read back as the engine reads a model's
//! (`engine::gguf_vocab`), built into a tokenizer the way llama.cpp tokenizes, then used.

use crate::gguf_writer::GgufWriter;
use arbitrary::{Arbitrary, Unstructured};
use rmlx_io::MetaValue;
use rmlx_lm::Tokenizer;
use std::sync::Arc;

/// `tokenizer.ggml.pre` values: every family `pretok.rs` knows, and then anything.
const PRE: &[&str] = &[
    "default",
    "llama-bpe",
    "qwen2",
    "smollm",
    "gpt-2",
    "falcon",
    "gpt-4o",
    "tekken",
    "deepseek-coder",
];

/// A vocabulary as fuzz input. Choices are small integers mapped so that random bytes mostly
/// make a buildable vocabulary (lists match the token count unless `mismatched`), leaving
/// the errors to a minority of inputs.
#[derive(Arbitrary, Debug)]
struct Vocab {
    /// 0..=3 gpt2, 4..=6 llama, 7 an unknown model.
    model: u8,
    /// None: absent; else `PRE` by index, or an unknown name past its end.
    pre: Option<u8>,
    tokens: Vec<String>,
    scores: Option<Vec<f32>>,
    /// Reduced to GGUF token types 0..=6 (1 normal, 3 control, 4 user-defined, 6 byte, …).
    token_types: Option<Vec<u8>>,
    mismatched: bool,
    /// Merges "left right" of two tokens (indices wrap around the vocabulary) and optionally
    /// one raw merge line.
    merges: Option<Vec<(u16, u16)>>,
    raw_merge: Option<String>,
    /// Special ids: wrap around the vocabulary size plus one (one past the end is an error).
    bos: Option<u16>,
    eos: Option<u16>,
    unk: Option<u16>,
    pad: Option<u16>,
    add_bos: Option<bool>,
    add_eos: Option<bool>,
    add_space_prefix: Option<bool>,
    template: Option<String>,
    text: String,
    ids: Vec<u8>,
}

impl Vocab {
    /// The vocabulary as GGUF metadata.
    fn to_gguf(&self) -> Vec<u8> {
        use MetaValue::{Array, Bool, String as Str, F32, I32, U32};
        let n = self.tokens.len();
        let fit = |len: usize| if self.mismatched { len } else { n };
        let strings = |v: &[String]| Array(v.iter().map(|s| Str(s.clone())).collect());
        let mut g = GgufWriter::default();
        let model = match self.model % 8 {
            0..=3 => "gpt2",
            4..=6 => "llama",
            _ => "rwkv",
        };
        g.kv("tokenizer.ggml.model", &Str(model.into()));
        if let Some(i) = self.pre {
            let pre = PRE.get(i as usize % 16).copied().unwrap_or("no-such-pre");
            g.kv("tokenizer.ggml.pre", &Str(pre.into()));
        }
        g.kv("tokenizer.ggml.tokens", &strings(&self.tokens));
        if let Some(s) = &self.scores {
            let s = (0..fit(s.len())).map(|i| F32(s.get(i).copied().unwrap_or(0.0)));
            g.kv("tokenizer.ggml.scores", &Array(s.collect()));
        }
        if let Some(t) = &self.token_types {
            let t = (0..fit(t.len())).map(|i| I32(t.get(i).map_or(1, |&v| (v % 7) as i32)));
            g.kv("tokenizer.ggml.token_type", &Array(t.collect()));
        }
        if let Some(m) = &self.merges {
            let token = |i: u16| self.tokens.get(i as usize % n.max(1)).map_or("", |s| s);
            let m: Vec<String> = m
                .iter()
                .map(|&(a, b)| format!("{} {}", token(a), token(b)))
                .chain(self.raw_merge.clone())
                .collect();
            g.kv("tokenizer.ggml.merges", &strings(&m));
        }
        for (key, id) in [
            ("tokenizer.ggml.bos_token_id", self.bos),
            ("tokenizer.ggml.eos_token_id", self.eos),
            ("tokenizer.ggml.unknown_token_id", self.unk),
            ("tokenizer.ggml.padding_token_id", self.pad),
        ] {
            if let Some(id) = id {
                g.kv(key, &U32((id as usize % (n + 1)) as u32));
            }
        }
        for (key, flag) in [
            ("tokenizer.ggml.add_bos_token", self.add_bos),
            ("tokenizer.ggml.add_eos_token", self.add_eos),
            ("tokenizer.ggml.add_space_prefix", self.add_space_prefix),
        ] {
            if let Some(b) = flag {
                g.kv(key, &Bool(b));
            }
        }
        if let Some(t) = &self.template {
            g.kv("tokenizer.chat_template", &Str(t.clone()));
        }
        g.bytes(32)
    }
}

/// Structured input (`arbitrary`): a vocabulary, text to encode and ids to decode.
pub fn run(data: &[u8]) -> bool {
    let Ok(v) = Vocab::arbitrary_take_rest(Unstructured::new(data)) else {
        return false;
    };
    let file = rmlx_io::GgufFile::from_bytes("vocab.gguf", Arc::new(v.to_gguf()))
        .expect("the GGUF writer's output parses");
    let Ok(vocab) = rmlx_lm::engine::gguf_vocab(file.metadata()) else {
        return false;
    };
    let Ok(tk) = Tokenizer::from_gguf_vocab(&vocab) else {
        return false;
    };
    crate::tokenizer::exercise(&tk, &v.text, &v.ids);
    true
}
