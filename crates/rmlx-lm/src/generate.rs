//! Streaming generation: prefill in chunks, then sample token by token, streaming text through
//! a callback; stops on EOS, stop strings, max tokens, a full context or cancellation. A
//! request that cannot fit the context is refused before anything is computed.

use crate::batch::Packed;
use crate::cache::{CacheKind, ModelCache};
use crate::constraint::ConstraintSpec;
use crate::engine::{Engine, Prompt};
use crate::logprobs::TokenLogprob;
use crate::model::Logits;
use crate::sample::SamplerConfig;
use crate::sequence::{Output, Sequence};
use rmlx_core::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Prompt tokens per forward pass during prefill (bounds attention's T×T scratch).
pub(crate) const PREFILL_CHUNK: usize = 512;

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Most new tokens. `Some(n)`: prompt + n must fit the context, or the request is an error
    /// before any work (as vLLM refuses it). `None`: until EOS, a stop string or the end of the
    /// context (then `FinishReason::Length`). See `crate::context`.
    pub max_tokens: Option<usize>,
    pub sampler: SamplerConfig,
    /// Generation ends when the text contains one of these (not included in the output).
    pub stop: Vec<String>,
    /// Show special tokens in the text (harmony needs its `<|channel|>` markers).
    pub keep_special: bool,
    /// How the KV cache stores keys and values.
    pub kv_cache: CacheKind,
    /// Report each generated token's log-probability and this many most likely alternatives
    /// (OpenAI's `logprobs` / `top_logprobs`; `logprobs::MAX_TOP_LOGPROBS` at most). None: off.
    pub logprobs: Option<usize>,
    /// Structured output: a grammar the generated text (or its part in scope) must match
    /// (`crate::constraint`). None: free text.
    pub constraint: Option<ConstraintSpec>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: Some(256),
            sampler: SamplerConfig::default(),
            stop: vec![],
            keep_special: false,
            kv_cache: CacheKind::default(),
            logprobs: None,
            constraint: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    Eos,
    Stop,
    /// `max_tokens` reached, or the context is full.
    Length,
    Cancelled,
}

#[derive(Clone, Debug)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    /// Prompt tokens actually computed (fewer when a chat reuses its cache).
    pub prefilled_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_s: f64,
    pub decode_s: f64,
    pub finish: FinishReason,
}

impl GenerationStats {
    pub fn prefill_tok_s(&self) -> f64 {
        self.prefilled_tokens as f64 / self.prefill_s.max(1e-9)
    }
    pub fn decode_tok_s(&self) -> f64 {
        self.generated_tokens as f64 / self.decode_s.max(1e-9)
    }
}

/// Output of one generation: text and tokens (including a final EOS if one was sampled).
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    /// Each token's log-probabilities, with `GenerateOptions::logprobs` (EOS excluded).
    pub logprobs: Vec<TokenLogprob>,
    pub stats: GenerationStats,
}

impl Engine {
    /// Generates from `prompt` with a fresh cache; `on_text` receives text as it is produced.
    pub fn generate(
        &self,
        prompt: &Prompt,
        opts: &GenerateOptions,
        cancel: Option<&AtomicBool>,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        let tokens = self.encode_prompt(prompt)?;
        let mut cache = self.model.make_cache_of(opts.kv_cache)?;
        self.generate_tokens(&mut cache, &tokens, 0, opts, cancel, on_text)
    }

    /// Runs `tokens[cached..]` into `cache` (which holds `tokens[..cached]`), then generates.
    /// On return the cache holds the prompt and every generated token but the last. Refused
    /// before any work when the prompt and the tokens asked for exceed the context.
    pub fn generate_tokens(
        &self,
        cache: &mut ModelCache,
        tokens: &[u32],
        cached: usize,
        opts: &GenerateOptions,
        cancel: Option<&AtomicBool>,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        self.generate_tokens_with(cache, tokens, cached, opts, cancel, on_text, None)
    }

    /// `generate_tokens` with pipelined decode forced on or off (`None`: on where the logits
    /// live on a GPU — on the CPU a step computes when encoded, so running one ahead only
    /// wastes the last). For tests that compare both loops.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub fn generate_tokens_with(
        &self,
        cache: &mut ModelCache,
        tokens: &[u32],
        cached: usize,
        opts: &GenerateOptions,
        cancel: Option<&AtomicBool>,
        on_text: &mut dyn FnMut(&str),
        pipeline: Option<bool>,
    ) -> Result<Generation> {
        if tokens.len() <= cached {
            return Err(rmlx_core::Error::msg(
                "generate: expected at least one new prompt token",
            ));
        }
        let mut seq = Sequence::new(self, tokens, opts, self.constraint_for(opts)?)?;
        let t0 = Instant::now();
        let mut logits = None;
        for chunk in tokens[cached..].chunks(PREFILL_CHUNK) {
            let l = self.model.forward(chunk, cache, Logits::Last)?;
            l.eval()?;
            logits = Some(l);
        }
        // The logits stay where the model computed them: the sampler reduces them there and
        // only the candidates (greedy: the token) come back.
        let mut logits = logits.ok_or_else(|| {
            rmlx_core::Error::msg("generate: no prompt token was run (checked above)")
        })?;
        let prefill_s = t0.elapsed().as_secs_f64();

        let t1 = Instant::now();
        let mut logprobs = Vec::new();
        let finish = loop {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                break FinishReason::Cancelled;
            }
            let mut out = |out: Output| match out {
                Output::Logprob(l) => logprobs.push(l),
                Output::Text(t) => on_text(t),
            };
            // Pipelined (greedy): the next step is encoded from the token still on the device
            // before the token is read, so the host's work overlaps the device's. When the
            // token ends the sequence, the step it fed is dropped from the cache again.
            let lazy = if pipeline.unwrap_or(logits.device().is_gpu()) {
                seq.sample_lazy(&logits)?
            } else {
                None
            };
            if let Some(lazy) = lazy {
                // (Every cache can drop its newest position again: a rotating one keeps its
                // window, which is one more than continuing from the position before needs.)
                let ahead = if seq.room() > 1 {
                    let step = Packed::from_ids(self.model.as_ref(), lazy.token.clone(), cache)?;
                    let l = self
                        .model
                        .forward_packed(&step, &mut [&mut *cache], Logits::Last)?;
                    rmlx_core::async_eval(&[&l])?;
                    Some(l)
                } else {
                    None
                };
                let end = seq.advance_lazy(lazy, &logits, &mut out)?;
                match (end, ahead) {
                    (Some(end), ahead) => {
                        if ahead.is_some() && !cache.truncate(cache.offset() - 1) {
                            return Err(rmlx_core::Error::msg(
                                "generate: the cache could not drop the step run ahead",
                            ));
                        }
                        break end;
                    }
                    (None, Some(l)) => logits = l,
                    (None, None) => {
                        logits = self.model.forward(&[seq.last()], cache, Logits::Last)?;
                    }
                }
                continue;
            }
            if let Some(end) = seq.advance(&logits, &mut out)? {
                break end;
            }
            logits = self.model.forward(&[seq.last()], cache, Logits::Last)?;
        };
        let (text, out_tokens) = seq.finish(finish, on_text)?;
        Ok(Generation {
            text,
            logprobs,
            stats: GenerationStats {
                prompt_tokens: tokens.len(),
                prefilled_tokens: tokens.len() - cached,
                generated_tokens: out_tokens.len(),
                prefill_s,
                decode_s: t1.elapsed().as_secs_f64(),
                finish,
            },
            tokens: out_tokens,
        })
    }
}
