//! Matmul (being written).
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::{Error, Result};
pub fn matmul(_a: &Arg, _b: &Arg, _s: &[usize], _d: DType) -> Result<Data> { Err(Error::NotImplemented { op: "matmul".into(), device: "cpu".into() }) }
