//! What every backend shares (MLX's `backend/common`): view arithmetic over strided data and
//! index walks. A view primitive changes only a `Data`'s offset and strides, so it is the same
//! on every device; only materializing a copy needs a kernel.

pub mod strided;
pub mod views;

pub use strided::broadcast_strides;
