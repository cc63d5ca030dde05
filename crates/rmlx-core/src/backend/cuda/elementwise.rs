//! Elementwise primitives on CUDA: unary ops, astype, strided copies, binary ops with
//! broadcasting, and `where`. Semantics follow the CPU backend exactly: float math in f32,
//! integer binary math in i64 (wrapping, Euclidean division, x / 0 = 0), conversions as Rust's
//! `as` (through f32 between floats, through f64 otherwise).

use super::device::CudaDevice;
use super::launch::{base_ptr, c_type, output, ptr_at, source, Launch, Layout};
use crate::array::Data;
use crate::backend::common::broadcast_strides;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::Result;
use crate::primitive::{BinaryOp, UnaryOp};
use std::sync::Arc;

const BODY: &str = include_str!("kernels/elementwise.cu");

/// The f32 expression of a unary op on `v`.
pub(crate) fn unary_expr(op: UnaryOp) -> &'static str {
    use UnaryOp::*;
    match op {
        Neg => "(-v)",
        Abs => "fabsf(v)",
        Exp => "expf(v)",
        Log => "logf(v)",
        Sqrt => "sqrtf(v)",
        Rsqrt => "(1.0f / sqrtf(v))",
        Square => "(v * v)",
        Recip => "(1.0f / v)",
        Sin => "sinf(v)",
        Cos => "cosf(v)",
        Tanh => "tanhf(v)",
        Sigmoid => "(1.0f / (1.0f + expf(-v)))",
        Silu => "(v / (1.0f + expf(-v)))",
        Gelu => "(0.5f * v * (1.0f + rmlx_erf(v / 1.41421356237309504880f)))",
        GeluTanh => {
            "(0.5f * v * (1.0f + tanhf(0.79788456080286535588f * (v + 0.044715f * v * v * v))))"
        }
        Floor => "floorf(v)",
        Ceil => "ceilf(v)",
        Round => "rmlx_round_even(v)",
        LogicalNot => "(v == 0.0f ? 1.0f : 0.0f)",
        Erf => "rmlx_erf(v)",
    }
}

/// The f32 expression of a binary op on `x`, `y` (comparisons give 1 or 0).
pub(crate) fn binary_float_expr(op: BinaryOp) -> &'static str {
    use BinaryOp::*;
    match op {
        Add => "(x + y)",
        Sub => "(x - y)",
        Mul => "(x * y)",
        Div => "(x / y)",
        Maximum => "fmaxf(x, y)",
        Minimum => "fminf(x, y)",
        Pow => "powf(x, y)",
        Eq => "(x == y ? 1.0f : 0.0f)",
        Ne => "(x != y ? 1.0f : 0.0f)",
        Lt => "(x < y ? 1.0f : 0.0f)",
        Le => "(x <= y ? 1.0f : 0.0f)",
        Gt => "(x > y ? 1.0f : 0.0f)",
        Ge => "(x >= y ? 1.0f : 0.0f)",
        LogicalAnd => "((x != 0.0f && y != 0.0f) ? 1.0f : 0.0f)",
        LogicalOr => "((x != 0.0f || y != 0.0f) ? 1.0f : 0.0f)",
    }
}

/// The i64 expression of a binary op on `x`, `y`.
fn binary_int_expr(op: BinaryOp) -> &'static str {
    use BinaryOp::*;
    match op {
        Add => "(i64)((u64)x + (u64)y)",
        Sub => "(i64)((u64)x - (u64)y)",
        Mul => "(i64)((u64)x * (u64)y)",
        Div => "rmlx_div_euclid(x, y)",
        Maximum => "(x > y ? x : y)",
        Minimum => "(x < y ? x : y)",
        Pow => "rmlx_ipow(x, y)",
        Eq => "(i64)(x == y)",
        Ne => "(i64)(x != y)",
        Lt => "(i64)(x < y)",
        Le => "(i64)(x <= y)",
        Gt => "(i64)(x > y)",
        Ge => "(i64)(x >= y)",
        LogicalAnd => "(i64)(x != 0 && y != 0)",
        LogicalOr => "(i64)(x != 0 || y != 0)",
    }
}

fn defines(ti: DType, to: DType, kind: &str, macro_def: &str) -> String {
    format!(
        "#define TI {}\n#define TO {}\n#define {kind}\n{macro_def}\n",
        c_type(ti),
        c_type(to)
    )
}

