//! Q4_0, Q4_1 and Q8_0 rows, one block of 32 a step. Codes come out in natural element order
//! so activations need no permutation:
//! - Q4: the 16 code bytes and their high nibbles side by side ([lo | hi] = elements 0..32);
//! - Q8_0: the 32 signed bytes.
//!
//! Block offsets (Q4_0: −8·d, Q4_1: the min) multiply d_x·Σq of the activation block. With 1
//! or 2 activation rows (decode) they come out of the same multiply as the block's scale
//! (`block_gemv`); with more, a second vectorized pass over the row's scale bytes (still in
//! L1) sums them once per row instead of once per block and activation row.
#![cfg(target_arch = "x86_64")]

use super::{fma_block, h2f, h2f8, slot, Acc, XTile, Q4_0, Q4_1, Q8_0};
use std::arch::x86_64::*;

const fn block_bytes(kind: u8) -> usize {
    match kind {
        Q4_0 => 18,
        Q4_1 => 20,
        _ => 34,
    }
}

/// One decoded block: codes (unsigned, or |w| for Q8_0), the signed codes (Q8_0 only) and
/// the weight scale broadcast.
struct Block {
    u: __m256i,
    s: __m256i,
    d: __m256,
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode<const KIND: u8>(p: *const u8, b: usize) -> Block {
    let pb = p.add(b * block_bytes(KIND));
    match KIND {
        Q4_0 | Q4_1 => {
            // The 16 bytes in both halves, the high half shifted to its high nibbles.
            let qs = _mm_loadu_si128(pb.add(if KIND == Q4_1 { 4 } else { 2 }) as *const _);
            let v = _mm256_srlv_epi32(
                _mm256_broadcastsi128_si256(qs),
                _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4),
            );
            Block {
                u: _mm256_and_si256(v, _mm256_set1_epi8(0x0F)),
                s: _mm256_setzero_si256(),
                d: h2f8(pb),
            }
        }
        _ => {
            let s = _mm256_loadu_si256(pb.add(2) as *const _);
            Block {
                u: _mm256_abs_epi8(s),
                s,
                d: h2f8(pb),
            }
        }
    }
}

/// Accumulates one weight row (K = `k`) against C activation rows.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn row<const KIND: u8, const C: usize>(
    p: *const u8,
    k: usize,
    x: &XTile<C>,
    acc: &mut Acc<C>,
    pf: usize,
) {
    let nb = k / 32;
    // Few activation rows (decode): Q4 offsets ride along with the scales (`block_gemv`);
    // many: a separate pass amortizes them better.
    let gemv = C <= 2 && (KIND == Q4_0 || KIND == Q4_1);
    let mut accm = [_mm_setzero_ps(); C];
    // Blocks in pairs with constant accumulator slots: a slot chosen at run time would keep
    // the accumulators in memory.
    let mut b = 0;
    while b + 2 <= nb {
        if gemv {
            block_gemv::<KIND, C>(p, b, x, acc, &mut accm, 0, pf);
            block_gemv::<KIND, C>(p, b + 1, x, acc, &mut accm, slot::<C>(1), pf);
        } else {
            block::<KIND, C>(p, b, x, acc, 0, pf);
            block::<KIND, C>(p, b + 1, x, acc, slot::<C>(1), pf);
        }
        b += 2;
    }
    if b < nb {
        if gemv {
            block_gemv::<KIND, C>(p, b, x, acc, &mut accm, 0, pf);
        } else {
            block::<KIND, C>(p, b, x, acc, 0, pf);
        }
    }
    if gemv {
        for c in 0..C {
            // Lane 1 holds Σ offset · d_x·Σq.
            let m = _mm_cvtss_f32(_mm_movehdup_ps(accm[c]));
            let m = _mm256_setr_ps(m, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
            acc[c][0] = _mm256_add_ps(acc[c][0], m);
        }
    } else if KIND == Q4_0 || KIND == Q4_1 {
        offsets::<KIND, C>(p, nb, x, acc);
    }
}

/// Q4 block `b` for few activation rows: [d, offset] of the weight times [d_x, f·d_x·Σq] of
/// x (f = −8 for Q4_0, whose offset is −8·d) gives the block's scale product and its offset
/// term with one multiply; the offsets add up in lane 1 of `accm`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_gemv<const KIND: u8, const C: usize>(
    p: *const u8,
    b: usize,
    x: &XTile<C>,
    acc: &mut Acc<C>,
    accm: &mut [__m128; C],
    sl: usize,
    pf: usize,
) {
    let pb = p.add(b * block_bytes(KIND));
    if pf > 0 {
        _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(pf) as *const i8);
    }
    let dm = if KIND == Q4_1 {
        _mm_cvtph_ps(_mm_cvtsi32_si128((pb as *const i32).read_unaligned()))
    } else {
        _mm_cvtph_ps(_mm_set1_epi16((pb as *const i16).read_unaligned()))
    };
    let w = decode::<KIND>(p, b);
    let ones = _mm256_set1_epi16(1);
    for c in 0..C {
        let xv = _mm256_loadu_si256(x.q(c, b) as *const _);
        let pr = _mm_mul_ps(dm, _mm_castpd_ps(_mm_load_sd(x.dm(c, b) as *const f64)));
        accm[c] = _mm_add_ps(accm[c], pr);
        let i = _mm256_madd_epi16(_mm256_maddubs_epi16(w.u, xv), ones);
        let sc = _mm256_broadcastss_ps(pr);
        acc[c][sl] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), sc, acc[c][sl]);
    }
}

