//! rmlx-lm: the library API an app embeds: load a model, run it with a KV cache, sample,
//! tokenize, render chat templates, stream generations.
//!
//! - [`Engine`]: a loaded model with its tokenizer and chat template; [`Engine::generate`]
//!   streams text through a callback; [`ChatSession`] keeps history and the KV cache, dropping
//!   the oldest turns when the conversation outgrows the context ([`context`] has the rules).
//! - [`LoadOptions`]: a context smaller than the model's (a smaller KV cache).
//! - [`Model`]: the interface every model file implements (`models/`), with per-layer KV caches
//!   (`cache/`); [`Model::forward_batch`] runs several sequences in one packed step
//!   ([`batch`]).
//! - [`Tokenizer`]: text <-> ids from `tokenizer.json` or GGUF metadata ([`GgufVocab`]),
//!   tokenizing exactly as llama.cpp does for GGUF files; [`StreamDecoder`] for streaming text.
//! - [`ChatTemplate`]: Hugging Face chat templates (jinja) rendered as transformers does.
//! - [`Sampler`]: penalties, top-k, top-p, min-p, temperature, seeded draws.
//! - [`constraint`]: structured output — a JSON schema, any JSON object, a Lark grammar or a
//!   regex constrains sampling through a token mask per step (`GenerateOptions::constraint`).
//! - [`Worker`]: one thread that owns the model and serves requests from a bounded queue,
//!   up to [`WorkerOptions::parallel`] at once by continuous batching with prefix reuse, each
//!   streaming its events to its own sink (what `rmlx serve` runs on); [`WorkerStats`] (and
//!   [`metrics`]) for monitoring.

// No unsafe code here: the unsafe kernels live in rmlx-core, behind safe APIs.
#![forbid(unsafe_code)]

pub mod batch;
pub mod cache;
pub mod chat_session;
pub mod chat_template;
pub mod constraint;
pub mod context;
pub mod default_model;
pub mod engine;
pub mod generate;
pub mod harmony;
pub mod layers;
pub mod load;
pub mod logprobs;
pub mod metrics;
pub mod model;
pub mod models;
pub mod npy;
pub mod sample;
mod scheduler;
mod sequence;
pub mod tokenizer;
pub mod tool_calls;
pub mod weights;
pub mod worker;

pub use batch::SeqChunk;
pub use chat_session::ChatSession;
pub use chat_template::ChatTemplate;
pub use constraint::{forced_tool_calls, Constraint, ConstraintSpec, ForcedTools, Grammar};
pub use engine::{Engine, Prompt};
pub use generate::{FinishReason, GenerateOptions, Generation, GenerationStats};
pub use load::{load_model, load_model_on, load_model_with, LoadOptions, LoadedModel, Progress};
pub use logprobs::{LogprobToken, TokenLogprob};
pub use model::{Logits, Model, ModelInfo};
pub use sample::{Sampler, SamplerConfig};
pub use tokenizer::{GgufVocab, StreamDecoder, Tokenizer, TokenizerConfig};
pub use worker::{Event, Probe, Sink, SubmitError, Worker, WorkerOptions, WorkerStats};
