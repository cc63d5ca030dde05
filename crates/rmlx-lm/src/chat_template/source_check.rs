//! A lexical check of template source before minijinja compiles it. minijinja limits how deep
//! brackets and blocks nest, but not chains of operators: `x|f|f|f…`, `a.b.c…`, `a[0][0]…`,
//! `f()()…`, `not not …`, `- - 1`, `a + a + …`, `a if b else a if …` each build one AST level
//! per link, and its parser, optimizer, code generator and drop recurse through them (found by
//! fuzzing: 100,000 links overflow any stack). Real templates put a few dozen operators in a
//! block at most, so a block with more than `MAX_BLOCK_OPERATORS` is refused.

use rmlx_core::{Error, Result};

/// Longest template source (real ones are a few KB to ~100 KB).
pub const MAX_TEMPLATE_BYTES: usize = 1 << 20;

/// Most operators one `{{ … }}` or `{% … %}` block may hold (`| . [ ( + - ~ * / % < > = !` and
/// the words `not and or if else is in`, outside string literals).
pub const MAX_BLOCK_OPERATORS: usize = 256;

const KEYWORDS: [&str; 7] = ["not", "and", "or", "if", "else", "is", "in"];

fn err(m: String) -> Error {
    Error::format(format!("chat template: {m}"))
}

/// Counts the operators of the block starting at `from` (just past its opening delimiter) up
/// to `close`; returns the count and where the block ends (past `close`, or the source's end).
fn scan_block(b: &[u8], from: usize, close: &[u8]) -> (usize, usize) {
    let mut count = 0;
    let mut i = from;
    while i < b.len() {
        match b[i] {
            _ if b[i..].starts_with(close) => return (count, i + close.len()),
            q @ (b'"' | b'\'') => {
                // A string literal: skip to its closing quote (backslash escapes one byte).
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'|' | b'.' | b'[' | b'(' | b'+' | b'-' | b'~' | b'*' | b'/' | b'%' | b'<' | b'>'
            | b'=' | b'!' => count += 1,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = &b[start..i];
                count += KEYWORDS.iter().any(|k| k.as_bytes() == word) as usize;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    (count, b.len())
}

fn line_of(b: &[u8], at: usize) -> usize {
    b[..at.min(b.len())].iter().filter(|&&c| c == b'\n').count() + 1
}

/// Size and per-block operator limits (see the module comment).
pub fn check(source: &str) -> Result<()> {
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(err(format!(
            "expected at most {MAX_TEMPLATE_BYTES} bytes of source, found {}",
            source.len()
        )));
    }
    let b = source.as_bytes();
    let mut i = 0;
    while let Some(open) = b[i..]
        .windows(2)
        .position(|w| matches!(w, b"{{" | b"{%" | b"{#"))
    {
        let at = i + open;
        let (count, end) = match &b[at..at + 2] {
            b"{#" => (0, find(b, at + 2, b"#}").map_or(b.len(), |e| e + 2)),
            b"{{" => scan_block(b, at + 2, b"}}"),
            _ => scan_block(b, at + 2, b"%}"),
        };
        if count > MAX_BLOCK_OPERATORS {
            return Err(err(format!(
                "line {}: expected at most {MAX_BLOCK_OPERATORS} operators in a block, found {count}",
                line_of(b, at)
            )));
        }
        i = end;
        // `{% raw %}` text is not code: continue after its `endraw`.
        let block = String::from_utf8_lossy(&b[at + 2..end.saturating_sub(2).max(at + 2)]);
        if block.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace()) == "raw" {
            i = find(b, end, b"endraw").map_or(b.len(), |e| e + 6);
        }
    }
    Ok(())
}

fn find(b: &[u8], from: usize, what: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(what.len())
        .position(|w| w == what)
        .map(|p| from + p)
}
