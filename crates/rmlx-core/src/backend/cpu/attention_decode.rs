//! Decode attention (one query position) over a dense KV cache of f32, f16 or bf16, by
//! flash-decoding: the keys of each KV head are split into ranges that run in parallel, each an
//! online softmax over its range; the partial results [max, Σ exp, Σ exp·v] are merged with the
//! sink at the end. So a model with few KV heads (SmolLM2: 3) still streams its cache on every
//! thread.
//!
//! A unit is one (batch, KV head, key range) with all the query heads of its GQA group. Keys go
//! in blocks of `BLOCK`: the block's K and V rows come from memory once and stay in L1 while
//! each head of the group takes its dots and value sums from them. The rows are read as stored
//! (16-bit values widened in registers by `DotWeight::dots` / `axpys`: F16C on AVX2, AVX-512's
//! conversions where present, a portable loop elsewhere); no f32 copy of the cache is made.

use super::simd::{exp_sub, DotWeight};
use std::ops::Range;

/// Keys a block: 64 K and 64 V rows of head dim 64 in 16 bits are 16 KB, inside L1.
const BLOCK: usize = 64;

/// Fewest keys a split takes: below this the hand-off and the merge cost more than they save.
const MIN_SPLIT: usize = 256;

/// Total work (key rows × values per row) below which decode runs on the calling thread (a
/// hand-off to the spinning pool costs ~1 µs).
const MIN_PARALLEL_WORK: usize = 1 << 15;

/// A dense K/V cache read in place: element offsets and (batch, head, position) strides; rows
/// are contiguous along D.
pub(super) struct DenseKv<'a, T> {
    pub k: &'a [T],
    pub v: &'a [T],
    pub k_offset: usize,
    pub v_offset: usize,
    pub k_strides: [usize; 3],
    pub v_strides: [usize; 3],
    /// (Tk) position of each key slot, negative for empty ones.
    pub kpos: &'a [i32],
    pub window: Option<usize>,
}

/// The dimensions of a decode call: batch, query heads, KV heads (dividing Hq), head dims.
#[derive(Clone, Copy)]
pub(super) struct Dims {
    pub b: usize,
    pub hq: usize,
    pub hkv: usize,
    pub d: usize,
    pub dv: usize,
}

/// Attention of one query position: `q` (B, Hq, D) already scaled, `out` (B, Hq, Dv).
pub(super) fn decode<T: DotWeight>(
    kv: &DenseKv<T>,
    q: &[f32],
    qpos: i32,
    sinks: Option<&[f32]>,
    dims: Dims,
    out: &mut [f32],
) {
    let Dims { b, hq, hkv, d, dv } = dims;
    let tk = kv.kpos.len();
    let group = hq / hkv.max(1);
    let threads = super::spin::threads();
    // Enough units for two per thread, each split at least MIN_SPLIT keys long.
    let splits = (2 * threads)
        .div_ceil((b * hkv).max(1))
        .clamp(1, tk.div_ceil(MIN_SPLIT).max(1));
    let per_split = tk.div_ceil(splits).max(1);
    let width = dv + 2; // [m, l, acc(Dv)] per row
    let unit_len = group * width;
    let units = b * hkv * splits;
    let mut parts = vec![0f32; units * unit_len];
    // Unit u = (bi·hkv + hk)·splits + sp.
    let unit = |u: usize, part: &mut [f32]| {
        let (sp, hk, bi) = (u % splits, (u / splits) % hkv, u / (splits * hkv));
        let row0 = bi * hq + hk * group;
        let lo = (sp * per_split).min(tk);
        attend_range(
            kv,
            &q[row0 * d..(row0 + group) * d],
            (d, dv),
            qpos,
            kv.k_offset + bi * kv.k_strides[0] + hk * kv.k_strides[1],
            kv.v_offset + bi * kv.v_strides[0] + hk * kv.v_strides[1],
            lo..(lo + per_split).min(tk),
            part,
        );
    };
    if units == 1 || b * hq * tk * (d + dv) < MIN_PARALLEL_WORK {
        for (u, part) in parts.chunks_mut(unit_len).enumerate() {
            unit(u, part);
        }
    } else {
        let ptr = RowsPtr(parts.as_mut_ptr());
        super::spin::parallel_for(units, &|u| {
            // SAFETY: u < units and `parts` holds units·unit_len values, so the slice is inside
            // it; unit u alone owns parts[u·unit_len..(u + 1)·unit_len], and `parallel_for`
            // returns only after every unit finished, while `parts` is still borrowed.
            let part =
                unsafe { std::slice::from_raw_parts_mut({ ptr }.0.add(u * unit_len), unit_len) };
            unit(u, part);
        });
    }
    for bi in 0..b {
        for h in 0..hq {
            let (hk, r) = (h / group, h % group);
            let at = |sp: usize| ((bi * hkv + hk) * splits + sp) * unit_len + r * width;
            let row = &mut out[(bi * hq + h) * dv..][..dv];
            merge_splits(
                (0..splits).map(|sp| &parts[at(sp)..at(sp) + width]),
                sinks.map(|s| s[h]),
                row,
            );
        }
    }
}

