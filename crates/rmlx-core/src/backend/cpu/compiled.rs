//! `Primitive::Compiled` on the CPU: one pass over the output in blocks. Each block loads its
//! inputs as f32 once, runs the fused tape op by op over the block (each op a tight loop with
//! the op chosen outside it, so it vectorizes), rounds each result to its dtype as
//! `compile::FusedKernel` specifies, and stores the last. Block-sized temporaries stay in the
//! L1 cache: memory sees one read of each input and one write of the output.

#[cfg(target_arch = "x86_64")]
use super::unary::exp_op;
use super::unary::PAR_CHUNK;
use super::{alloc, binary, finish, unary};
use crate::array::Data;
use crate::backend::common::broadcast_strides;
use crate::backend::Arg;
use crate::compile::{round_to, ElemOp, FusedKernel, Operand};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::primitive::{BinaryOp, UnaryOp};
use rayon::prelude::*;

/// Elements per block: the temporaries of a dozen ops fit in 32 KiB.
const BLOCK: usize = 512;

pub fn compiled(
    kernel: &FusedKernel,
    inputs: &[Arg],
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    kernel.check(
        &inputs.iter().map(|a| a.dtype).collect::<Vec<_>>(),
        out_dtype,
    )?;
    let sources = inputs
        .iter()
        .map(|a| Source::new(a, shape))
        .collect::<Result<Vec<_>>>()?;
    let mut out = alloc(shape, out_dtype)?;
    crate::dispatch_dtype!(out_dtype, O => {
        let o = out.as_mut_slice::<O>()?;
        if o.len() <= PAR_CHUNK {
            // Decode-sized work: no task split (its cost is most of a small op's time).
            run_chunk(kernel, &sources, 0, o)?;
        } else {
            o.par_chunks_mut(PAR_CHUNK)
                .enumerate()
                .try_for_each(|(c, chunk)| run_chunk(kernel, &sources, c * PAR_CHUNK, chunk))?;
        }
    });
    Ok(finish(out, shape))
}

fn run_chunk<O: Element>(
    kernel: &FusedKernel,
    sources: &[Source],
    start: usize,
    out: &mut [O],
) -> Result<()> {
    // Temporaries of one block (smaller when the whole output is).
    let block = out.len().min(BLOCK);
    let mut ins = vec![0f32; sources.len() * block];
    let mut tmp = vec![0f32; kernel.ops().len() * block];
    let last = kernel.ops().len() - 1;
    for (b, out) in out.chunks_mut(block).enumerate() {
        let len = out.len();
        for (j, s) in sources.iter().enumerate() {
            s.load(start + b * block, &mut ins[j * block..j * block + len])?;
        }
        for (t, op) in kernel.ops().iter().enumerate() {
            let (done, rest) = tmp.split_at_mut(t * block);
            let dst = &mut rest[..len];
            let arg = |k: usize| -> &[f32] {
                match op.args[k] {
                    Operand::Input(j) => &ins[j * block..j * block + len],
                    Operand::Op(j) => &done[j * block..j * block + len],
                }
            };
            match op.op {
                ElemOp::Cast => dst.copy_from_slice(arg(0)),
                ElemOp::Unary(u) => unary_into(u, op.dtype, arg(0), dst),
                ElemOp::Binary(f) => binary_into(f, arg(0), arg(1), dst),
                ElemOp::Where => {
                    let (c, a, e) = (arg(0), arg(1), arg(2));
                    for i in 0..len {
                        dst[i] = if c[i] != 0.0 { a[i] } else { e[i] };
                    }
                }
            }
            if op.dtype != DType::F32 {
                for v in dst.iter_mut() {
                    *v = round_to(op.dtype, *v);
                }
            }
        }
        for (o, v) in out.iter_mut().zip(&tmp[last * block..last * block + len]) {
            *o = O::from_f32(*v);
        }
    }
    Ok(())
}

