//! Gather/scatter on CUDA: concat, slice_update (in place when dst's buffer is ours: the KV-cache
//! append), take and take_along_axis, as `backend/cpu/indexing.rs`. Elements move as bits, so
//! kernels are built per element size and index type, not per dtype.
//!
//! Out-of-range indices: the CPU reports an error while reading them; a kernel cannot without
//! synchronizing the host, so here they read as zeros.

use super::device::CudaDevice;
use super::elementwise::{contiguous, copy_contiguous};
use super::launch::{base_ptr, cuda_buffer, output, ptr_at, source, Launch, Layout};
use crate::array::Data;
use crate::backend::Arg;
use crate::buffer::Buffer;
use crate::dtype::DType;
use crate::error::{Error, Result};
use std::sync::Arc;

const BODY: &str = include_str!("kernels/indexing.cu");

fn elem_type(es: usize) -> &'static str {
    match es {
        1 => "u8",
        2 => "unsigned short",
        _ => "u32",
    }
}

fn key_src(es: usize, idx: DType) -> (String, String) {
    let it = if idx == DType::U32 { "u32" } else { "int" };
    (
        format!("indexing/{es}/{it}"),
        source(&format!(
            "#define TE {}\n#define IT {it}\n{BODY}",
            elem_type(es)
        )),
    )
}

fn func(dev: &Arc<CudaDevice>, es: usize, idx: DType, entry: &str) -> Result<super::device::Func> {
    let (key, s) = key_src(es, idx);
    dev.function(&key, || s, entry)
}

fn check_index(idx: &Arg, op: &str) -> Result<()> {
    match idx.dtype {
        DType::U32 | DType::I32 => Ok(()),
        other => Err(Error::dtype(format!(
            "{op}: expected u32 or i32 indices, found {other}"
        ))),
    }
}

fn contiguous_arg(dev: &Arc<CudaDevice>, a: &Arg) -> Result<Arg> {
    Ok(Arg {
        data: contiguous(dev, a)?,
        shape: a.shape.clone(),
        dtype: a.dtype,
    })
}

pub(crate) fn concat(
    dev: &Arc<CudaDevice>,
    axis: usize,
    inputs: &[Arg],
    shape: &[usize],
    dtype: DType,
) -> Result<Data> {
    let (data, out) = output(dev, shape, dtype)?;
    let es = dtype.size();
    let inner: usize = shape[axis + 1..].iter().product();
    let out_row = shape[axis] * inner;
    let mut col = 0;
    for inp in inputs {
        if inp.dtype != dtype {
            return Err(Error::dtype(format!(
                "concat: expected {dtype} inputs, found {}",
                inp.dtype
            )));
        }
        let w = inp.shape[axis] * inner;
        let n = inp.numel();
        if n > 0 {
            let f = func(dev, es, DType::I32, "concat_part")?;
            let mut launch = Launch::new(f, "concat_part");
            launch
                .arg(base_ptr(inp, dev)?)
                .arg(Layout::of(inp)?)
                .arg(out)
                .arg(n as i64)
                .arg(w as i64)
                .arg(out_row as i64)
                .arg(col as i64);
            // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); the
            // input by base pointer and its own layout (n elements); it lands in columns
            // col..col + w of rows of `out_row` in `out`, a fresh buffer of `shape` whose rows
            // hold every input's columns (w summed over inputs is out_row).
            unsafe { launch.run_1d(dev, n)? };
        }
        col += w;
    }
    Ok(data)
}

