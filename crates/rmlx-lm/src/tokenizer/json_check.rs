//! Checks on a `tokenizer.json` that `tokenizers` would answer with a panic instead of an
//! error (found by fuzzing, tokenizers 0.23): building a BPE model copies each merge's two
//! parts into a buffer as long as the longest token, so a merge whose result is longer than
//! every token overflows it, and with a continuing-subword prefix a right part shorter than
//! the prefix underflows. Such a merge can never be valid (its result must be a token), so it
//! is refused here with an error naming it.

use rmlx_core::{Error, Result};
use serde_json::Value;

fn err(m: String) -> Error {
    Error::format(format!("tokenizer.json: {m}"))
}

/// The merges as `tokenizers` reads them: `[left, right]` pairs, or legacy `"left right"`
/// lines (a `#version` line skipped, lines that do not split in two left to `tokenizers`).
fn merge_pairs(merges: &[Value]) -> impl Iterator<Item = (usize, &str, &str)> {
    merges
        .iter()
        .filter(|m| !m.as_str().is_some_and(|s| s.starts_with("#version")))
        .enumerate()
        .filter_map(|(i, m)| match m {
            Value::String(s) => {
                let (a, b) = s.split_once(' ')?;
                (!b.contains(' ')).then_some((i, a, b))
            }
            Value::Array(p) => match p.as_slice() {
                [Value::String(a), Value::String(b)] => Some((i, a.as_str(), b.as_str())),
                _ => None,
            },
            _ => None,
        })
}

/// Every BPE merge of tokens in the vocabulary makes a token of the vocabulary.
pub fn check(json: &Value) -> Result<()> {
    let Some(model) = json.get("model") else {
        return Ok(());
    };
    let (Some(Value::Object(vocab)), Some(Value::Array(merges))) =
        (model.get("vocab"), model.get("merges"))
    else {
        return Ok(());
    };
    let prefix = model
        .get("continuing_subword_prefix")
        .and_then(Value::as_str)
        .unwrap_or("");
    for (i, a, b) in merge_pairs(merges) {
        if !vocab.contains_key(a) || !vocab.contains_key(b) {
            continue; // `tokenizers` reports a merge of unknown tokens itself
        }
        let Some(rest) = b.strip_prefix(prefix) else {
            return Err(err(format!(
                "merge {i} ('{a}', '{b}'): expected the right part to start with the continuing-subword prefix '{prefix}'"
            )));
        };
        if !vocab.contains_key(&format!("{a}{rest}")) {
            return Err(err(format!(
                "merge {i} ('{a}', '{b}'): expected '{a}{rest}' in the vocabulary, found no such token"
            )));
        }
    }
    Ok(())
}
