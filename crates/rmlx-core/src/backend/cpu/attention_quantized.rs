//! Quantized KV cache kernels: quantize-on-write of new K/V rows, the reference dequantizer, and
//! attention read straight from packed rows (never a dequantized copy of the cache).
//!
//! Row layout (`KvQuant`): `d·bits/8` code bytes, then `d/group` f16 scales, then `d/group` f16
//! mins; value ≈ scale · n + min. 8-bit: byte i is n[i]. 4-bit: in each block of 32 values,
//! byte i holds n[i] in its low nibble and n[i + 16] in its high nibble (GGML's Q4_0 order), so
//! a block unpacks into two contiguous runs of 16 lanes (blocks of 16 when 32 does not divide
//! the head dim).
//!
//! Attention uses the affine form per group g: q·k = Σ_g scale_g · (q_g · n_g) + min_g · Σ q_g,
//! and for values acc += (p·scale_g) · n_g + p·min_g, so codes are only widened, never rescaled
//! per element.

use super::{alloc, contiguous, finish};
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::primitive::KvQuant;
use half::f16;
use rayon::prelude::*;

/// The rotation's block: the largest power of two dividing `d` (the whole row for 64, 128).
fn block(d: usize) -> usize {
    1 << d.trailing_zeros()
}

/// Fixed ±1 signs of the randomized Hadamard transform (a hash of the index).
#[inline(always)]
fn sign(i: usize) -> f32 {
    if (i as u32).wrapping_mul(0x9E37_79B1).rotate_right(13) & 1 == 1 {
        -1.0
    } else {
        1.0
    }
}

/// In-place unnormalized fast Walsh-Hadamard transform of one block.
#[inline(always)]
fn fwht(x: &mut [f32]) {
    let n = x.len();
    let mut h = 1;
    while h < n {
        for i in (0..n).step_by(2 * h) {
            for j in i..i + h {
                let (a, b) = (x[j], x[j + h]);
                x[j] = a + b;
                x[j + h] = a - b;
            }
        }
        h *= 2;
    }
}

/// x ← R x with R = H·S / √n per block (orthonormal, so ⟨R q, R k⟩ = ⟨q, k⟩).
pub(crate) fn rotate(x: &mut [f32]) {
    let n = block(x.len());
    let norm = 1.0 / (n as f32).sqrt();
    for b in x.chunks_exact_mut(n) {
        b.iter_mut().enumerate().for_each(|(i, v)| *v *= sign(i));
        fwht(b);
        b.iter_mut().for_each(|v| *v *= norm);
    }
}

/// x ← Rᵀ x = S·H x / √n per block (the inverse of `rotate`).
pub(crate) fn unrotate(x: &mut [f32]) {
    let n = block(x.len());
    let norm = 1.0 / (n as f32).sqrt();
    for b in x.chunks_exact_mut(n) {
        fwht(b);
        b.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v *= sign(i) * norm);
    }
}

/// (scale, min) of group `g` of a packed row of `d` values.
#[inline(always)]
fn scale_min(spec: KvQuant, d: usize, row: &[u8], g: usize) -> (f32, f32) {
    let groups = d / spec.group;
    let base = d * spec.bits as usize / 8;
    let at = |i: usize| f16::from_le_bytes([row[base + 2 * i], row[base + 2 * i + 1]]).to_f32();
    (at(g), at(groups + g))
}

/// Quantizes one row `x` (d values) into `out` (row_bytes).
pub(crate) fn quantize_row(spec: KvQuant, x: &[f32], out: &mut [u8]) {
    let d = x.len();
    let g = spec.group;
    let groups = d / g;
    let levels = ((1u32 << spec.bits) - 1) as f32;
    let base = d * spec.bits as usize / 8;
    let mut codes = vec![0u8; d];
    for gi in 0..groups {
        let xs = &x[gi * g..(gi + 1) * g];
        let lo = xs.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        // Round the stored parameters first so codes are chosen against what is read back.
        let mn = f16::from_f32(lo);
        let sc = f16::from_f32((hi - lo) / levels);
        let (mnf, scf) = (mn.to_f32(), sc.to_f32());
        let inv = if scf > 0.0 { 1.0 / scf } else { 0.0 };
        for (c, &v) in codes[gi * g..(gi + 1) * g].iter_mut().zip(xs) {
            *c = ((v - mnf) * inv).round().clamp(0.0, levels) as u8;
        }
        out[base + 2 * gi..base + 2 * gi + 2].copy_from_slice(&sc.to_le_bytes());
        let m = base + 2 * (groups + gi);
        out[m..m + 2].copy_from_slice(&mn.to_le_bytes());
    }
    if spec.bits == 8 {
        out[..d].copy_from_slice(&codes);
    } else {
        let nb = nib_block(d);
        for (blk, o) in codes
            .chunks_exact(nb)
            .zip(out[..d / 2].chunks_exact_mut(nb / 2))
        {
            for i in 0..nb / 2 {
                o[i] = blk[i] | (blk[i + nb / 2] << 4);
            }
        }
    }
}

