//! Reductions on CUDA: sum/max/min/prod over any axes of any view, argmax/argmin, softmax,
//! logsumexp, top-k and swiglu. Semantics follow `backend/cpu/reduce.rs` exactly: sums and
//! products accumulate in f64, max/min ignore NaN, argmax/argmin take the first best index (NaN
//! never wins unless first), row-wise ops compute in f32 over the last axis.

use super::device::CudaDevice;
use super::elementwise::contiguous;
use super::launch::{base_ptr, c_type, output, ptr_at, source, Launch, Layout};
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::{ArgReduceOp, ReduceOp};
use std::sync::Arc;

const BODY: &str = include_str!("kernels/reduce.cu");
const ROWOPS: &str = include_str!("kernels/rowops.cuh");

fn src(ti: DType, to: DType, defs: &str) -> String {
    source(&format!(
        "#define TI {}\n#define TO {}\n{defs}\n{ROWOPS}\n{BODY}",
        c_type(ti),
        c_type(to)
    ))
}

/// Threads for a block working on rows of `len`: a multiple of 32, at most `max`.
fn block_for(len: usize, max: usize) -> u32 {
    (len.div_ceil(32) * 32).clamp(32, max) as u32
}

/// Grid of one block per row (rows beyond it are strided by the kernels).
fn grid_rows(rows: usize) -> u32 {
    rows.clamp(1, 1 << 20) as u32
}

pub(crate) fn float_only(dtype: DType, op: &str) -> Result<()> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(Error::dtype(format!(
            "{op}: expected a float dtype, found {dtype}"
        )))
    }
}

fn reduce_key(op: ReduceOp, ti: DType, to: DType) -> (String, String) {
    let def = match op {
        ReduceOp::Sum => "OP_SUM",
        ReduceOp::Prod => "OP_PROD",
        ReduceOp::Max => "OP_MAX",
        ReduceOp::Min => "OP_MIN",
    };
    (
        format!("reduce/{op:?}/{ti}/{to}"),
        format!("#define RMLX_REDUCE\n#define {def}"),
    )
}

/// Kept (outer) and reduced (inner) views of `x`, as the CPU's `split_axes`.
fn split(x: &Arg, axes: &[usize]) -> Result<(Layout, Layout, usize, usize)> {
    let (mut ks, mut kst, mut rs, mut rst) = (vec![], vec![], vec![], vec![]);
    for i in 0..x.shape.len() {
        if axes.contains(&i) {
            rs.push(x.shape[i]);
            rst.push(x.data.strides[i]);
        } else {
            ks.push(x.shape[i]);
            kst.push(x.data.strides[i]);
        }
    }
    let (m, r) = (ks.iter().product(), rs.iter().product());
    Ok((
        Layout::new(&ks, &kst, x.data.offset)?,
        Layout::new(&rs, &rst, 0)?,
        m,
        r,
    ))
}

/// The stride of the innermost non-unit dim of a view (0 if it has none).
fn inner_stride(shape: &[usize], strides: &[usize], axes: &[usize], kept: bool) -> usize {
    (0..shape.len())
        .rev()
        .find(|&i| axes.contains(&i) != kept && shape[i] != 1)
        .map_or(0, |i| strides[i])
}

