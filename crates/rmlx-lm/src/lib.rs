//! rmlx-lm: the library API an app embeds: load a model, run it with a KV cache, sample,
//! tokenize, render chat templates, stream generations.

pub mod cache;
pub mod default_model;
pub mod layers;
pub mod load;
pub mod model;
pub mod models;
pub mod npy;
pub mod weights;

pub use load::{load_model, LoadedModel};
pub use model::{Logits, Model, ModelInfo};
