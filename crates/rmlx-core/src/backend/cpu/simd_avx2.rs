//! AVX2 + FMA (+ F16C) versions of `simd.rs`'s dot products and axpy, for x86 CPUs without
//! AVX-512: the inner loops of attention over an f32/f16/bf16 KV cache and of GEMV with
//! unquantized weights. 16-bit weights: `bf16` is a 16-bit left shift, `f16` is `vcvtph2ps`.
#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// Whether these kernels may run (checked once; `is_x86_feature_detected` caches too).
pub fn has_avx2() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    })
}

/// 8 weights from `p` as f32: f32 as is, 16-bit ones widened.
#[inline(always)]
unsafe fn load8<const W: u8>(p: *const u8, i: usize) -> __m256 {
    match W {
        F32 => _mm256_loadu_ps((p as *const f32).add(i)),
        BF16 => {
            let h = _mm_loadu_si128((p as *const u16).add(i) as *const _);
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
        }
        _ => _mm256_cvtph_ps(_mm_loadu_si128((p as *const u16).add(i) as *const _)),
    }
}

/// One weight from `p` as f32.
#[inline(always)]
fn load1<const W: u8>(p: *const u8, i: usize) -> f32 {
    // SAFETY (of the reads): callers pass i < the slice's length.
    unsafe {
        match W {
            F32 => *(p as *const f32).add(i),
            BF16 => f32::from_bits((*(p as *const u16).add(i) as u32) << 16),
            _ => half::f16::from_bits(*(p as *const u16).add(i)).to_f32(),
        }
    }
}

/// Weight element kinds.
pub const F32: u8 = 0;
pub const BF16: u8 = 1;
pub const F16: u8 = 2;

#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// Σ x[i]·w[i] over `x.len()` elements of `w` (`W` says how w's bytes are read).
///
/// # Safety
/// AVX2, FMA and F16C must be present; `w` must hold `x.len()` elements of kind `W`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot<const W: u8>(x: &[f32], w: *const u8) -> f32 {
    let n = x.len();
    let xp = x.as_ptr();
    let mut a = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (j, aj) in a.iter_mut().enumerate() {
            let xv = _mm256_loadu_ps(xp.add(i + 8 * j));
            *aj = _mm256_fmadd_ps(xv, load8::<W>(w, i + 8 * j), *aj);
        }
        i += 32;
    }
    while i + 8 <= n {
        a[0] = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i)), load8::<W>(w, i), a[0]);
        i += 8;
    }
    let mut s = hsum(_mm256_add_ps(
        _mm256_add_ps(a[0], a[1]),
        _mm256_add_ps(a[2], a[3]),
    ));
    while i < n {
        s += x[i] * load1::<W>(w, i);
        i += 1;
    }
    s
}

/// acc[i] += p · w[i] over `acc.len()` elements of `w`.
///
/// # Safety
/// As `dot`, with `w` holding `acc.len()` elements.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn axpy<const W: u8>(p: f32, w: *const u8, acc: &mut [f32]) {
    let n = acc.len();
    let ap = acc.as_mut_ptr();
    let pv = _mm256_set1_ps(p);
    let mut i = 0;
    while i + 8 <= n {
        let a = _mm256_loadu_ps(ap.add(i));
        _mm256_storeu_ps(ap.add(i), _mm256_fmadd_ps(pv, load8::<W>(w, i), a));
        i += 8;
    }
    while i < n {
        acc[i] += p * load1::<W>(w, i);
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// The AVX2 loops (called directly, so AVX-512 machines test them too) against f64 sums.
    #[test]
    fn avx2_dot_axpy_match_scalar() {
        if !has_avx2() {
            eprintln!("skipping: no AVX2/FMA/F16C");
            return;
        }
        let mut rng = StdRng::seed_from_u64(3);
        for n in [1usize, 7, 8, 9, 31, 32, 33, 64, 100, 577] {
            let x: Vec<f32> = (0..n).map(|_| rng.gen::<f32>() * 2.0 - 1.0).collect();
            let w: Vec<f32> = (0..n).map(|_| rng.gen::<f32>() * 2.0 - 1.0).collect();
            let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
            let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            let cases: [(Vec<f32>, *const u8, u8); 3] = [
                (w.clone(), w.as_ptr() as *const u8, F32),
                (
                    wb.iter().map(|v| v.to_f32()).collect(),
                    wb.as_ptr() as *const u8,
                    BF16,
                ),
                (
                    wh.iter().map(|v| v.to_f32()).collect(),
                    wh.as_ptr() as *const u8,
                    F16,
                ),
            ];
            for (wf, p, kind) in cases {
                let want: f64 = x.iter().zip(&wf).map(|(a, b)| *a as f64 * *b as f64).sum();
                let mut acc = x.clone();
                // SAFETY: features checked; `p` holds n elements of `kind`.
                let got = unsafe {
                    match kind {
                        F32 => {
                            axpy::<F32>(0.5, p, &mut acc);
                            dot::<F32>(&x, p)
                        }
                        BF16 => {
                            axpy::<BF16>(0.5, p, &mut acc);
                            dot::<BF16>(&x, p)
                        }
                        _ => {
                            axpy::<F16>(0.5, p, &mut acc);
                            dot::<F16>(&x, p)
                        }
                    }
                };
                assert!(
                    (got as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
                    "{kind} n {n}"
                );
                for i in 0..n {
                    assert!(
                        (acc[i] - (x[i] + 0.5 * wf[i])).abs() < 1e-6,
                        "{kind} n {n} axpy"
                    );
                }
            }
        }
    }
}
