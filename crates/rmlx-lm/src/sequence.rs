//! One sequence being generated, between forward passes: its sampler, its tokens so far, and
//! the text it streams (held back while it may be the start of a stop string), with the rules
//! that end it (EOS, a stop string, max tokens, a full context, a complete grammar). Shared by
//! `Engine::generate` (one sequence) and the batching scheduler (many), so both stream the
//! same text and apply a grammar's mask the same way.

use crate::constraint::Constraint;
use crate::context::{check_fits, requested_new_tokens};
use crate::engine::Engine;
use crate::generate::{FinishReason, GenerateOptions};
use crate::logprobs::{token_logprobs, TokenLogprob};
use crate::sample::{LazyToken, Sampler};
use crate::tokenizer::{StreamDecoder, Tokenizer};
use rmlx_core::{Array, Result};

pub(crate) struct Sequence<'e> {
    tokenizer: &'e Tokenizer,
    sampler: Sampler,
    /// The prompt, then every sampled token.
    history: Vec<u32>,
    prompt_len: usize,
    /// Most new tokens (max_tokens, and never past the context).
    max_tokens: usize,
    decoder: StreamDecoder<'e>,
    stop: Vec<String>,
    /// Longest stop string: that much text minus one byte is held back.
    hold: usize,
    text: String,
    /// Bytes of `text` already passed on.
    emitted: usize,
    /// Report each token's log-probability and this many alternatives (`logprobs`).
    logprobs: Option<usize>,
    /// Structured output: the grammar's mask picks the tokens sampling may choose from.
    constraint: Option<Constraint>,
}

/// What a step of a sequence produces, in order: the token's log-probabilities (when asked
/// for), then the text that is now safe to show.
pub(crate) enum Output<'a> {
    Logprob(TokenLogprob),
    Text(&'a str),
}

impl<'e> Sequence<'e> {
    /// A sequence for `prompt` under `opts`, with the constraint compiled from
    /// `opts.constraint` (`Engine::constraint_for`); refused when the prompt and the tokens
    /// asked for exceed the context, or the sampler settings are invalid.
    pub fn new(
        engine: &'e Engine,
        prompt: &[u32],
        opts: &GenerateOptions,
        mut constraint: Option<Constraint>,
    ) -> Result<Self> {
        let context = engine.model.info().context_length;
        let asked = requested_new_tokens(opts.max_tokens)?;
        check_fits("generate", prompt.len(), asked, context)?;
        // Generation stops when the sequence fills the context (`Length`).
        let room = context - prompt.len();
        if let Some(c) = &mut constraint {
            c.start(prompt);
        }
        Ok(Sequence {
            tokenizer: &engine.tokenizer,
            sampler: Sampler::new(opts.sampler.clone())?,
            history: prompt.to_vec(),
            prompt_len: prompt.len(),
            max_tokens: opts.max_tokens.unwrap_or(room).min(room),
            decoder: engine.tokenizer.stream(!opts.keep_special),
            stop: opts.stop.clone(),
            hold: opts.stop.iter().map(|s| s.len()).max().unwrap_or(0),
            text: String::new(),
            emitted: 0,
            logprobs: opts.logprobs,
            constraint,
        })
    }

    /// The prompt and the tokens sampled so far.
    pub fn tokens(&self) -> &[u32] {
        &self.history
    }

    pub fn prompt(&self) -> &[u32] {
        &self.history[..self.prompt_len]
    }

    pub fn generated(&self) -> usize {
        self.history.len() - self.prompt_len
    }

    /// The token to run next (the last one sampled).
    pub fn last(&self) -> u32 {
        self.history[self.history.len() - 1]
    }

