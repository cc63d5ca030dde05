//! Binary elementwise ops with broadcasting, and `where`. Inputs arrive already promoted to a
//! common dtype (ops/ inserts the casts); comparisons write bool.

use super::{alloc, finish, strided};
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::primitive::BinaryOp;
use rayon::prelude::*;

use super::unary::PAR_CHUNK;

#[inline(always)]
pub(crate) fn apply(op: BinaryOp, a: f32, b: f32) -> f32 {
    use BinaryOp::*;
    let t = |c: bool| if c { 1.0 } else { 0.0 };
    match op {
        Add => a + b,
        Sub => a - b,
        Mul => a * b,
        Div => a / b,
        Maximum => a.max(b),
        Minimum => a.min(b),
        Pow => a.powf(b),
        Eq => t(a == b),
        Ne => t(a != b),
        Lt => t(a < b),
        Le => t(a <= b),
        Gt => t(a > b),
        Ge => t(a >= b),
        LogicalAnd => t(a != 0.0 && b != 0.0),
        LogicalOr => t(a != 0.0 || b != 0.0),
    }
}

#[inline(always)]
fn apply_int(op: BinaryOp, a: i64, b: i64) -> i64 {
    use BinaryOp::*;
    let t = |c: bool| c as i64;
    match op {
        Add => a.wrapping_add(b),
        Sub => a.wrapping_sub(b),
        Mul => a.wrapping_mul(b),
        Div => {
            if b == 0 {
                0
            } else {
                a.div_euclid(b)
            }
        }
        Maximum => a.max(b),
        Minimum => a.min(b),
        Pow => a.wrapping_pow(b.clamp(0, u32::MAX as i64) as u32),
        Eq => t(a == b),
        Ne => t(a != b),
        Lt => t(a < b),
        Le => t(a <= b),
        Gt => t(a > b),
        Ge => t(a >= b),
        LogicalAnd => t(a != 0 && b != 0),
        LogicalOr => t(a != 0 || b != 0),
    }
}

trait IntLike: Element {
    fn to_i64(self) -> i64;
    fn from_i64(v: i64) -> Self;
}

macro_rules! int_like {
    ($($t:ty),*) => {$(
        impl IntLike for $t {
            fn to_i64(self) -> i64 { self as i64 }
            fn from_i64(v: i64) -> Self { v as $t }
        }
    )*};
}
int_like!(i32, u32, u8);

/// How the other operand of `f32_fast` lines up with a full contiguous one.
#[derive(Clone, Copy)]
enum Other {
    /// Contiguous, the output's shape.
    Full,
    /// A single value.
    Scalar,
    /// One value for every row of `inner` elements (shape (…, 1), e.g. MoE routing weights).
    Rows(usize),
}

