//! Scaled dot-product attention with positions-based causal/sliding masks, GQA and attention
//! sinks. One pass per query row with an online softmax; K/V are read in place (any stride
//! along T, rows contiguous), so a KV cache view is never copied.

use super::attention_decode::{decode, DenseKv, Dims};
use super::simd::DotWeight;
use super::{alloc, contiguous, f32_values, finish};
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use rayon::prelude::*;

pub fn sdpa(
    scale: f32,
    window: Option<usize>,
    has_sinks: bool,
    inputs: &[Arg],
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
    let (b, hq, tq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3]);
    let (hkv, tk, dv) = (k.shape[1], k.shape[2], v.shape[3]);
    let qp = contiguous(&inputs[3])?;
    let qpos = qp.host_slice::<i32>(tq)?;
    let kp = contiguous(&inputs[4])?;
    let kpos = kp.host_slice::<i32>(tk)?;
    let sinks = sinks_f32(inputs, has_sinks, hq)?;
    let (kd, vd) = (rows_of(k)?, rows_of(v)?);
    let qd = contiguous(q)?;
    let group = hq / hkv;
    let mut out = alloc(shape, out_dtype)?;
    crate::dispatch_float!(k.dtype, "sdpa", T => {
        if v.dtype != k.dtype {
            return Err(Error::dtype(format!("sdpa: expected k and v of one dtype, found {} and {}", k.dtype, v.dtype)));
        }
        crate::dispatch_float!(q.dtype, "sdpa", Q => {
            let qv = qd.host_slice::<Q>(q.numel())?;
            let kv = kd.host()?.as_slice::<T>()?;
            let vv = vd.host()?.as_slice::<T>()?;
            let (ks, vs) = (&kd.strides, &vd.strides);
            let o = out.as_mut_slice::<Q>()?;
            let rows = b * hq * tq;
            if o.len() != rows * dv || qv.len() != rows * d {
                return Err(Error::shape(format!("sdpa: expected q of {rows} rows of {d} and an output of {rows} rows of {dv}, found {} and {} values", qv.len(), o.len())));
            }
            let row_fn = |(qrow, acc, scores): &mut (Vec<f32>, Vec<f32>, Vec<f32>), (row, orow): (usize, &mut [Q])| {
                    let (bi, h, i) = (row / (hq * tq), (row / tq) % hq, row % tq);
                    let hk = h / group;
                    for (r, x) in qrow.iter_mut().zip(&qv[row * d..(row + 1) * d]) {
                        *r = x.to_f32() * scale;
                    }
                    let pi = qpos[i];
                    let kbase = kd.offset + bi * ks[0] + hk * ks[1];
                    let vbase = vd.offset + bi * vs[0] + hk * vs[1];
                    let mut m = sinks.as_ref().map_or(f32::NEG_INFINITY, |s| s[h]);
                    let visible = |pj: i32| pj >= 0 && pj <= pi && window.is_none_or(|w| ((pi - pj) as usize) < w);
                    // Scores over runs of visible keys at once (the SIMD dots take 4 keys a step).
                    let mut j = 0;
                    while j < tk {
                        if !visible(kpos[j]) {
                            scores[j] = f32::NEG_INFINITY;
                            j += 1;
                            continue;
                        }
                        let j0 = j;
                        while j < tk && visible(kpos[j]) {
                            j += 1;
                        }
                        T::dots(qrow, kv, kbase + j0 * ks[2], ks[2], &mut scores[j0..j]);
                    }
                    m = scores.iter().fold(m, |a, &s| a.max(s));
                    acc.iter_mut().for_each(|a| *a = 0.0);
                    if m == f32::NEG_INFINITY {
                        // No visible key and no sink: define the output as zeros.
                        orow.iter_mut().for_each(|o| *o = Q::from_f32(0.0));
                        return;
                    }
                    let sink = sinks.as_ref().map_or(0.0, |s| (s[h] - m).exp());
                    // Masked keys get weight 0 and are skipped by `axpys`.
                    let denom = sink + super::simd::exp_sub(scores, m);
                    T::axpys(scores, vv, vbase, vs[2], acc);
                    let inv = 1.0 / denom;
                    for (o, a) in orow.iter_mut().zip(acc.iter()) {
                        *o = Q::from_f32(a * inv);
                    }
            };
            if tq == 1 {
                // Decode: flash-decoding over key ranges (`attention_decode.rs`).
                let kvd = DenseKv {
                    k: kv,
                    v: vv,
                    k_offset: kd.offset,
                    v_offset: vd.offset,
                    k_strides: [ks[0], ks[1], ks[2]],
                    v_strides: [vs[0], vs[1], vs[2]],
                    kpos,
                    window,
                };
                let qs: Vec<f32> = qv.iter().map(|x| x.to_f32() * scale).collect();
                let mut acc = vec![0f32; rows * dv];
                let dims = Dims { b, hq, hkv, d, dv };
                decode(&kvd, &qs, qpos[0], sinks.as_deref(), dims, &mut acc);
                for (o, a) in o.iter_mut().zip(&acc) {
                    *o = Q::from_f32(*a);
                }
            } else {
            let scratch = || (vec![0f32; d], vec![0f32; dv], vec![0f32; tk]);
            let work = rows * tk * (d + dv);
            // Prefill's rayon hand-off needs enough work to pay.
            if work < 1 << 17 || rows == 1 {
                let mut sc = scratch();
                for (row, orow) in o.chunks_mut(dv).enumerate() {
                    row_fn(&mut sc, (row, orow));
                }
            } else {
                let min_rows = (1 << 20) / (tk * (d + dv)).max(1);
                o.par_chunks_mut(dv).enumerate().with_min_len(min_rows.max(1)).for_each_init(scratch, |sc, r| row_fn(sc, r));
            }
            }
        })
    });
    Ok(finish(out, shape))
}

/// The per-head sink logits (input 5) as f32, if the op has them.
pub(super) fn sinks_f32(inputs: &[Arg], has_sinks: bool, hq: usize) -> Result<Option<Vec<f32>>> {
    if !has_sinks {
        return Ok(None);
    }
    let s = f32_values(&inputs[5], "sdpa sinks")?;
    if s.len() < hq {
        return Err(Error::shape(format!(
            "sdpa: expected {hq} sinks, found {}",
            s.len()
        )));
    }
    Ok(Some(s))
}

/// K/V as rows contiguous along D (any stride along T: a cache view is read in place).
pub(super) fn rows_of(x: &Arg) -> Result<Data> {
    if x.data.strides[3] == 1 {
        Ok(x.data.clone())
    } else {
        contiguous(x)
    }
}
