//! The context budget: how many positions a model runs with, and whether a prompt plus the
//! tokens asked of it fit there. Every entry point checks this once the prompt is tokenized and
//! before anything is computed, so an over-long request costs milliseconds, not a prefill.
//!
//! "Tokens asked for" follows vLLM: `max_tokens = Some(n)` asks for n new tokens, and
//! prompt + n must fit the context (vLLM answers such a request with a 400);
//! `max_tokens = None` asks for as many as the context leaves, so only one new token must fit
//! and generation ends with `FinishReason::Length` when the context is full.

use rmlx_core::{Error, Result};

/// The context to run with: `requested` (at least 1, at most `max`), or `max` by default.
pub fn resolve_context(requested: Option<usize>, max: usize) -> Result<usize> {
    if max == 0 {
        return Err(Error::format(
            "context: expected a model context (max_position_embeddings) of at least 1, found 0",
        ));
    }
    match requested {
        None => Ok(max),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(Error::msg(format!(
            "context: expected 1 to {max} tokens (the model's maximum), found {n}"
        ))),
    }
}

/// New tokens a request needs room for: n for `Some(n)`, one for `None` (fill what is left).
pub fn requested_new_tokens(max_tokens: Option<usize>) -> Result<usize> {
    match max_tokens {
        Some(0) => Err(Error::msg(
            "generate: expected max_tokens of at least 1, found 0",
        )),
        Some(n) => Ok(n),
        None => Ok(1),
    }
}

/// Checks that `prompt` tokens plus `new` tokens to generate fit in `context` positions; the
/// error names all three numbers, prefixed by `who` (the command or component).
pub fn check_fits(who: &str, prompt: usize, new: usize, context: usize) -> Result<()> {
    if prompt.saturating_add(new) <= context {
        return Ok(());
    }
    let asked = match new {
        0 => String::new(),
        1 => " + 1 new token".to_string(),
        n => format!(" + {n} new tokens"),
    };
    Err(Error::msg(format!(
        "{who}: {prompt} prompt tokens{asked} exceed the context of {context} tokens"
    )))
}

/// Positions a chat keeps free for the reply when it decides which turns to keep: `max_tokens`,
/// or a quarter of the context when the reply is unbounded (`None`), so an open-ended answer
/// has room before it ends with `FinishReason::Length`.
pub fn reply_room(max_tokens: Option<usize>, context: usize) -> usize {
    max_tokens.unwrap_or(context / 4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_validated_against_the_maximum() {
        assert_eq!(resolve_context(None, 512).unwrap(), 512);
        assert_eq!(resolve_context(Some(64), 512).unwrap(), 64);
        assert_eq!(resolve_context(Some(512), 512).unwrap(), 512);
        for bad in [0, 513] {
            let e = resolve_context(Some(bad), 512).unwrap_err().to_string();
            assert!(e.contains(&bad.to_string()) && e.contains("512"), "{e}");
        }
        assert!(resolve_context(None, 0).is_err());
    }

    #[test]
    fn fit_errors_name_every_number() {
        assert!(check_fits("generate", 100, 28, 128).is_ok());
        let e = check_fits("generate", 100, 29, 128)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "generate: 100 prompt tokens + 29 new tokens exceed the context of 128 tokens"
        );
        let e = check_fits("logits", 129, 0, 128).unwrap_err().to_string();
        assert_eq!(
            e,
            "logits: 129 prompt tokens exceed the context of 128 tokens"
        );
        assert!(requested_new_tokens(Some(0)).is_err());
        assert_eq!(requested_new_tokens(None).unwrap(), 1);
        assert_eq!(reply_room(None, 100), 25);
        assert_eq!(reply_room(Some(7), 100), 7);
    }
}