/// The arithmetic ops on f32 where one input is contiguous in the output's shape and the
/// other is too, or holds one value per row or in all: the op is chosen once outside the
/// loop, so the loop vectorizes (the generic path matches the op per element and walks
/// offset tables). Returns false for every other case.
fn f32_fast(
    op: BinaryOp,
    a: &Arg,
    b: &Arg,
    shape: &[usize],
    out: &mut crate::buffer::HostBuffer,
) -> Result<bool> {
    use BinaryOp::*;
    let n: usize = shape.iter().product();
    let inner = *shape.last().unwrap_or(&1);
    let full = |x: &Arg| x.is_contiguous() && x.shape == shape;
    let other = |x: &Arg| {
        if full(x) {
            Some(Other::Full)
        } else if x.numel() == 1 {
            Some(Other::Scalar)
        } else if x.is_contiguous()
            && x.shape.len() == shape.len()
            && x.shape.last() == Some(&1)
            && x.shape[..x.shape.len() - 1] == shape[..shape.len() - 1]
        {
            Some(Other::Rows(inner))
        } else {
            None
        }
    };
    // `f` gets (full operand, other operand); `swap` when the full one is b.
    let (x, y, how, swap) = if full(a) {
        match other(b) {
            Some(how) => (a, b, how, false),
            None => return Ok(false),
        }
    } else if full(b) {
        match other(a) {
            Some(how) => (b, a, how, true),
            None => return Ok(false),
        }
    } else {
        return Ok(false);
    };
    if n == 0 {
        return Ok(true);
    }
    let xv = &x.data.host()?.as_slice::<f32>()?[x.data.offset..][..n];
    let yv = &y.data.host()?.as_slice::<f32>()?[y.data.offset..][..y.numel()];
    let o = out.as_mut_slice::<f32>()?;
    fn run(o: &mut [f32], xv: &[f32], yv: &[f32], how: Other, f: impl Fn(f32, f32) -> f32 + Sync) {
        // Chunks of whole rows, so each chunk's rows start at a row boundary.
        let chunk = match how {
            Other::Full | Other::Scalar => PAR_CHUNK,
            Other::Rows(r) => (PAR_CHUNK / r).max(1) * r,
        };
        o.par_chunks_mut(chunk).enumerate().for_each(|(c, o)| {
            let x = &xv[c * chunk..][..o.len()];
            match how {
                Other::Full => {
                    for ((o, x), y) in o.iter_mut().zip(x).zip(&yv[c * chunk..]) {
                        *o = f(*x, *y);
                    }
                }
                Other::Scalar => {
                    for (o, x) in o.iter_mut().zip(x) {
                        *o = f(*x, yv[0]);
                    }
                }
                Other::Rows(r) => {
                    for (i, (o, x)) in o.chunks_mut(r).zip(x.chunks(r)).enumerate() {
                        let y = yv[(c * chunk) / r + i];
                        for (o, x) in o.iter_mut().zip(x) {
                            *o = f(*x, y);
                        }
                    }
                }
            }
        });
    }
    macro_rules! go {
        ($f:expr) => {{
            let f = $f;
            if swap {
                run(o, xv, yv, how, |x, y| f(y, x))
            } else {
                run(o, xv, yv, how, f)
            }
        }};
    }
    match op {
        Add => go!(|x: f32, y: f32| x + y),
        Sub => go!(|x: f32, y: f32| x - y),
        Mul => go!(|x: f32, y: f32| x * y),
        Div => go!(|x: f32, y: f32| x / y),
        Maximum => go!(f32::max),
        Minimum => go!(f32::min),
        _ => return Ok(false),
    }
    Ok(true)
}

/// `x` copied contiguous when it has the output's shape but not contiguous strides.
fn dense_rows(x: &Arg, shape: &[usize]) -> Result<Option<Arg>> {
    if x.shape != shape || x.is_contiguous() {
        return Ok(None);
    }
    Ok(Some(Arg {
        data: super::contiguous(x)?,
        shape: x.shape.clone(),
        dtype: x.dtype,
    }))
}

