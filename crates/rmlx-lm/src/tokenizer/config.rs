//! The parts of `tokenizer_config.json` / `generation_config.json` that tokenization needs.

use rmlx_core::{Error, Result};
use serde_json::Value;

#[derive(Debug, Clone, Default)]
pub struct TokenizerConfig {
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    pub add_bos_token: Option<bool>,
    pub add_eos_token: Option<bool>,
    pub chat_template: Option<String>,
    /// From `generation_config.json` `eos_token_id` (an int or a list).
    pub extra_eos_ids: Vec<u32>,
}

/// Tokens appear either as `"<s>"` or as `{"content": "<s>", ...}` (AddedToken dicts).
fn token_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

impl TokenizerConfig {
    pub fn parse(json: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(json)
            .map_err(|e| Error::format(format!("tokenizer_config.json: {e}")))?;
        // A template is a string, or a list of {name, template} where "default" is the one.
        let chat_template = match v.get("chat_template") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(list)) => {
                let named = |n: &str| {
                    list.iter()
                        .find(|t| t.get("name").and_then(Value::as_str) == Some(n))
                };
                named("default")
                    .or(list.first())
                    .and_then(|t| t.get("template")?.as_str().map(str::to_string))
            }
            _ => None,
        };
        Ok(Self {
            bos_token: token_text(v.get("bos_token")),
            eos_token: token_text(v.get("eos_token")),
            pad_token: token_text(v.get("pad_token")),
            add_bos_token: v.get("add_bos_token").and_then(Value::as_bool),
            add_eos_token: v.get("add_eos_token").and_then(Value::as_bool),
            chat_template,
            extra_eos_ids: Vec::new(),
        })
    }
}

pub fn generation_eos_ids(json: &str) -> Result<Vec<u32>> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| Error::format(format!("generation_config.json: {e}")))?;
    let ids: Vec<u64> = match v.get("eos_token_id") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_u64).collect(),
        Some(x) => x.as_u64().into_iter().collect(),
        None => Vec::new(),
    };
    ids.into_iter()
        .map(|i| {
            u32::try_from(i).map_err(|_| {
                Error::format(format!(
                    "generation_config.json: eos_token_id: expected a token id, found {i}"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_forms_and_template_lists() {
        let c = TokenizerConfig::parse(
            r#"{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
                "add_bos_token": true,
                "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}"#,
        )
        .unwrap();
        assert_eq!(c.bos_token.as_deref(), Some("<s>"));
        assert_eq!(c.eos_token.as_deref(), Some("</s>"));
        assert_eq!(c.add_bos_token, Some(true));
        assert_eq!(c.chat_template.as_deref(), Some("D"));
        assert_eq!(
            generation_eos_ids(r#"{"eos_token_id": [1, 2]}"#).unwrap(),
            vec![1, 2]
        );
        assert_eq!(
            generation_eos_ids(r#"{"eos_token_id": 7}"#).unwrap(),
            vec![7]
        );
        assert!(TokenizerConfig::parse("{").is_err());
        let e = generation_eos_ids(r#"{"eos_token_id": [1, 4294967301]}"#).unwrap_err();
        assert!(e.to_string().contains("found 4294967301"), "{e}");
    }
}