pub(crate) fn reduce(
    dev: &Arc<CudaDevice>,
    op: ReduceOp,
    axes: &[usize],
    x: &Arg,
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let (kept, red, m, r) = split(x, axes)?;
    let (data, out) = output(dev, shape, out_dtype)?;
    if m == 0 {
        return Ok(data);
    }
    let (key, defs) = reduce_key(op, x.dtype, out_dtype);
    let s = || src(x.dtype, out_dtype, &defs);
    let xp = base_ptr(x, dev)?;
    let (sh, st) = (&x.shape, &x.data.strides);
    let red_contig = inner_stride(sh, st, axes, false) == 1;
    let kept_contig = inner_stride(sh, st, axes, true) == 1;
    let by_thread =
        r <= 16 || (!red_contig && kept_contig && m >= 512) || (!red_contig && m >= 8192);
    if by_thread {
        let f = dev.function(&key, s, "reduce_cols")?;
        let mut launch = Launch::new(f, "reduce_cols");
        launch
            .arg(xp)
            .arg(kept)
            .arg(red)
            .arg(out)
            .arg(m as i64)
            .arg(r as i64);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x by base
        // pointer with the kept/reduced layouts of its own view (m × r indices inside it),
        // `out` a fresh buffer of m; one thread per output.
        unsafe { launch.run_1d(dev, m)? };
    } else if m < 128 && r >= 1 << 15 {
        // Few long rows: split each over up to 512 blocks, then reduce the f64 partials.
        let parts = r.div_ceil(8192).min(512);
        let chunk = r.div_ceil(parts);
        let part = dev.alloc(m * parts * 8)?;
        let f = dev.function(&key, s, "reduce_partial")?;
        let mut launch = Launch::new(f, "reduce_partial");
        launch
            .arg(xp)
            .arg(kept)
            .arg(red)
            .arg(part.ptr())
            .arg(r as i64)
            .arg(chunk as i64);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x with the
        // kept/reduced layouts of its view, `part` a fresh buffer of m · parts f64; block (p,
        // i) reduces chunk p of row i.
        unsafe { launch.run(dev, (parts as u32, m as u32, 1), (256, 1, 1), 0)? };
        let f = dev.function(&key, s, "reduce_finish")?;
        let mut launch = Launch::new(f, "reduce_finish");
        launch
            .arg(part.ptr())
            .arg(out)
            .arg(m as i64)
            .arg(parts as i64);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); `part`
        // holds m · parts f64 written by the kernel before it on this stream, `out` a fresh
        // buffer of m.
        unsafe { launch.run(dev, (grid_rows(m), 1, 1), (block_for(parts, 256), 1, 1), 0)? };
        // `part` is freed here: stream-ordered reuse queues any next writer behind these kernels.
        drop(part);
    } else {
        let f = dev.function(&key, s, "reduce_rows")?;
        let mut launch = Launch::new(f, "reduce_rows");
        launch
            .arg(xp)
            .arg(kept)
            .arg(red)
            .arg(out)
            .arg(m as i64)
            .arg(r as i64);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x with the
        // kept/reduced layouts of its view (m × r indices inside it), `out` a fresh buffer of
        // m; one block per row.
        unsafe { launch.run(dev, (grid_rows(m), 1, 1), (block_for(r, 256), 1, 1), 0)? };
    }
    Ok(data)
}

fn arg_key(ti: DType) -> (String, String) {
    (format!("argreduce/{ti}"), "#define RMLX_ARG".into())
}