/// out = op(x), the op chosen once per block. f32 exp-based activations take the same AVX2
/// path as the unfused op, so fused and unfused f32 results agree.
fn unary_into(op: UnaryOp, dtype: DType, x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(e) = exp_op(op, dtype, dtype) {
        // SAFETY: `exp_op` returns Some only when the CPU has AVX2 and FMA.
        unsafe { super::simd_avx2::exp_map(e, x, out) };
        return;
    }
    let _ = dtype;
    macro_rules! each {
        ($($v:ident),*) => {
            match op {
                $(UnaryOp::$v => for (o, &x) in out.iter_mut().zip(x) {
                    *o = unary::apply(UnaryOp::$v, x);
                }),*
            }
        };
    }
    each!(
        Neg, Abs, Exp, Log, Sqrt, Rsqrt, Square, Recip, Sin, Cos, Tanh, Sigmoid, Silu, Gelu,
        GeluTanh, Floor, Ceil, Round, LogicalNot, Erf
    );
}

/// out = op(a, b), the op chosen once per block.
fn binary_into(op: BinaryOp, a: &[f32], b: &[f32], out: &mut [f32]) {
    macro_rules! each {
        ($($v:ident),*) => {
            match op {
                $(BinaryOp::$v => for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                    *o = binary::apply(BinaryOp::$v, x, y);
                }),*
            }
        };
    }
    each!(Add, Sub, Mul, Div, Maximum, Minimum, Pow, Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr);
}

/// How a block of one input is read.
enum Access {
    /// Contiguous in the output's shape: a slice.
    Full,
    /// One value for every element.
    Scalar,
    /// Any other view, walked through its strides broadcast to the output's shape.
    Strided(Vec<usize>),
}

struct Source<'a> {
    arg: &'a Arg,
    access: Access,
    shape: &'a [usize],
}

impl<'a> Source<'a> {
    fn new(arg: &'a Arg, shape: &'a [usize]) -> Result<Self> {
        arg.data.host()?;
        let access = if arg.numel() == 1 {
            Access::Scalar
        } else if arg.is_contiguous() && arg.shape == shape {
            Access::Full
        } else {
            Access::Strided(broadcast_strides(&arg.shape, &arg.data.strides, shape))
        };
        Ok(Source { arg, access, shape })
    }

    /// Elements start..start+dst.len() of the input broadcast to the output, as f32.
    fn load(&self, start: usize, dst: &mut [f32]) -> Result<()> {
        let data = &self.arg.data;
        crate::dispatch_dtype!(self.arg.dtype, T => {
            let all = data.host()?.as_slice::<T>()?;
            match &self.access {
                Access::Full => {
                    let from = data.offset + start;
                    let src = all.get(from..from + dst.len()).ok_or_else(out_of_view)?;
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d = s.to_f32();
                    }
                }
                Access::Scalar => {
                    let v = all.get(data.offset).ok_or_else(out_of_view)?.to_f32();
                    dst.fill(v);
                }
                Access::Strided(strides) => {
                    let mut walk = Odometer::new(self.shape, strides, data.offset, start);
                    for d in dst.iter_mut() {
                        *d = all.get(walk.offset).ok_or_else(out_of_view)?.to_f32();
                        walk.step();
                    }
                }
            }
        });
        Ok(())
    }
}

fn out_of_view() -> Error {
    Error::msg("compiled: an input view extends past its buffer")
}

/// The element offset of consecutive row-major indices of `shape` under `strides`.
struct Odometer<'a> {
    shape: &'a [usize],
    strides: &'a [usize],
    index: Vec<usize>,
    offset: usize,
}

impl<'a> Odometer<'a> {
    fn new(shape: &'a [usize], strides: &'a [usize], base: usize, start: usize) -> Self {
        let mut index = vec![0; shape.len()];
        let mut rest = start;
        let mut offset = base;
        for d in (0..shape.len()).rev() {
            index[d] = rest % shape[d].max(1);
            rest /= shape[d].max(1);
            offset += index[d] * strides[d];
        }
        Odometer {
            shape,
            strides,
            index,
            offset,
        }
    }

    fn step(&mut self) {
        for d in (0..self.shape.len()).rev() {
            self.index[d] += 1;
            self.offset += self.strides[d];
            if self.index[d] < self.shape[d] {
                return;
            }
            self.offset -= self.strides[d] * self.shape[d];
            self.index[d] = 0;
        }
    }
}
