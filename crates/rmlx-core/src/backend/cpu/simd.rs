//! Dot products of an f32 activation row with a weight row of f32/bf16/f16, the inner loop of
//! GEMV for unquantized weights. AVX-512 or AVX2 (+FMA, F16C) where present, portable code
//! elsewhere (the level is detected once).

use half::{bf16, f16};

/// Weight element types with a SIMD dot product against f32.
pub trait DotWeight: crate::dtype::Element {
    fn dot(x: &[f32], w: &[Self]) -> f32;
    /// acc += p · w (attention's weighted sum of value rows).
    fn axpy(p: f32, w: &[Self], acc: &mut [f32]) {
        for (a, x) in acc.iter_mut().zip(w) {
            *a += p * x.to_f32();
        }
    }
}

fn dot_scalar<T: crate::dtype::Element>(x: &[f32], w: &[T]) -> f32 {
    // Eight independent accumulators let the compiler vectorize and hide FMA latency.
    let mut acc = [0f32; 8];
    let chunks = x.len() / 8;
    for c in 0..chunks {
        for j in 0..8 {
            acc[j] += x[c * 8 + j] * w[c * 8 + j].to_f32();
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in chunks * 8..x.len() {
        s += x[i] * w[i].to_f32();
    }
    s
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_f32(x: &[f32], w: &[f32]) -> f32 {
        let n = x.len();
        let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        while i + 32 <= n {
            a0 = _mm512_fmadd_ps(
                _mm512_loadu_ps(x.as_ptr().add(i)),
                _mm512_loadu_ps(w.as_ptr().add(i)),
                a0,
            );
            a1 = _mm512_fmadd_ps(
                _mm512_loadu_ps(x.as_ptr().add(i + 16)),
                _mm512_loadu_ps(w.as_ptr().add(i + 16)),
                a1,
            );
            i += 32;
        }
        let mut s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
        while i < n {
            s += x[i] * w[i];
            i += 1;
        }
        s
    }

    /// bf16 → f32 is a 16-bit left shift of the bits.
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> __m512 {
        let h = _mm256_loadu_si256(p as *const __m256i);
        _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_bf16(x: &[f32], w: &[u16]) -> f32 {
        let n = x.len();
        let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        while i + 32 <= n {
            a0 = _mm512_fmadd_ps(
                _mm512_loadu_ps(x.as_ptr().add(i)),
                load_bf16(w.as_ptr().add(i)),
                a0,
            );
            a1 = _mm512_fmadd_ps(
                _mm512_loadu_ps(x.as_ptr().add(i + 16)),
                load_bf16(w.as_ptr().add(i + 16)),
                a1,
            );
            i += 32;
        }
        let mut s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
        while i < n {
            s += x[i] * f32::from_bits((w[i] as u32) << 16);
            i += 1;
        }
        s
    }

    /// acc += p · w for 16-bit weights (`bf16`: shift; `f16`: vcvtph2ps).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn axpy_16(p: f32, w: &[u16], acc: &mut [f32], bf16: bool) {
        let n = acc.len();
        let pv = _mm512_set1_ps(p);
        let mut i = 0;
        while i + 16 <= n {
            let x = if bf16 {
                load_bf16(w.as_ptr().add(i))
            } else {
                _mm512_cvtph_ps(_mm256_loadu_si256(w.as_ptr().add(i) as *const __m256i))
            };
            let a = _mm512_loadu_ps(acc.as_ptr().add(i));
            _mm512_storeu_ps(acc.as_mut_ptr().add(i), _mm512_fmadd_ps(pv, x, a));
            i += 16;
        }
        while i < n {
            let x = if bf16 {
                f32::from_bits((w[i] as u32) << 16)
            } else {
                half::f16::from_bits(w[i]).to_f32()
            };
            acc[i] += p * x;
            i += 1;
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_f16(x: &[f32], w: &[u16]) -> f32 {
        let n = x.len();
        let mut a0 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            let h = _mm256_loadu_si256(w.as_ptr().add(i) as *const __m256i);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x.as_ptr().add(i)), _mm512_cvtph_ps(h), a0);
            i += 16;
        }
        let mut s = _mm512_reduce_add_ps(a0);
        while i < n {
            s += x[i] * half::f16::from_bits(w[i]).to_f32();
            i += 1;
        }
        s
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// 8 weights at `p` as f32 (`bf16`: shift the bits; `f16`: vcvtph2ps).
    #[inline(always)]
    unsafe fn load_16(p: *const u16, bf16: bool) -> __m256 {
        let h = _mm_loadu_si128(p as *const __m128i);
        if bf16 {
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
        } else {
            _mm256_cvtph_ps(h)
        }
    }

    #[inline(always)]
    fn widen(w: u16, bf16: bool) -> f32 {
        if bf16 {
            f32::from_bits((w as u32) << 16)
        } else {
            half::f16::from_bits(w).to_f32()
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_f32(x: &[f32], w: &[f32]) -> f32 {
        let n = x.len();
        let mut a = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, aj) in a.iter_mut().enumerate() {
                let o = i + 8 * j;
                *aj = _mm256_fmadd_ps(
                    _mm256_loadu_ps(x.as_ptr().add(o)),
                    _mm256_loadu_ps(w.as_ptr().add(o)),
                    *aj,
                );
            }
            i += 32;
        }
        let mut s = hsum(_mm256_add_ps(
            _mm256_add_ps(a[0], a[1]),
            _mm256_add_ps(a[2], a[3]),
        ));
        while i < n {
            s += x[i] * w[i];
            i += 1;
        }
        s
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_16(x: &[f32], w: &[u16], bf16: bool) -> f32 {
        let n = x.len();
        let mut a = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, aj) in a.iter_mut().enumerate() {
                let o = i + 8 * j;
                *aj = _mm256_fmadd_ps(
                    _mm256_loadu_ps(x.as_ptr().add(o)),
                    load_16(w.as_ptr().add(o), bf16),
                    *aj,
                );
            }
            i += 32;
        }
        while i + 8 <= n {
            a[0] = _mm256_fmadd_ps(
                _mm256_loadu_ps(x.as_ptr().add(i)),
                load_16(w.as_ptr().add(i), bf16),
                a[0],
            );
            i += 8;
        }
        let mut s = hsum(_mm256_add_ps(
            _mm256_add_ps(a[0], a[1]),
            _mm256_add_ps(a[2], a[3]),
        ));
        while i < n {
            s += x[i] * widen(w[i], bf16);
            i += 1;
        }
        s
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn axpy_16(p: f32, w: &[u16], acc: &mut [f32], bf16: bool) {
        let n = acc.len();
        let pv = _mm256_set1_ps(p);
        let mut i = 0;
        while i + 8 <= n {
            let a = _mm256_loadu_ps(acc.as_ptr().add(i));
            let v = _mm256_fmadd_ps(pv, load_16(w.as_ptr().add(i), bf16), a);
            _mm256_storeu_ps(acc.as_mut_ptr().add(i), v);
            i += 8;
        }
        while i < n {
            acc[i] += p * widen(w[i], bf16);
            i += 1;
        }
    }
}

/// The widest SIMD level this CPU runs, detected once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Avx512,
    Avx2,
    Portable,
}

fn level() -> Level {
    static L: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *L.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Level::Avx512;
            }
            if std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && std::is_x86_feature_detected!("f16c")
            {
                return Level::Avx2;
            }
        }
        Level::Portable
    })
}

