//! Quantized KV cache kernels: quantize-on-write of new K/V rows, the reference dequantizer, and
//! attention read straight from packed rows (never a dequantized copy of the cache).
//!
//! Row layout (`KvQuant`): `d·bits/8` code bytes, then `d/group` f16 scales, then `d/group` f16
//! mins; value ≈ scale · n + min. 8-bit: byte i is n[i]. 4-bit: in each block of 32 values,
//! byte i holds n[i] in its low nibble and n[i + 16] in its high nibble (GGML's Q4_0 order), so
//! a block unpacks into two contiguous runs of 16 lanes (blocks of 16 when 32 does not divide
//! the head dim).
//!
//! Attention takes the query heads of one KV group together: each packed K and V row is
//! decoded once (to f32, in the rotated basis) and used by every head of the group. Decode
//! splits the keys into ranges that run in parallel and merges their partial softmax sums
//! (flash-decoding), so a model with few KV heads still uses every thread.

use super::attention::{rows_of, sinks_f32};
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

pub fn dequantize_kv(
    spec: KvQuant,
    dim: usize,
    x: &Arg,
    center: Option<&Arg>,
    shape: &[usize],
) -> Result<Data> {
    let rb = spec.row_bytes(dim);
    let xd = contiguous(x)?;
    let xv = xd.host_slice::<u8>(x.numel())?;
    let cd = center.map(contiguous).transpose()?;
    let cv = match (&cd, center) {
        (Some(d), Some(c)) => Some(d.host_slice::<f32>(c.numel())?),
        _ => None,
    };
    let t = shape[shape.len() - 2];
    let mut out = alloc(shape, DType::F32)?;
    let o = out.as_mut_slice::<f32>()?;
    o.par_chunks_mut(dim)
        .zip(xv.par_chunks(rb))
        .enumerate()
        .for_each(|(r, (orow, xr))| {
            dequantize_row(spec, xr, orow);
            if spec.rotate {
                unrotate(orow);
            }
            if let Some(c) = cv {
                // Row r of (B, H, T) belongs to center row r / T of (B, H, 1).
                let cr = &c[(r / t) * dim..(r / t + 1) * dim];
                orow.iter_mut().zip(cr).for_each(|(o, c)| *o += c);
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

/// Unpacks packed row `row` into `out` (d values) in the stored (rotated) basis: codes first,
/// then each group's affine map, both fixed-width loops that vectorize.
#[inline(always)]
fn decode_stored(spec: KvQuant, row: &[u8], out: &mut [f32]) {
    let d = out.len();
    if spec.bits == 8 {
        for (o, &n) in out.iter_mut().zip(&row[..d]) {
            *o = n as f32;
        }
    } else {
        let nb = nib_block(d);
        for (o, b) in out
            .chunks_exact_mut(nb)
            .zip(row[..d / 2].chunks_exact(nb / 2))
        {
            let (lo, hi) = o.split_at_mut(nb / 2);
            for l in 0..nb / 2 {
                lo[l] = (b[l] & 15) as f32;
                hi[l] = (b[l] >> 4) as f32;
            }
        }
    }
    for (gi, o) in out.chunks_exact_mut(spec.group).enumerate() {
        let (sc, mn) = scale_min(spec, d, row, gi);
        for v in o.iter_mut() {
            *v = sc * *v + mn;
        }
    }
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Packed K/V of one (batch, KV head) and the query position all rows of a unit share.
struct Source<'a> {
    kv: &'a [u8],
    vv: &'a [u8],
    kbase: usize,
    vbase: usize,
    kstride: usize,
    vstride: usize,
    kpos: &'a [i32],
    pi: i32,
    window: Option<usize>,
    ks: KvQuant,
    vs: KvQuant,
    /// Slots 0..head come from these exact rows (head × D, head × Dv), already centered and
    /// rotated like the packed ones; packed row j − head serves slot j ≥ head.
    head: usize,
    hk: &'a [f32],
    hv: &'a [f32],
}

/// Per-unit scratch: decoded K and V rows and the scores of the unit's key range.
struct Scratch {
    krow: Vec<f32>,
    vrow: Vec<f32>,
    scores: Vec<f32>,
}

/// Attention of the `g` query rows in `q` (g × d, pre-scaled and rotated; the heads of one KV
/// group at one position) over key slots `lo..hi`, unnormalized: `part` gets, per head, the
/// running max, the sum of exp and the exp-weighted value sum ([m, l, acc(dv)]). Each K and V
/// row is decoded once for the whole group.
#[inline(always)]
fn attend_part(
    src: &Source,
    q: &[f32],
    bias: &[f32],
    g: usize,
    keys: std::ops::Range<usize>,
    sc: &mut Scratch,
    part: &mut [f32],
) {
    let (d, dv) = (sc.krow.len(), sc.vrow.len());
    let (lo, hi) = (keys.start, keys.end);
    let n = hi - lo;
    let (kd, vd) = (src.ks.row_bytes(d), src.vs.row_bytes(dv));
    part.iter_mut().for_each(|x| *x = 0.0);
    let mut m = [f32::NEG_INFINITY; MAX_GROUP];
    let scores = &mut sc.scores[..g * n];
    for j in lo..hi {
        let pj = src.kpos[j];
        let visible =
            pj >= 0 && pj <= src.pi && src.window.is_none_or(|w| ((src.pi - pj) as usize) < w);
        if !visible {
            scores[j - lo] = f32::NEG_INFINITY;
            continue;
        }
        if j < src.head {
            sc.krow.copy_from_slice(&src.hk[j * d..(j + 1) * d]);
        } else {
            let at = src.kbase + (j - src.head) * src.kstride;
            decode_stored(src.ks, &src.kv[at..at + kd], &mut sc.krow);
        }
        for h in 0..g {
            let s = dot(&q[h * d..(h + 1) * d], &sc.krow) + bias[h];
            scores[h * n + j - lo] = s;
            m[h] = m[h].max(s);
        }
    }
    for h in 0..g {
        part[h * (dv + 2)] = m[h];
    }
    if m[0] == f32::NEG_INFINITY {
        return; // nothing visible in this range (visibility is the same for every head)
    }
    for j in lo..hi {
        if scores[j - lo] == f32::NEG_INFINITY {
            continue;
        }
        if j < src.head {
            sc.vrow.copy_from_slice(&src.hv[j * dv..(j + 1) * dv]);
        } else {
            let at = src.vbase + (j - src.head) * src.vstride;
            decode_stored(src.vs, &src.vv[at..at + vd], &mut sc.vrow);
        }
        for h in 0..g {
            let p = (scores[h * n + j - lo] - m[h]).exp();
            let ph = &mut part[h * (dv + 2)..(h + 1) * (dv + 2)];
            ph[1] += p;
            for (a, v) in ph[2..].iter_mut().zip(&sc.vrow) {
                *a += p * v;
            }
        }
    }
}

// The generic kernel compiled for wider SIMD: its fixed-width loops vectorize.
macro_rules! attend_part_for {
    ($name:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(
            src: &Source,
            q: &[f32],
            bias: &[f32],
            g: usize,
            keys: std::ops::Range<usize>,
            sc: &mut Scratch,
            part: &mut [f32],
        ) {
            attend_part(src, q, bias, g, keys, sc, part)
        }
    };
}
attend_part_for!(attend_part_avx512, "avx512f,avx512bw,fma");
attend_part_for!(attend_part_avx2, "avx2,fma");

fn attend(
    src: &Source,
    q: &[f32],
    bias: &[f32],
    g: usize,
    keys: std::ops::Range<usize>,
    sc: &mut Scratch,
    part: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512bw") && has!("fma") {
            // SAFETY: the features were detected at run time.
            return unsafe { attend_part_avx512(src, q, bias, g, keys, sc, part) };
        }
        if has!("avx2") && has!("fma") {
            // SAFETY: the features were detected at run time.
            return unsafe { attend_part_avx2(src, q, bias, g, keys, sc, part) };
        }
    }
    attend_part(src, q, bias, g, keys, sc, part)
}

/// Most query heads per KV head a unit handles at once (GQA ratio).
const MAX_GROUP: usize = 64;

/// Partial results shared with the pool's tasks, each writing its own unit.
#[derive(Clone, Copy)]
struct PartsPtr(*mut f32);
// SAFETY: tasks write disjoint units; the buffer outlives the parallel loop.
unsafe impl Send for PartsPtr {}
unsafe impl Sync for PartsPtr {}

#[allow(clippy::too_many_arguments)]
pub fn quantized_sdpa(
    scale: f32,
    window: Option<usize>,
    has_sinks: bool,
    k_centered: bool,
    head: usize,
    ks: KvQuant,
    vs: KvQuant,
    inputs: &[Arg],
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
    let (b, hq, tq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3]);
    let (hkv, tk, dv) = (k.shape[1], k.shape[2] + head, shape[3]);
    let group = hq / hkv;
    if group > MAX_GROUP {
        return Err(Error::shape(format!(
            "quantized_sdpa: expected at most {MAX_GROUP} query heads per KV head, found {group}"
        )));
    }
    let qp = contiguous(&inputs[3])?;
    let qpos = qp.host_slice::<i32>(tq)?;
    let kp = contiguous(&inputs[4])?;
    let kpos = kp.host_slice::<i32>(tk)?;
    let sinks = sinks_f32(inputs, has_sinks, hq)?;
    let (kd, vd) = (rows_of(k)?, rows_of(v)?);
    let qd = contiguous(q)?;
    // Keys stored relative to a center μ: q·k = q·(k − μ) + q·μ, the last term one bias per
    // query row (exact, sinks included).
    let extra = 5 + has_sinks as usize;
    let center_data = k_centered.then(|| contiguous(&inputs[extra])).transpose()?;
    let centers = match &center_data {
        Some(c) => Some(c.host_slice::<f32>(inputs[extra].numel())?),
        None => None,
    };
    // The exact head rows in the packed rows' basis: keys centered, both rotated.
    let (mut hk, mut hv) = (Vec::new(), Vec::new());
    if head > 0 {
        let (a, b) = (
            &inputs[extra + k_centered as usize],
            &inputs[extra + k_centered as usize + 1],
        );
        hk = contiguous(a)?.host_slice::<f32>(a.numel())?.to_vec();
        hv = contiguous(b)?.host_slice::<f32>(b.numel())?.to_vec();
        // Row r of (B, Hkv, head) belongs to center row r / head of (B, Hkv, 1).
        for (r, row) in hk.chunks_exact_mut(d).enumerate() {
            if let Some(c) = &centers {
                let cr = &c[r.checked_div(head).unwrap_or(0) * d..][..d];
                row.iter_mut().zip(cr).for_each(|(x, c)| *x -= c);
            }
            if ks.rotate {
                rotate(row);
            }
        }
        if vs.rotate {
            hv.chunks_exact_mut(dv).for_each(rotate);
        }
    }
    let kv = kd.host()?.as_slice::<u8>()?;
    let vv = vd.host()?.as_slice::<u8>()?;
    let (kst, vst) = (&kd.strides, &vd.strides);
    // Work units: (batch, KV head, query position, key split). Decode splits the keys so a
    // few KV heads still spread over every thread (flash-decoding); prefill has rows enough.
    let groups = b * hkv * tq;
    let threads = super::spin::threads();
    let splits = if tq == 1 {
        (2 * threads)
            .div_ceil(groups)
            .clamp(1, tk.div_ceil(256).max(1))
    } else {
        1
    };
    let per_split = tk.div_ceil(splits);
    let unit_len = group * (dv + 2);
    let mut parts = vec![0f32; groups * splits * unit_len];
    let mut out = alloc(shape, out_dtype)?;
    crate::dispatch_float!(q.dtype, "quantized_sdpa", Q => {
        let qv = qd.host_slice::<Q>(q.numel())?;
        let scratch = || (Scratch { krow: vec![0f32; d], vrow: vec![0f32; dv], scores: vec![0f32; group * per_split] }, vec![0f32; group * d], [0f32; MAX_GROUP]);
        // Unit u: group index gi = u / splits (gi = (bi·hkv + hk)·tq + i), split u % splits.
        let unit = |(sc, qs, bias): &mut (Scratch, Vec<f32>, [f32; MAX_GROUP]), u: usize, part: &mut [f32]| {
            let (gi, sp) = (u / splits, u % splits);
            let (bi, hk_i, i) = (gi / (hkv * tq), (gi / tq) % hkv, gi % tq);
            for hh in 0..group {
                let row = (bi * hq + hk_i * group + hh) * tq + i;
                let qr = &mut qs[hh * d..(hh + 1) * d];
                for (r, x) in qr.iter_mut().zip(&qv[row * d..(row + 1) * d]) {
                    *r = x.to_f32() * scale;
                }
                bias[hh] = centers.as_ref().map_or(0.0, |c| dot(qr, &c[(bi * hkv + hk_i) * d..][..d]));
                if ks.rotate {
                    rotate(qr);
                }
            }
            let src = Source {
                kv,
                vv,
                kbase: kd.offset + bi * kst[0] + hk_i * kst[1],
                vbase: vd.offset + bi * vst[0] + hk_i * vst[1],
                kstride: kst[2],
                vstride: vst[2],
                kpos,
                pi: qpos[i],
                window,
                ks,
                vs,
                head,
                hk: if head > 0 { &hk[(bi * hkv + hk_i) * head * d..][..head * d] } else { &[] },
                hv: if head > 0 { &hv[(bi * hkv + hk_i) * head * dv..][..head * dv] } else { &[] },
            };
            let lo = (sp * per_split).min(tk);
            attend(&src, qs, &bias[..group], group, lo..(lo + per_split).min(tk), sc, part);
        };
        if tq == 1 {
            let ptr = PartsPtr(parts.as_mut_ptr());
            let n = groups * splits;
            super::spin::parallel_for(n, &|u| {
                let mut sc = scratch();
                // SAFETY: unit u owns parts[u·unit_len..(u+1)·unit_len].
                let part = unsafe { std::slice::from_raw_parts_mut({ ptr }.0.add(u * unit_len), unit_len) };
                unit(&mut sc, u, part);
            });
        } else {
            parts.par_chunks_mut(unit_len).enumerate().for_each_init(scratch, |sc, (u, part)| unit(sc, u, part));
        }
        // Merge the splits of each unit with the sink, normalize, un-rotate, write out.
        let o = out.as_mut_slice::<Q>()?;
        let mut acc = vec![0f32; dv];
        for gi in 0..groups {
            let (bi, hk, i) = (gi / (hkv * tq), (gi / tq) % hkv, gi % tq);
            for hh in 0..group {
                let h = hk * group + hh;
                let at = |sp: usize| ((gi * splits + sp) * group + hh) * (dv + 2);
                let sink = sinks.as_ref().map(|s| s[h]);
                let mut m = sink.unwrap_or(f32::NEG_INFINITY);
                for sp in 0..splits {
                    m = m.max(parts[at(sp)]);
                }
                let row = (bi * hq + h) * tq + i;
                let orow = &mut o[row * dv..(row + 1) * dv];
                if m == f32::NEG_INFINITY {
                    // No visible key and no sink: define the output as zeros.
                    orow.iter_mut().for_each(|x| *x = Q::from_f32(0.0));
                    continue;
                }
                let mut denom = sink.map_or(0.0, |s| (s - m).exp());
                acc.iter_mut().for_each(|a| *a = 0.0);
                for sp in 0..splits {
                    let p = &parts[at(sp)..at(sp) + dv + 2];
                    if p[0] == f32::NEG_INFINITY {
                        continue;
                    }
                    let w = (p[0] - m).exp();
                    denom += w * p[1];
                    for (a, x) in acc.iter_mut().zip(&p[2..]) {
                        *a += w * x;
                    }
                }
                let inv = 1.0 / denom;
                acc.iter_mut().for_each(|a| *a *= inv);
                if vs.rotate {
                    unrotate(&mut acc);
                }
                for (x, a) in orow.iter_mut().zip(&acc) {
                    *x = Q::from_f32(*a);
                }
            }
        }
    });
    Ok(finish(out, shape))
}
