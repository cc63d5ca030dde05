//! AVX2 (+FMA, F16C) kernels for x86 CPUs without AVX-512 (most desktops, AMD Zen 1–3): the
//! llama.cpp AVX2 idiom. Weight blocks of 32 elements are decoded in registers (`blocks.rs`,
//! `kquants.rs`) and multiplied with the 8-bit activations (`act.rs`) in natural element
//! order: `maddubs(u8 codes, i8 x)` → i16 pairs, `madd(…, 1)` → 8 i32 lanes, converted and
//! scaled by the product of the weight and activation block scales. Signed codes (Q8_0,
//! MXFP4) use `maddubs(|w|, sign(x, w))`, which never saturates i16 for |x| ≤ 127.
//! The 4-bit kinds (Q4_0, Q4_1, MXFP4) take blocks in pairs (`pairs.rs`). `run.rs` tiles rows
//! over threads; `dot.rs` is the common-form (u, s, o) fallback.
#![cfg(target_arch = "x86_64")]

mod blocks;
pub mod dot;
mod kquants;
mod pairs;
mod run;
#[cfg(test)]
mod tests;
mod xpack;

#[cfg(test)]
pub use run::run;
pub use run::{kind, run_into};
use std::arch::x86_64::*;
pub use xpack::{XPack, XTile};

pub use super::stack::{WRow, MXFP4, Q4_0, Q4_1, Q4_K, Q6_K, Q8_0};

/// Whether the AVX2 kernels may run: the CPU has AVX2, FMA, F16C and BMI2, and the
/// environment does not force the scalar fallback (`RMLX_QUANT_SCALAR=1`, for tests).
pub fn has_avx2() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        std::env::var_os("RMLX_QUANT_SCALAR").is_none_or(|v| v == "0")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
            && is_x86_feature_detected!("bmi2")
    })
}

/// Accumulators of one weight row against C activation rows; two per row when C ≤ 2 so
/// that consecutive blocks do not wait on one FMA chain.
pub(super) type Acc<const C: usize> = [[__m256; 2]; C];

/// The accumulator slot of block `b`.
#[inline(always)]
pub(super) fn slot<const C: usize>(b: usize) -> usize {
    if C <= 2 {
        b & 1
    } else {
        0
    }
}

/// out[r·C + c] = Σ_k w_r[k] · x_c[k] for `nr` weight rows (row r at `w.p + r·rb`, MXFP4
/// exponents at `w.s + r·rb/16`) and the C activation rows of `x`, K = 32·`x.nb`.
///
/// # Safety
/// AVX2, FMA and F16C must be present; the `nr` rows at `w` (`rb` bytes apart) must hold
/// K = 32·x.nb() elements of `KIND` each (MXFP4: exponents at `w.s`, rb/16 apart). `pf`:
/// prefetch distance in bytes (0 = off); prefetches never fault.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn tile<const KIND: u8, const C: usize>(
    w: WRow,
    rb: usize,
    nr: usize,
    x: XTile<'_, C>,
    out: &mut [f32],
    pf: usize,
) {
    let se = if KIND == MXFP4 { rb / 16 } else { 0 };
    let k = 32 * x.nb();
    assert!(out.len() >= nr * C);
    for r in 0..nr {
        let wr = w.offset(r * rb, r * se);
        let mut acc: Acc<C> = [[_mm256_setzero_ps(); 2]; C];
        match KIND {
            Q4_K => kquants::q4k_row::<C>(wr.p, k, &x, &mut acc, pf),
            Q6_K => kquants::q6k_row::<C>(wr.p, k, &x, &mut acc, pf),
            Q8_0 => blocks::q8_0_row::<C>(wr.p, k, &x, &mut acc, pf),
            _ => pairs::row::<KIND, C>(wr.p, wr.s, k, &x, &mut acc, pf),
        }
        for (c, a) in acc.iter().enumerate() {
            out[r * C + c] = hsum(_mm256_add_ps(a[0], a[1]));
        }
    }
}

/// The sum of v's 8 lanes.
///
/// # Safety
/// AVX2 and FMA present (no memory is touched).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// f16 bits at `p` to f32.
///
/// # Safety
/// AVX2 and F16C present; `p` valid for reading 2 bytes (any alignment).
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn h2f(p: *const u8) -> f32 {
    let bits = (p as *const u16).read_unaligned();
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// f16 bits at `p`, converted and broadcast to 8 lanes.
///
/// # Safety
/// As `h2f`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn h2f8(p: *const u8) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16((p as *const i16).read_unaligned()))
}

/// acc += cvt(madd(p16, m16)) · (w scale × x scale at `xd`): the tail shared by every kind.
///
/// # Safety
/// AVX2 and FMA present; `xd` valid for reading one f32.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn fma_block(
    acc: __m256,
    p16: __m256i,
    m16: __m256i,
    dw: __m256,
    xd: *const f32,
) -> __m256 {
    let i = _mm256_madd_epi16(p16, m16);
    let sc = _mm256_mul_ps(dw, _mm256_broadcast_ss(&*xd));
    _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), sc, acc)
}
