//! The 4-bit kinds: Q4_0, Q4_1 (GGUF: f16 scale [and min], then 16 code bytes, low nibbles
//! the first 16 elements) and Hugging Face MXFP4 (gpt-oss experts: 16 code bytes, the low
//! nibble the even element; E8M0 exponents in their own array). Decode GEMVs stream these
//! rows and were compute-bound, so the per-block work is cut to the bone:
//! - blocks go in pairs (b, b+4) of each run of 8: one 256-bit register holds both blocks'
//!   16 code bytes, so one mask and one shift+mask give all 64 low and high nibbles (MXFP4:
//!   two `pshufb` then map them through 2·E2M1 + 12, unsigned 0..=24, so `maddubs` needs no
//!   sign fix-up). The activations were packed to match (`xpack.rs`): the pair's low-nibble
//!   elements in one 32-byte slot, its high-nibble elements in the other;
//! - the two `maddubs` of a pair add up in i16 (≤ 2·2·24·127) before one `madd`, whose
//!   lanes 0–3 hold block b and 4–7 block b+4: their scales [s_b ×4 | s_b+4 ×4] are one
//!   in-lane `permute` of the 8 scales of the run, computed 8 at a time (Q4: one gather of
//!   the 8 f16 [scale, min] pairs; MXFP4: float bits built from the exponent bytes);
//! - the block offsets (Q4_0: −8·d, Q4_1: the min, MXFP4: −12·d for the +12) multiply
//!   d_x·Σq of the activation block, 8 blocks per FMA.
//!
//! Blocks past the last run of 8 go one at a time (low-nibble elements, then high).
#![cfg(target_arch = "x86_64")]

use super::{h2f, Acc, XTile, MXFP4, Q4_0, Q4_1};
use crate::quant::blocks::{e8m0_half, E2M1_X2};
use std::arch::x86_64::*;

/// Bytes per block (MXFP4: codes only) and where its codes start.
const fn layout(kind: u8) -> (usize, usize) {
    match kind {
        Q4_0 => (18, 2),
        Q4_1 => (20, 4),
        _ => (16, 0),
    }
}

/// 2·E2M1 + 12 for every code, twice (one copy per 128-bit lane for `pshufb`).
static CODES_U: [i8; 32] = {
    let mut t = [0i8; 32];
    let mut i = 0;
    while i < 32 {
        t[i] = E2M1_X2[i % 16] + 12;
        i += 1;
    }
    t
};

/// 2^(e−128) for 8 exponents (`e8m0_half`): e << 23 as float bits is 2^(e−127) for e ≥ 1,
/// and e = 0 takes 2^−127's bits; halving is exact (2^−127 and 2^−128 are subnormal powers
/// of two).
///
/// # Safety
/// AVX2 present; `e` valid for reading 8 bytes.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn e8m0_8(e: *const u8) -> __m256 {
    let ev = _mm256_cvtepu8_epi32(_mm_loadl_epi64(e as *const __m128i));
    let zero = _mm256_and_si256(
        _mm256_cmpeq_epi32(ev, _mm256_setzero_si256()),
        _mm256_set1_epi32(1 << 22),
    );
    let bits = _mm256_or_si256(_mm256_slli_epi32::<23>(ev), zero);
    _mm256_mul_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(0.5))
}

/// The scales and offsets of blocks b..b+8: (d, offset per unit of d_x·Σq).
///
/// # Safety
/// AVX2, FMA, F16C present; blocks b..b + 8 of `KIND` at `p` readable (MXFP4: exponents
/// b..b + 8 at `e`, `p` unused).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run_scales<const KIND: u8>(p: *const u8, e: *const u8, b: usize) -> (__m256, __m256) {
    if KIND == MXFP4 {
        let d = e8m0_8(e.add(b));
        return (d, _mm256_mul_ps(d, _mm256_set1_ps(-12.0)));
    }
    let bb = layout(KIND).0 as i32;
    // The first 4 bytes of each block: [d, min] (Q4_1) or [d, 2 code bytes] (Q4_0).
    let idx = _mm256_mullo_epi32(
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_set1_epi32(bb),
    );
    let g = _mm256_i32gather_epi32::<1>(p.add(b * bb as usize) as *const i32, idx);
    // Low halves to the low 8 bytes of each lane, high halves to the high 8, then the lanes'
    // low quads together: [d0..d7 | m0..m7].
    let split = _mm256_setr_epi8(
        0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7,
        10, 11, 14, 15,
    );
    let h = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_shuffle_epi8(g, split));
    let d = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
    if KIND == Q4_1 {
        (d, _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(h)))
    } else {
        (d, _mm256_mul_ps(d, _mm256_set1_ps(-8.0)))
    }
}

