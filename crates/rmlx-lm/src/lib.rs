//! rmlx-lm: the library API an app embeds.

pub mod chat_template;
pub mod sample;
pub mod tokenizer;

pub use chat_template::ChatTemplate;
pub use sample::{Sampler, SamplerConfig};
pub use tokenizer::{GgufVocab, StreamDecoder, Tokenizer, TokenizerConfig};
