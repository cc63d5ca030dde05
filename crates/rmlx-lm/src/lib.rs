//! rmlx-lm: the library API an app embeds.
//!
//! - [`Tokenizer`]: text <-> ids from `tokenizer.json` or GGUF metadata ([`GgufVocab`]),
//!   tokenizing exactly as llama.cpp does for GGUF files; [`StreamDecoder`] for streaming text.
//! - [`ChatTemplate`]: Hugging Face chat templates (jinja) rendered as transformers does.
//! - [`Sampler`]: penalties, top-k, top-p, min-p, temperature, seeded draws.

pub mod chat_template;
pub mod sample;
pub mod tokenizer;

pub use chat_template::ChatTemplate;
pub use sample::{Sampler, SamplerConfig};
pub use tokenizer::{GgufVocab, StreamDecoder, Tokenizer, TokenizerConfig};
