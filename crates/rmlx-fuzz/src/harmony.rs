//! gpt-oss's harmony output parser on arbitrary token streams: each input byte is a token of
//! the harmony fixture tokenizer (bytes 0xF7..=0xFF are its nine control tokens, the rest byte
//! tokens), decoded in full and streamed as generation does, then split into channels.

use rmlx_lm::harmony;
use std::sync::LazyLock;

static TOKENIZER: LazyLock<rmlx_lm::Tokenizer> = LazyLock::new(crate::tokenizer::harmony);

/// What the parser promises for any text.
fn check(text: &str) {
    let msgs = harmony::parse(text);
    for m in &msgs {
        assert!(text.contains(&m.text), "message text comes from the input");
        for t in ["<|end|>", "<|return|>", "<|call|>", "<|start|>"] {
            assert!(!m.text.contains(t), "{t} ends a message: {m:?}");
        }
        assert!(!m.channel.contains(char::is_whitespace), "{m:?}");
    }
    let final_text = harmony::final_text(text);
    assert!(text.contains(&final_text));
    let _ = harmony::analysis_text(text);
}

pub fn run(data: &[u8]) -> bool {
    let tk = &*TOKENIZER;
    let ids: Vec<u32> = data
        .iter()
        .map(|&b| {
            if b >= 0xF7 {
                256 + (b - 0xF7) as u32
            } else {
                b as u32
            }
        })
        .collect();
    let text = tk
        .decode(&ids, false)
        .expect("every id is in the vocabulary");
    check(&text);
    let streamed = crate::tokenizer::stream(tk, &ids, false).expect("streaming");
    check(&streamed);
    check(&String::from_utf8_lossy(data));
    true
}
