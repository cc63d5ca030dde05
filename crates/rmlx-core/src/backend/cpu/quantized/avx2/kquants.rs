//! Q4_K and Q6_K rows, one super-block of 256 a step.
//! - Q4_K: 32 code bytes hold sub-blocks 2j (low nibbles) and 2j+1 (high), each in element
//!   order; sub-block scales d·sc multiply the activation block scale, the mins −dmin·m
//!   multiply d_x·Σq per block (one FMA of 8 lanes per super-block).
//! - Q6_K: codes 0..64 (offset 32) from a low nibble and two high bits; the i8 scales per 16
//!   elements go into `madd` instead of ones (a 32-block spans two of them, with one
//!   activation scale), and the offset −32·d·sc multiplies d_x·Σq per 16.
#![cfg(target_arch = "x86_64")]

use super::{fma_block, h2f, h2f8, slot, Acc, XTile};
use std::arch::x86_64::*;

/// Prefetches the `bytes` of one super-block `pf` bytes ahead of `p`.
///
/// # Safety
/// SSE present (any x86-64). Any address: prefetches never fault and the addresses are
/// formed with wrapping arithmetic.
#[inline(always)]
unsafe fn prefetch(p: *const u8, bytes: usize, pf: usize) {
    if pf > 0 {
        let mut l = 0;
        while l < bytes {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(pf + l) as *const i8);
            l += 64;
        }
    }
}

/// Q4_K's packed 6-bit scales and mins (ggml's `get_scale_min_k4` for all 8 at once):
/// bytes 0..8 the scales, 8..16 the mins.
#[inline(always)]
fn k4_scales(q: &[u8; 12]) -> [u32; 4] {
    const M1: u32 = 0x3f3f_3f3f;
    const M2: u32 = 0x0f0f_0f0f;
    const M3: u32 = 0x0303_0303;
    let w = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (a, b, c) = (w(0), w(1), w(2));
    [
        a & M1,
        (c & M2) | (((a >> 6) & M3) << 4),
        b & M1,
        ((c >> 4) & M2) | (((b >> 6) & M3) << 4),
    ]
}

/// Accumulates one Q4_K row (K = `k`) against C activation rows.
///
/// # Safety
/// AVX2, FMA, F16C present; `p` holds k/256 Q4_K super-blocks (144 bytes) and
/// k = 32·x.nb().
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q4k_row<const C: usize>(
    p: *const u8,
    k: usize,
    x: &XTile<C>,
    acc: &mut Acc<C>,
    pf: usize,
) {
    let ones = _mm256_set1_epi16(1);
    let m4 = _mm256_set1_epi8(0x0F);
    let o = slot::<C>(1);
    for i in 0..k / 256 {
        let sb = p.add(i * 144);
        prefetch(sb, 144, pf);
        let u = k4_scales(&*(sb.add(4) as *const [u8; 12]));
        let v = _mm_setr_epi32(u[0] as i32, u[1] as i32, u[2] as i32, u[3] as i32);
        let sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
        let mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)));
        let mut scales = [0f32; 8];
        _mm256_storeu_ps(scales.as_mut_ptr(), _mm256_mul_ps(sc, h2f8(sb)));
        let mins = _mm256_mul_ps(mn, _mm256_set1_ps(-h2f(sb.add(2))));
        for (c, a) in acc.iter_mut().enumerate() {
            let sdb = _mm256_loadu_ps(x.sdb(c, 8 * i));
            a[o] = _mm256_fmadd_ps(mins, sdb, a[o]);
        }
        for j in 0..4 {
            let q = _mm256_loadu_si256(sb.add(16 + 32 * j) as *const _);
            for h in 0..2 {
                let t = 2 * j + h;
                let codes = if h == 0 {
                    _mm256_and_si256(q, m4)
                } else {
                    _mm256_and_si256(_mm256_srli_epi16(q, 4), m4)
                };
                let dw = _mm256_broadcast_ss(&scales[t]);
                let e0 = 256 * i + 32 * t;
                let sl = slot::<C>(t);
                for (c, a) in acc.iter_mut().enumerate() {
                    let xv = _mm256_loadu_si256(x.q(c, e0 / 32) as *const _);
                    let p16 = _mm256_maddubs_epi16(codes, xv);
                    a[sl] = fma_block(a[sl], p16, ones, dw, x.d(c, e0 / 32));
                }
            }
        }
    }
}

