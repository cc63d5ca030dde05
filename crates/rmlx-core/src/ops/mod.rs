//! Ops: validate, promote and broadcast, then record a node. Nothing is computed here.
//! Each op is a method on `Array` returning `Result<Array>`.

mod elementwise;
mod indexing;
pub mod kv_quant;
mod linalg;
mod nn;
pub mod quantized;
mod reduce;
mod rope;
mod shape;

pub use nn::{sdpa_reference, AttentionMask};
pub use rope::{llama3_inv_freq, plain_inv_freq, yarn_inv_freq, RopeScaling, YarnParams};
pub use shape::concat;
