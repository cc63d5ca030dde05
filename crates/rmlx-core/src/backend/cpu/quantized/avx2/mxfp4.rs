//! Hugging Face MXFP4 rows (gpt-oss experts): 32 E2M1 codes (two per byte, the low nibble the
//! even element) and one E8M0 exponent per block. Decode GEMVs stream ~1.3 GB of them per
//! token and the kernel was compute-bound, so the per-block work is cut to the bone:
//! - blocks go in pairs (b, b+4) of each run of 8: one 256-bit register holds both blocks'
//!   16 bytes, so one mask and one shift+mask give all 64 low and high nibbles, and two
//!   `pshufb` map them through 2·E2M1 + 12 (unsigned, 0..=24: `maddubs` needs no sign
//!   fix-up). The activations were packed to match (`xpack.rs`): the pair's even elements in
//!   one 32-byte slot, its odd elements in the other;
//! - the two `maddubs` of a pair add up in i16 (≤ 2·2·24·127) before one `madd`, whose
//!   lanes 0–3 hold block b and 4–7 block b+4: their scales [s_b ×4 | s_b+4 ×4] are one
//!   in-lane `permute` of the 8 scales of the run, computed 8 at a time from the exponent
//!   bytes (float bits built with integer shifts);
//! - the +12 comes back out as −12·d_w·(d_x·Σq), 8 blocks per FMA.
//!
//! Blocks past the last run of 8 go one at a time (even elements then odd ones).
#![cfg(target_arch = "x86_64")]

use super::{slot, Acc, XTile};
use crate::quant::blocks::{e8m0_half, E2M1_X2};
use std::arch::x86_64::*;

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
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn scales8(e: *const u8) -> __m256 {
    let ev = _mm256_cvtepu8_epi32(_mm_loadl_epi64(e as *const __m128i));
    let zero = _mm256_and_si256(
        _mm256_cmpeq_epi32(ev, _mm256_setzero_si256()),
        _mm256_set1_epi32(1 << 22),
    );
    let bits = _mm256_or_si256(_mm256_slli_epi32::<23>(ev), zero);
    _mm256_mul_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(0.5))
}

/// Blocks b and b+4 (`P` = b mod 8 < 4) against the C activation rows: scales `sc[c]` hold
/// the run's 8 block scales of row c.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn pair<const C: usize, const P: i32>(
    p: *const u8,
    b: usize,
    lut: __m256i,
    x: &XTile<C>,
    sc: &[__m256; C],
    acc: &mut Acc<C>,
) {
    let v = _mm256_loadu2_m128i(
        p.add(16 * (b + 4)) as *const __m128i,
        p.add(16 * b) as *const __m128i,
    );
    let m4 = _mm256_set1_epi8(0x0F);
    let lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m4));
    let hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16::<4>(v), m4));
    let sl = slot::<C>(P as usize);
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

/// A lone block `b` (even elements then odd ones) with scale `s[c]`, into slot 0.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn single<const C: usize>(
    p: *const u8,
    b: usize,
    lut: __m256i,
    x: &XTile<C>,
    s: &[f32; C],
    acc: &mut Acc<C>,
) {
    let v = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.add(16 * b) as *const __m128i));
    let v = _mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    let u = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, _mm256_set1_epi8(0x0F)));
    for (c, a) in acc.iter_mut().enumerate() {
        let xv = _mm256_loadu_si256(x.q(c, b) as *const _);
        let i = _mm256_madd_epi16(_mm256_maddubs_epi16(u, xv), _mm256_set1_epi16(1));
        a[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_set1_ps(s[c]), a[0]);
    }
}

/// Accumulates one MXFP4 row (blocks at `p`, exponents at `e`, K = `k`) against C activation
/// rows packed for MXFP4. `pf`: prefetch distance in bytes (0 = off).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn row<const C: usize>(
    p: *const u8,
    e: *const u8,
    k: usize,
    x: &XTile<C>,
    acc: &mut Acc<C>,
    pf: usize,
) {
    let nb = k / 32;
    let lut = _mm256_loadu_si256(CODES_U.as_ptr() as *const _);
    let mut sc = [_mm256_setzero_ps(); C];
    let mut b = 0;
    while b + 8 <= nb {
        if pf > 0 {
            // Rows are contiguous: `pf` bytes ahead is later in this row or in the next ones.
            // The run's 128 bytes are two lines; the exponents' line now and then.
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(16 * b + pf) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(16 * b + 64 + pf) as *const i8);
            if b % 64 == 0 {
                _mm_prefetch::<_MM_HINT_T0>(e.wrapping_add(b + pf / 16) as *const i8);
            }
        }
        let dw = scales8(e.add(b));
        let off = _mm256_mul_ps(dw, _mm256_set1_ps(-12.0));
        for (c, a) in acc.iter_mut().enumerate() {
            sc[c] = _mm256_mul_ps(dw, _mm256_loadu_ps(x.dr(c, b)));
            let o = slot::<C>(1);
            a[o] = _mm256_fmadd_ps(off, _mm256_loadu_ps(x.sdb(c, b)), a[o]);
        }
        pair::<C, 0>(p, b, lut, x, &sc, acc);
        pair::<C, 1>(p, b + 1, lut, x, &sc, acc);
        pair::<C, 2>(p, b + 2, lut, x, &sc, acc);
        pair::<C, 3>(p, b + 3, lut, x, &sc, acc);
        b += 8;
    }
    while b < nb {
        let dw = e8m0_half(*e.add(b));
        let mut s = [0f32; C];
        for (c, a) in acc.iter_mut().enumerate() {
            s[c] = dw * *x.dr(c, b);
            let o = -12.0 * dw * *x.sdb(c, b);
            a[0] = _mm256_add_ps(a[0], _mm256_setr_ps(o, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0));
        }
        single::<C>(p, b, lut, x, &s, acc);
        b += 1;
    }
}
