//! SentencePiece (`tokenizer.ggml.model = "llama"`) vocab built from scores, on a tiny
//! hand-made vocabulary: merges by score, `▁` spaces, dummy prefix, `<0xXX>` byte fallback.

use rmlx_lm::{GgufVocab, Tokenizer};

fn tiny() -> Tokenizer {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    let words = [
        "▁", "a", "b", "c", "▁a", "ab", "▁ab", "bc", "▁abc", "<|user|>",
    ];
    for w in words {
        tokens.push(w.into());
        types.push(if w == "<|user|>" { 4 } else { 1 });
    }
    let n = tokens.len();
    // Higher score merges first: "▁abc" > "▁ab" > "bc" > "ab" > "▁a".
    let score = |t: &str| match t {
        "▁abc" => -1.0,
        "▁ab" => -2.0,
        "bc" => -3.0,
        "ab" => -4.0,
        "▁a" => -5.0,
        _ => -10.0,
    };
    let v = GgufVocab {
        model: "llama".into(),
        scores: Some(tokens.iter().map(|t| score(t)).collect()),
        token_types: Some(types),
        tokens,
        bos_id: Some(1),
        eos_id: Some(2),
        unk_id: Some(0),
        ..Default::default()
    };
    assert_eq!(v.tokens.len(), n);
    Tokenizer::from_gguf_vocab(&v).expect("spm tokenizer builds")
}

fn id(tk: &Tokenizer, t: &str) -> u32 {
    tk.token_to_id(t).unwrap()
}

#[test]
fn merges_follow_scores_and_bytes_fall_back() {
    let tk = tiny();
    assert!(
        tk.add_bos(),
        "llama.cpp adds BOS for SentencePiece by default"
    );
    // "abc" -> "▁abc": with scores ▁ab(-2) beats bc(-3), and ▁abc needs ▁ab + c.
    assert_eq!(tk.encode("abc", true).unwrap(), vec![1, id(&tk, "▁abc")]);
    assert_eq!(tk.encode("abc", false).unwrap(), vec![id(&tk, "▁abc")]);
    // "é" is not in the vocab: its UTF-8 bytes come out as <0xC3> <0xA9>.
    let ids = tk.encode("a é", false).unwrap();
    assert_eq!(ids, vec![id(&tk, "▁a"), id(&tk, "▁"), 3 + 0xC3, 3 + 0xA9]);
    assert_eq!(tk.decode(&ids, false).unwrap(), "a é");
    // User-defined tokens are split out of the text; the text after one gets a dummy prefix
    // (llama.cpp: `is_prev_special`).
    let ids = tk.encode("<|user|>ab", false).unwrap();
    assert_eq!(ids, [id(&tk, "<|user|>"), id(&tk, "▁ab")]);
}

#[test]
fn streaming_rejoins_byte_fallback_and_drops_dummy_prefix() {
    let tk = tiny();
    let ids = tk.encode("ab é c", false).unwrap();
    let mut s = tk.stream(true);
    let mut pieces = Vec::new();
    for &i in &ids {
        pieces.push(s.push(i).unwrap());
    }
    pieces.push(s.finish().unwrap());
    assert_eq!(pieces.concat(), "ab é c");
    assert_eq!(pieces[0], "ab", "the dummy-prefix space is not text");
    // The first byte of "é" alone is held back.
    let at = ids.iter().position(|&i| i == 3 + 0xC3).unwrap();
    assert_eq!(pieces[at], "");
    assert_eq!(pieces[at + 1], "é");
}