pub(crate) fn arg_reduce(
    dev: &Arc<CudaDevice>,
    op: ArgReduceOp,
    axis: usize,
    x: &Arg,
    shape: &[usize],
) -> Result<Data> {
    let (kept, _, m, r) = split(x, &[axis])?;
    let (data, out) = output(dev, shape, DType::U32)?;
    if m == 0 {
        return Ok(data);
    }
    if r == 0 {
        return Err(Error::shape("argmax: cannot reduce an empty axis"));
    }
    let (key, defs) = arg_key(x.dtype);
    let s = || src(x.dtype, DType::U32, &defs);
    let stride = x.data.strides[axis] as i64;
    let sign = match op {
        ArgReduceOp::ArgMax => 1f32,
        ArgReduceOp::ArgMin => -1f32,
    };
    let kept_contig = inner_stride(&x.shape, &x.data.strides, &[axis], true) == 1;
    if m <= 16 && r >= 16384 {
        // A block per row would scan 100k+ logits alone: split the rows across the GPU.
        let chunks = r.div_ceil(4096).min(256);
        let part = dev.alloc(m * chunks * 8)?;
        let f = dev.function(&key, s, "arg_part")?;
        let mut launch = Launch::new(f, "arg_part");
        launch
            .arg(base_ptr(x, dev)?)
            .arg(kept)
            .arg(stride)
            .arg(part.ptr())
            .arg(r as i64)
            .arg(sign);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x by base
        // pointer with the kept layout and reduced-axis stride of its view (m × r indices
        // inside it), `part` a fresh buffer of m · chunks (value, index) pairs.
        unsafe { launch.run(dev, (chunks as u32, m as u32, 1), (256, 1, 1), 0)? };
        let (key, defs) = arg_key(x.dtype);
        let f = dev.function(&key, || src(x.dtype, DType::U32, &defs), "arg_merge")?;
        let mut launch = Launch::new(f, "arg_merge");
        launch
            .arg(base_ptr(x, dev)?)
            .arg(kept)
            .arg(part.ptr())
            .arg(out)
            .arg(chunks as i64)
            .arg(sign);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x as for
        // arg_part, `part` the m · chunks pairs written by arg_part before it on this stream,
        // `out` a fresh buffer of m u32.
        unsafe { launch.run(dev, (m as u32, 1, 1), (block_for(chunks, 256), 1, 1), 0)? };
        // `part` is freed stream-ordered, after the merge.
        return Ok(data);
    }
    let name = if r <= 16 || (stride != 1 && kept_contig && m >= 512) {
        "arg_cols"
    } else {
        "arg_rows"
    };
    let f = dev.function(&key, s, name)?;
    let mut l = Launch::new(f, name);
    l.arg(base_ptr(x, dev)?)
        .arg(kept)
        .arg(stride)
        .arg(out)
        .arg(m as i64)
        .arg(r as i64)
        .arg(sign);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x by base
    // pointer with the kept layout and reduced-axis stride of its view (m × r indices inside
    // it), `out` a fresh buffer of m u32.
    unsafe {
        if name == "arg_cols" {
            l.run_1d(dev, m)?;
        } else {
            l.run(dev, (grid_rows(m), 1, 1), (block_for(r, 256), 1, 1), 0)?;
        }
    }
    Ok(data)
}

/// Rows of the last axis of `x` (contiguous), as (input, rows, row length).
fn rows_of(dev: &Arc<CudaDevice>, x: &Arg) -> Result<(Arg, usize, usize)> {
    let d = *x.shape.last().unwrap_or(&1);
    let rows = x.numel() / d.max(1);
    let data = contiguous(dev, x)?;
    Ok((
        Arg {
            data,
            shape: x.shape.clone(),
            dtype: x.dtype,
        },
        rows,
        d,
    ))
}

fn row_op(
    dev: &Arc<CudaDevice>,
    kind: &str,
    entry: &'static str,
    x: &Arg,
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    float_only(x.dtype, entry)?;
    let (xc, rows, d) = rows_of(dev, x)?;
    let (data, out) = output(dev, shape, out_dtype)?;
    if crate::shape::numel(shape) == 0 {
        return Ok(data);
    }
    let key = format!("{kind}/{}/{out_dtype}", x.dtype);
    let defs = format!("#define RMLX_{}", kind.to_uppercase());
    let f = dev.function(&key, || src(x.dtype, out_dtype, &defs), entry)?;
    let mut launch = Launch::new(f, entry);
    launch
        .arg(ptr_at(&xc, dev)?)
        .arg(out)
        .arg(rows as i64)
        .arg(d as i64);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); `xc` is a
    // contiguous copy of rows·d values, `out` a fresh buffer of rows·d; one block per row.
    unsafe { launch.run(dev, (grid_rows(rows), 1, 1), (block_for(d, 256), 1, 1), 0)? };
    Ok(data)
}