/// 16-bit float weights as their bits (bf16 and f16 are transparent u16s).
fn bits<T: crate::dtype::Element>(w: &[T], n: usize) -> &[u16] {
    debug_assert!(std::mem::size_of::<T>() == 2 && w.len() >= n);
    // SAFETY: called only for bf16/f16, 2-byte transparent wrappers of u16; n ≤ w.len().
    unsafe { std::slice::from_raw_parts(w.as_ptr() as *const u16, n) }
}

impl DotWeight for f32 {
    fn dot(x: &[f32], w: &[f32]) -> f32 {
        let w = &w[..x.len()];
        // SAFETY (all arms): the level was detected at run time; slices have equal length.
        match level() {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => unsafe { avx512::dot_f32(x, w) },
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => unsafe { avx2::dot_f32(x, w) },
            _ => dot_scalar(x, w),
        }
    }
}

/// `DotWeight` for a 16-bit float type through the shared 16-bit kernels.
macro_rules! dot_weight_16 {
    ($t:ty, $bf16:expr) => {
        impl DotWeight for $t {
            fn axpy(p: f32, w: &[$t], acc: &mut [f32]) {
                let wb = bits(w, acc.len());
                // SAFETY (all arms): level detected at run time; lengths match.
                match level() {
                    #[cfg(target_arch = "x86_64")]
                    Level::Avx512 => unsafe { avx512::axpy_16(p, wb, acc, $bf16) },
                    #[cfg(target_arch = "x86_64")]
                    Level::Avx2 => unsafe { avx2::axpy_16(p, wb, acc, $bf16) },
                    _ => {
                        for (a, x) in acc.iter_mut().zip(w) {
                            *a += p * x.to_f32();
                        }
                    }
                }
            }

            fn dot(x: &[f32], w: &[$t]) -> f32 {
                let wb = bits(w, x.len());
                // SAFETY (all arms): level detected at run time; lengths match.
                match level() {
                    #[cfg(target_arch = "x86_64")]
                    Level::Avx512 if $bf16 => unsafe { avx512::dot_bf16(x, wb) },
                    #[cfg(target_arch = "x86_64")]
                    Level::Avx512 => unsafe { avx512::dot_f16(x, wb) },
                    #[cfg(target_arch = "x86_64")]
                    Level::Avx2 => unsafe { avx2::dot_16(x, wb, $bf16) },
                    _ => dot_scalar(x, w),
                }
            }
        }
    };
}

dot_weight_16!(bf16, true);
dot_weight_16!(f16, false);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_dots_match_scalar() {
        for n in [1usize, 15, 16, 33, 100, 577] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1).collect();
            let w: Vec<f32> = (0..n).map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.2).collect();
            let r = dot_scalar(&x, &w);
            assert!((f32::dot(&x, &w) - r).abs() < 1e-4 * (1.0 + r.abs()));
            let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
            let rb = dot_scalar(&x, &wb);
            assert!((bf16::dot(&x, &wb) - rb).abs() < 1e-4 * (1.0 + rb.abs()));
            let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            let rh = dot_scalar(&x, &wh);
            assert!((f16::dot(&x, &wh) - rh).abs() < 1e-4 * (1.0 + rh.abs()));
            // axpy against the scalar loop
            let (mut a1, mut a2) = (x.clone(), x.clone());
            f16::axpy(0.3, &wh, &mut a1);
            bf16::axpy(-0.7, &wb, &mut a2);
            for i in 0..n {
                assert!((a1[i] - (x[i] + 0.3 * wh[i].to_f32())).abs() < 1e-5);
                assert!((a2[i] - (x[i] - 0.7 * wb[i].to_f32())).abs() < 1e-5);
            }
        }
    }
}