pub fn binary(op: BinaryOp, a: &Arg, b: &Arg, shape: &[usize], out_dtype: DType) -> Result<Data> {
    // A strided input of the output's shape (e.g. a slice of a fused projection) is copied
    // contiguous first, whole rows at a time: far cheaper than the element-offset walk below
    // (prefill's silu(gate) · up: 13 ms → under 1 ms per call).
    let (ca, cb) = (dense_rows(a, shape)?, dense_rows(b, shape)?);
    let (a, b) = (ca.as_ref().unwrap_or(a), cb.as_ref().unwrap_or(b));
    let mut out = alloc(shape, out_dtype)?;
    if out_dtype == DType::F32 && a.dtype == DType::F32 && f32_fast(op, a, b, shape, &mut out)? {
        return Ok(finish(out, shape));
    }
    let sa = strided::broadcast_strides(&a.shape, &a.data.strides, shape);
    let sb = strided::broadcast_strides(&b.shape, &b.data.strides, shape);
    let n: usize = shape.iter().product();
    let both_contig =
        a.is_contiguous() && b.is_contiguous() && a.shape == shape && b.shape == shape;
    let scalar_b = b.numel() == 1;
    macro_rules! run {
        ($T:ty, $O:ty, $f:expr) => {{
            let av = a.data.host()?.as_slice::<$T>()?;
            let bv = b.data.host()?.as_slice::<$T>()?;
            let o = out.as_mut_slice::<$O>()?;
            let f = $f;
            if both_contig {
                let (av, bv) = (
                    &av[a.data.offset..a.data.offset + n],
                    &bv[b.data.offset..b.data.offset + n],
                );
                o.par_chunks_mut(PAR_CHUNK).enumerate().for_each(|(c, o)| {
                    let base = c * PAR_CHUNK;
                    for (i, o) in o.iter_mut().enumerate() {
                        *o = f(av[base + i], bv[base + i]);
                    }
                });
            } else if scalar_b && a.is_contiguous() && a.shape == shape {
                let av = &av[a.data.offset..a.data.offset + n];
                let bs = bv[b.data.offset];
                o.par_chunks_mut(PAR_CHUNK)
                    .zip(av.par_chunks(PAR_CHUNK))
                    .for_each(|(o, av)| {
                        for (o, x) in o.iter_mut().zip(av) {
                            *o = f(*x, bs);
                        }
                    });
            } else {
                let oa = strided::offsets(shape, &sa, a.data.offset);
                let ob = strided::offsets(shape, &sb, b.data.offset);
                o.par_chunks_mut(PAR_CHUNK).enumerate().for_each(|(c, o)| {
                    let base = c * PAR_CHUNK;
                    for (i, o) in o.iter_mut().enumerate() {
                        *o = f(av[oa[base + i]], bv[ob[base + i]]);
                    }
                });
            }
        }};
    }
    let cmp = op.is_comparison();
    match a.dtype {
        DType::F32 | DType::F16 | DType::BF16 => crate::dispatch_float!(a.dtype, "binary", T => {
            if cmp {
                run!(T, bool, |x: T, y: T| apply(op, x.to_f32(), y.to_f32()) != 0.0)
            } else {
                run!(T, T, |x: T, y: T| T::from_f32(apply(op, x.to_f32(), y.to_f32())))
            }
        }),
        DType::I32 => int_run::<i32>(op, cmp, &mut out, a, b, shape)?,
        DType::U32 => int_run::<u32>(op, cmp, &mut out, a, b, shape)?,
        DType::U8 => int_run::<u8>(op, cmp, &mut out, a, b, shape)?,
        DType::Bool => run!(bool, bool, |x: bool, y: bool| apply_int(
            op, x as i64, y as i64
        ) != 0),
    }
    Ok(finish(out, shape))
}

fn int_run<T: IntLike>(
    op: BinaryOp,
    cmp: bool,
    out: &mut crate::buffer::HostBuffer,
    a: &Arg,
    b: &Arg,
    shape: &[usize],
) -> Result<()> {
    let av = a.data.host()?.as_slice::<T>()?;
    let bv = b.data.host()?.as_slice::<T>()?;
    let sa = strided::broadcast_strides(&a.shape, &a.data.strides, shape);
    let sb = strided::broadcast_strides(&b.shape, &b.data.strides, shape);
    let oa = strided::offsets(shape, &sa, a.data.offset);
    let ob = strided::offsets(shape, &sb, b.data.offset);
    if cmp {
        let o = out.as_mut_slice::<bool>()?;
        for i in 0..o.len() {
            o[i] = apply_int(op, av[oa[i]].to_i64(), bv[ob[i]].to_i64()) != 0;
        }
    } else {
        let o = out.as_mut_slice::<T>()?;
        for i in 0..o.len() {
            o[i] = T::from_i64(apply_int(op, av[oa[i]].to_i64(), bv[ob[i]].to_i64()));
        }
    }
    Ok(())
}

/// where(cond, a, b) with broadcasting; a and b share the output dtype.
pub fn select(c: &Arg, a: &Arg, b: &Arg, shape: &[usize], out_dtype: DType) -> Result<Data> {
    let mut out = alloc(shape, out_dtype)?;
    let oc = strided::offsets(
        shape,
        &strided::broadcast_strides(&c.shape, &c.data.strides, shape),
        c.data.offset,
    );
    let oa = strided::offsets(
        shape,
        &strided::broadcast_strides(&a.shape, &a.data.strides, shape),
        a.data.offset,
    );
    let ob = strided::offsets(
        shape,
        &strided::broadcast_strides(&b.shape, &b.data.strides, shape),
        b.data.offset,
    );
    let cv = c.data.host()?.as_slice::<bool>()?;
    crate::dispatch_dtype!(out_dtype, T => {
        let av = a.data.host()?.as_slice::<T>()?;
        let bv = b.data.host()?.as_slice::<T>()?;
        let o = out.as_mut_slice::<T>()?;
        for i in 0..o.len() {
            o[i] = if cv[oc[i]] { av[oa[i]] } else { bv[ob[i]] };
        }
    });
    Ok(finish(out, shape))
}
