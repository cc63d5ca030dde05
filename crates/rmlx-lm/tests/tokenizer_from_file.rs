//! `Tokenizer::from_file`: a tokenizer.json + tokenizer_config.json pair. The files are
//! written from the SmolLM2 GGUF vocab (skips without it), so both paths must agree.

use rmlx_lm::{GgufVocab, Tokenizer};

#[test]
fn from_file_matches_gguf_path() {
    let p = std::env::var("RMLX_SMOLLM2_VOCAB").unwrap_or("/tmp/smollm2_vocab.json".into());
    let Ok(text) = std::fs::read_to_string(&p) else {
        eprintln!("skipping: {p} absent (run scripts/reference/smollm2_llamacpp.py --vocab-only)");
        return;
    };
    let v: GgufVocab = serde_json::from_str(&text).unwrap();
    let gguf = Tokenizer::from_gguf_vocab(&v).unwrap();
    let dir = std::env::temp_dir().join(format!("rmlx-tok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = gguf.inner().to_string(false).unwrap();
    std::fs::write(dir.join("tokenizer.json"), json).unwrap();
    let cfg = serde_json::json!({
        "bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"},
        "add_bos_token": false, "chat_template": v.chat_template,
    });
    std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).unwrap();
    std::fs::write(
        dir.join("generation_config.json"),
        r#"{"eos_token_id": [2, 0]}"#,
    )
    .unwrap();
    let hf = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    std::fs::remove_dir_all(&dir).ok();

    assert_eq!(hf.bos_id(), Some(1));
    assert_eq!(hf.eos_ids(), &[2, 0]);
    assert!(!hf.add_bos());
    assert_eq!(hf.chat_template(), v.chat_template.as_deref());
    let text = "Hello <|im_start|>wörld 12345 🦙\n\n  code()";
    assert_eq!(
        hf.encode(text, true).unwrap(),
        gguf.encode(text, true).unwrap()
    );
    let ids = hf.encode(text, false).unwrap();
    assert_eq!(hf.decode(&ids, false).unwrap(), text);
    assert!(Tokenizer::from_file("/nonexistent/tokenizer.json").is_err());
}