/// Dequantizes one packed row into `out` (d values).
pub(crate) fn dequantize_row(spec: KvQuant, row: &[u8], out: &mut [f32]) {
    let d = out.len();
    for gi in 0..d / spec.group {
        let (s, m) = scale_min(spec, d, row, gi);
        for i in gi * spec.group..(gi + 1) * spec.group {
            let n = if spec.bits == 8 {
                row[i]
            } else {
                let nb = nib_block(d);
                let (blk, j) = (i / nb, i % nb);
                let b = row[blk * nb / 2 + j % (nb / 2)];
                if j < nb / 2 {
                    b & 15
                } else {
                    b >> 4
                }
            };
            out[i] = s * n as f32 + m;
        }
    }
}

pub fn quantize_kv(spec: KvQuant, x: &Arg, shape: &[usize]) -> Result<Data> {
    let d = *x.shape.last().unwrap_or(&0);
    let rb = spec.row_bytes(d);
    let xd = contiguous(x)?;
    let mut out = alloc(shape, DType::U8)?;
    crate::dispatch_float!(x.dtype, "quantize_kv", T => {
        let xv = xd.host_slice::<T>(x.numel())?;
        let o = out.as_mut_slice::<u8>()?;
        o.par_chunks_mut(rb).zip(xv.par_chunks(d)).for_each_init(
            || vec![0f32; d],
            |row, (orow, xr)| {
                for (r, v) in row.iter_mut().zip(xr) {
                    *r = v.to_f32();
                }
                if spec.rotate {
                    rotate(row);
                }
                quantize_row(spec, row, orow);
            },
        );
    });
    Ok(finish(out, shape))
}

pub fn dequantize_kv(spec: KvQuant, dim: usize, x: &Arg, shape: &[usize]) -> Result<Data> {
    let rb = spec.row_bytes(dim);
    let xd = contiguous(x)?;
    let xv = xd.host_slice::<u8>(x.numel())?;
    let mut out = alloc(shape, DType::F32)?;
    let o = out.as_mut_slice::<f32>()?;
    o.par_chunks_mut(dim)
        .zip(xv.par_chunks(rb))
        .for_each(|(orow, xr)| {
            dequantize_row(spec, xr, orow);
            if spec.rotate {
                unrotate(orow);
            }
        });
    Ok(finish(out, shape))
}

/// Values per 4-bit block: 32 (two runs of 16 lanes), or 16 for heads that 32 does not divide.
#[inline(always)]
fn nib_block(d: usize) -> usize {
    if d.is_multiple_of(32) {
        32
    } else {
        16
    }
}

/// Σ q[i]·n[i] over one 4-bit group (`g` values from `i0`), blocks of 2·H values.
#[inline(always)]
fn dot4<const H: usize>(q: &[f32], row: &[u8], i0: usize, g: usize) -> f32 {
    let mut acc = [0f32; H];
    for blk in i0 / (2 * H)..(i0 + g) / (2 * H) {
        let b = &row[blk * H..blk * H + H];
        let (qa, qb) = q[blk * 2 * H..blk * 2 * H + 2 * H].split_at(H);
        for l in 0..H {
            acc[l] += qa[l] * (b[l] & 15) as f32 + qb[l] * (b[l] >> 4) as f32;
        }
    }
    acc.iter().sum()
}

