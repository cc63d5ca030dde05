//! Unary elementwise ops and dtype conversion. Math runs in f32 for every float type.

use super::{alloc, contiguous, finish};
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::primitive::UnaryOp;
use rayon::prelude::*;

/// Elements per parallel task; below this, work stays on one thread (spawn costs more).
pub(crate) const PAR_CHUNK: usize = 1 << 14;

pub fn astype(x: &Arg, shape: &[usize], out_dtype: DType) -> Result<Data> {
    let src = contiguous(x)?;
    let n = x.numel();
    let mut out = alloc(shape, out_dtype)?;
    if x.dtype.is_float() && out_dtype.is_float() {
        // Float to float through f32: exact for the 16-bit types, the same rounding to them.
        crate::dispatch_float!(x.dtype, "astype", I => {
            let inp = src.host_slice::<I>(n)?;
            crate::dispatch_float!(out_dtype, "astype", O => {
                let o = out.as_mut_slice::<O>()?;
                o.par_chunks_mut(PAR_CHUNK).zip(inp.par_chunks(PAR_CHUNK)).for_each(|(o, i)| {
                    for (o, i) in o.iter_mut().zip(i) {
                        *o = O::from_f32(i.to_f32());
                    }
                });
            })
        });
        return Ok(finish(out, shape));
    }
    crate::dispatch_dtype!(x.dtype, I => {
        let inp = src.host_slice::<I>(n)?;
        crate::dispatch_dtype!(out_dtype, O => {
            let o = out.as_mut_slice::<O>()?;
            o.par_chunks_mut(PAR_CHUNK).zip(inp.par_chunks(PAR_CHUNK)).for_each(|(o, i)| {
                for (o, i) in o.iter_mut().zip(i) {
                    *o = convert::<I, O>(*i);
                }
            });
        })
    });
    Ok(finish(out, shape))
}

/// Conversion through f64 keeps every i32/u32 exact.
#[inline(always)]
fn convert<I: Element, O: Element>(v: I) -> O {
    O::from_f64(v.to_f64())
}

#[inline(always)]
pub(crate) fn apply(op: UnaryOp, x: f32) -> f32 {
    use UnaryOp::*;
    match op {
        Neg => -x,
        Abs => x.abs(),
        Exp => x.exp(),
        Log => x.ln(),
        Sqrt => x.sqrt(),
        Rsqrt => 1.0 / x.sqrt(),
        Square => x * x,
        Recip => 1.0 / x,
        Sin => x.sin(),
        Cos => x.cos(),
        Tanh => x.tanh(),
        Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Silu => x / (1.0 + (-x).exp()),
        Gelu => 0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2)),
        GeluTanh => {
            let c = (2.0 / std::f32::consts::PI).sqrt();
            0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
        }
        Floor => x.floor(),
        Ceil => x.ceil(),
        Round => x.round_ties_even(),
        LogicalNot => {
            if x == 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Erf => erf(x),
    }
}

/// erf as a rational function of x (odd degree-13 over even degree-8 polynomials, Eigen's and
/// XLA's f32 erf; |error| < 4e-7 against the exact function, which is ±1 in f32 past |x| = 4).
/// Only f32 multiplies and adds, so a loop over it vectorizes; `kernels/common.cuh`'s
/// `rmlx_erf` is the same function, so the devices agree.
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p - 2.101_024e-6;
    p = x2 * p - 5.692_506_4e-5;
    p = x2 * p - 7.349_906_3e-4;
    p = x2 * p - 2.954_6e-3;
    p = x2 * p - 1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
    q = x2 * q - 1.682_827e-3;
    q = x2 * q - 7.373_329_2e-3;
    q = x2 * q - 1.426_473_9e-2;
    x * p / q
}

