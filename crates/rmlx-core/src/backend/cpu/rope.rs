//! RoPE (being written).
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::RopeLayout;
pub fn rope(_l: RopeLayout, _dims: usize, _m: f32, _i: &[Arg], _s: &[usize], _d: DType) -> Result<Data> { Err(Error::NotImplemented { op: "rope".into(), device: "cpu".into() }) }
