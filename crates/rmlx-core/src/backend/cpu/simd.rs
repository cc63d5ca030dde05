//! Dot products of an f32 activation row with a weight row of f32/bf16/f16, the inner loop of
//! GEMV for unquantized weights. AVX-512 where present, else AVX2 (`simd_avx2.rs`), portable
//! code elsewhere.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

/// Whether `n` rows of `d` elements at `base + i·stride` (i < n) all lie inside `len`
/// elements; false on overflow (a wrapped sum would pass a plain comparison).
fn rows_in_bounds(base: usize, n: usize, stride: usize, d: usize, len: usize) -> bool {
    if n == 0 {
        return true;
    }
    (n - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(base))
        .and_then(|v| v.checked_add(d))
        .is_some_and(|end| end <= len)
}

/// Weight element types with a SIMD dot product against f32.
pub trait DotWeight: crate::dtype::Element {
    fn dot(x: &[f32], w: &[Self]) -> f32;
    /// acc += p · w (attention's weighted sum of value rows).
    fn axpy(p: f32, w: &[Self], acc: &mut [f32]) {
        // A row shorter than acc is a caller bug: a bounds panic, as on the SIMD paths.
        let w = &w[..acc.len()];
        for (a, x) in acc.iter_mut().zip(w) {
            *a += p * x.to_f32();
        }
    }
    /// out[i] = x · w[base + i·stride ..][..x.len()] (attention's scores over a run of keys).
    fn dots(x: &[f32], w: &[Self], base: usize, stride: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(kind) = avx2_kind::<Self>() {
            let (d, n) = (x.len(), out.len());
            assert!(
                rows_in_bounds(base, n, stride, d, w.len()),
                "dots: rows out of bounds"
            );
            // SAFETY: `avx2_kind` found AVX2, FMA and F16C and named `Self`'s element kind;
            // the n rows of d elements at base + i·stride lie inside `w` (asserted). With n = 0
            // nothing is read (`wrapping_add`: base may then be anything).
            unsafe {
                let p = w.as_ptr().wrapping_add(base) as *const u8;
                match kind {
                    avx2::F32 => avx2::dots::<{ avx2::F32 }>(x, p, stride, out),
                    avx2::BF16 => avx2::dots::<{ avx2::BF16 }>(x, p, stride, out),
                    _ => avx2::dots::<{ avx2::F16 }>(x, p, stride, out),
                }
            }
            return;
        }
        for (i, o) in out.iter_mut().enumerate() {
            let s = base + i * stride;
            *o = Self::dot(x, &w[s..s + x.len()]);
        }
    }
    /// acc += Σ_i p[i] · w[base + i·stride ..][..acc.len()], skipping rows with p[i] = 0.
    fn axpys(p: &[f32], w: &[Self], base: usize, stride: usize, acc: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(kind) = avx2_kind::<Self>() {
            let (d, n) = (acc.len(), p.len());
            assert!(
                rows_in_bounds(base, n, stride, d, w.len()),
                "axpys: rows out of bounds"
            );
            // SAFETY: as in `dots`: features checked, every row of `acc.len()` elements in
            // bounds (asserted); with no rows the kernel reads nothing.
            unsafe {
                let q = w.as_ptr().wrapping_add(base) as *const u8;
                match kind {
                    avx2::F32 => avx2::axpys::<{ avx2::F32 }>(p, q, stride, acc),
                    avx2::BF16 => avx2::axpys::<{ avx2::BF16 }>(p, q, stride, acc),
                    _ => avx2::axpys::<{ avx2::F16 }>(p, q, stride, acc),
                }
            }
            return;
        }
        for (i, &pi) in p.iter().enumerate() {
            if pi != 0.0 {
                let s = base + i * stride;
                Self::axpy(pi, &w[s..s + acc.len()], acc);
            }
        }
    }
}

