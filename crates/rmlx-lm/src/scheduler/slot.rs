//! A slot: one KV cache, the request running in it (if any), and once that request has ended
//! the tokens its cache still holds, so a later request with the same prefix computes only
//! the rest.

use crate::cache::{CacheKind, ModelCache};
use crate::model::Model;
use crate::sequence::Sequence;
use crate::worker::{Event, Job, Sink};
use rmlx_core::{Error, Result};
use std::time::Instant;

#[derive(Default)]
pub(super) struct Slot<'e> {
    /// Made on first use, of the kind its last request asked for.
    pub cache: Option<(CacheKind, ModelCache)>,
    /// The tokens whose keys and values the cache holds once its request has ended.
    pub held: Vec<u32>,
    /// Admission number of its last request (the least recently used free slot is taken
    /// when no cache shares a prefix).
    pub last_used: u64,
    pub active: Option<Active<'e>>,
}

/// A request running in a slot.
pub(super) struct Active<'e> {
    pub job: Job,
    pub seq: Sequence<'e>,
    /// Prompt tokens in the cache (the reused prefix included).
    pub done: usize,
    /// Prompt tokens reused from the slot's cache.
    pub cached: usize,
    /// Admission number: prompts are computed oldest first.
    pub order: u64,
    pub admitted: Instant,
    pub first_token: Option<Instant>,
    /// The client went away: nothing more is sent.
    pub gone: bool,
}

impl Active<'_> {
    pub fn prefilling(&self) -> bool {
        self.done < self.seq.prompt().len()
    }

    /// What this sequence runs in a step given `n` tokens: the next `n` prompt tokens, or
    /// the last sampled token.
    pub fn next_tokens(&self, n: usize) -> &[u32] {
        if self.prefilling() {
            &self.seq.prompt()[self.done..self.done + n]
        } else {
            let all = self.seq.tokens();
            &all[all.len() - 1..]
        }
    }
}

/// Sends `e` unless the client is gone; a refusal means it just went.
pub(super) fn emit(sink: &mut Sink, gone: &mut bool, e: Event) {
    if !*gone && !sink(e) {
        *gone = true;
    }
}

impl Slot<'_> {
    /// Prompt tokens this (free) slot can reuse for `tokens` with a cache of `kind`: the
    /// prefix its cache shares with them, if the cache can rewind there. At least one prompt
    /// token is always computed: its logits give the first new token.
    pub fn reusable(&self, kind: CacheKind, tokens: &[u32]) -> usize {
        match &self.cache {
            Some((k, cache)) if *k == kind => {
                let shared = self.held.iter().zip(tokens).take_while(|(a, b)| a == b);
                let n = shared.count().min(tokens.len().saturating_sub(1));
                if cache.can_truncate(n) {
                    n
                } else {
                    0
                }
            }
            _ => 0,
        }
    }

    /// Readies the cache for a request of `kind` that reuses `cached` prompt tokens (as
    /// `reusable` said): rewound there, or made anew for another kind.
    pub fn rewind(&mut self, kind: CacheKind, cached: usize, model: &dyn Model) -> Result<()> {
        match &mut self.cache {
            Some((k, cache)) if *k == kind && cached == 0 => cache.reset(),
            Some((k, cache)) if *k == kind => {
                if !cache.truncate(cached) {
                    return Err(Error::msg(format!(
                        "worker: a slot's cache cannot rewind to {cached} tokens (scheduler bug)"
                    )));
                }
            }
            other => *other = Some((kind, model.make_cache_of(kind)?)),
        }
        self.held.clear();
        Ok(())
    }

    /// Notes what the cache holds once the request has ended: the prompt and every sampled
    /// token but the last, or less if it ended while its prompt was being computed.
    pub fn keep_held(&mut self, seq: &Sequence) {
        let offset = self.cache.as_ref().map_or(0, |(_, c)| c.offset());
        match seq.tokens().get(..offset) {
            Some(held) => self.held = held.to_vec(),
            None => self.forget(), // cannot happen; never reuse a cache we cannot name
        }
    }

    /// Drops the cache (a failed step may have written part of it).
    pub fn forget(&mut self) {
        self.cache = None;
        self.held.clear();
    }
}
