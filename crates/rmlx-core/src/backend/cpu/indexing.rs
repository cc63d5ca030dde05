//! Indexing (being written).
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::{Error, Result};
fn todo(op: &str) -> Error { Error::NotImplemented { op: op.into(), device: "cpu".into() } }
pub fn concat(_a: usize, _i: &[Arg], _s: &[usize], _d: DType) -> Result<Data> { Err(todo("concat")) }
pub fn slice_update(_st: &[usize], _i: Vec<Arg>, _s: &[usize], _d: DType) -> Result<Data> { Err(todo("slice_update")) }
pub fn take(_a: usize, _x: &Arg, _i: &Arg, _s: &[usize], _d: DType) -> Result<Data> { Err(todo("take")) }
pub fn take_along_axis(_a: usize, _x: &Arg, _i: &Arg, _s: &[usize], _d: DType) -> Result<Data> { Err(todo("take_along_axis")) }
