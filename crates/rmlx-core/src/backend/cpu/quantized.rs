//! Quantized matmul from packed weights (being written).

use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::quant::QuantFormat;

fn todo(op: &str) -> Error {
    Error::NotImplemented {
        op: op.into(),
        device: "cpu".into(),
    }
}

pub fn quantized_matmul(
    _f: QuantFormat,
    _n: usize,
    _k: usize,
    _i: &[Arg],
    _s: &[usize],
    _d: DType,
) -> Result<Data> {
    Err(todo("quantized_matmul"))
}
pub fn gather_qmm(
    _f: QuantFormat,
    _n: usize,
    _k: usize,
    _i: &[Arg],
    _s: &[usize],
    _d: DType,
) -> Result<Data> {
    Err(todo("gather_qmm"))
}
pub fn quantized_take(
    _f: QuantFormat,
    _k: usize,
    _i: &[Arg],
    _s: &[usize],
    _d: DType,
) -> Result<Data> {
    Err(todo("quantized_take"))
}
