//! Streaming generation: prefill in chunks, then sample token by token, streaming text through
//! a callback; stops on EOS, stop strings, max tokens, a full context or cancellation. A
//! request that cannot fit the context is refused before anything is computed.

use crate::cache::{CacheKind, ModelCache};
use crate::context::{check_fits, requested_new_tokens};
use crate::engine::{Engine, Prompt};
use crate::model::Logits;
use crate::sample::{Sampler, SamplerConfig};
use rmlx_core::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Prompt tokens per forward pass during prefill (bounds attention's T×T scratch).
const PREFILL_CHUNK: usize = 512;

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
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: Some(256),
            sampler: SamplerConfig::default(),
            stop: vec![],
            keep_special: false,
            kv_cache: CacheKind::default(),
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
        if tokens.len() <= cached {
            return Err(rmlx_core::Error::msg(
                "generate: expected at least one new prompt token",
            ));
        }
        let context = self.model.info().context_length;
        let asked = requested_new_tokens(opts.max_tokens)?;
        check_fits("generate", tokens.len(), asked, context)?;
        // Generation stops when the sequence fills the context (`Length`).
        let room = context - tokens.len();
        let max_tokens = opts.max_tokens.unwrap_or(room).min(room);
        let mut sampler = Sampler::new(opts.sampler.clone())?;
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
        let mut history: Vec<u32> = tokens.to_vec();
        let mut out_tokens = vec![];
        let mut text = String::new();
        let mut emitted = 0; // bytes of `text` already passed to on_text
        let mut decoder = self.tokenizer.stream(!opts.keep_special);
        let hold = opts.stop.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut finish = FinishReason::Length;
        while out_tokens.len() < max_tokens {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                finish = FinishReason::Cancelled;
                break;
            }
            // Models pad their vocabulary past the tokenizer's (gpt-oss: 201088 vs ~200k):
            // never sample an id the tokenizer cannot decode.
            let nv = logits.size().min(self.tokenizer.vocab_size());
            let next = sampler.sample_array(&logits, nv, &history)?;
            out_tokens.push(next);
            history.push(next);
            if self.tokenizer.is_eos(next) {
                finish = FinishReason::Eos;
                break;
            }
            text.push_str(&decoder.push(next)?);
            if let Some(cut) = find_stop(&text, &opts.stop, emitted) {
                text.truncate(cut);
                finish = FinishReason::Stop;
                break;
            }
            // Hold back a possible beginning of a stop string.
            let safe =
                floor_char_boundary(&text, text.len().saturating_sub(hold.saturating_sub(1)));
            if safe > emitted {
                on_text(&text[emitted..safe]);
                emitted = safe;
            }
            if out_tokens.len() == max_tokens {
                break;
            }
            logits = self.model.forward(&[next], cache, Logits::Last)?;
        }
        if finish != FinishReason::Stop {
            text.push_str(&decoder.finish()?);
        }
        if text.len() > emitted {
            on_text(&text[emitted..]);
        }
        let generated = out_tokens.len();
        Ok(Generation {
            text,
            tokens: out_tokens,
            stats: GenerationStats {
                prompt_tokens: tokens.len(),
                prefilled_tokens: tokens.len() - cached,
                generated_tokens: generated,
                prefill_s,
                decode_s: t1.elapsed().as_secs_f64(),
                finish,
            },
        })
    }
}

/// Byte offset where the first stop string begins, searching from near `from`.
fn find_stop(text: &str, stops: &[String], from: usize) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let start = floor_char_boundary(text, from.saturating_sub(s.len()));
            text[start..].find(s.as_str()).map(|i| start + i)
        })
        .min()
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