/// Blocks b and b+4 (`P` = b mod 8 < 4) against the C activation rows: `sc[c]` holds the
/// run's 8 block scales of row c.
///
/// # Safety
/// AVX2 and FMA present; blocks b and b + 4 of `KIND` at `p` readable, and b + 4 < x.nb().
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn pair<const KIND: u8, const C: usize, const P: i32>(
    p: *const u8,
    b: usize,
    x: &XTile<C>,
    sc: &[__m256; C],
    acc: &mut Acc<C>,
) {
    let (bb, q) = layout(KIND);
    let v = _mm256_loadu2_m128i(
        p.add(bb * (b + 4) + q) as *const __m128i,
        p.add(bb * b + q) as *const __m128i,
    );
    let m4 = _mm256_set1_epi8(0x0F);
    let (mut lo, mut hi) = (
        _mm256_and_si256(v, m4),
        _mm256_and_si256(_mm256_srli_epi16::<4>(v), m4),
    );
    if KIND == MXFP4 {
        let lut = _mm256_loadu_si256(CODES_U.as_ptr() as *const _);
        lo = _mm256_shuffle_epi8(lut, lo);
        hi = _mm256_shuffle_epi8(lut, hi);
    }
    // Two accumulators per row when C ≤ 2, so that consecutive pairs do not wait on one
    // FMA chain.
    let sl = if C <= 2 { (P & 1) as usize } else { 0 };
    for (c, a) in acc.iter_mut().enumerate() {
        let xl = _mm256_loadu_si256(x.q(c, b) as *const _);
        let xh = _mm256_loadu_si256(x.q(c, b + 4) as *const _);
        let p16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_maddubs_epi16(hi, xh));
        let i = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
        let s = match P {
            0 => _mm256_permute_ps::<0x00>(sc[c]),
            1 => _mm256_permute_ps::<0x55>(sc[c]),
            2 => _mm256_permute_ps::<0xAA>(sc[c]),
            _ => _mm256_permute_ps::<0xFF>(sc[c]),
        };
        a[sl] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), s, a[sl]);
    }
}

/// A lone block `b` (low-nibble elements, then high) into slot 0.
///
/// # Safety
/// AVX2, FMA, F16C present; block b of `KIND` at `p` readable (MXFP4: exponent b at `e`),
/// and b < x.nb().
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn single<const KIND: u8, const C: usize>(
    p: *const u8,
    e: *const u8,
    b: usize,
    x: &XTile<C>,
    acc: &mut Acc<C>,
) {
    let (bb, q) = layout(KIND);
    let pb = p.add(bb * b);
    let v = _mm256_broadcastsi128_si256(_mm_loadu_si128(pb.add(q) as *const __m128i));
    let v = _mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    let mut u = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
    if KIND == MXFP4 {
        u = _mm256_shuffle_epi8(_mm256_loadu_si256(CODES_U.as_ptr() as *const _), u);
    }
    let (d, off) = match KIND {
        MXFP4 => {
            let d = e8m0_half(*e.add(b));
            (d, -12.0 * d)
        }
        Q4_1 => (h2f(pb), h2f(pb.add(2))),
        _ => (h2f(pb), -8.0 * h2f(pb)),
    };
    for (c, a) in acc.iter_mut().enumerate() {
        let xv = _mm256_loadu_si256(x.q(c, b) as *const _);
        let i = _mm256_madd_epi16(_mm256_maddubs_epi16(u, xv), _mm256_set1_epi16(1));
        let s = _mm256_set1_ps(d * *x.dr(c, b));
        let o = _mm256_setr_ps(off * *x.sdb(c, b), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        a[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), s, _mm256_add_ps(a[0], o));
    }
}

/// Accumulates one row (blocks at `p`, MXFP4 exponents at `e`, K = `k`) against C activation
/// rows packed for `KIND`. `pf`: prefetch distance in bytes (0 = off).
///
/// # Safety
/// AVX2, FMA, F16C present; `p` holds the row's k/32 blocks of `KIND` (MXFP4: `e` its k/32
/// exponents) and k = 32·x.nb(). Prefetch addresses may be anything (they never fault and are
/// formed with wrapping arithmetic).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn row<const KIND: u8, const C: usize>(
    p: *const u8,
    e: *const u8,
    k: usize,
    x: &XTile<C>,
    acc: &mut Acc<C>,
    pf: usize,
) {
    let nb = k / 32;
    let bb = layout(KIND).0;
    let mut sc = [_mm256_setzero_ps(); C];
    let mut b = 0;
    while b + 8 <= nb {
        if pf > 0 {
            // Rows are contiguous: `pf` bytes ahead is later in this row or in the next ones.
            // The run's 8 blocks span 2–3 lines; MXFP4's exponents a line now and then.
            let a = p.wrapping_add(bb * b + pf);
            _mm_prefetch::<_MM_HINT_T0>(a as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(64) as *const i8);
            if bb > 16 {
                _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(128) as *const i8);
            }
            if KIND == MXFP4 && b % 64 == 0 {
                _mm_prefetch::<_MM_HINT_T0>(e.wrapping_add(b + pf / 16) as *const i8);
            }
        }
        let (d, off) = run_scales::<KIND>(p, e, b);
        for (c, a) in acc.iter_mut().enumerate() {
            sc[c] = _mm256_mul_ps(d, _mm256_loadu_ps(x.dr(c, b)));
            let o = if C <= 2 { 1 } else { 0 };
            a[o] = _mm256_fmadd_ps(off, _mm256_loadu_ps(x.sdb(c, b)), a[o]);
        }
        pair::<KIND, C, 0>(p, b, x, &sc, acc);
        pair::<KIND, C, 1>(p, b + 1, x, &sc, acc);
        pair::<KIND, C, 2>(p, b + 2, x, &sc, acc);
        pair::<KIND, C, 3>(p, b + 3, x, &sc, acc);
        b += 8;
    }
    while b < nb {
        single::<KIND, C>(p, e, b, x, acc);
        b += 1;
    }
}
