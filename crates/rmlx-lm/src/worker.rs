//! `Worker`: one thread owns the engine's model and runs requests taken from a bounded queue,
//! each streaming its events (text, then the end with usage, or an error) to its own sink.
//!
//! This is what a server (or an app serving several users) puts in front of an [`Engine`]:
//! callers on any thread tokenize and check their request against the context right away
//! ([`Worker::submit`] answers "too long" or "queue full" before anything waits), and the
//! model runs on the worker thread only. No async runtime here: a sink is a plain callback, so
//! an async server forwards events into its own channels.
//!
//! Up to `parallel` requests run at once, batched into one forward pass per step
//! (`scheduler`): each keeps its own sampler and seed, so a request gets the same text alone
//! or beside others. A new request reuses the KV cache of the free slot that shares the
//! longest prefix with its prompt. A sink that reports its receiver gone (the client
//! disconnected), or a probe that says so, cancels its request at the next step.

use crate::context::{check_fits, requested_new_tokens};
use crate::engine::{Engine, Prompt};
use crate::generate::{GenerateOptions, GenerationStats, PREFILL_CHUNK};
use crate::logprobs::{TokenLogprob, MAX_TOP_LOGPROBS};
use crate::metrics::Metrics;
pub use crate::metrics::WorkerStats;
use crate::scheduler::{self, Limits};
use rmlx_core::{Error, Result};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// What a request streams back, in order: `Text`* (with `Logprob`s when asked for) then one
/// `Done` or `Error`.
#[derive(Clone, Debug)]
pub enum Event {
    /// The next piece of generated text.
    Text(String),
    /// A generated token's log-probabilities (with `GenerateOptions::logprobs`), sent before
    /// the text it adds.
    Logprob(TokenLogprob),
    /// The request ended (the reason and token counts are in the stats).
    Done(GenerationStats),
    /// The request failed while running.
    Error(String),
}

/// Receives a request's events on the worker thread; returns false once nobody listens, which
/// cancels the request.
pub type Sink = Box<dyn FnMut(Event) -> bool + Send>;

/// Tells, without sending anything, whether the client is gone (e.g. a closed channel): checked
/// before every step, so a request frees its slot even while its prompt is computed.
pub type Probe = Box<dyn Fn() -> bool + Send>;

/// How the worker serves.
#[derive(Clone, Copy, Debug)]
pub struct WorkerOptions {
    /// Requests that may wait for a slot (0: a request is accepted only when a slot is free).
    pub queue: usize,
    /// Requests run at once, batched (each slot holds one request's KV cache).
    pub parallel: usize,
    /// Most tokens one forward pass runs: one per decoding request, prompt chunks of new
    /// requests in the rest (chunked prefill).
    pub step_tokens: usize,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            queue: 64,
            parallel: 1,
            step_tokens: PREFILL_CHUNK,
        }
    }
}

/// Why a request was not queued.
#[derive(Debug)]
pub enum SubmitError {
    /// The prompt and the tokens asked for exceed the context.
    TooLong(String),
    /// The request is malformed (no chat template, bad sampler settings, max_tokens 0, ...).
    Invalid(String),
    /// The constraint (`GenerateOptions::constraint`) does not compile: an invalid JSON
    /// schema, grammar or regular expression.
    Constraint(String),
    /// As many requests wait as the queue holds: try again later.
    QueueFull,
    /// The worker thread is gone (it panicked).
    Stopped,
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitError::TooLong(m) | SubmitError::Invalid(m) | SubmitError::Constraint(m) => {
                f.write_str(m)
            }
            SubmitError::QueueFull => f.write_str("the request queue is full; try again later"),
            SubmitError::Stopped => f.write_str("the engine worker has stopped"),
        }
    }
}

impl std::error::Error for SubmitError {}

pub(crate) struct Job {
    pub tokens: Vec<u32>,
    pub opts: GenerateOptions,
    pub sink: Sink,
    pub closed: Option<Probe>,
    pub queued_at: Instant,
    /// `opts.constraint` compiled at submission (a bad grammar is refused there).
    pub constraint: Option<crate::constraint::Constraint>,
}

pub struct Worker {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    /// `None` only while dropping (closing the queue ends the thread).
    queue: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker thread running one request at a time; up to `queue_capacity`
    /// requests wait while one runs (0: a request is accepted only when the worker is idle).
    pub fn spawn(engine: Engine, queue_capacity: usize) -> Result<Self> {
        let opts = WorkerOptions {
            queue: queue_capacity,
            ..WorkerOptions::default()
        };
        Self::spawn_with(engine, opts)
    }