/// `pshufb` masks spreading the i16 scales of sub-block t (groups 2t, 2t+1 of the half's 8)
/// over the low and high 128-bit lanes.
static Q6_SCALE_SHUF: [[u8; 32]; 4] = {
    let mut m = [[0u8; 32]; 4];
    let mut t = 0;
    while t < 4 {
        let mut i = 0;
        while i < 32 {
            let g = 2 * t + i / 16;
            m[t][i] = (2 * g + i % 2) as u8;
            i += 1;
        }
        t += 1;
    }
    m
};

/// Accumulates one Q6_K row (K = `k`) against C activation rows.
///
/// # Safety
/// AVX2, FMA, F16C present; `p` holds k/256 Q6_K super-blocks (210 bytes) and
/// k = 32·x.nb().
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q6k_row<const C: usize>(
    p: *const u8,
    k: usize,
    x: &XTile<C>,
    acc: &mut Acc<C>,
    pf: usize,
) {
    let m4 = _mm256_set1_epi8(0x0F);
    let m30 = _mm256_set1_epi8(0x30);
    let o = slot::<C>(1);
    for i in 0..k / 256 {
        let sb = p.add(i * 210);
        prefetch(sb, 210, pf);
        let dw = h2f8(sb.add(208));
        // Offsets: −32·d·sc_g · (d_x·Σq)_g for the 16 groups.
        let scp = sb.add(192);
        let off = _mm256_mul_ps(dw, _mm256_set1_ps(-32.0));
        let s0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(scp as *const _)));
        let s1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
            _mm_loadl_epi64(scp.add(8) as *const _),
        ));
        let (s0, s1) = (_mm256_mul_ps(s0, off), _mm256_mul_ps(s1, off));
        for (c, a) in acc.iter_mut().enumerate() {
            let sd = x.sd(c, 16 * i);
            a[o] = _mm256_fmadd_ps(s0, _mm256_loadu_ps(sd), a[o]);
            a[o] = _mm256_fmadd_ps(s1, _mm256_loadu_ps(sd.add(8)), a[o]);
        }
        for n in 0..2 {
            let ql0 = _mm256_loadu_si256(sb.add(64 * n) as *const _);
            let ql1 = _mm256_loadu_si256(sb.add(64 * n + 32) as *const _);
            let qh = _mm256_loadu_si256(sb.add(128 + 32 * n) as *const _);
            let sc8 = _mm_cvtepi8_epi16(_mm_loadl_epi64(scp.add(8 * n) as *const _));
            let sc16 = _mm256_broadcastsi128_si256(sc8);
            // Element 32t + l of the half: a nibble of ql0/ql1 and bits 2t, 2t+1 of qh[l].
            let codes = [
                _mm256_or_si256(
                    _mm256_and_si256(ql0, m4),
                    _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(ql1, m4),
                    _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                    _mm256_and_si256(qh, m30),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                    _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30),
                ),
            ];
            for (t, &cd) in codes.iter().enumerate() {
                let shuf = _mm256_loadu_si256(Q6_SCALE_SHUF[t].as_ptr() as *const _);
                let sc = _mm256_shuffle_epi8(sc16, shuf);
                let e0 = 256 * i + 128 * n + 32 * t;
                let sl = slot::<C>(t);
                for (c, a) in acc.iter_mut().enumerate() {
                    let xv = _mm256_loadu_si256(x.q(c, e0 / 32) as *const _);
                    let p16 = _mm256_maddubs_epi16(cd, xv);
                    a[sl] = fma_block(a[sl], p16, sc, dw, x.d(c, e0 / 32));
                }
            }
        }
    }
}