/// The group's rows `q` (R × D) over key slots `keys`, unnormalized: `part` gets per row the
/// running max, the sum of exp and the exp-weighted value sum ([m, l, acc(Dv)]).
#[allow(clippy::too_many_arguments)]
fn attend_range<T: DotWeight>(
    kv: &DenseKv<T>,
    q: &[f32],
    (d, dv): (usize, usize),
    qpos: i32,
    kbase: usize,
    vbase: usize,
    keys: Range<usize>,
    part: &mut [f32],
) {
    let width = dv + 2;
    for p in part.chunks_exact_mut(width) {
        p[0] = f32::NEG_INFINITY;
        p[1..].iter_mut().for_each(|x| *x = 0.0);
    }
    let (ks, vs) = (kv.k_strides[2], kv.v_strides[2]);
    let visible =
        |pj: i32| pj >= 0 && pj <= qpos && kv.window.is_none_or(|w| ((qpos - pj) as usize) < w);
    let mut scores = [0f32; BLOCK];
    let mut seen = [false; BLOCK];
    let mut b0 = keys.start;
    while b0 < keys.end {
        let n = BLOCK.min(keys.end - b0);
        // One query position: the mask is the same for every head of the group.
        let mut any = false;
        for (s, &p) in seen.iter_mut().zip(&kv.kpos[b0..b0 + n]) {
            *s = visible(p);
            any |= *s;
        }
        if !any {
            b0 += n;
            continue;
        }
        for (qr, pr) in q.chunks_exact(d).zip(part.chunks_exact_mut(width)) {
            let s = &mut scores[..n];
            // Dots over runs of visible keys (the SIMD dots take several keys a step).
            let mut j = 0;
            while j < n {
                if !seen[j] {
                    s[j] = f32::NEG_INFINITY;
                    j += 1;
                    continue;
                }
                let j0 = j;
                while j < n && seen[j] {
                    j += 1;
                }
                T::dots(qr, kv.k, kbase + (b0 + j0) * ks, ks, &mut s[j0..j]);
            }
            let bm = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if bm > pr[0] {
                if pr[0] != f32::NEG_INFINITY {
                    let alpha = (pr[0] - bm).exp();
                    pr[1..].iter_mut().for_each(|x| *x *= alpha);
                }
                pr[0] = bm;
            }
            // Masked keys get weight 0 and are skipped by `axpys`.
            pr[1] += exp_sub(s, pr[0]);
            T::axpys(s, kv.v, vbase + b0 * vs, vs, &mut pr[2..]);
        }
        b0 += n;
    }
}

/// Merges one row's partial results [m, l, acc] over its key splits, with its sink logit, into
/// the normalized output `out`. A row that saw no key and has no sink gets zeros (and false).
pub(super) fn merge_splits<'a>(
    parts: impl Iterator<Item = &'a [f32]> + Clone,
    sink: Option<f32>,
    out: &mut [f32],
) -> bool {
    let m = parts
        .clone()
        .fold(sink.unwrap_or(f32::NEG_INFINITY), |a, p| a.max(p[0]));
    out.iter_mut().for_each(|o| *o = 0.0);
    if m == f32::NEG_INFINITY {
        return false;
    }
    let mut denom = sink.map_or(0.0, |s| (s - m).exp());
    for p in parts.filter(|p| p[0] != f32::NEG_INFINITY) {
        let w = (p[0] - m).exp();
        denom += w * p[1];
        out.iter_mut().zip(&p[2..]).for_each(|(o, x)| *o += w * x);
    }
    let inv = 1.0 / denom;
    out.iter_mut().for_each(|o| *o *= inv);
    true
}

/// Output rows shared with the pool's tasks, each writing its own rows.
#[derive(Clone, Copy)]
pub(super) struct RowsPtr<T>(pub *mut T);
// SAFETY: tasks write disjoint rows of `T: Send` values and `parallel_for` returns only after
// all of them finished, while the buffer is still borrowed.
unsafe impl<T: Send> Send for RowsPtr<T> {}
// SAFETY: as for Send: shared only to hand each task its own rows.
unsafe impl<T: Send> Sync for RowsPtr<T> {}
