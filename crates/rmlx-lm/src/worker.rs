//! `Worker`: one thread owns the engine's model and runs requests taken from a bounded queue,
//! each streaming its events (text, then the end with usage, or an error) to its own sink.
//!
//! This is what a server (or an app serving several users) puts in front of an [`Engine`]:
//! callers on any thread tokenize and check their request against the context right away
//! ([`Worker::submit`] answers "too long" or "queue full" before anything waits), and the
//! model runs on the worker thread only. No async runtime here: a sink is a plain callback, so
//! an async server forwards events into its own channels.
//!
//! Requests run one at a time, each with a fresh KV cache. A sink that reports its receiver
//! gone (the client disconnected) cancels its request at the next token.

use crate::context::{check_fits, requested_new_tokens};
use crate::engine::{Engine, Prompt};
use crate::generate::{FinishReason, GenerateOptions, GenerationStats};
use rmlx_core::Result;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

/// What a request streams back, in order: `Text`* then one `Done` or `Error`.
#[derive(Clone, Debug)]
pub enum Event {
    /// The next piece of generated text.
    Text(String),
    /// The request ended (the reason and token counts are in the stats).
    Done(GenerationStats),
    /// The request failed while running.
    Error(String),
}

/// Receives a request's events on the worker thread; returns false once nobody listens, which
/// cancels the request.
pub type Sink = Box<dyn FnMut(Event) -> bool + Send>;

/// Why a request was not queued.
#[derive(Debug)]
pub enum SubmitError {
    /// The prompt and the tokens asked for exceed the context.
    TooLong(String),
    /// The request is malformed (no chat template, bad sampler settings, max_tokens 0, ...).
    Invalid(String),
    /// As many requests wait as the queue holds: try again later.
    QueueFull,
    /// The worker thread is gone (it panicked).
    Stopped,
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitError::TooLong(m) | SubmitError::Invalid(m) => f.write_str(m),
            SubmitError::QueueFull => f.write_str("the request queue is full; try again later"),
            SubmitError::Stopped => f.write_str("the engine worker has stopped"),
        }
    }
}

impl std::error::Error for SubmitError {}

struct Job {
    tokens: Vec<u32>,
    opts: GenerateOptions,
    sink: Sink,
}

pub struct Worker {
    engine: Arc<Engine>,
    counters: Arc<Counters>,
    /// `None` only while dropping (closing the queue ends the thread).
    queue: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker thread; up to `queue_capacity` requests wait while one runs (0: a
    /// request is accepted only when the worker is idle).
    pub fn spawn(engine: Engine, queue_capacity: usize) -> Result<Self> {
        let engine = Arc::new(engine);
        let (tx, rx) = mpsc::sync_channel::<Job>(queue_capacity);
        let counters = Arc::new(Counters::default());
        let (e, c) = (engine.clone(), counters.clone());
        let thread = std::thread::Builder::new()
            .name("rmlx-engine".into())
            .spawn(move || run_jobs(&e, rx, &c))
            .map_err(|err| rmlx_core::Error::msg(format!("worker: cannot start thread: {err}")))?;
        Ok(Worker {
            engine,
            counters,
            queue: Some(tx),
            thread: Some(thread),
        })
    }

    /// The engine, for its tokenizer, template and model info (the model itself runs on the
    /// worker thread; do not run it from here).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Requests ended so far, by how they ended, and the tokens generated.
    pub fn stats(&self) -> WorkerStats {
        let c = &self.counters;
        WorkerStats {
            finished: c.finished.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            generated_tokens: c.generated_tokens.load(Ordering::Relaxed),
        }
    }

    /// Tokenizes `prompt` and checks it against the context and `opts`; returns the tokens.
    pub fn prepare(
        &self,
        prompt: &Prompt,
        opts: &GenerateOptions,
    ) -> std::result::Result<Vec<u32>, SubmitError> {
        let invalid = |e: rmlx_core::Error| SubmitError::Invalid(e.to_string());
        opts.sampler.validate().map_err(invalid)?;
        let asked = requested_new_tokens(opts.max_tokens).map_err(invalid)?;
        let tokens = self.engine.encode_prompt(prompt).map_err(invalid)?;
        if tokens.is_empty() {
            return Err(SubmitError::Invalid(
                "expected a prompt of at least one token, found an empty one".into(),
            ));
        }
        let context = self.engine.model.info().context_length;
        check_fits("request", tokens.len(), asked, context)
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
        let tokens = self.prepare(prompt, &opts)?;
        let n = tokens.len();
        let queue = self.queue.as_ref().ok_or(SubmitError::Stopped)?;
        match queue.try_send(Job { tokens, opts, sink }) {
            Ok(()) => Ok(n),
            Err(TrySendError::Full(_)) => Err(SubmitError::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::Stopped),
        }
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

fn run_jobs(engine: &Engine, rx: Receiver<Job>, counters: &Counters) {
    while let Ok(mut job) = rx.recv() {
        let cancel = AtomicBool::new(false);
        let result = run_one(engine, &mut job, &cancel);
        let ended = match &result {
            Ok(s) => {
                counters
                    .generated_tokens
                    .fetch_add(s.generated_tokens as u64, Ordering::Relaxed);
                if s.finish == FinishReason::Cancelled {
                    &counters.cancelled
                } else {
                    &counters.finished
                }
            }
            Err(_) => &counters.failed,
        };
        ended.fetch_add(1, Ordering::Relaxed);
        if cancel.load(Ordering::Relaxed) {
            continue; // nobody listens any more
        }
        let _ = (job.sink)(match result {
            Ok(stats) => Event::Done(stats),
            Err(e) => Event::Error(e.to_string()),
        });
    }
}

/// What the worker has done since it started (for metrics, and to see cancellations work).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Requests that ended normally (EOS, stop string, max_tokens, full context).
    pub finished: u64,
    /// Requests whose sink stopped listening.
    pub cancelled: u64,
    /// Requests that failed while running.
    pub failed: u64,
    /// Tokens generated by all of them.
    pub generated_tokens: u64,
}

#[derive(Default)]
struct Counters {
    finished: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
    generated_tokens: AtomicU64,
}

fn run_one(engine: &Engine, job: &mut Job, cancel: &AtomicBool) -> Result<GenerationStats> {
    let mut cache = engine.model.make_cache_of(job.opts.kv_cache)?;
    let sink = &mut job.sink;
    let g = engine.generate_tokens(
        &mut cache,
        &job.tokens,
        0,
        &job.opts,
        Some(cancel),
        &mut |text| {
            // After a refusal nobody listens: nothing more goes out (not even the last flush).
            if cancel.load(Ordering::Relaxed) {
                return;
            }
            if !sink(Event::Text(text.to_string())) {
                cancel.store(true, Ordering::Relaxed);
            }
        },
    )?;
    Ok(g.stats)
}
