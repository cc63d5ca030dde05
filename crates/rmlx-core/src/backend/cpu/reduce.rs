//! Reductions: sum/max/min/prod over any axes, argmax/argmin, softmax, logsumexp, top-k.
//! Accumulation is in f64 for sums and products, f32 otherwise; results cast to the output dtype.

use super::{alloc, contiguous, finish, strided};
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::primitive::{ArgReduceOp, ReduceOp};
use rayon::prelude::*;

/// Splits the view into kept (outer) and reduced (inner) offsets.
fn split_axes(x: &Arg, axes: &[usize]) -> (Vec<usize>, Vec<usize>) {
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
    (
        strided::offsets(&ks, &kst, x.data.offset),
        strided::offsets(&rs, &rst, 0),
    )
}

pub fn reduce(
    op: ReduceOp,
    axes: &[usize],
    x: &Arg,
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let (outer, inner) = split_axes(x, axes);
    let mut out = alloc(shape, out_dtype)?;
    crate::dispatch_dtype!(x.dtype, T => {
        let xs = x.data.host()?.as_slice::<T>()?;
        let vals: Vec<f64> = outer
            .par_iter()
            .with_min_len((1 << 14) / inner.len().max(1) + 1)
            .map(|&o| {
                let it = inner.iter().map(|&i| xs[o + i].to_f64());
                match op {
                    ReduceOp::Sum => it.sum(),
                    ReduceOp::Prod => it.product(),
                    ReduceOp::Max => it.fold(f64::NEG_INFINITY, f64::max),
                    ReduceOp::Min => it.fold(f64::INFINITY, f64::min),
                }
            })
            .collect();
        crate::dispatch_dtype!(out_dtype, O => {
            for (o, v) in out.as_mut_slice::<O>()?.iter_mut().zip(vals) {
                *o = O::from_f64(v);
            }
        })
    });
    Ok(finish(out, shape))
}

pub fn arg_reduce(op: ArgReduceOp, axis: usize, x: &Arg, shape: &[usize]) -> Result<Data> {
    if axis + 1 == x.shape.len() && x.is_contiguous() {
        return arg_reduce_rows(op, x, shape);
    }
    let (outer, inner) = split_axes(x, &[axis]);
    let mut out = alloc(shape, DType::U32)?;
    crate::dispatch_dtype!(x.dtype, T => {
        let xs = x.data.host()?.as_slice::<T>()?;
        let o = out.as_mut_slice::<u32>()?;
        o.par_iter_mut().zip(outer.par_iter()).with_min_len(64).for_each(|(o, &base)| {
            let mut best = 0usize;
            let mut bv = xs[base + inner[0]].to_f32();
            for (j, &i) in inner.iter().enumerate().skip(1) {
                let v = xs[base + i].to_f32();
                // First occurrence wins on ties, NaN never wins (numpy semantics aside).
                let better = match op {
                    ArgReduceOp::ArgMax => v > bv,
                    ArgReduceOp::ArgMin => v < bv,
                };
                if better {
                    best = j;
                    bv = v;
                }
            }
            *o = best as u32;
        });
    });
    Ok(finish(out, shape))
}

/// argmax/argmin over contiguous last-axis rows (the sampling path: one row of the vocab).
fn arg_reduce_rows(op: ArgReduceOp, x: &Arg, shape: &[usize]) -> Result<Data> {
    let d = *x.shape.last().unwrap_or(&1);
    let mut out = alloc(shape, DType::U32)?;
    let sign = match op {
        ArgReduceOp::ArgMax => 1.0,
        ArgReduceOp::ArgMin => -1.0,
    };
    crate::dispatch_dtype!(x.dtype, T => {
        let xs = x.data.host_slice::<T>(x.numel())?;
        for (o, row) in out.as_mut_slice::<u32>()?.iter_mut().zip(xs.chunks(d.max(1))) {
            *o = arg_best(row, sign) as u32;
        }
    });
    Ok(finish(out, shape))
}

