//! Building blocks shared by the model files.

mod embedding;
mod linear;

pub use embedding::Embedding;
pub use linear::{f32_leaf, Linear};
