//! The common-form (u, s, o per 16) path with AVX2, for formats without a fused kernel
//! (Q5_0, Q5_1, Q2_K, Q3_K, Q5_K, Q8_K, MLX affine): the decoders compiled with AVX2
//! (they auto-vectorize) and a dot product of the decoded row with an activation row.
#![cfg(target_arch = "x86_64")]

use super::super::act::XRow;
use super::super::dot::Decoded;
use super::hsum;
use crate::error::Result;
use crate::quant::{GgmlType as G, QuantFormat, RowRef};
use std::arch::x86_64::*;

pub fn decode_row(row: RowRef, d: &mut Decoded) -> Result<()> {
    assert!(super::has_avx2(), "decode_row: AVX2 kernel without AVX2");
    // SAFETY: the features were detected (asserted; `best_decode` hands this out only then).
    unsafe { decode_row_avx2(row, d) }
}

/// `decode_row` compiled with AVX2 (same code, auto-vectorized).
///
/// # Safety
/// AVX2, FMA, F16C and BMI2 must be present.
#[target_feature(enable = "avx2,fma,f16c,bmi2")]
unsafe fn decode_row_avx2(row: RowRef, d: &mut Decoded) -> Result<()> {
    crate::quant::decode_row(row, &mut d.u, &mut d.s, &mut d.o)
}

/// Whether every common-form code of `format` is below 128, so that `maddubs` pair sums
/// (≤ 2·127·127) cannot saturate i16. Wider codes take the signed path (`dot::<true>`).
pub fn narrow_codes(format: QuantFormat) -> bool {
    match format {
        QuantFormat::Gguf(t) => matches!(
            t,
            G::Q4_0
                | G::Q4_1
                | G::Q5_0
                | G::Q5_1
                | G::Q2_K
                | G::Q3_K
                | G::Q4_K
                | G::Q5_K
                | G::Q6_K
                | G::MXFP4
        ),
        QuantFormat::Mxfp4 => true,
        QuantFormat::Affine { bits, .. } => bits <= 7,
    }
}

/// Dot of a decoded row with an activation row. `WIDE`: codes may reach 255; they are then
/// multiplied as u − 128 (signed, through |u − 128| and sign(x)), and 128·s·(d_x·Σq) is added
/// back with the offsets.
pub fn dot<const WIDE: bool>(w: &Decoded, x: &XRow) -> f32 {
    assert!(x.q.len() == w.u.len() && w.s.len() == w.u.len() / 16 && x.d.len() == w.s.len());
    assert!(w.o.len() == w.s.len() && x.sd.len() == w.s.len() && super::has_avx2());
    // SAFETY: features detected and lengths checked (asserted; `best_dot` hands this out
    // only after `has_avx2`).
    unsafe { dot_impl::<WIDE>(w, x) }
}

/// # Safety
/// AVX2 and FMA present; the lengths `dot` asserts: x.q and w.u K values, w.s, w.o, x.d and
/// x.sd K/16.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_impl<const WIDE: bool>(w: &Decoded, x: &XRow) -> f32 {
    let k = w.u.len();
    let (up, qp, sp, dp) = (w.u.as_ptr(), x.q.as_ptr(), w.s.as_ptr(), x.d.as_ptr());
    let ones = _mm256_set1_epi16(1);
    // i32 lanes 0..4 sum group g (elements 0..16), lanes 4..8 group g + 1.
    let spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    let mut acc = [_mm256_setzero_ps(); 2];
    let step = |i: usize, acc: __m256| {
        let wv = _mm256_loadu_si256(up.add(i) as *const _);
        let xv = _mm256_loadu_si256(qp.add(i) as *const _);
        let p16 = if WIDE {
            let ws = _mm256_xor_si256(wv, _mm256_set1_epi8(-128));
            _mm256_maddubs_epi16(_mm256_abs_epi8(ws), _mm256_sign_epi8(xv, ws))
        } else {
            _mm256_maddubs_epi16(wv, xv)
        };
        let g = i / 16;
        let s2 = _mm_castpd_ps(_mm_load_sd(sp.add(g) as *const f64));
        let d2 = _mm_castpd_ps(_mm_load_sd(dp.add(g) as *const f64));
        let sc = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_mul_ps(s2, d2)), spread);
        let isum = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        _mm256_fmadd_ps(isum, sc, acc)
    };
    // Two chains with fixed registers (an index chosen at run time would keep them in memory).
    let mut i = 0;
    while i + 64 <= k {
        acc[0] = step(i, acc[0]);
        acc[1] = step(i + 32, acc[1]);
        i += 64;
    }
    if i + 32 <= k {
        acc[0] = step(i, acc[0]);
        i += 32;
    }
    let mut tail = 0f32;
    if i < k {
        // A last group of 16 (K ≡ 16 mod 32).
        let g = i / 16;
        let isum: i32 = (i..k).map(|j| w.u[j] as i32 * x.q[j] as i32).sum();
        let isum = if WIDE {
            isum - 128 * x.q[i..k].iter().map(|&q| q as i32).sum::<i32>()
        } else {
            isum
        };
        tail = w.s[g] * x.d[g] * isum as f32;
    }
    // Offsets: Σ_g (o_g [+ 128·s_g]) · (d_x·Σq)_g.
    let ng = k / 16;
    let (op, sdp) = (w.o.as_ptr(), x.sd.as_ptr());
    let mut g = 0;
    while g + 8 <= ng {
        let mut ov = _mm256_loadu_ps(op.add(g));
        if WIDE {
            ov = _mm256_fmadd_ps(_mm256_set1_ps(128.0), _mm256_loadu_ps(sp.add(g)), ov);
        }
        acc[0] = _mm256_fmadd_ps(ov, _mm256_loadu_ps(sdp.add(g)), acc[0]);
        g += 8;
    }
    while g < ng {
        let o = if WIDE {
            128f32.mul_add(w.s[g], w.o[g])
        } else {
            w.o[g]
        };
        tail = o.mul_add(x.sd[g], tail);
        g += 1;
    }
    hsum(_mm256_add_ps(acc[0], acc[1])) + tail
}
