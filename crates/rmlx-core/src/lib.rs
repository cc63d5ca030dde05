//! rmlx-core: lazy arrays that record a compute graph, `eval` that runs it on per-device
//! backends, and the quantization formats whose kernels compute straight from packed weights.
//!
//! Layout (MLX's split): `array` + `primitive` + `ops/` build graphs and compute nothing;
//! `eval` runs them; `backend/<device>/<family>.rs` implement the primitives.

// Every unsafe block states why it is sound and every unsafe fn what its callers must
// establish (docs/SAFETY.md); clippy enforces the comments, review their truth.
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod array;
pub mod backend;
pub mod buffer;
pub mod buffer_cache;
pub mod compile;
pub mod device;
pub mod dtype;
pub mod error;
pub mod eval;
pub mod ops;
pub mod primitive;
pub mod profile;
pub mod quant;
pub mod readback;
pub mod shape;
pub mod testing;

pub use array::Array;
pub use buffer::{Buffer, HostBuffer};
pub use compile::compile;
pub use device::{default_device, set_default_device, with_default_device, Device, Stream};
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use eval::{async_eval, eval};
pub use ops::concat;
pub use primitive::Primitive;
pub use quant::{GgmlType, QuantFormat};
pub use readback::PendingRead;
pub use shape::Shape;