/// The first index of the largest `sign`·v; NaN never wins (a NaN first element stays the
/// answer, as a sequential scan from it would leave it). Two vectorizable passes: the best
/// value over 8 lanes, then its first position (a vocabulary row of 49k: ~80 → ~10 µs).
fn arg_best<T: Element>(row: &[T], sign: f32) -> usize {
    let v = |i: usize| sign * row[i].to_f32();
    if row.is_empty() || v(0).is_nan() {
        return 0;
    }
    let mut lanes = [v(0); 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            let x = sign * x.to_f32();
            if x > *l {
                *l = x;
            }
        }
    }
    let mut best = lanes.iter().fold(v(0), |m, &l| if l > m { l } else { m });
    for x in chunks.remainder() {
        let x = sign * x.to_f32();
        if x > best {
            best = x;
        }
    }
    (0..row.len()).find(|&i| v(i) == best).unwrap_or(0)
}

/// Applies `f` to each contiguous last-axis row of `x`, writing rows of `out_row` f32 values.
fn rows_f32(x: &Arg, out_row: usize, f: impl Fn(&[f32], &mut [f32]) + Sync) -> Result<Vec<f32>> {
    let d = *x.shape.last().unwrap_or(&1);
    let rows = x.numel() / d.max(1);
    let src = contiguous(x)?;
    let mut out = vec![0f32; rows * out_row];
    crate::dispatch_float!(x.dtype, "softmax", T => {
        let xs = src.host_slice::<T>(x.numel())?;
        out.par_chunks_mut(out_row.max(1)).enumerate().with_min_len(16).for_each_init(
            || vec![0f32; d],
            |buf, (r, o)| {
                for (b, v) in buf.iter_mut().zip(&xs[r * d..(r + 1) * d]) {
                    *b = v.to_f32();
                }
                f(buf, o);
            },
        );
    });
    Ok(out)
}

fn write_out(vals: Vec<f32>, shape: &[usize], out_dtype: DType) -> Result<Data> {
    let mut out = alloc(shape, out_dtype)?;
    crate::dispatch_dtype!(out_dtype, O => {
        for (o, v) in out.as_mut_slice::<O>()?.iter_mut().zip(vals) {
            *o = O::from_f32(v);
        }
    });
    Ok(finish(out, shape))
}

pub fn softmax_row(x: &[f32], o: &mut [f32]) {
    let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0f32;
    for (o, v) in o.iter_mut().zip(x) {
        *o = (v - m).exp();
        s += *o;
    }
    let inv = 1.0 / s;
    o.iter_mut().for_each(|v| *v *= inv);
}

pub fn softmax(x: &Arg, shape: &[usize], out_dtype: DType) -> Result<Data> {
    let d = *x.shape.last().unwrap_or(&1);
    let vals = rows_f32(x, d, softmax_row)?;
    write_out(vals, shape, out_dtype)
}

pub fn logsumexp(x: &Arg, shape: &[usize], out_dtype: DType) -> Result<Data> {
    let vals = rows_f32(x, 1, |r, o| {
        let m = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let s: f64 = r.iter().map(|v| ((v - m) as f64).exp()).sum();
        o[0] = if m.is_infinite() {
            m
        } else {
            m + s.ln() as f32
        };
    })?;
    write_out(vals, shape, out_dtype)
}

pub fn topk(k: usize, x: &Arg, shape: &[usize]) -> Result<Data> {
    let d = *x.shape.last().unwrap_or(&1);
    let src = contiguous(x)?;
    let rows = x.numel() / d.max(1);
    let mut out = alloc(shape, DType::U32)?;
    crate::dispatch_dtype!(x.dtype, T => {
        let xs = src.host_slice::<T>(x.numel())?;
        let o = out.as_mut_slice::<u32>()?;
        o.par_chunks_mut(k.max(1)).enumerate().take(rows).with_min_len((4096 / d.max(1)).max(1)).for_each(|(r, o)| {
            let row = &xs[r * d..(r + 1) * d];
            let mut idx: Vec<u32> = (0..d as u32).collect();
            // Larger value first; ties broken by lower index (stable, like torch.topk on CPU).
            let cmp = |a: &u32, b: &u32| {
                let (va, vb) = (row[*a as usize].to_f32(), row[*b as usize].to_f32());
                vb.partial_cmp(&va).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(b))
            };
            if k < d {
                idx.select_nth_unstable_by(k, cmp);
                idx.truncate(k);
            }
            idx.sort_by(cmp);
            o.copy_from_slice(&idx[..k]);
        });
    });
    Ok(finish(out, shape))
}
