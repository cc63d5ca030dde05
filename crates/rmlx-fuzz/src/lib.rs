//! Fuzz harnesses: one function per fuzz target, each driving one parser of untrusted input
//! (model files, configs, tokenizers, chat templates, generated harmony text) as far as the
//! input lets it, and checking what must hold for any input. A harness panics only on a bug:
//! bad input must come back as an `Err`.
//!
//! The cargo-fuzz targets in `fuzz/` call these; `tests/replay.rs` runs every committed corpus
//! file (seeds and inputs the fuzzers found) through them in the normal test suite.
//! `scripts/fuzz.sh` runs the targets.

pub mod chat_template;
pub mod gguf_vocab;
pub mod gguf_writer;
pub mod harmony;
pub mod io;
pub mod model_config;
pub mod split;
pub mod tokenizer;

/// A harness: true when the input got past parsing (so the replay test can tell that the seeds
/// reach the interesting code), false when it was rejected early with an error.
pub type Harness = fn(&[u8]) -> bool;

/// Every fuzz target by name; `fuzz/fuzz_targets/NAME.rs` and `corpus/NAME/` match these.
pub const TARGETS: &[(&str, Harness)] = &[
    ("safetensors_header", io::safetensors_header),
    ("safetensors_index", io::safetensors_index),
    ("gguf_parse", io::gguf_parse),
    ("model_config", model_config::run),
    ("tokenizer_json", tokenizer::from_json_files),
    ("tokenizer_text", tokenizer::known_vocabularies),
    ("gguf_vocab", gguf_vocab::run),
    ("chat_template", chat_template::run),
    ("harmony", harmony::run),
];