/// Runs a unary-shaped kernel (`MAP` given) over `x` into a new contiguous output.
fn map(
    dev: &Arc<CudaDevice>,
    key: &str,
    map_def: &str,
    x: &Arg,
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let n = x.numel();
    let (data, out) = output(dev, shape, out_dtype)?;
    let src = || source(&(defines(x.dtype, out_dtype, "RMLX_UNARY", map_def) + BODY));
    if x.is_contiguous() {
        let f = dev.function(key, src, "unary_contig")?;
        let mut launch = Launch::new(f, "unary_contig");
        launch.arg(ptr_at(x, dev)?).arg(out).arg(n as i64);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x is a
        // contiguous view of n elements and `out` a fresh buffer of n (`output`); the kernel's
        // threads index 0..n.
        unsafe { launch.run_1d(dev, n)? };
    } else {
        let f = dev.function(key, src, "unary_strided")?;
        let mut launch = Launch::new(f, "unary_strided");
        launch
            .arg(base_ptr(x, dev)?)
            .arg(Layout::of(x)?)
            .arg(out)
            .arg(n as i64);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x by its
        // base pointer and its own layout (every index the layout yields lies in x's buffer,
        // as the view's do); `out` is a fresh buffer of n; threads index 0..n.
        unsafe { launch.run_1d(dev, n)? };
    }
    Ok(data)
}

pub(crate) fn unary(
    dev: &Arc<CudaDevice>,
    op: UnaryOp,
    x: &Arg,
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let (key, def) = unary_def(op, x.dtype, out_dtype);
    map(dev, &key, &def, x, shape, out_dtype)
}

fn unary_def(op: UnaryOp, ti: DType, to: DType) -> (String, String) {
    let def = format!(
        "#define MAP(e) Num<TO>::from_f32(rmlx_unary_op(Num<TI>::to_f32(e)))\n\
         __device__ __forceinline__ float rmlx_unary_op(float v) {{ return {}; }}",
        unary_expr(op)
    );
    (format!("unary/{op:?}/{ti}/{to}"), def)
}

pub(crate) fn astype(dev: &Arc<CudaDevice>, x: &Arg, shape: &[usize], to: DType) -> Result<Data> {
    let (key, def) = astype_def(x.dtype, to);
    map(dev, &key, def, x, shape, to)
}

fn astype_def(ti: DType, to: DType) -> (String, &'static str) {
    let def = if ti == to {
        "#define MAP(e) (e)"
    } else if ti.is_float() && to.is_float() {
        "#define MAP(e) Num<TO>::from_f32(Num<TI>::to_f32(e))"
    } else {
        "#define MAP(e) Num<TO>::from_f64(Num<TI>::to_f64(e))"
    };
    (format!("astype/{ti}/{to}"), def)
}

/// A row-major copy of any view.
pub(crate) fn copy_contiguous(dev: &Arc<CudaDevice>, x: &Arg) -> Result<Data> {
    astype(dev, x, &x.shape, x.dtype)
}

/// `x` itself when contiguous, else a contiguous copy.
pub(crate) fn contiguous(dev: &Arc<CudaDevice>, x: &Arg) -> Result<Data> {
    if x.is_contiguous() {
        Ok(x.data.clone())
    } else {
        copy_contiguous(dev, x)
    }
}

pub(crate) fn binary(
    dev: &Arc<CudaDevice>,
    op: BinaryOp,
    a: &Arg,
    b: &Arg,
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let n = crate::shape::numel(shape);
    let (data, out) = output(dev, shape, out_dtype)?;
    let (key, def) = binary_def(op, a.dtype, out_dtype);
    let src = || source(&(defines(a.dtype, out_dtype, "RMLX_BINARY", &def) + BODY));
    let full = |x: &Arg| x.is_contiguous() && x.shape == shape;
    if full(a) && full(b) {
        let f = dev.function(&key, src, "binary_contig")?;
        let mut launch = Launch::new(f, "binary_contig");
        launch
            .arg(ptr_at(a, dev)?)
            .arg(ptr_at(b, dev)?)
            .arg(out)
            .arg(n as i64);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); a and b are
        // contiguous views of `shape` (n elements each, `full`), `out` a fresh buffer of n;
        // threads index 0..n.
        unsafe { launch.run_1d(dev, n)? };
    } else if full(a) && b.numel() == 1 {
        let f = dev.function(&key, src, "binary_scalar")?;
        let mut launch = Launch::new(f, "binary_scalar");
        launch
            .arg(ptr_at(a, dev)?)
            .arg(ptr_at(b, dev)?)
            .arg(out)
            .arg(n as i64);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); a is a
        // contiguous view of n elements, b holds one, `out` is a fresh buffer of n; threads
        // index 0..n.
        unsafe { launch.run_1d(dev, n)? };
    } else {
        let f = dev.function(&key, src, "binary_strided")?;
        let mut launch = Launch::new(f, "binary_strided");
        launch
            .arg(base_ptr(a, dev)?)
            .arg(broadcast_layout(a, shape)?)
            .arg(base_ptr(b, dev)?)
            .arg(broadcast_layout(b, shape)?)
            .arg(out)
            .arg(n as i64);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); a and b by
        // base pointer with their layouts broadcast to `shape` (stride 0 on broadcast axes
        // keeps every index inside their views), `out` a fresh buffer of n.
        unsafe { launch.run_1d(dev, n)? };
    }
    Ok(data)
}