/// Σ q[i]·n[i] over one group of codes (`g` values starting at value index `i0`).
#[inline(always)]
fn dot_codes(bits: u8, q: &[f32], row: &[u8], i0: usize, g: usize) -> f32 {
    if bits == 8 {
        let mut acc = [0f32; 16];
        for (qc, nc) in q[i0..i0 + g]
            .chunks_exact(16)
            .zip(row[i0..i0 + g].chunks_exact(16))
        {
            for l in 0..16 {
                acc[l] += qc[l] * nc[l] as f32;
            }
        }
        acc.iter().sum()
    } else if nib_block(q.len()) == 32 {
        dot4::<16>(q, row, i0, g)
    } else {
        dot4::<8>(q, row, i0, g)
    }
}

/// acc[i] += a·n[i] + c over one 4-bit group, blocks of 2·H values.
#[inline(always)]
fn axpy4<const H: usize>(acc: &mut [f32], row: &[u8], i0: usize, g: usize, a: f32, c: f32) {
    for blk in i0 / (2 * H)..(i0 + g) / (2 * H) {
        let b = &row[blk * H..blk * H + H];
        let (oa, ob) = acc[blk * 2 * H..blk * 2 * H + 2 * H].split_at_mut(H);
        for l in 0..H {
            oa[l] += a * (b[l] & 15) as f32 + c;
            ob[l] += a * (b[l] >> 4) as f32 + c;
        }
    }
}

/// acc[i] += a·n[i] + c over one group of codes.
#[inline(always)]
fn axpy_codes(bits: u8, acc: &mut [f32], row: &[u8], i0: usize, g: usize, a: f32, c: f32) {
    if bits == 8 {
        for (o, &n) in acc[i0..i0 + g].iter_mut().zip(&row[i0..i0 + g]) {
            *o += a * n as f32 + c;
        }
    } else if nib_block(acc.len()) == 32 {
        axpy4::<16>(acc, row, i0, g, a, c)
    } else {
        axpy4::<8>(acc, row, i0, g, a, c)
    }
}

/// What one query row needs: packed K/V views, positions and specs.
struct Rows<'a> {
    kv: &'a [u8],
    vv: &'a [u8],
    kbase: usize,
    vbase: usize,
    kstride: usize,
    vstride: usize,
    kpos: &'a [i32],
    pi: i32,
    window: Option<usize>,
    sink: Option<f32>,
    ks: KvQuant,
    vs: KvQuant,
}

