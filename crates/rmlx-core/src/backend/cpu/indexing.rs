//! Gather/scatter: concat, slice_update (in place when the buffer is ours), take,
//! take_along_axis.

use super::{alloc, contiguous, finish, strided};
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::{Error, Result};
use std::sync::Arc;

/// Reads integer indices (u32 or i32) as usize, checking them against `bound`.
fn indices(idx: &Arg, bound: usize, op: &str) -> Result<Vec<usize>> {
    let d = contiguous(idx)?;
    let n = idx.numel();
    let vals: Vec<i64> = match idx.dtype {
        DType::U32 => d.host_slice::<u32>(n)?.iter().map(|&v| v as i64).collect(),
        DType::I32 => d.host_slice::<i32>(n)?.iter().map(|&v| v as i64).collect(),
        other => {
            return Err(Error::dtype(format!(
                "{op}: expected u32 or i32 indices, found {other}"
            )))
        }
    };
    vals.into_iter()
        .map(|v| {
            if v < 0 || v as usize >= bound {
                Err(Error::shape(format!(
                    "{op}: index {v} is out of range for an axis of size {bound}"
                )))
            } else {
                Ok(v as usize)
            }
        })
        .collect()
}

pub fn concat(axis: usize, inputs: &[Arg], shape: &[usize], dtype: DType) -> Result<Data> {
    let mut out = alloc(shape, dtype)?;
    let es = dtype.size();
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let out_row = shape[axis] * inner * es;
    let dst = out.bytes_mut().expect("owned");
    let mut col = 0;
    for inp in inputs {
        let src = contiguous(inp)?;
        let bytes = &src.host()?.bytes()[src.offset * es..];
        let w = inp.shape[axis] * inner * es;
        for o in 0..outer {
            dst[o * out_row + col..o * out_row + col + w]
                .copy_from_slice(&bytes[o * w..(o + 1) * w]);
        }
        col += w;
    }
    Ok(finish(out, shape))
}

/// Writes `src` into `dst` at `start`. Reuses dst's buffer when this node is its only holder
/// and dst is a whole owned contiguous buffer, which makes KV-cache appends O(new tokens).
pub fn slice_update(
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
    let es = dtype.size();
    let whole = crate::shape::numel(shape).saturating_mul(es);
    let mut data = dst.data;
    let reusable = data.offset == 0
        && data.is_contiguous(shape)
        && data.buffer.len() == whole
        && Arc::get_mut(&mut data.buffer)
            .and_then(|b| b.host_mut().ok())
            .is_some_and(|h| h.bytes_mut().is_some());
    if !reusable {
        data = copy_owned(&data, shape, es)?;
    }
    let buf = Arc::get_mut(&mut data.buffer).expect("unique: checked or freshly copied");
    let bytes = buf
        .host_mut()?
        .bytes_mut()
        .expect("owned: checked or freshly copied");
    write_into(bytes, start, &src, shape, es)?;
    Ok(data)
}

/// An owned row-major copy of any view.
fn copy_owned(data: &Data, shape: &[usize], es: usize) -> Result<Data> {
    let mut out = crate::buffer::HostBuffer::zeroed(crate::shape::numel(shape).saturating_mul(es))?;
    let dst = out.bytes_mut().expect("owned");
    let src = data.host()?.bytes();
    let mut i = 0;
    strided::for_each_offset(shape, &data.strides, data.offset, |o| {
        dst[i * es..(i + 1) * es].copy_from_slice(&src[o * es..(o + 1) * es]);
        i += 1;
    });
    Ok(finish(out, shape))
}

fn write_into(
    dst: &mut [u8],
    start: &[usize],
    src: &Arg,
    shape: &[usize],
    es: usize,
) -> Result<()> {
    let s = contiguous(src)?;
    let sb = &s.host()?.bytes()[s.offset * es..];
    let dst_strides = crate::shape::contiguous_strides(shape);
    let base: usize = start.iter().zip(&dst_strides).map(|(a, b)| a * b).sum();
    let nd = shape.len();
    let inner = if nd == 0 { 1 } else { src.shape[nd - 1] };
    let row = inner * es;
    if nd == 0 {
        dst[..es].copy_from_slice(&sb[..es]);
        return Ok(());
    }
    let outer_shape = &src.shape[..nd - 1];
    let outer_strides = &dst_strides[..nd - 1];
    let mut i = 0;
    strided::for_each_offset(outer_shape, outer_strides, base, |o| {
        dst[o * es..o * es + row].copy_from_slice(&sb[i * row..(i + 1) * row]);
        i += 1;
    });
    Ok(())
}

pub fn take(axis: usize, x: &Arg, idx: &Arg, shape: &[usize], dtype: DType) -> Result<Data> {
    let ids = indices(idx, x.shape[axis], "take")?;
    let src = contiguous(x)?;
    let es = dtype.size();
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product::<usize>() * es;
    let sb = &src.host()?.bytes()[src.offset * es..];
    let mut out = alloc(shape, dtype)?;
    let dst = out.bytes_mut().expect("owned");
    let mut p = 0;
    for o in 0..outer {
        for &i in &ids {
            let s = (o * x.shape[axis] + i) * inner;
            dst[p..p + inner].copy_from_slice(&sb[s..s + inner]);
            p += inner;
        }
    }
    Ok(finish(out, shape))
}

pub fn take_along_axis(
    axis: usize,
    x: &Arg,
    idx: &Arg,
    shape: &[usize],
    dtype: DType,
) -> Result<Data> {
    let ids = indices(idx, x.shape[axis], "take_along_axis")?;
    let src = contiguous(x)?;
    let es = dtype.size();
    let sb = &src.host()?.bytes()[src.offset * es..];
    let xs = crate::shape::contiguous_strides(&x.shape);
    let os = crate::shape::contiguous_strides(shape);
    let mut out = alloc(shape, dtype)?;
    let dst = out.bytes_mut().expect("owned");
    for (flat, &i) in ids.iter().enumerate() {
        // Source offset: same coordinates as the output except along `axis`.
        let mut rem = flat;
        let mut off = 0;
        for d in 0..shape.len() {
            let c = rem / os[d];
            rem %= os[d];
            off += if d == axis { i } else { c } * xs[d];
        }
        dst[flat * es..(flat + 1) * es].copy_from_slice(&sb[off * es..(off + 1) * es]);
    }
    Ok(finish(out, shape))
}