fn binary_def(op: BinaryOp, ti: DType, to: DType) -> (String, String) {
    let float = ti.is_float();
    let def = if float {
        format!(
            "#define ZIP(p, q) Num<TO>::from_f32(rmlx_binary_op(Num<TI>::to_f32(p), Num<TI>::to_f32(q)))\n\
             __device__ __forceinline__ float rmlx_binary_op(float x, float y) {{ return {}; }}",
            binary_float_expr(op)
        )
    } else {
        // Integers and bools: i64 math, stored as Rust's `as` (wrapping) or as a bool.
        let store = if to == DType::Bool {
            "Num<bool_t>::from_f64((double)(r))"
        } else {
            "(TO)(r)"
        };
        format!(
            "#define ZIP(p, q) rmlx_store(rmlx_binary_op((i64)Num<TI>::to_f64(p), (i64)Num<TI>::to_f64(q)))\n\
             __device__ __forceinline__ i64 rmlx_binary_op(i64 x, i64 y) {{ return {}; }}\n\
             __device__ __forceinline__ TO rmlx_store(i64 r) {{ return {store}; }}",
            binary_int_expr(op)
        )
    };
    (format!("binary/{op:?}/{ti}/{to}"), def)
}

/// `x`'s view broadcast to `shape`.
fn broadcast_layout(x: &Arg, shape: &[usize]) -> Result<Layout> {
    let strides = broadcast_strides(&x.shape, &x.data.strides, shape);
    Layout::new(shape, &strides, x.data.offset)
}

pub(crate) fn select(
    dev: &Arc<CudaDevice>,
    c: &Arg,
    a: &Arg,
    b: &Arg,
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let n = crate::shape::numel(shape);
    let (data, out) = output(dev, shape, out_dtype)?;
    let key = format!("where/{out_dtype}");
    let src = || source(&(defines(out_dtype, out_dtype, "RMLX_WHERE", "") + BODY));
    let f = dev.function(&key, src, "where_strided")?;
    let mut launch = Launch::new(f, "where_strided");
    launch
        .arg(base_ptr(c, dev)?)
        .arg(broadcast_layout(c, shape)?)
        .arg(base_ptr(a, dev)?)
        .arg(broadcast_layout(a, shape)?)
        .arg(base_ptr(b, dev)?)
        .arg(broadcast_layout(b, shape)?)
        .arg(out)
        .arg(n as i64);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); c, a and b by
    // base pointer with layouts broadcast to `shape` (indices stay in their views), `out` a
    // fresh buffer of n.
    unsafe { launch.run_1d(dev, n)? };
    Ok(data)
}

/// One source per kernel module this family can build, for the NVRTC compile test.
pub(crate) fn sources() -> Vec<(String, String)> {
    use DType::*;
    let floats = [F32, F16, BF16];
    let mut out = Vec::new();
    let mut add = |kind: &str, ti: DType, to: DType, (key, def): (String, String)| {
        out.push((key, source(&(defines(ti, to, kind, &def) + BODY))));
    };
    for op in UNARY_OPS {
        add("RMLX_UNARY", F32, F32, unary_def(op, F32, F32));
    }
    for t in floats {
        add("RMLX_UNARY", t, t, unary_def(UnaryOp::Silu, t, t));
    }
    for ti in DType::ALL {
        for to in DType::ALL {
            let (k, d) = astype_def(ti, to);
            add("RMLX_UNARY", ti, to, (k, d.to_string()));
        }
    }
    for op in BINARY_OPS {
        for t in [F32, I32] {
            let to = if op.is_comparison() { Bool } else { t };
            add("RMLX_BINARY", t, to, binary_def(op, t, to));
        }
    }
    for t in [F16, BF16, U32, U8, Bool] {
        add("RMLX_BINARY", t, t, binary_def(BinaryOp::Add, t, t));
    }
    for t in DType::ALL {
        add("RMLX_WHERE", t, t, (format!("where/{t}"), String::new()));
    }
    out
}

const UNARY_OPS: [UnaryOp; 20] = {
    use UnaryOp::*;
    [
        Neg, Abs, Exp, Log, Sqrt, Rsqrt, Square, Recip, Sin, Cos, Tanh, Sigmoid, Silu, Gelu,
        GeluTanh, Floor, Ceil, Round, LogicalNot, Erf,
    ]
};

const BINARY_OPS: [BinaryOp; 15] = {
    use BinaryOp::*;
    [
        Add, Sub, Mul, Div, Maximum, Minimum, Pow, Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr,
    ]
};