pub fn unary(op: UnaryOp, x: &Arg, shape: &[usize], out_dtype: DType) -> Result<Data> {
    let src = contiguous(x)?;
    let n = x.numel();
    let mut out = alloc(shape, out_dtype)?;
    #[cfg(target_arch = "x86_64")]
    if let Some(e) = exp_op(op, x.dtype, out_dtype) {
        // exp-based activations on f32: 8 lanes at a time instead of a libm call per element.
        let inp = src.host_slice::<f32>(n)?;
        let o = out.as_mut_slice::<f32>()?;
        o.par_chunks_mut(PAR_CHUNK)
            .zip(inp.par_chunks(PAR_CHUNK))
            .for_each(|(o, i)| {
                // SAFETY: `exp_op` checked the CPU features.
                unsafe { super::simd_avx2::exp_map(e, i, o) }
            });
        return Ok(finish(out, shape));
    }
    crate::dispatch_dtype!(x.dtype, T => {
        let inp = src.host_slice::<T>(n)?;
        crate::dispatch_dtype!(out_dtype, O => {
            let o = out.as_mut_slice::<O>()?;
            o.par_chunks_mut(PAR_CHUNK).zip(inp.par_chunks(PAR_CHUNK)).for_each(|(o, i)| {
                for (o, i) in o.iter_mut().zip(i) {
                    *o = O::from_f32(apply(op, i.to_f32()));
                }
            });
        })
    });
    Ok(finish(out, shape))
}

/// silu(x[…, :n]) · x[…, n:] row by row (`Primitive::Swiglu`).
pub fn swiglu(x: &Arg, shape: &[usize], out_dtype: DType) -> Result<Data> {
    let src = contiguous(x)?;
    let n = *shape.last().unwrap_or(&0);
    let rows = crate::shape::numel(shape) / n.max(1);
    let mut out = alloc(shape, out_dtype)?;
    if n == 0 || rows == 0 {
        return Ok(finish(out, shape));
    }
    // Rows per task: ~PAR_CHUNK outputs, so decode's single row stays on this thread.
    let per = (PAR_CHUNK / n).max(1);
    #[cfg(target_arch = "x86_64")]
    if let Some(e) = exp_op(UnaryOp::Silu, x.dtype, out_dtype) {
        let inp = src.host_slice::<f32>(rows * 2 * n)?;
        let o = out.as_mut_slice::<f32>()?;
        o.par_chunks_mut(per * n)
            .zip(inp.par_chunks(per * 2 * n))
            .for_each(|(o, i)| {
                for (o, i) in o.chunks_exact_mut(n).zip(i.chunks_exact(2 * n)) {
                    let (gate, up) = i.split_at(n);
                    // SAFETY: `exp_op` checked the CPU features.
                    unsafe { super::simd_avx2::exp_map(e, gate, o) };
                    o.iter_mut().zip(up).for_each(|(o, u)| *o *= u);
                }
            });
        return Ok(finish(out, shape));
    }
    crate::dispatch_float!(x.dtype, "swiglu", T => {
        let inp = src.host_slice::<T>(rows * 2 * n)?;
        crate::dispatch_float!(out_dtype, "swiglu", O => {
            let o = out.as_mut_slice::<O>()?;
            o.par_chunks_mut(per * n).zip(inp.par_chunks(per * 2 * n)).for_each(|(o, i)| {
                for (o, i) in o.chunks_exact_mut(n).zip(i.chunks_exact(2 * n)) {
                    let (gate, up) = i.split_at(n);
                    for ((o, g), u) in o.iter_mut().zip(gate).zip(up) {
                        *o = O::from_f32(apply(UnaryOp::Silu, g.to_f32()) * u.to_f32());
                    }
                }
            });
        })
    });
    Ok(finish(out, shape))
}

/// The AVX2 kernel for `op` on f32 → f32, where the CPU has one.
#[cfg(target_arch = "x86_64")]
pub(super) fn exp_op(op: UnaryOp, from: DType, to: DType) -> Option<super::simd_avx2::ExpOp> {
    use super::simd_avx2::{has_avx2, ExpOp};
    if from != DType::F32 || to != DType::F32 || !has_avx2() {
        return None;
    }
    match op {
        UnaryOp::Exp => Some(ExpOp::Exp),
        UnaryOp::Sigmoid => Some(ExpOp::Sigmoid),
        UnaryOp::Silu => Some(ExpOp::Silu),
        _ => None,
    }
}
