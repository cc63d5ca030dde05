//! Tokenizer files that fuzzing (crates/rmlx-fuzz, targets gguf_vocab and tokenizer_json)
//! showed crashing or misbehaving: each now gives a clear error or a working tokenizer.

use rmlx_lm::{GgufVocab, Tokenizer};

/// Every id of the vocabulary decodes, in full and streaming, with and without specials.
fn assert_every_id_decodes(tk: &Tokenizer) {
    let ids: Vec<u32> = (0..tk.vocab_size() as u32).collect();
    for skip in [false, true] {
        tk.decode(&ids, skip).unwrap();
        let mut s = tk.stream(skip);
        for &i in &ids {
            s.push(i).unwrap();
        }
        s.finish().unwrap();
    }
}

fn spm(tokens: &[&str]) -> GgufVocab {
    GgufVocab {
        model: "llama".into(),
        tokens: tokens.iter().map(|t| t.to_string()).collect(),
        scores: Some(vec![0.0; tokens.len()]),
        ..Default::default()
    }
}

#[test]
fn gguf_vocab_with_repeated_token_texts_keeps_every_id() {
    // `tokenizers` maps a text to one id, so its size was 3 here and id 3 was out of range.
    let mut v = spm(&["", "", "8\u{1a}", "x<"]);
    v.bos_id = Some(1);
    v.unk_id = Some(3);
    v.add_eos = Some(true);
    let tk = Tokenizer::from_gguf_vocab(&v).unwrap();
    assert_eq!(tk.vocab_size(), 4);
    assert_eq!(tk.decode(&[3], false).unwrap(), "x<");
    assert_every_id_decodes(&tk);
    // BOS is an id past the count of distinct texts: encode may emit it, decode takes it.
    let mut v = spm(&["", "", ""]);
    v.bos_id = Some(2);
    let tk = Tokenizer::from_gguf_vocab(&v).unwrap();
    assert_eq!(tk.encode("", true).unwrap(), vec![2]);
    assert_every_id_decodes(&tk);
}

#[test]
fn gguf_padding_id_outside_the_vocabulary_means_none() {
    let mut v = spm(&["a", "b"]);
    v.pad_id = Some(u32::MAX); // -1 as written by some converters
    assert_eq!(Tokenizer::from_gguf_vocab(&v).unwrap().pad_id(), None);
}

#[test]
fn gguf_merge_making_an_unknown_token_is_an_error() {
    // "a b" makes "ab", longer than any token: tokenizers' BPE builder panicked.
    let v = GgufVocab {
        model: "gpt2".into(),
        tokens: vec!["a".into(), "b".into()],
        merges: Some(vec!["a b".into()]),
        ..Default::default()
    };
    let e = Tokenizer::from_gguf_vocab(&v).unwrap_err().to_string();
    assert!(
        e.contains("merge 0 'a b': expected 'ab' in the vocabulary"),
        "{e}"
    );
}

fn bpe_json(vocab: &str, merges: &str, prefix: &str) -> String {
    format!(
        r#"{{"version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": null,
            "post_processor": null, "decoder": null,
            "model": {{"type": "BPE", "vocab": {vocab}, "merges": {merges},
                       "continuing_subword_prefix": {prefix}}}}}"#
    )
}

#[test]
fn tokenizer_json_merges_that_panicked_tokenizers_are_errors() {
    let cases = [
        // The merged text is longer than every token.
        (
            bpe_json(r#"{"a": 0, "b": 1}"#, r#"["a b"]"#, "null"),
            "merge 0 ('a', 'b'): expected 'ab' in the vocabulary",
        ),
        (
            bpe_json(r#"{"a": 0, "b": 1}"#, r#"[["a", "b"]]"#, "null"),
            "expected 'ab' in the vocabulary",
        ),
        // The right part is shorter than the continuing-subword prefix.
        (
            bpe_json(r#"{"a": 0, "b": 1, "ab": 2}"#, r#"["a b"]"#, "\"##\""),
            "expected the right part to start with the continuing-subword prefix '##'",
        ),
    ];
    for (json, expected) in cases {
        let e = Tokenizer::from_texts(&json, None, None, None).unwrap_err();
        assert!(e.to_string().contains(expected), "{e}");
    }
    // A well-formed file with the same shape still loads and merges.
    let json = bpe_json(r#"{"a": 0, "b": 1, "ab": 2}"#, r#"["a b"]"#, "null");
    let tk = Tokenizer::from_texts(&json, None, None, None).unwrap();
    assert_eq!(tk.encode("ab", false).unwrap(), vec![2]);
}

#[test]
fn eos_from_generation_config_past_the_vocabulary_is_not_encoded() {
    let json = bpe_json(r#"{"a": 0, "b": 1, "ab": 2}"#, r#"["a b"]"#, "null");
    let cfg = r#"{"add_eos_token": true}"#;
    let gen = r#"{"eos_token_id": [9999, 1]}"#;
    let tk = Tokenizer::from_texts(&json, Some(cfg), None, Some(gen)).unwrap();
    assert!(tk.is_eos(9999));
    assert_eq!(tk.encode("ab", true).unwrap(), vec![2, 1]);
}

#[test]
fn token_ids_far_past_the_vocabulary_are_errors() {
    // Tables indexed by id must not be sized by a hostile id (4 billion entries).
    let word_level = |vocab: &str, added: &str| {
        format!(
            r#"{{"version": "1.0", "added_tokens": [{added}], "normalizer": null,
                "pre_tokenizer": null, "post_processor": null, "decoder": null,
                "model": {{"type": "WordLevel", "vocab": {vocab}, "unk_token": "a"}}}}"#
        )
    };
    let json = word_level(r#"{"a": 0, "b": 4000000000}"#, "");
    let e = Tokenizer::from_texts(&json, None, None, None).unwrap_err();
    assert!(
        e.to_string().contains("found id 4000000000 for 2 tokens"),
        "{e}"
    );
    // An added token's id is the tokenizer's to assign: a huge one in the file is not used.
    let added = r#"{"id": 4000000000, "content": "x", "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true}"#;
    let tk = Tokenizer::from_texts(&word_level(r#"{"a": 0}"#, added), None, None, None).unwrap();
    assert_eq!(tk.vocab_size(), 2);
    // A few holes are fine: ids 0 and 5 make a vocabulary of 6.
    let tk =
        Tokenizer::from_texts(&word_level(r#"{"a": 0, "b": 5}"#, ""), None, None, None).unwrap();
    assert_eq!(tk.vocab_size(), 6);
    assert_every_id_decodes(&tk);
}
