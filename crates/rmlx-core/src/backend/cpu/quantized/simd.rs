//! AVX-512 (F, BW, VL, VNNI) kernels. Each is `unsafe` with `#[target_feature]` and reached only
//! after runtime detection; the scalar code in `dot.rs` computes the same integer sums.
#![cfg(target_arch = "x86_64")]

use super::act::XRow;
use super::dot::Decoded;
use std::arch::x86_64::*;

pub fn has_avx512_vnni() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

pub fn dot(w: &Decoded, x: &XRow) -> f32 {
    // SAFETY: only handed out by `best_dot` after `has_avx512_vnni`.
    unsafe { dot_vnni(&w.u, &w.s, &w.o, x.q, x.d, x.sd) }
}

/// 64 elements a step: dpbusd gives 16 lanes of 4 products, lanes 4g..4g+3 belonging to
/// group g of 16, so the 4 group scales are spread over lanes with one permute.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot_vnni(u: &[u8], s: &[f32], o: &[f32], q: &[i8], d: &[f32], sd: &[f32]) -> f32 {
    let k = u.len();
    debug_assert!(q.len() == k && s.len() == k / 16 && d.len() == k / 16);
    let spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    let zero = _mm512_setzero_si512();
    let mut acc = _mm512_setzero_ps();
    let (up, qp, sp, dp) = (u.as_ptr(), q.as_ptr(), s.as_ptr(), d.as_ptr());
    let mut c = 0;
    while c < k {
        let rem = k - c;
        let (w, x, sc) = if rem >= 64 {
            (
                _mm512_loadu_si512(up.add(c) as *const _),
                _mm512_loadu_si512(qp.add(c) as *const _),
                _mm_mul_ps(_mm_loadu_ps(sp.add(c / 16)), _mm_loadu_ps(dp.add(c / 16))),
            )
        } else {
            let bm = (1u64 << rem) - 1;
            let gm = ((1u32 << (rem / 16)) - 1) as u8;
            (
                _mm512_maskz_loadu_epi8(bm, up.add(c) as *const _),
                _mm512_maskz_loadu_epi8(bm, qp.add(c) as *const _),
                _mm_mul_ps(
                    _mm_maskz_loadu_ps(gm, sp.add(c / 16)),
                    _mm_maskz_loadu_ps(gm, dp.add(c / 16)),
                ),
            )
        };
        let isum = _mm512_dpbusd_epi32(zero, w, x);
        let scv = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(sc));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scv, acc);
        c += 64;
    }
    // Offsets: Σ_g o_g · (d_g Σq_g).
    let ng = k / 16;
    let mut g = 0;
    while g < ng {
        let m = if ng - g >= 16 {
            0xFFFF
        } else {
            ((1u32 << (ng - g)) - 1) as u16
        };
        let ov = _mm512_maskz_loadu_ps(m, o.as_ptr().add(g));
        let xv = _mm512_maskz_loadu_ps(m, sd.as_ptr().add(g));
        acc = _mm512_fmadd_ps(ov, xv, acc);
        g += 16;
    }
    _mm512_reduce_add_ps(acc)
}
