//! What a model file holds, described without touching tensor data.

use rmlx_core::{Array, DType, QuantFormat};
use std::fmt;

/// The storage type of a tensor: a plain dtype, a quantization format, or a GGUF type we can
/// list but not load (I8, I16, I64, F64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorType {
    Dense(DType),
    Quantized(QuantFormat),
    Unsupported(&'static str),
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorType::Dense(d) => write!(f, "{d}"),
            TensorType::Quantized(q) => write!(f, "{q}"),
            TensorType::Unsupported(name) => write!(f, "{name}"),
        }
    }
}

/// Element count of a shape taken from a file, or None if it could overflow. Dims of 0 count
/// as 1 for the overflow check: a zero-sized tensor with huge other dims would otherwise pass
/// here and overflow later wherever a partial product is taken (rows, strides).
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    let nonzero = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))?;
    Some(if shape.contains(&0) { 0 } else { nonzero })
}

/// One logical tensor. For quantized tensors `shape` is the logical (dequantized) shape and
/// `nbytes` counts every stored part (packed data, scales, biases).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub ty: TensorType,
    pub nbytes: u64,
}

impl TensorInfo {
    /// Logical element count (saturating: only used for reporting; parsers check overflow).
    pub fn numel(&self) -> u64 {
        self.shape
            .iter()
            .fold(1u64, |a, &d| a.saturating_mul(d as u64))
    }
}

/// A quantized weight ready for quantized primitives: packed data plus, depending on the format,
/// separate scales and biases.
///
/// - `Gguf(t)`: `packed` u8 (rows, row_bytes), rows = product of all logical dims but the last.
/// - `Mxfp4` (Hugging Face): `packed` u8 (..., K/32, 16), `scales` u8 (..., K/32).
/// - `Affine`: `packed` u32 (..., K·bits/32), `scales` and `biases` (..., K/group_size).
#[derive(Clone, Debug)]
pub struct QuantizedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub format: QuantFormat,
    pub packed: Array,
    pub scales: Option<Array>,
    pub biases: Option<Array>,
}