/// Writes `src` into `dst` at `start`. Reuses dst's buffer when this node is its only holder
/// and dst is a whole contiguous buffer (KV-cache appends then cost O(new tokens)); otherwise
/// copies dst first, leaving the original untouched.
pub(crate) fn slice_update(
    dev: &Arc<CudaDevice>,
    start: &[usize],
    inputs: Vec<Arg>,
    shape: &[usize],
    dtype: DType,
) -> Result<Data> {
    let mut it = inputs.into_iter();
    let (Some(dst), Some(src)) = (it.next(), it.next()) else {
        return Err(Error::msg(
            "slice_update: internal error: expected dst and src inputs",
        ));
    };
    if src.dtype != dtype || dst.dtype != dtype {
        return Err(Error::dtype(
            "slice_update: dst, src and output dtypes differ",
        ));
    }
    let es = dtype.size();
    let whole = crate::shape::numel(shape) * es;
    let dst_shape = dst.shape.clone();
    let mut data = dst.data;
    let reusable = data.offset == 0
        && data.is_contiguous(shape)
        && data.buffer.len() == whole
        && matches!(Arc::get_mut(&mut data.buffer), Some(Buffer::Device(_)));
    if !reusable {
        let view = Arg {
            data,
            shape: dst_shape,
            dtype,
        };
        data = copy_contiguous(dev, &view)?;
    }
    let n = src.numel();
    if n == 0 {
        return Ok(data);
    }
    let strides = crate::shape::contiguous_strides(shape);
    let base: usize = start.iter().zip(&strides).map(|(a, b)| a * b).sum();
    let ld = Layout::new(&src.shape, &strides, base)?;
    let out = cuda_buffer(&data, dev)?.ptr();
    let f = func(dev, es, DType::I32, "scatter_view")?;
    let mut launch = Launch::new(f, "scatter_view");
    launch
        .arg(base_ptr(&src, dev)?)
        .arg(Layout::of(&src)?)
        .arg(out)
        .arg(ld)
        .arg(n as i64);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); src by base
    // pointer and its layout (n elements); `ld` places them at `start` in `data`, an owned
    // contiguous buffer of `shape`, where the op checked that start + src's shape fits.
    unsafe { launch.run_1d(dev, n)? };
    Ok(data)
}

pub(crate) fn take(
    dev: &Arc<CudaDevice>,
    axis: usize,
    x: &Arg,
    idx: &Arg,
    shape: &[usize],
    dtype: DType,
) -> Result<Data> {
    check_index(idx, "take")?;
    let (data, out) = output(dev, shape, dtype)?;
    let n = crate::shape::numel(shape);
    if n == 0 {
        return Ok(data);
    }
    let (xc, ic) = (contiguous_arg(dev, x)?, contiguous_arg(dev, idx)?);
    let inner: usize = x.shape[axis + 1..].iter().product();
    let f = func(dev, dtype.size(), idx.dtype, "take_axis")?;
    let mut launch = Launch::new(f, "take_axis");
    launch
        .arg(ptr_at(&xc, dev)?)
        .arg(ptr_at(&ic, dev)?)
        .arg(out)
        .arg(n as i64)
        .arg(idx.numel() as i64)
        .arg(inner as i64)
        .arg(x.shape[axis] as i64);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x and idx are
    // contiguous copies; the kernel reads x only for indices in 0..axis_len (others give
    // zeros), idx for positions < idx.numel(), and writes `out` (a fresh buffer of n =
    // numel(shape)).
    unsafe { launch.run_1d(dev, n)? };
    Ok(data)
}

pub(crate) fn take_along_axis(
    dev: &Arc<CudaDevice>,
    axis: usize,
    x: &Arg,
    idx: &Arg,
    shape: &[usize],
    dtype: DType,
) -> Result<Data> {
    check_index(idx, "take_along_axis")?;
    let (data, out) = output(dev, shape, dtype)?;
    let n = crate::shape::numel(shape);
    if n == 0 {
        return Ok(data);
    }
    let (xc, ic) = (contiguous_arg(dev, x)?, contiguous_arg(dev, idx)?);
    let inner: usize = shape[axis + 1..].iter().product();
    let f = func(dev, dtype.size(), idx.dtype, "take_along")?;
    let mut launch = Launch::new(f, "take_along");
    launch
        .arg(ptr_at(&xc, dev)?)
        .arg(ptr_at(&ic, dev)?)
        .arg(out)
        .arg(n as i64)
        .arg(shape[axis] as i64)
        .arg(inner as i64)
        .arg(x.shape[axis] as i64);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x and idx are
    // contiguous copies of their shapes; x is read only for indices in 0..axis_len (others
    // give zeros), and `out` is a fresh buffer of n.
    unsafe { launch.run_1d(dev, n)? };
    Ok(data)
}

/// One source per kernel module this family can build, for the NVRTC compile test.
pub(crate) fn sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for es in [1, 2, 4] {
        for idx in [DType::I32, DType::U32] {
            out.push(key_src(es, idx));
        }
    }
    out
}
