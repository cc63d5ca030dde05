//! SmolLM2 tokenization against llama.cpp (fixtures from scripts/reference/smollm2_llamacpp.py).
//!
//! The vocabulary is read from the default model's GGUF file (fetched on first use).

use std::path::Path;

use rmlx_lm::{GgufVocab, Tokenizer};
use serde_json::Value;

fn load_tokenizer() -> Option<Tokenizer> {
    let gguf = rmlx_lm::default_model::fetch_default().expect("default model");
    let f = rmlx_io::GgufFile::open(&gguf).expect("gguf opens");
    let v: GgufVocab = rmlx_lm::engine::gguf_vocab(f.metadata()).expect("vocab");
    Some(Tokenizer::from_gguf_vocab(&v).expect("tokenizer builds"))
}

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/smollm2")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture exists"))
        .expect("fixture json")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn metadata_matches_gguf() {
    let Some(tk) = load_tokenizer() else { return };
    assert_eq!(tk.vocab_size(), 49152);
    assert_eq!(tk.bos_id(), Some(1));
    // <|im_end|> from the metadata, then <|endoftext|> as llama.cpp's end-of-generation list.
    assert_eq!(tk.eos_ids(), &[2, 0]);
    assert!(!tk.add_bos());
    assert!(tk.is_special(1) && tk.is_special(2) && !tk.is_special(100));
    assert_eq!(tk.token_to_id("<|im_start|>"), Some(1));
    assert!(tk.chat_template().unwrap().contains("<|im_start|>"));
    // Special-token text in user content can be kept literal.
    let lit = tk.encode_with("<|im_end|>", false, false).unwrap();
    assert!(lit.len() > 1 && !lit.contains(&2), "{lit:?}");
    assert_eq!(tk.decode(&lit, false).unwrap(), "<|im_end|>");
    assert_eq!(tk.encode_with("<|im_end|>", false, true).unwrap(), vec![2]);
}

#[test]
fn encodings_match_llama_cpp() {
    let Some(tk) = load_tokenizer() else { return };
    let fx = fixture("tokenize.json");
    for case in fx["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let got = tk.encode(text, false).unwrap();
        assert_eq!(got, ids(&case["ids"]), "encoding of {text:?}");
        let got = tk.encode(text, true).unwrap();
        assert_eq!(
            got,
            ids(&case["ids_add_special"]),
            "encoding (add special) of {text:?}"
        );
        let got = tk.encode_with(text, false, false).unwrap();
        assert_eq!(
            got,
            ids(&case["ids_literal"]),
            "literal encoding of {text:?}"
        );
    }
}

#[test]
fn fuzz_encodings_match_llama_cpp() {
    let Some(tk) = load_tokenizer() else { return };
    let fx = fixture("tokenize.json");
    let mut bad = Vec::new();
    for case in fx["fuzz"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let got = tk.encode(text, false).unwrap();
        if got != ids(&case["ids"]) {
            bad.push(format!(
                "{text:?}: ours {got:?}, llama.cpp {:?}",
                ids(&case["ids"])
            ));
        }
        assert_eq!(tk.decode(&got, false).unwrap(), text);
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn decode_round_trips_and_streams() {
    let Some(tk) = load_tokenizer() else { return };
    let fx = fixture("tokenize.json");
    for case in fx["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids = ids(&case["ids"]);
        assert_eq!(
            tk.decode(&ids, false).unwrap(),
            text,
            "round trip of {text:?}"
        );
        // llama.cpp's detokenize, with control tokens kept and skipped.
        let want = case["detokenized_special"].as_str().unwrap();
        assert_eq!(tk.decode(&ids, false).unwrap(), want);
        let want = case["detokenized"].as_str().unwrap();
        assert_eq!(tk.decode(&ids, true).unwrap(), want);
        let mut s = tk.stream(true);
        let streamed: String = ids.iter().map(|&i| s.push(i).unwrap()).collect();
        assert_eq!(
            streamed + &s.finish().unwrap(),
            want,
            "skip-special stream of {text:?}"
        );
        // Streaming emits only whole characters and adds up to the full decode.
        let mut s = tk.stream(false);
        let mut out = String::new();
        for &id in &ids {
            out.push_str(&s.push(id).unwrap());
        }
        out.push_str(&s.finish().unwrap());
        assert_eq!(out, text, "stream of {text:?}");
    }
}

#[test]
fn streaming_holds_back_split_characters() {
    let Some(tk) = load_tokenizer() else { return };
    // An emoji is several byte-level tokens; nothing may come out until it is complete.
    let ids = tk.encode("🦙", false).unwrap();
    assert!(
        ids.len() > 1,
        "expected the llama emoji to span tokens, found {ids:?}"
    );
    let mut s = tk.stream(true);
    for &id in &ids[..ids.len() - 1] {
        assert_eq!(s.push(id).unwrap(), "");
    }
    assert_eq!(s.push(ids[ids.len() - 1]).unwrap(), "🦙");
    // Control tokens vanish when skipped; out-of-range ids are errors, not panics.
    assert_eq!(s.push(2).unwrap(), "");
    assert!(s.push(1_000_000).is_err());
    assert!(tk.decode(&[1_000_000], false).is_err());
    assert_eq!(tk.decode(&[1, 2], true).unwrap(), "");
}

#[test]
fn greedy_prompts_render_and_tokenize_like_reference() {
    let Some(tk) = load_tokenizer() else { return };
    let tmpl = rmlx_lm::ChatTemplate::from_tokenizer(&tk).unwrap();
    let fx = fixture("greedy.json");
    for case in fx["cases"].as_array().unwrap() {
        let msg = serde_json::json!({"role": "user", "content": case["prompt"]});
        let rendered = tmpl.render(&[msg], true).unwrap();
        assert_eq!(rendered, case["rendered"].as_str().unwrap());
        assert_eq!(
            tk.encode(&rendered, false).unwrap(),
            ids(&case["prompt_ids"])
        );
        let gen = ids(&case["generated_ids"]);
        let want = case["generated_text_special"].as_str().unwrap();
        assert_eq!(tk.decode(&gen, false).unwrap(), want);
        assert_eq!(
            tk.decode(&gen, true).unwrap(),
            case["generated_text"].as_str().unwrap()
        );
    }
}
