//! `Tokenizer::from_file`: a tokenizer.json + tokenizer_config.json pair. The files are
//! written from the vocab of the default model's GGUF (SmolLM2, fetched on first use), so both
//! paths must agree.

use rmlx_lm::Tokenizer;

#[test]
fn from_file_matches_gguf_path() {
    let path = rmlx_lm::default_model::fetch_default()
        .unwrap_or_else(|e| panic!("this test needs the default model: {e}"));
    let f = rmlx_io::GgufFile::open(&path).unwrap();
    let v = rmlx_lm::engine::gguf_vocab(f.metadata()).unwrap();
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
