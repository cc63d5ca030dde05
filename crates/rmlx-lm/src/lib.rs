//! rmlx-lm: the library API an app embeds.

pub mod tokenizer;

pub use tokenizer::{GgufVocab, StreamDecoder, Tokenizer, TokenizerConfig};
