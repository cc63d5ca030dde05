//! SDPA (being written).
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::{Error, Result};
pub fn sdpa(_sc: f32, _w: Option<usize>, _h: bool, _i: &[Arg], _s: &[usize], _d: DType) -> Result<Data> { Err(Error::NotImplemented { op: "sdpa".into(), device: "cpu".into() }) }