pub(crate) fn softmax(
    dev: &Arc<CudaDevice>,
    x: &Arg,
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    row_op(dev, "softmax", "softmax_rows", x, shape, out_dtype)
}

pub(crate) fn logsumexp(
    dev: &Arc<CudaDevice>,
    x: &Arg,
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    row_op(dev, "lse", "logsumexp_rows", x, shape, out_dtype)
}

pub(crate) fn topk(dev: &Arc<CudaDevice>, k: usize, x: &Arg, shape: &[usize]) -> Result<Data> {
    let (xc, rows, d) = rows_of(dev, x)?;
    let (data, out) = output(dev, shape, DType::U32)?;
    if rows == 0 || k == 0 {
        return Ok(data);
    }
    let key = format!("topk/{}", x.dtype);
    let f = dev.function(
        &key,
        || src(x.dtype, DType::U32, "#define RMLX_TOPK"),
        "topk_rows",
    )?;
    let mut launch = Launch::new(f, "topk_rows");
    launch
        .arg(ptr_at(&xc, dev)?)
        .arg(out)
        .arg(rows as i64)
        .arg(d as i64)
        .arg(k as i64);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); `xc` is a
    // contiguous copy of rows·d values, `out` a fresh buffer of rows·k indices (k ≤ d, checked
    // by the op).
    unsafe { launch.run(dev, (grid_rows(rows), 1, 1), (block_for(d, 256), 1, 1), 0)? };
    Ok(data)
}

pub(crate) fn swiglu(
    dev: &Arc<CudaDevice>,
    x: &Arg,
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    float_only(x.dtype, "swiglu")?;
    float_only(out_dtype, "swiglu")?;
    let n = *shape.last().unwrap_or(&0);
    let total = crate::shape::numel(shape);
    let (data, out) = output(dev, shape, out_dtype)?;
    if total == 0 {
        return Ok(data);
    }
    let xc = contiguous(dev, x)?;
    let xc = Arg {
        data: xc,
        shape: x.shape.clone(),
        dtype: x.dtype,
    };
    let key = format!("swiglu/{}/{out_dtype}", x.dtype);
    let f = dev.function(
        &key,
        || src(x.dtype, out_dtype, "#define RMLX_SWIGLU"),
        "swiglu",
    )?;
    let mut launch = Launch::new(f, "swiglu");
    launch
        .arg(ptr_at(&xc, dev)?)
        .arg(out)
        .arg((total / n) as i64)
        .arg(n as i64);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); `xc` is a
    // contiguous copy of total / n rows of 2n values, `out` a fresh buffer of total = rows·n.
    unsafe { launch.run_1d(dev, total)? };
    Ok(data)
}

/// One source per kernel module this family can build, for the NVRTC compile test.
pub(crate) fn sources() -> Vec<(String, String)> {
    use DType::*;
    let mut out = Vec::new();
    for op in [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min] {
        let (k, d) = reduce_key(op, F32, F32);
        out.push((k, src(F32, F32, &d)));
    }
    for (ti, to) in [
        (F16, F16),
        (BF16, BF16),
        (I32, I32),
        (U8, I32),
        (Bool, I32),
        (U32, U32),
    ] {
        let (k, d) = reduce_key(ReduceOp::Sum, ti, to);
        out.push((k, src(ti, to, &d)));
    }
    let (k, d) = reduce_key(ReduceOp::Max, BF16, BF16);
    out.push((k, src(BF16, BF16, &d)));
    for t in [F32, BF16, I32] {
        let (k, d) = arg_key(t);
        out.push((k, src(t, U32, &d)));
        out.push((format!("topk/{t}"), src(t, U32, "#define RMLX_TOPK")));
    }
    for t in [F32, F16, BF16] {
        for kind in ["softmax", "lse", "swiglu"] {
            let defs = format!("#define RMLX_{}", kind.to_uppercase());
            out.push((format!("{kind}/{t}/{t}"), src(t, t, &defs)));
        }
    }
    out
}
