//! Q8_0 rows, one block of 32 a step: the 32 signed bytes in natural element order, against
//! the activations with `maddubs(|w|, sign(x, w))`. (The 4-bit kinds are in `pairs.rs`.)
#![cfg(target_arch = "x86_64")]

use super::{fma_block, h2f8, slot, Acc, XTile};
use std::arch::x86_64::*;

const BLOCK_BYTES: usize = 34;

/// Accumulates one Q8_0 row (K = `k`) against C activation rows.
///
/// # Safety
/// AVX2, FMA, F16C present; `p` holds k/32 Q8_0 blocks and k = 32·x.nb().
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q8_0_row<const C: usize>(
    p: *const u8,
    k: usize,
    x: &XTile<C>,
    acc: &mut Acc<C>,
    pf: usize,
) {
    let nb = k / 32;
    // Blocks in pairs with constant accumulator slots: a slot chosen at run time would keep
    // the accumulators in memory.
    let mut b = 0;
    while b + 2 <= nb {
        block::<C>(p, b, x, acc, 0, pf);
        block::<C>(p, b + 1, x, acc, slot::<C>(1), pf);
        b += 2;
    }
    if b < nb {
        block::<C>(p, b, x, acc, 0, pf);
    }
}

/// Block `b` of the row against the C activation rows, into accumulator slot `sl`.
///
/// # Safety
/// As `q8_0_row`, with b < k/32 and `sl` < 2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block<const C: usize>(
    p: *const u8,
    b: usize,
    x: &XTile<C>,
    acc: &mut Acc<C>,
    sl: usize,
    pf: usize,
) {
    let pb = p.add(b * BLOCK_BYTES);
    if pf > 0 {
        // Rows are contiguous: `pf` bytes ahead is later in this row or in the next ones.
        // The hardware prefetcher alone leaves a GEMV latency-bound.
        _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(pf) as *const i8);
    }
    let s = _mm256_loadu_si256(pb.add(2) as *const _);
    let u = _mm256_abs_epi8(s);
    let d = h2f8(pb);
    let ones = _mm256_set1_epi16(1);
    for (c, a) in acc.iter_mut().enumerate() {
        let xv = _mm256_loadu_si256(x.q(c, b) as *const _);
        let p16 = _mm256_maddubs_epi16(u, _mm256_sign_epi8(xv, s));
        a[sl] = fma_block(a[sl], p16, ones, d, x.d(c, b));
    }
}
