//! Pre-tokenizer regexes for byte-level BPE vocabularies, keyed by GGUF `tokenizer.ggml.pre`.
//!
//! Copied from llama.cpp's `llama-vocab.cpp` so that a GGUF file splits text exactly as
//! llama.cpp does. llama.cpp applies the regexes one after another, keeping both the matches
//! and the text between them as pieces: that is a chain of `Split(.., Isolated)`.

use rmlx_core::{Error, Result};

/// GPT-2's pattern; llama.cpp drops the final `|\s+` (unmatched runs are kept as pieces anyway).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3 (case-insensitive contractions spelled out, as llama.cpp adapts them).
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2: like Llama 3 but single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// GPT-4o / o200k (gpt-oss, Llama 4): case-aware words with lookaheads instead of \p{Lu} classes.
const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Tekken (Mistral Nemo, Pixtral).
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Vocabularies whose words are looked up whole before any merge (llama.cpp `ignore_merges`,
/// HF `"ignore_merges": true`): a word in the vocab is one token even if no merge path reaches it.
pub fn ignores_merges(pre: Option<&str>) -> bool {
    matches!(
        pre.unwrap_or("default"),
        "llama3"
            | "llama-v3"
            | "llama-bpe"
            | "falcon3"
            | "falcon-h1"
            | "pixtral"
            | "midm-2.0"
            | "lfm2"
            | "jina-v5-nano"
            | "glm4"
            | "glm5"
            | "tekken"
    )
}

/// The regex chain for a `tokenizer.ggml.pre` value. `None` (absent) means llama.cpp's default.
pub fn regexes_for_pre(pre: Option<&str>) -> Result<Vec<&'static str>> {
    let v = match pre.unwrap_or("default") {
        "default" => vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" | "dbrx" | "smaug-bpe" | "chatglm-bpe" | "glm4" | "glm5" => {
            vec![LLAMA3]
        }
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "stablelm2" | "hunyuan"
        | "solar-open" | "grok-2" | "megrez" => vec![QWEN2],
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b"
        | "mellum2" => vec![r"\p{N}", GPT2],
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais" | "trillion"
        | "granite-docling" | "roberta-bpe" | "jina-v1-en" | "jina-v2-code" => vec![GPT2],
        "falcon" => vec![r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => vec![GPT4O],
        "tekken" => vec![TEKKEN],
        "deepseek-coder" => vec![
            "[\r\n]",
            r"\s?\p{L}+",
            r"\s?\p{P}+",
            "[一-龥ࠀ-一가-퟿]+",
            r"\p{N}",
        ],
        other => {
            return Err(Error::format(format!(
                "tokenizer: unsupported pre-tokenizer type '{other}' (tokenizer.ggml.pre)"
            )))
        }
    };
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_regex_compiles() {
        for pre in [
            "default",
            "llama-bpe",
            "qwen2",
            "smollm",
            "gpt-2",
            "falcon",
            "gpt-4o",
            "tekken",
            "deepseek-coder",
        ] {
            for r in regexes_for_pre(Some(pre)).unwrap() {
                let pat = tokenizers::pre_tokenizers::split::SplitPattern::Regex(r.to_string());
                let behavior = tokenizers::SplitDelimiterBehavior::Isolated;
                tokenizers::pre_tokenizers::split::Split::new(pat, behavior, false)
                    .unwrap_or_else(|e| panic!("{pre}: {e}"));
            }
        }
        assert!(regexes_for_pre(Some("nope")).is_err());
    }
}