    /// Samples the next token from `logits` (one row), passes its log-probabilities (when
    /// asked for; not for EOS, which adds no text) and the text that is now safe to show to
    /// `out`, and tells whether generation ends here.
    pub fn advance(
        &mut self,
        logits: &Array,
        out: &mut dyn FnMut(Output),
    ) -> Result<Option<FinishReason>> {
        // Models pad their vocabulary past the tokenizer's (gpt-oss: 201088 vs ~200k): never
        // sample an id the tokenizer cannot decode.
        let nv = logits.size().min(self.tokenizer.vocab_size());
        let next = match self.constraint.as_mut().filter(|c| c.is_open()) {
            Some(c) => match c.sample(&mut self.sampler, logits, nv, &self.history)? {
                Some(t) => t,
                // Only EOS is allowed and the model cannot write one: the grammar is done.
                None => return Ok(Some(FinishReason::Eos)),
            },
            None => self.sampler.sample_array(logits, nv, &self.history)?,
        };
        self.accept(next, logits, out)
    }

    /// Starts sampling the next token without waiting when the sampler can keep it on the
    /// logits' device (greedy, no penalties): see `Sampler::greedy_lazy`.
    pub fn sample_lazy(&self, logits: &Array) -> Result<Option<LazyToken>> {
        if self.constraint.as_ref().is_some_and(|c| c.is_open()) {
            return Ok(None); // the mask is computed on the host
        }
        let nv = logits.size().min(self.tokenizer.vocab_size());
        self.sampler.greedy_lazy(logits, nv)
    }

    /// Waits for a token started by `sample_lazy`, then `accept`s it.
    pub fn advance_lazy(
        &mut self,
        token: LazyToken,
        logits: &Array,
        out: &mut dyn FnMut(Output),
    ) -> Result<Option<FinishReason>> {
        let next = token.wait(&mut self.sampler, &self.history)?;
        self.accept(next, logits, out)
    }

    /// Tokens the sequence may still take before max_tokens (or the context) ends it.
    pub fn room(&self) -> usize {
        self.max_tokens - self.generated()
    }

    /// Takes `next` (sampled from `logits`) as the sequence's next token: passes its
    /// log-probabilities and the text now safe to show to `out`, and tells whether generation
    /// ends here.
    fn accept(
        &mut self,
        next: u32,
        logits: &Array,
        out: &mut dyn FnMut(Output),
    ) -> Result<Option<FinishReason>> {
        let nv = logits.size().min(self.tokenizer.vocab_size());
        self.history.push(next);
        if self.tokenizer.is_eos(next) {
            return Ok(Some(FinishReason::Eos));
        }
        if let Some(c) = &mut self.constraint {
            c.commit(next)?;
        }
        if let Some(top) = self.logprobs {
            out(Output::Logprob(token_logprobs(
                self.tokenizer,
                logits,
                nv,
                next,
                top,
            )?));
        }
        self.text.push_str(&self.decoder.push(next)?);
        if let Some(cut) = find_stop(&self.text, &self.stop, self.emitted) {
            self.text.truncate(cut);
            return Ok(Some(FinishReason::Stop));
        }
        // Hold back a possible beginning of a stop string.
        let keep = self.hold.saturating_sub(1);
        let safe = floor_char_boundary(&self.text, self.text.len().saturating_sub(keep));
        if safe > self.emitted {
            out(Output::Text(&self.text[self.emitted..safe]));
            self.emitted = safe;
        }
        // A complete grammar allows only EOS: end as EOS would, without running a step for it.
        if self
            .constraint
            .as_ref()
            .is_some_and(Constraint::is_finished)
        {
            return Ok(Some(FinishReason::Eos));
        }
        Ok((self.generated() == self.max_tokens).then_some(FinishReason::Length))
    }

    /// Ends the sequence: passes on the text still held back (none after a stop string: what
    /// is held is the stop string's beginning) and returns the whole text and the new tokens.
    pub fn finish(
        mut self,
        reason: FinishReason,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<(String, Vec<u32>)> {
        if reason != FinishReason::Stop {
            self.text.push_str(&self.decoder.finish()?);
        }
        if self.text.len() > self.emitted {
            on_text(&self.text[self.emitted..]);
        }
        let generated = self.history.split_off(self.prompt_len);
        Ok((self.text, generated))
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