    /// Starts the worker thread with `opts` (several requests batched).
    pub fn spawn_with(engine: Engine, opts: WorkerOptions) -> Result<Self> {
        if opts.parallel == 0 || opts.step_tokens == 0 {
            return Err(Error::msg(format!(
                "worker: expected at least 1 parallel request and 1 token per step, found {} \
                 and {}",
                opts.parallel, opts.step_tokens
            )));
        }
        let engine = Arc::new(engine);
        let (tx, rx) = mpsc::sync_channel::<Job>(opts.queue);
        let metrics = Arc::new(Metrics::new(opts.parallel));
        let (e, m) = (engine.clone(), metrics.clone());
        let limits = Limits {
            parallel: opts.parallel,
            step_tokens: opts.step_tokens,
        };
        let thread = std::thread::Builder::new()
            .name("rmlx-engine".into())
            .spawn(move || scheduler::run(&e, rx, limits, &m))
            .map_err(|err| Error::msg(format!("worker: cannot start thread: {err}")))?;
        Ok(Worker {
            engine,
            metrics,
            queue: Some(tx),
            thread: Some(thread),
        })
    }

    /// The engine, for its tokenizer, template and model info (the model itself runs on the
    /// worker thread; do not run it from here).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Requests by how they ended, tokens, queue, slots, time to first token, throughput.
    pub fn stats(&self) -> WorkerStats {
        self.metrics.snapshot()
    }

    /// Tokenizes `prompt` and checks it against the context and `opts`; returns the tokens.
    pub fn prepare(
        &self,
        prompt: &Prompt,
        opts: &GenerateOptions,
    ) -> std::result::Result<Vec<u32>, SubmitError> {
        let invalid = |e: rmlx_core::Error| SubmitError::Invalid(e.to_string());
        opts.sampler.validate().map_err(invalid)?;
        if let Some(n) = opts.logprobs.filter(|&n| n > MAX_TOP_LOGPROBS) {
            return Err(SubmitError::Invalid(format!(
                "logprobs: expected at most {MAX_TOP_LOGPROBS} alternatives a token, found {n}"
            )));
        }
        let asked = requested_new_tokens(opts.max_tokens).map_err(invalid)?;
        let tokens = self.engine.encode_prompt(prompt).map_err(invalid)?;
        if tokens.is_empty() {
            return Err(SubmitError::Invalid(
                "expected a prompt of at least one token, found an empty one".into(),
            ));
        }
        let info = self.engine.model.info();
        // Checked here, not in the step: a bad id would fail every request batched with it.
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= info.vocab_size) {
            return Err(SubmitError::Invalid(format!(
                "request: token id {bad} is outside the model's vocabulary (size {})",
                info.vocab_size
            )));
        }
        check_fits("request", tokens.len(), asked, info.context_length)
            .map_err(|e| SubmitError::TooLong(e.to_string()))?;
        Ok(tokens)
    }

    /// Queues a request; its events go to `sink` on the worker thread. Returns the number of
    /// prompt tokens. Fails at once when the request cannot fit or the queue is full.
    pub fn submit(
        &self,
        prompt: &Prompt,
        opts: GenerateOptions,
        sink: Sink,
    ) -> std::result::Result<usize, SubmitError> {
        self.submit_probed(prompt, opts, sink, None)
    }

    /// `submit` with a probe the worker asks before every step whether the client is gone.
    pub fn submit_probed(
        &self,
        prompt: &Prompt,
        opts: GenerateOptions,
        sink: Sink,
        closed: Option<Probe>,
    ) -> std::result::Result<usize, SubmitError> {
        let tokens = self.prepare(prompt, &opts)?;
        // Compiled here, on the caller's thread: a bad grammar is refused before it waits, and
        // the worker thread never spends a step compiling.
        let constraint = self
            .engine
            .constraint_for(&opts)
            .map_err(|e| SubmitError::Constraint(e.to_string()))?;
        let n = tokens.len();
        let queue = self.queue.as_ref().ok_or(SubmitError::Stopped)?;
        let job = Job {
            tokens,
            opts,
            sink,
            closed,
            queued_at: Instant::now(),
            constraint,
        };
        // Counted before it is sent: the worker may take it (and count it out) at once.
        Metrics::add(&self.metrics.queued, 1);
        let refused = match queue.try_send(job) {
            Ok(()) => return Ok(n),
            Err(TrySendError::Full(_)) => SubmitError::QueueFull,
            Err(TrySendError::Disconnected(_)) => SubmitError::Stopped,
        };
        Metrics::sub(&self.metrics.queued, 1);
        Err(refused)
    }

    /// `submit` with the events on a channel; dropping the receiver cancels the request.
    pub fn submit_channel(
        &self,
        prompt: &Prompt,
        opts: GenerateOptions,
    ) -> std::result::Result<Receiver<Event>, SubmitError> {
        let (tx, rx) = mpsc::channel();
        self.submit(prompt, opts, Box::new(move |e| tx.send(e).is_ok()))?;
        Ok(rx)
    }
}

impl Drop for Worker {
    /// Closes the queue and waits for the running request and those queued to finish.
    fn drop(&mut self) {
        self.queue = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
