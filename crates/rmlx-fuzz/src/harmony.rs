//! gpt-oss's harmony output parser on arbitrary token streams: each input byte is a token of
//! the harmony fixture tokenizer (bytes 0xF7..=0xFF are its nine control tokens, the rest byte
//! tokens), decoded in full and streamed as generation does, then split into channels; and
//! the same texts read for tool calls in every model family's format.

use rmlx_lm::harmony;
use rmlx_lm::tool_calls::ToolFormat;
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
    check_tool_calls(text);
}

/// Tool-call parsing of any reply: names are non-empty, what may stream is a prefix of the
/// text on a char boundary (the server slices there), for every prefix a stream shows.
fn check_tool_calls(text: &str) {
    for f in [ToolFormat::Harmony, ToolFormat::Hermes, ToolFormat::Llama3] {
        let (_, calls) = f.parse(text);
        for c in &calls {
            assert!(!c.name.is_empty(), "{f:?}: {c:?}");
        }
        for (end, _) in text.char_indices().chain([(text.len(), ' ')]) {
            let prefix = &text[..end];
            let shown = f.shown_len(prefix);
            assert!(
                shown <= prefix.len() && prefix.is_char_boundary(shown),
                "{f:?}: shown_len {shown} of {prefix:?}"
            );
        }
    }
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
