//! What a fused elementwise kernel computes (`Primitive::Compiled`): a short tape of
//! elementwise ops over the run's external inputs, every input broadcast to the output's shape.
//!
//! Semantics are exactly those of the unfused ops on every backend: values are carried in f32
//! (the backends do float math in f32 for every float type), and each op's result is rounded
//! to its own dtype before the next op reads it, as storing it would (a bf16 intermediate is
//! rounded to bf16 in the fused kernel too). Comparisons give 1 or 0. Only float math fuses
//! (plus bool masks feeding `where`); integer ops keep their own kernels.

use crate::dtype::{DType, Element};
use crate::primitive::{BinaryOp, UnaryOp};
use half::{bf16, f16};
use std::fmt::Write;

/// One elementwise operation of a fused run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElemOp {
    /// A cast between float types (`AsType`).
    Cast,
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// select(cond, a, b), cond nonzero.
    Where,
}

/// Where an op's argument comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// The kernel's i-th external input.
    Input(usize),
    /// The result of the kernel's i-th op.
    Op(usize),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FusedOp {
    pub op: ElemOp,
    pub args: Vec<Operand>,
    /// The dtype the op's result is rounded to.
    pub dtype: DType,
}

/// A fused run: the dtypes of its external inputs and its ops in order; the last op is the
/// output.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FusedKernel {
    inputs: Vec<DType>,
    ops: Vec<FusedOp>,
    signature: String,
}

impl FusedKernel {
    pub fn new(inputs: Vec<DType>, ops: Vec<FusedOp>) -> Self {
        let signature = signature(&inputs, &ops);
        FusedKernel {
            inputs,
            ops,
            signature,
        }
    }

    pub fn inputs(&self) -> &[DType] {
        &self.inputs
    }

    pub fn ops(&self) -> &[FusedOp] {
        &self.ops
    }

    /// A canonical text of the computation (`in0:bf16 in1:f32 | t0=Binary(Mul)(in0,in1):f32
    /// …`): the key of the kernels generated from it.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// Number of ops fused.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn out_dtype(&self) -> DType {
        self.ops.last().map(|o| o.dtype).unwrap_or(DType::F32)
    }

    /// An error unless a backend was handed inputs of the kernel's dtypes for its output dtype.
    pub fn check(&self, inputs: &[DType], out: DType) -> crate::Result<()> {
        if inputs == self.inputs.as_slice() && out == self.out_dtype() && !self.ops.is_empty() {
            return Ok(());
        }
        Err(crate::Error::msg(format!(
            "compiled: inputs {inputs:?} -> {out} do not match the kernel {}",
            self.signature
        )))
    }
}

fn signature(inputs: &[DType], ops: &[FusedOp]) -> String {
    let mut s = String::new();
    for (i, d) in inputs.iter().enumerate() {
        let _ = write!(s, "in{i}:{d} ");
    }
    s.push('|');
    for (i, op) in ops.iter().enumerate() {
        let _ = write!(s, " t{i}={:?}(", op.op);
        for (j, a) in op.args.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            let _ = match a {
                Operand::Input(k) => write!(s, "in{k}"),
                Operand::Op(k) => write!(s, "t{k}"),
            };
        }
        let _ = write!(s, "):{}", op.dtype);
    }
    s
}

/// `v` rounded as storing it in `dtype` would round it (f32 values pass unchanged; bool is 0/1).
#[inline(always)]
pub fn round_to(dtype: DType, v: f32) -> f32 {
    match dtype {
        DType::F16 => f16::from_f32(v).to_f32(),
        DType::BF16 => bf16::from_f32(v).to_f32(),
        DType::Bool => bool::from_f32(v).to_f32(),
        _ => v,
    }
}
