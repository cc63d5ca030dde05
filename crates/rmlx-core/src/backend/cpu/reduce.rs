//! Reductions (being written).
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::{ArgReduceOp, ReduceOp};
fn todo(op: &str) -> Error { Error::NotImplemented { op: op.into(), device: "cpu".into() } }
pub fn reduce(_o: ReduceOp, _a: &[usize], _x: &Arg, _s: &[usize], _d: DType) -> Result<Data> { Err(todo("reduce")) }
pub fn arg_reduce(_o: ArgReduceOp, _a: usize, _x: &Arg, _s: &[usize]) -> Result<Data> { Err(todo("argreduce")) }
pub fn softmax(_x: &Arg, _s: &[usize], _d: DType) -> Result<Data> { Err(todo("softmax")) }
pub fn logsumexp(_x: &Arg, _s: &[usize], _d: DType) -> Result<Data> { Err(todo("logsumexp")) }
pub fn topk(_k: usize, _x: &Arg, _s: &[usize]) -> Result<Data> { Err(todo("topk")) }
