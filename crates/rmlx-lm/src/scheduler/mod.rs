//! Continuous batching on the worker thread. `parallel` slots each own a KV cache; every step
//! runs one forward pass over one token of each decoding sequence plus prompt chunks of the
//! sequences still prefilling, within a token budget (chunked prefill, oldest request first).
//! Requests join when a slot is free and leave as soon as they end, between steps; a client
//! that went away (its sink refuses an event, or its probe says closed) frees its slot at the
//! next step.
//!
//! A slot keeps its cache after its request ends, with the tokens it holds: a new request
//! takes the free slot whose cache shares the longest prefix with its prompt, rewinds it there
//! and computes only the rest (llama.cpp's `cache_prompt`).

mod slot;

use crate::batch::SeqChunk;
use crate::engine::Engine;
use crate::generate::{FinishReason, GenerationStats};
use crate::metrics::Metrics;
use crate::sequence::{Output, Sequence};
use crate::worker::{Event, Job};
use rmlx_core::{Array, Result};
use slot::{emit, Active, Slot};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

/// How the scheduler runs (`WorkerOptions` carries them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub parallel: usize,
    /// Most tokens one step runs (decode tokens count first; prompt chunks share the rest).
    pub step_tokens: usize,
}

/// Takes requests from `rx` until it closes and every admitted request has ended.
pub(crate) fn run(engine: &Engine, rx: Receiver<Job>, limits: Limits, metrics: &Metrics) {
    let mut s = Scheduler {
        engine,
        metrics,
        step_tokens: limits.step_tokens,
        slots: (0..limits.parallel).map(|_| Slot::default()).collect(),
        admissions: 0,
    };
    let mut open = true;
    loop {
        // Fill free slots; wait for work only when nothing runs.
        while open && s.slots.iter().any(|sl| sl.active.is_none()) {
            let job = if s.idle() {
                rx.recv().map_err(|_| TryRecvError::Disconnected)
            } else {
                rx.try_recv()
            };
            match job {
                Ok(job) => {
                    Metrics::sub(&metrics.queued, 1);
                    s.admit(job);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        if s.idle() {
            if open {
                continue;
            }
            return;
        }
        s.step();
    }
}

struct Scheduler<'e> {
    engine: &'e Engine,
    metrics: &'e Metrics,
    step_tokens: usize,
    slots: Vec<Slot<'e>>,
    /// Requests admitted so far (orders prefill, and slots by last use).
    admissions: u64,
}

impl<'e> Scheduler<'e> {
    fn idle(&self) -> bool {
        self.slots.iter().all(|s| s.active.is_none())
    }

    /// Gives `job` the free slot that can reuse the most of its prompt (else the least
    /// recently used one), or answers it with an error.
    fn admit(&mut self, mut job: Job) {
        let kind = job.opts.kv_cache;
        let pick = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.active.is_none())
            .max_by_key(|(_, s)| (s.reusable(kind, &job.tokens), u64::MAX - s.last_used))
            .map(|(i, _)| i);
        let Some(i) = pick else {
            return self.refuse(job, "worker: no free slot (scheduler bug)".into());
        };
        let constraint = job.constraint.take();
        let seq = match Sequence::new(self.engine, &job.tokens, &job.opts, constraint) {
            Ok(s) => s,
            Err(e) => return self.refuse(job, e.to_string()),
        };
        let slot = &mut self.slots[i];
        let cached = slot.reusable(kind, &job.tokens);
        if let Err(e) = slot.rewind(kind, cached, self.engine.model.as_ref()) {
            slot.forget();
            return self.refuse(job, e.to_string());
        }
        self.admissions += 1;
        slot.last_used = self.admissions;
        Metrics::add(&self.metrics.prompt_tokens, job.tokens.len());
        Metrics::add(&self.metrics.cached_prompt_tokens, cached);
        Metrics::add(&self.metrics.active, 1);
        job.tokens = Vec::new(); // the sequence holds them
        slot.active = Some(Active {
            job,
            seq,
            done: cached,
            cached,
            order: self.admissions,
            admitted: Instant::now(),
            first_token: None,
            gone: false,
        });
    }

    fn refuse(&self, mut job: Job, message: String) {
        Metrics::add(&self.metrics.failed, 1);
        let _ = (job.sink)(Event::Error(message));
    }

    /// One forward pass over every running sequence that has work within the budget, then the
    /// sampling of those whose prompt is complete.
    fn step(&mut self) {
        self.drop_gone();
        let plan = self.plan();
        if plan.is_empty() {
            return;
        }
        let logits = match self.forward(&plan) {
            Ok(l) => l,
            Err(e) => {
                for &(i, _) in &plan {
                    self.fail(i, &e.to_string());
                }
                return;
            }
        };
        let mut generated = 0;
        for (row, &(i, n)) in plan.iter().enumerate() {
            let Some(a) = self.slots[i].active.as_mut() else {
                continue;
            };
            let decoding = !a.prefilling();
            if !decoding {
                a.done += n;
                if a.prefilling() {
                    continue; // more prompt to run: these logits are not wanted
                }
            }
            match self.sample(i, &logits, row) {
                Ok(None) => generated += 1,
                Ok(Some(reason)) => {
                    generated += 1;
                    self.end(i, reason);
                }
                Err(e) => self.fail(i, &e.to_string()),
            }
        }
        self.metrics.step(plan.len(), generated);
    }

    /// Ends the requests whose client is gone (their probe says so, or their sink refused).
    fn drop_gone(&mut self) {
        for i in 0..self.slots.len() {
            if let Some(a) = self.slots[i].active.as_mut() {
                if a.job.closed.as_ref().is_some_and(|closed| closed()) {
                    a.gone = true;
                }
                if a.gone {
                    self.end(i, FinishReason::Cancelled);
                }
            }
        }
    }

    /// (slot, tokens) of each sequence in this step, in slot order: every decoding one (a
    /// token each), and prompt chunks, oldest request first, while the budget lasts.
    fn plan(&self) -> Vec<(usize, usize)> {
        let mut plan = Vec::new();
        let mut prefill = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            match &s.active {
                Some(a) if a.prefilling() => prefill.push((a.order, i)),
                Some(_) => plan.push((i, 1)),
                None => {}
            }
        }
        // At least one prompt token a step, so a prompt never waits for every decode to end.
        let mut budget = self.step_tokens.saturating_sub(plan.len()).max(1);
        prefill.sort_unstable();
        for (_, i) in prefill {
            if budget == 0 {
                break;
            }
            let Some(a) = &self.slots[i].active else {
                continue;
            };
            let n = (a.seq.prompt().len() - a.done).min(budget);
            budget -= n;
            plan.push((i, n));
        }
        plan.sort_unstable(); // rows in slot order
        plan
    }

    /// The step's forward pass (row r: the sequence of `plan[r]`); logits (rows, vocab),
    /// evaluated.
    fn forward(&mut self, plan: &[(usize, usize)]) -> Result<Array> {
        let mut chunks = Vec::with_capacity(plan.len());
        let mut caches = Vec::with_capacity(plan.len());
        let mut planned = plan.iter().peekable();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(&(_, n)) = planned.next_if(|p| p.0 == i) else {
                continue;
            };
            let (Some(a), Some((_, cache))) = (&slot.active, &mut slot.cache) else {
                return Err(rmlx_core::Error::msg(
                    "worker: a planned slot has no sequence (scheduler bug)",
                ));
            };
            chunks.push(SeqChunk {
                tokens: a.next_tokens(n),
            });
            caches.push(cache);
        }
        let logits = self.engine.model.forward_batch(&chunks, &mut caches)?;
        logits.eval()?;
        Ok(logits)
    }

    /// Samples slot `i`'s next token from row `row` and streams its text.
    fn sample(&mut self, i: usize, logits: &Array, row: usize) -> Result<Option<FinishReason>> {
        let metrics = self.metrics;
        let Some(a) = self.slots[i].active.as_mut() else {
            return Ok(None);
        };
        let row = logits.slice_axis(0, row, row + 1)?;
        let Active { seq, job, gone, .. } = a;
        let end = seq.advance(&row, &mut |out| {
            let e = match out {
                Output::Logprob(l) => Event::Logprob(l),
                Output::Text(t) => Event::Text(t.to_string()),
            };
            emit(&mut job.sink, gone, e)
        })?;
        Metrics::add(&metrics.generated_tokens, 1);
        if a.first_token.is_none() {
            a.first_token = Some(Instant::now());
            metrics.first_token(a.job.queued_at.elapsed());
        }
        Ok(match end {
            None if a.gone => Some(FinishReason::Cancelled),
            other => other,
        })
    }

    /// Ends slot `i`'s request: the rest of its text and its stats go out (unless its client
    /// is gone), and the slot keeps its cache for the next request.
    fn end(&mut self, i: usize, reason: FinishReason) {
        let slot = &mut self.slots[i];
        let Some(a) = slot.active.take() else {
            return;
        };
        Metrics::sub(&self.metrics.active, 1);
        slot.keep_held(&a.seq);
        let reason = if a.gone {
            FinishReason::Cancelled
        } else {
            reason
        };
        let now = Instant::now();
        let first = a.first_token.unwrap_or(now);
        let stats = GenerationStats {
            prompt_tokens: a.seq.prompt().len(),
            prefilled_tokens: a.seq.prompt().len() - a.cached,
            generated_tokens: a.seq.generated(),
            prefill_s: (first - a.admitted).as_secs_f64(),
            decode_s: (now - first).as_secs_f64(),
            finish: reason,
        };
        let Active { seq, mut job, .. } = a;
        let mut gone = a.gone;
        let finished = seq.finish(reason, &mut |t| {
            emit(&mut job.sink, &mut gone, Event::Text(t.to_string()))
        });
        let counter = match (&finished, reason) {
            (Err(_), _) => &self.metrics.failed,
            (Ok(_), FinishReason::Cancelled) => &self.metrics.cancelled,
            _ => &self.metrics.finished,
        };
        Metrics::add(counter, 1);
        let last = match finished {
            Ok(_) => Event::Done(stats),
            Err(e) => Event::Error(e.to_string()),
        };
        emit(&mut job.sink, &mut gone, last);
    }

    /// Ends slot `i`'s request with an error; its cache starts over (a failed step may have
    /// written part of it).
    fn fail(&mut self, i: usize, message: &str) {
        let slot = &mut self.slots[i];
        if let Some(mut a) = slot.active.take() {
            Metrics::sub(&self.metrics.active, 1);
            Metrics::add(&self.metrics.failed, 1);
            emit(
                &mut a.job.sink,
                &mut a.gone,
                Event::Error(message.to_string()),
            );
        }
        slot.forget();
    }
}
