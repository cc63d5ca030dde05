//! Quantization formats. A quantized tensor is not a dtype: it is packed bytes (plus, for some
//! formats, separate scale/bias arrays) that quantized primitives compute from directly. Each
//! format decodes a row to one common form (`decode`), which is both the reference
//! dequantizer (the test oracle) and the input of the CPU kernels in
//! `backend/cpu/quantized/`.

pub mod affine;
pub mod blocks;
pub mod decode;
pub mod ggml;
pub mod gguf;
pub mod mxfp4;
pub mod quantize;
pub mod weight;

pub use decode::{decode_row, dequantize_row, Floats, RowRef, GROUP};
pub use ggml::GgmlType;
use std::fmt;
pub use weight::QuantizedWeight;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantFormat {
    /// A GGUF block format: one u8 array (rows, row_bytes) with scales inside each block.
    Gguf(GgmlType),
    /// Hugging Face MXFP4 (gpt-oss): `blocks` u8 (rows, K/32, 16), two E2M1 values a byte, low
    /// nibble first; `scales` u8 (rows, K/32), E8M0 exponents (value = lut · 2^(s − 127)).
    Mxfp4,
    /// MLX affine: `weight` u32 (rows, K·bits/32), `scales` and `biases` (rows, K/group_size);
    /// value = scale · q + bias.
    Affine { bits: u8, group_size: u16 },
}

impl fmt::Display for QuantFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantFormat::Gguf(t) => write!(f, "{}", t.name()),
            QuantFormat::Mxfp4 => write!(f, "mxfp4"),
            QuantFormat::Affine { bits, group_size } => write!(f, "affine{bits}g{group_size}"),
        }
    }
}