/// The AVX2 batched kernels' element kind for `T`, on CPUs with AVX2 but not AVX-512 (those
/// keep their per-row AVX-512 loops).
#[cfg(target_arch = "x86_64")]
fn avx2_kind<T: crate::dtype::Element>() -> Option<u8> {
    if has_avx512() || !avx2::has_avx2() {
        return None;
    }
    match T::DTYPE {
        crate::dtype::DType::F32 => Some(avx2::F32),
        crate::dtype::DType::BF16 => Some(avx2::BF16),
        crate::dtype::DType::F16 => Some(avx2::F16),
        _ => None,
    }
}

/// s[i] ← exp(s[i] − m), 0 for s[i] = −∞; returns Σ s (softmax numerators, m the maximum).
pub fn exp_sub(s: &mut [f32], m: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2::has_avx2() {
        // SAFETY: AVX2 and FMA detected (`has_avx2`), all `exp_sub` needs.
        return unsafe { avx2::exp_sub(s, m) };
    }
    let mut sum = 0.0;
    for v in s.iter_mut() {
        *v = if *v == f32::NEG_INFINITY {
            0.0
        } else {
            (*v - m).exp()
        };
        sum += *v;
    }
    sum
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

    /// Σ x[i]·w[i] over x.len() values.
    ///
    /// # Safety
    /// AVX-512F must be present and `w` hold at least `x.len()` values.
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

    /// 16 bf16 at `p` as f32 (bf16 → f32 is a 16-bit left shift of the bits).
    ///
    /// # Safety
    /// AVX-512F must be present and `p` valid for reading 16 u16 (32 bytes, any alignment).
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> __m512 {
        let h = _mm256_loadu_si256(p as *const __m256i);
        _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
    }

    /// Σ x[i]·w[i] over x.len() values, `w` the bits of bf16 values.
    ///
    /// # Safety
    /// As `dot_f32`: AVX-512F present, `w.len() ≥ x.len()`.
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
    ///
    /// # Safety
    /// AVX-512F must be present and `w` hold at least `acc.len()` values.
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

    /// Σ x[i]·w[i] over x.len() values, `w` the bits of f16 values.
    ///
    /// # Safety
    /// As `dot_f32`: AVX-512F present, `w.len() ≥ x.len()`.
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
pub fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

#[cfg(target_arch = "x86_64")]
use super::simd_avx2 as avx2;

impl DotWeight for f32 {
    fn dot(x: &[f32], w: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            // SAFETY: AVX-512F detected; `w` is sliced to x.len() values.
            return unsafe { avx512::dot_f32(x, &w[..x.len()]) };
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::has_avx2() {
            let w = &w[..x.len()];
            // SAFETY: features checked; `w` holds x.len() f32s.
            return unsafe { avx2::dot::<{ avx2::F32 }>(x, w.as_ptr() as *const u8) };
        }
        dot_scalar(x, w)
    }

    fn axpy(p: f32, w: &[f32], acc: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if avx2::has_avx2() {
            let w = &w[..acc.len()];
            // SAFETY: features checked; `w` holds acc.len() f32s.
            return unsafe { avx2::axpy::<{ avx2::F32 }>(p, w.as_ptr() as *const u8, acc) };
        }
        let w = &w[..acc.len()];
        for (a, x) in acc.iter_mut().zip(w) {
            *a += p * x;
        }
    }
}

impl DotWeight for bf16 {
    fn axpy(p: f32, w: &[bf16], acc: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            let bits: &[u16] = w[..acc.len()].reinterpret_cast();
            // SAFETY: AVX-512F detected; `bits` holds acc.len() values (sliced above).
            return unsafe { avx512::axpy_16(p, bits, acc, true) };
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::has_avx2() {
            let w = &w[..acc.len()];
            // SAFETY: features checked; `w` holds acc.len() bf16 values.
            return unsafe { avx2::axpy::<{ avx2::BF16 }>(p, w.as_ptr() as *const u8, acc) };
        }
        let w = &w[..acc.len()];
        for (a, x) in acc.iter_mut().zip(w) {
            *a += p * x.to_f32();
        }
    }

    fn dot(x: &[f32], w: &[bf16]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            let bits: &[u16] = w[..x.len()].reinterpret_cast();
            // SAFETY: AVX-512F detected; `bits` holds x.len() values (sliced above).
            return unsafe { avx512::dot_bf16(x, bits) };
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::has_avx2() {
            let w = &w[..x.len()];
            // SAFETY: features checked; `w` holds x.len() bf16 values.
            return unsafe { avx2::dot::<{ avx2::BF16 }>(x, w.as_ptr() as *const u8) };
        }
        dot_scalar(x, w)
    }
}

impl DotWeight for f16 {
    fn axpy(p: f32, w: &[f16], acc: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            let bits: &[u16] = w[..acc.len()].reinterpret_cast();
            // SAFETY: AVX-512F detected; `bits` holds acc.len() values (sliced above).
            return unsafe { avx512::axpy_16(p, bits, acc, false) };
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::has_avx2() {
            let w = &w[..acc.len()];
            // SAFETY: features checked; `w` holds acc.len() f16 values.
            return unsafe { avx2::axpy::<{ avx2::F16 }>(p, w.as_ptr() as *const u8, acc) };
        }
        let w = &w[..acc.len()];
        for (a, x) in acc.iter_mut().zip(w) {
            *a += p * x.to_f32();
        }
    }

    fn dot(x: &[f32], w: &[f16]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            let bits: &[u16] = w[..x.len()].reinterpret_cast();
            // SAFETY: AVX-512F detected; `bits` holds x.len() values (sliced above).
            return unsafe { avx512::dot_f16(x, bits) };
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::has_avx2() {
            let w = &w[..x.len()];
            // SAFETY: features checked; `w` holds x.len() f16 values.
            return unsafe { avx2::dot::<{ avx2::F16 }>(x, w.as_ptr() as *const u8) };
        }
        dot_scalar(x, w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A weight row shorter than x is a bounds panic, never a read past its end (the 16-bit
    /// kinds once built their slices from x's length alone).
    #[test]
    fn short_weight_rows_panic() {
        let x = vec![1f32; 40];
        let short =
            |f: &(dyn Fn() + std::panic::RefUnwindSafe)| std::panic::catch_unwind(f).is_err();
        let wb = vec![bf16::ONE; 39];
        let wh = vec![f16::ONE; 39];
        let wf = vec![1f32; 39];
        assert!(short(&|| {
            bf16::dot(&x, &wb);
        }));
        assert!(short(&|| {
            f16::dot(&x, &wh);
        }));
        assert!(short(&|| {
            f32::dot(&x, &wf);
        }));
        assert!(short(&|| {
            bf16::axpy(1.0, &wb, &mut x.clone());
        }));
        assert!(short(&|| {
            f16::axpy(1.0, &wh, &mut x.clone());
        }));
        // Batched rows: the second row runs past the end.
        assert!(short(&|| {
            bf16::dots(&x[..20], &wb, 0, 20, &mut [0f32; 2]);
        }));
        assert!(short(&|| {
            f16::axpys(&[1.0, 1.0], &wh, 0, 20, &mut [0f32; 20]);
        }));
        assert!(rows_in_bounds(0, 2, 20, 20, 40) && !rows_in_bounds(1, 2, 20, 20, 40));
        assert!(
            !rows_in_bounds(usize::MAX, 2, usize::MAX, 1, 40),
            "overflow passes"
        );
    }

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
            let (mut a1, mut a2, mut a3) = (x.clone(), x.clone(), x.clone());
            f16::axpy(0.3, &wh, &mut a1);
            bf16::axpy(-0.7, &wb, &mut a2);
            f32::axpy(1.3, &w, &mut a3);
            for i in 0..n {
                assert!((a1[i] - (x[i] + 0.3 * wh[i].to_f32())).abs() < 1e-5);
                assert!((a2[i] - (x[i] - 0.7 * wb[i].to_f32())).abs() < 1e-5);
                assert!((a3[i] - (x[i] + 1.3 * w[i])).abs() < 1e-5);
            }
        }
    }
}