/// Block `b` of the row against the C activation rows, into accumulator slot `sl`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block<const KIND: u8, const C: usize>(
    p: *const u8,
    b: usize,
    x: &XTile<C>,
    acc: &mut Acc<C>,
    sl: usize,
    pf: usize,
) {
    if pf > 0 {
        // Rows are contiguous: `pf` bytes ahead is later in this row or in the next ones.
        // The hardware prefetcher alone leaves a GEMV latency-bound.
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(b * block_bytes(KIND) + pf) as *const i8);
    }
    let w = decode::<KIND>(p, b);
    let ones = _mm256_set1_epi16(1);
    for (c, a) in acc.iter_mut().enumerate() {
        let xv = _mm256_loadu_si256(x.q(c, b) as *const _);
        let p16 = if KIND == Q8_0 {
            _mm256_maddubs_epi16(w.u, _mm256_sign_epi8(xv, w.s))
        } else {
            _mm256_maddubs_epi16(w.u, xv)
        };
        a[sl] = fma_block(a[sl], p16, ones, w.d, x.d(c, b));
    }
}

/// Σ_b m_b · (d_x·Σq)_b with m = Q4_1's min or Q4_0's −8·d, 8 blocks a step.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn offsets<const KIND: u8, const C: usize>(
    p: *const u8,
    nb: usize,
    x: &XTile<C>,
    acc: &mut Acc<C>,
) {
    let bb = block_bytes(KIND);
    let m = p.add(if KIND == Q4_1 { 2 } else { 0 });
    let f = if KIND == Q4_1 { 1.0 } else { -8.0 };
    let rd = |b: usize| (m.add(b * bb) as *const i16).read_unaligned();
    let o = slot::<C>(1);
    let mut b = 0;
    while b + 8 <= nb {
        let h = _mm_setr_epi16(
            rd(b),
            rd(b + 1),
            rd(b + 2),
            rd(b + 3),
            rd(b + 4),
            rd(b + 5),
            rd(b + 6),
            rd(b + 7),
        );
        let mv = _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(f));
        for (c, a) in acc.iter_mut().enumerate() {
            let sdb = _mm256_loadu_ps(x.sdb(c, b));
            a[o] = _mm256_fmadd_ps(mv, sdb, a[o]);
        }
        b += 8;
    }
    let mut tail = [0f32; C];
    while b < nb {
        let mv = f * h2f(m.add(b * bb));
        for (c, t) in tail.iter_mut().enumerate() {
            *t = mv.mul_add(*x.sdb(c, b), *t);
        }
        b += 1;
    }
    for c in 0..C {
        let t = _mm256_setr_ps(tail[c], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        acc[c][o] = _mm256_add_ps(acc[c][o], t);
    }
}