/// One query row of attention over packed K/V: `q` is pre-scaled, `out` gets the f32 result.
#[inline(always)]
fn attend_row(r: &Rows, q: &[f32], scores: &mut [f32], out: &mut [f32]) {
    let d = q.len();
    let dv = out.len();
    let (kg, vg) = (r.ks.group, r.vs.group);
    let mut qsum = [0f32; 64];
    let kgroups = d / kg;
    for (g, s) in qsum.iter_mut().enumerate().take(kgroups) {
        *s = q[g * kg..(g + 1) * kg].iter().sum();
    }
    let kd = r.ks.row_bytes(d);
    let vd = r.vs.row_bytes(dv);
    let mut m = r.sink.unwrap_or(f32::NEG_INFINITY);
    for (j, &pj) in r.kpos.iter().enumerate() {
        let visible = pj >= 0 && pj <= r.pi && r.window.is_none_or(|w| ((r.pi - pj) as usize) < w);
        scores[j] = if visible {
            let at = r.kbase + j * r.kstride;
            let row = &r.kv[at..at + kd];
            let mut s = 0.0;
            for (g, qs) in qsum.iter().enumerate().take(kgroups) {
                let (sc, mn) = scale_min(r.ks, d, row, g);
                s += sc * dot_codes(r.ks.bits, q, row, g * kg, kg) + mn * qs;
            }
            s
        } else {
            f32::NEG_INFINITY
        };
        m = m.max(scores[j]);
    }
    out.iter_mut().for_each(|a| *a = 0.0);
    if m == f32::NEG_INFINITY {
        // No visible key and no sink: define the output as zeros.
        return;
    }
    let mut denom = r.sink.map_or(0.0, |s| (s - m).exp());
    for (j, &s) in scores.iter().enumerate() {
        if s == f32::NEG_INFINITY {
            continue;
        }
        let p = (s - m).exp();
        denom += p;
        let at = r.vbase + j * r.vstride;
        let row = &r.vv[at..at + vd];
        for g in 0..dv / vg {
            let (sc, mn) = scale_min(r.vs, dv, row, g);
            axpy_codes(r.vs.bits, out, row, g * vg, vg, p * sc, p * mn);
        }
    }
    let inv = 1.0 / denom;
    out.iter_mut().for_each(|a| *a *= inv);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,fma")]
unsafe fn attend_row_avx512(r: &Rows, q: &[f32], scores: &mut [f32], out: &mut [f32]) {
    attend_row(r, q, scores, out)
}

fn attend(r: &Rows, q: &[f32], scores: &mut [f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bw") && std::arch::is_x86_feature_detected!("fma")
    {
        // SAFETY: the features were detected at run time.
        return unsafe { attend_row_avx512(r, q, scores, out) };
    }
    attend_row(r, q, scores, out)
}

#[allow(clippy::too_many_arguments)]
pub fn quantized_sdpa(
    scale: f32,
    window: Option<usize>,
    has_sinks: bool,
    ks: KvQuant,
    vs: KvQuant,
    inputs: &[Arg],
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
    let (hq, tq, d) = (q.shape[1], q.shape[2], q.shape[3]);
    let (hkv, tk, dv) = (k.shape[1], k.shape[2], shape[3]);
    if d / ks.group > 64 {
        return Err(Error::shape(format!(
            "quantized_sdpa: expected at most 64 key groups per row, found {}",
            d / ks.group
        )));
    }
    let qp = contiguous(&inputs[3])?;
    let qpos = qp.host_slice::<i32>(tq)?;
    let kp = contiguous(&inputs[4])?;
    let kpos = kp.host_slice::<i32>(tk)?;
    let sinks: Option<Vec<f32>> = if has_sinks {
        let s = &inputs[5];
        let sd = contiguous(s)?;
        Some(
            crate::dispatch_float!(s.dtype, "quantized_sdpa sinks", S => sd.host_slice::<S>(hq)?.iter().map(|v| v.to_f32()).collect()),
        )
    } else {
        None
    };
    let rows_of = |x: &Arg| -> Result<Data> {
        if x.data.strides[3] == 1 {
            Ok(x.data.clone())
        } else {
            contiguous(x)
        }
    };
    let (kd, vd) = (rows_of(k)?, rows_of(v)?);
    let qd = contiguous(q)?;
    let group = hq / hkv;
    let kv = kd.host()?.as_slice::<u8>()?;
    let vv = vd.host()?.as_slice::<u8>()?;
    let (kst, vst) = (&kd.strides, &vd.strides);
    let mut out = alloc(shape, out_dtype)?;
    crate::dispatch_float!(q.dtype, "quantized_sdpa", Q => {
        let qv = qd.host_slice::<Q>(q.numel())?;
        let o = out.as_mut_slice::<Q>()?;
        o.par_chunks_mut(dv).enumerate().for_each_init(
            || (vec![0f32; d], vec![0f32; dv], vec![0f32; tk]),
            |(qrow, acc, scores), (row, orow)| {
                let (bi, h, i) = (row / (hq * tq), (row / tq) % hq, row % tq);
                let hk = h / group;
                for (r, x) in qrow.iter_mut().zip(&qv[row * d..(row + 1) * d]) {
                    *r = x.to_f32() * scale;
                }
                if ks.rotate {
                    rotate(qrow);
                }
                let rows = Rows {
                    kv,
                    vv,
                    kbase: kd.offset + bi * kst[0] + hk * kst[1],
                    vbase: vd.offset + bi * vst[0] + hk * vst[1],
                    kstride: kst[2],
                    vstride: vst[2],
                    kpos,
                    pi: qpos[i],
                    window,
                    sink: sinks.as_ref().map(|s| s[h]),
                    ks,
                    vs,
                };
                attend(&rows, qrow, scores, acc);
                if vs.rotate {
                    unrotate(acc);
                }
                for (o, a) in orow.iter_mut().zip(acc.iter()) {
                    *o = Q::from_f32(*a);
                }
            },
        );
    });
    Ok(finish(out, shape))
}
