//! Tokenizers: built from arbitrary `tokenizer.json` / `tokenizer_config.json` /
//! `generation_config.json` / template texts, and real vocabularies (llama.cpp's test GGUFs,
//! gpt-oss's harmony tokens) encoding and decoding arbitrary text and ids.

use crate::split::{fields, ids, optional, text};
use rmlx_lm::Tokenizer;
use std::sync::LazyLock;

/// Encodes `text` every way the runtime does and decodes `raw` as ids (two bytes each), in
/// full and streaming. What must hold for any tokenizer: ids it produces decode and stream
/// without error; ids outside the vocabulary are errors.
pub fn exercise(tk: &Tokenizer, text: &str, raw: &[u8]) {
    let n = tk.vocab_size();
    for (add_special, parse_special) in [(true, true), (false, false)] {
        let Ok(ids) = tk.encode_with(text, add_special, parse_special) else {
            continue;
        };
        for skip in [false, true] {
            if let Some(bad) = ids.iter().find(|&&i| i as usize >= n) {
                panic!("encode gave id {bad} outside the vocabulary of {n}");
            }
            tk.decode(&ids, skip).expect("decoding ids from encode");
            stream(tk, &ids, skip).expect("streaming ids from encode");
        }
    }
    let ids = ids(raw, n);
    let out_of_range = ids.iter().any(|&i| i as usize >= n);
    for skip in [false, true] {
        assert_eq!(
            tk.decode(&ids, skip).is_err(),
            out_of_range,
            "decode {ids:?}"
        );
        if !out_of_range {
            stream(tk, &ids, skip).expect("streaming ids in the vocabulary");
        }
    }
    for &i in ids.iter().take(16) {
        let _ = (tk.id_to_token(i), tk.is_special(i), tk.is_eos(i));
    }
    let _ = (tk.bos_token(), tk.eos_token(), tk.chat_template());
}

/// All of `ids` through a streaming decoder.
pub fn stream(tk: &Tokenizer, ids: &[u32], skip_special: bool) -> rmlx_core::Result<String> {
    let mut s = tk.stream(skip_special);
    let mut out = String::new();
    for &i in ids {
        out.push_str(&s.push(i)?);
    }
    out.push_str(&s.finish()?);
    Ok(out)
}

/// `tokenizer.json`, `tokenizer_config.json`, `chat_template.jinja`, `generation_config.json`,
/// text, raw ids (NUL-separated; empty optional files are absent).
pub fn from_json_files(data: &[u8]) -> bool {
    let [json, config, template, generation, input, raw] = fields::<6>(data);
    let tk = Tokenizer::from_texts(
        &text(json),
        optional(config).as_deref(),
        optional(template).as_deref(),
        optional(generation).as_deref(),
    );
    let Ok(tk) = tk else {
        return false;
    };
    exercise(&tk, &text(input), raw);
    if let Ok(t) = rmlx_lm::ChatTemplate::from_tokenizer(&tk) {
        let _ = t.render(
            &[serde_json::json!({"role": "user", "content": text(input)})],
            true,
        );
    }
    true
}

macro_rules! vocab_gguf {
    ($name:literal) => {
        include_bytes!(concat!(
            "../../rmlx-lm/tests/fixtures/vocabs/gguf/ggml-vocab-",
            $name,
            ".gguf"
        ))
        .as_slice()
    };
}

/// llama.cpp's test vocabularies (byte-level BPE and SentencePiece) and the harmony tokens.
pub static KNOWN: LazyLock<Vec<(&str, Tokenizer)>> = LazyLock::new(|| {
    let gguf = |name: &'static str, bytes: &[u8]| {
        let f = rmlx_io::GgufFile::from_bytes(name, std::sync::Arc::new(bytes.to_vec()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let v = rmlx_lm::engine::gguf_vocab(f.metadata()).expect(name);
        (name, Tokenizer::from_gguf_vocab(&v).expect(name))
    };
    vec![
        gguf("gpt-2", vocab_gguf!("gpt-2")),
        gguf("llama-spm", vocab_gguf!("llama-spm")),
        gguf("phi-3", vocab_gguf!("phi-3")),
        gguf("deepseek-coder", vocab_gguf!("deepseek-coder")),
        ("harmony", harmony()),
    ]
});

/// The tiny gpt-oss tokenizer of the harmony fixture: 256 byte tokens and the 9 harmony
/// control tokens (ids 256..265).
pub fn harmony() -> Tokenizer {
    Tokenizer::from_texts(
        include_str!("../../rmlx-lm/tests/fixtures/harmony/tokenizer.json"),
        Some(include_str!(
            "../../rmlx-lm/tests/fixtures/harmony/tokenizer_config.json"
        )),
        None,
        None,
    )
    .expect("harmony fixture tokenizer")
}

/// Byte 0 picks a vocabulary (`KNOWN`); then text and raw ids, NUL-separated. Byte-level BPE
/// (gpt-2) is lossless: text encoded with special tokens read as text decodes to itself.
pub fn known_vocabularies(data: &[u8]) -> bool {
    let Some((&pick, rest)) = data.split_first() else {
        return false;
    };
    let (name, tk) = &KNOWN[pick as usize % KNOWN.len()];
    let [input, raw] = fields::<2>(rest);
    let input = text(input);
    exercise(tk, &input, raw);
    if *name == "gpt-2" {
        let ids = tk
            .encode_with(&input, false, false)
            .expect("gpt-2 encodes any text");
        assert_eq!(tk.decode(&ids, false).expect("decode"), input, "{ids:?}");
    }
    true
}
