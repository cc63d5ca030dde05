//! Log-probabilities of generated tokens (OpenAI's `logprobs` / `top_logprobs`): each sampled
//! token's log-probability under the model and the most likely alternatives at that step.
//!
//! They are the log-softmax of the model's raw logits, before temperature and penalties, as
//! vLLM reports by default: they describe the model, whatever the sampler did with it.

use crate::tokenizer::Tokenizer;
use rmlx_core::{Array, Result};

/// Most alternatives a step may report (OpenAI's limit for `top_logprobs`).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// A token with its log-probability.
#[derive(Clone, Debug, PartialEq)]
pub struct LogprobToken {
    pub id: u32,
    /// The token decoded alone (U+FFFD where it holds part of a character).
    pub text: String,
    /// The bytes it stands for (part of a character's UTF-8 for some tokens).
    pub bytes: Vec<u8>,
    pub logprob: f32,
}

/// A generated token and the most likely tokens at its step (largest first).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub chosen: LogprobToken,
    pub top: Vec<LogprobToken>,
}

/// `chosen`'s log-probability and the `top` most likely tokens among the first `vocab`
/// logits of `row` (…, n) on any device; only those values come back to the host.
pub(crate) fn token_logprobs(
    tokenizer: &Tokenizer,
    row: &Array,
    vocab: usize,
    chosen: u32,
    top: usize,
) -> Result<TokenLogprob> {
    let n = row.size();
    let vocab = vocab.min(n);
    let row = row.reshape(&[n as isize])?.slice(&[0], &[vocab], &[1])?;
    let lse = row.logsumexp(0, false)?;
    let pick = row.take(&Array::from_slice(&[chosen], &[1])?, 0)?;
    let k = top.min(vocab);
    let top_idx = if k > 0 {
        Some(row.topk_indices(k)?)
    } else {
        None
    };
    let top_val = top_idx.as_ref().map(|i| row.take(i, 0)).transpose()?;
    let mut wanted = vec![&lse, &pick];
    wanted.extend(top_idx.iter().chain(&top_val));
    rmlx_core::async_eval(&wanted)?;
    let lse = lse.item::<f32>()?;
    let entry = |id: u32, logit: f32| -> Result<LogprobToken> {
        Ok(LogprobToken {
            id,
            text: tokenizer.decode(&[id], false)?,
            bytes: tokenizer.token_bytes(id)?,
            logprob: logit - lse,
        })
    };
    let chosen = entry(chosen, pick.to_vec::<f32>()?[0])?;
    let top = match (top_idx, top_val) {
        (Some(i), Some(v)) => {
            let pairs = i.to_vec::<u32>()?.into_iter().zip(v.to_vec::<f32>()?);
            pairs.map(|(id, l)| entry(id, l)).collect::<Result<_>>()?
        }
        _ => Vec::new(),
    };
    Ok(TokenLogprob { chosen, top })
}
