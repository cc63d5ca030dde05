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
///
/// # Safety
/// AVX2 and F16C must be present; `p` must be valid for reading elements i..i + 8 of kind
/// `W` (any alignment).
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
///
/// # Safety
/// `p` must be valid for reading element i of kind `W` (unaligned reads are used).
#[inline(always)]
unsafe fn load1<const W: u8>(p: *const u8, i: usize) -> f32 {
    match W {
        F32 => (p as *const f32).add(i).read_unaligned(),
        BF16 => f32::from_bits(((p as *const u16).add(i).read_unaligned() as u32) << 16),
        _ => half::f16::from_bits((p as *const u16).add(i).read_unaligned()).to_f32(),
    }
}

/// Weight element kinds.
pub const F32: u8 = 0;
pub const BF16: u8 = 1;
pub const F16: u8 = 2;

/// The sum of v's 8 lanes.
///
/// # Safety
/// AVX must be present (callers run with AVX2 enabled).
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

/// out[i] = x · w_i for the rows w_i = `w + i·stride` (elements), 4 rows at a time so each
/// load of x serves 4 FMAs (attention's scores over a run of keys, GEMV with 16-bit weights),
/// the next 4 rows prefetched.
///
/// # Safety
/// As `dot`, with every row holding `x.len()` elements of kind `W`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dots<const W: u8>(x: &[f32], w: *const u8, stride: usize, out: &mut [f32]) {
    let (d, n) = (x.len(), out.len());
    let size = if W == F32 { 4 } else { 2 };
    let row = |i: usize| w.add(i * stride * size);
    let d8 = d / 8 * 8;
    let mut i = 0;
    while i + 4 <= n {
        let r = [row(i), row(i + 1), row(i + 2), row(i + 3)];
        let mut a = [_mm256_setzero_ps(); 4];
        let mut e = 0;
        while e < d8 {
            if e % (64 / size) == 0 && i + 8 <= n {
                // The next 4 rows, in step with these, one line each per 64 bytes: GEMV over
                // 16-bit weights read 22-26 GB/s with the hardware prefetcher alone, ~28
                // with this (gpt-oss-20b's bf16 head and attention, 2 threads, AVX2 EPYC).
                for j in 4..8 {
                    _mm_prefetch::<_MM_HINT_T0>(row(i + j).add(e * size) as *const i8);
                }
            }
            let xv = _mm256_loadu_ps(x.as_ptr().add(e));
            for (aj, rj) in a.iter_mut().zip(r) {
                *aj = _mm256_fmadd_ps(xv, load8::<W>(rj, e), *aj);
            }
            e += 8;
        }
        // [a0 a1 a2 a3] lane sums: two rounds of hadd, then the two halves.
        let t = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
        let mut s = [0f32; 4];
        _mm_storeu_ps(
            s.as_mut_ptr(),
            _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)),
        );
        for (j, sj) in s.iter_mut().enumerate() {
            for (e, xe) in x.iter().enumerate().skip(d8) {
                *sj += xe * load1::<W>(r[j], e);
            }
            out[i + j] = *sj;
        }
        i += 4;
    }
    while i < n {
        out[i] = dot::<W>(x, row(i));
        i += 1;
    }
}

/// acc += Σ_i p[i] · w_i over the rows w_i = `w + i·stride` (elements), rows with p[i] = 0
/// skipped; 32 outputs stay in registers across all rows (attention's weighted sum of values).
///
/// # Safety
/// As `dot`, with every row holding `acc.len()` elements of kind `W`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn axpys<const W: u8>(p: &[f32], w: *const u8, stride: usize, acc: &mut [f32]) {
    let dv = acc.len();
    let size = if W == F32 { 4 } else { 2 };
    let ap = acc.as_mut_ptr();
    let mut e0 = 0;
    while e0 + 32 <= dv {
        let mut a = [0, 1, 2, 3].map(|j| _mm256_loadu_ps(ap.add(e0 + 8 * j)));
        for (i, &pi) in p.iter().enumerate() {
            if pi == 0.0 {
                continue;
            }
            let (pv, r) = (_mm256_set1_ps(pi), w.add(i * stride * size));
            for (j, aj) in a.iter_mut().enumerate() {
                *aj = _mm256_fmadd_ps(pv, load8::<W>(r, e0 + 8 * j), *aj);
            }
        }
        for (j, aj) in a.iter().enumerate() {
            _mm256_storeu_ps(ap.add(e0 + 8 * j), *aj);
        }
        e0 += 32;
    }
    if e0 < dv {
        for (i, &pi) in p.iter().enumerate() {
            if pi != 0.0 {
                let r = w.add((i * stride + e0) * size);
                axpy::<W>(pi, r, &mut acc[e0..]);
            }
        }
    }
}

/// s[i] ← exp(s[i] − m) (−∞ and results below 2^−126 give 0); returns Σ s. Cephes' expf
/// polynomial (relative error ~2e-7) on 8 lanes.
///
/// # Safety
/// AVX2 and FMA must be present.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp_sub(s: &mut [f32], m: f32) -> f32 {
    let n = s.len();
    let p = s.as_mut_ptr();
    let mv = _mm256_set1_ps(m);
    let mut sum = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), mv));
        _mm256_storeu_ps(p.add(i), e);
        sum = _mm256_add_ps(sum, e);
        i += 8;
    }
    let mut total = hsum(sum);
    while i < n {
        let v = s[i] - m;
        s[i] = if v < -87.0 { 0.0 } else { v.exp() };
        total += s[i];
        i += 1;
    }
    total
}

/// exp on 8 lanes: 0 below −87 (−∞ included), +∞ above 88.7, NaN kept.
///
/// # Safety
/// AVX2 and FMA must be present (it touches no memory).
#[inline(always)]
pub(super) unsafe fn exp8(x0: __m256) -> __m256 {
    // exp(x) = 2^n · exp(r), n = round(x·log2 e), r = x − n·ln 2 (ln 2 split in two parts).
    let tiny = _mm256_cmp_ps(x0, _mm256_set1_ps(-87.0), _CMP_LT_OQ);
    let huge = _mm256_cmp_ps(x0, _mm256_set1_ps(88.7), _CMP_GT_OQ);
    let nan = _mm256_cmp_ps(x0, x0, _CMP_UNORD_Q);
    let x = _mm256_min_ps(
        _mm256_max_ps(x0, _mm256_set1_ps(-87.0)),
        _mm256_set1_ps(88.0),
    );
    let n = _mm256_round_ps(
        _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
    );
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut y = _mm256_set1_ps(1.987_569_1e-4);
    for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
    }
    let y = _mm256_fmadd_ps(
        y,
        _mm256_mul_ps(r, r),
        _mm256_add_ps(r, _mm256_set1_ps(1.0)),
    );
    let scale = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
        23,
    );
    let e = _mm256_andnot_ps(tiny, _mm256_mul_ps(y, _mm256_castsi256_ps(scale)));
    let e = _mm256_blendv_ps(e, _mm256_set1_ps(f32::INFINITY), huge);
    _mm256_blendv_ps(e, x0, nan)
}

/// The exp-based activations, 8 lanes at a time: exp, sigmoid 1/(1+e^−x), silu x/(1+e^−x).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExpOp {
    Exp,
    Sigmoid,
    Silu,
}

/// out[i] = op(x[i]) (relative error ~3e-7 where the result is normal).
///
/// # Safety
/// AVX2 and FMA must be present.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp_map(op: ExpOp, x: &[f32], out: &mut [f32]) {
    let n = x.len().min(out.len());
    let one = _mm256_set1_ps(1.0);
    let f = |v: __m256| match op {
        ExpOp::Exp => exp8(v),
        ExpOp::Sigmoid => _mm256_div_ps(
            one,
            _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), v))),
        ),
        ExpOp::Silu => _mm256_div_ps(
            v,
            _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), v))),
        ),
    };
    let mut i = 0;
    while i + 8 <= n {
        _mm256_storeu_ps(
            out.as_mut_ptr().add(i),
            f(_mm256_loadu_ps(x.as_ptr().add(i))),
        );
        i += 8;
    }
    if i < n {
        let mut t = [0f32; 8];
        t[..n - i].copy_from_slice(&x[i..n]);
        let mut r = [0f32; 8];
        _mm256_storeu_ps(r.as_mut_ptr(), f(_mm256_loadu_ps(t.as_ptr())));
        out[i..n].copy_from_slice(&r[..n - i]);
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

    /// Batched dots/axpys over strided rows and the vector exp against scalar loops.
    #[test]
    fn avx2_batched_rows_and_exp_match_scalar() {
        if !has_avx2() {
            eprintln!("skipping: no AVX2/FMA/F16C");
            return;
        }
        let mut rng = StdRng::seed_from_u64(4);
        for d in [8usize, 13, 32, 64, 96] {
            for n in [1usize, 3, 4, 5, 9] {
                let stride = d + 3;
                let x: Vec<f32> = (0..d).map(|_| rng.gen::<f32>() * 2.0 - 1.0).collect();
                let w: Vec<f32> = (0..n * stride)
                    .map(|_| rng.gen::<f32>() * 2.0 - 1.0)
                    .collect();
                let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
                let wf: Vec<f32> = wh.iter().map(|v| v.to_f32()).collect();
                let p: Vec<f32> = (0..n)
                    .map(|i| if i % 3 == 1 { 0.0 } else { rng.gen() })
                    .collect();
                for (ws, ptr, kind) in [
                    (&w, w.as_ptr() as *const u8, F32),
                    (&wf, wh.as_ptr() as *const u8, F16),
                ] {
                    let mut out = vec![0f32; n];
                    let mut acc: Vec<f32> = x.clone();
                    // SAFETY: features checked; n rows of `stride` elements hold d each.
                    unsafe {
                        if kind == F32 {
                            dots::<F32>(&x, ptr, stride, &mut out);
                            axpys::<F32>(&p, ptr, stride, &mut acc);
                        } else {
                            dots::<F16>(&x, ptr, stride, &mut out);
                            axpys::<F16>(&p, ptr, stride, &mut acc);
                        }
                    }
                    for i in 0..n {
                        let row = &ws[i * stride..][..d];
                        let want: f32 = x.iter().zip(row).map(|(a, b)| a * b).sum();
                        assert!(
                            (out[i] - want).abs() < 1e-5 * (1.0 + want.abs()),
                            "dots d{d} n{n}"
                        );
                    }
                    for e in 0..d {
                        let want = x[e] + (0..n).map(|i| p[i] * ws[i * stride + e]).sum::<f32>();
                        assert!(
                            (acc[e] - want).abs() < 1e-5 * (1.0 + want.abs()),
                            "axpys d{d} n{n}"
                        );
                    }
                }
            }
        }
        for n in [1usize, 7, 8, 9, 40] {
            let mut s: Vec<f32> = (0..n).map(|_| rng.gen::<f32>() * 40.0 - 30.0).collect();
            // Masked keys and deep underflow (m, the maximum, is finite for callers).
            if n > 2 {
                s[0] = f32::NEG_INFINITY;
                s[2] = -200.0;
            }
            let m = s.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let want: Vec<f32> = s.iter().map(|&v| (v - m).exp()).collect();
            // SAFETY: features checked.
            let sum = unsafe { exp_sub(&mut s, m) };
            for (g, w) in s.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-6 * w + 1e-30, "exp n{n}: {g} vs {w}");
            }
            let ws: f32 = want.iter().sum();
            assert!((sum - ws).abs() < 1e-6 * ws, "exp sum n{n}");
        }
    }

    /// exp, sigmoid and silu against std over ordinary and extreme inputs.
    #[test]
    fn avx2_exp_map_matches_std() {
        if !has_avx2() {
            eprintln!("skipping: no AVX2/FMA/F16C");
            return;
        }
        let mut rng = StdRng::seed_from_u64(5);
        let mut x: Vec<f32> = (0..203).map(|_| rng.gen::<f32>() * 60.0 - 30.0).collect();
        x.extend([0.0, -0.0, 88.0, 89.0, -86.9, -87.5, -200.0, 200.0]);
        x.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
        type F = fn(f32) -> f32;
        let ops: [(ExpOp, F); 3] = [
            (ExpOp::Exp, |v| v.exp()),
            (ExpOp::Sigmoid, |v| 1.0 / (1.0 + (-v).exp())),
            (ExpOp::Silu, |v| v / (1.0 + (-v).exp())),
        ];
        for (op, f) in ops {
            let mut out = vec![0f32; x.len()];
            // SAFETY: features checked.
            unsafe { exp_map(op, &x, &mut out) };
            for (&v, &g) in x.iter().zip(&out) {
                let w = f(v);
                let ok = if w.is_nan() {
                    g.is_nan()
                } else if w.is_infinite() {
                    g == w
                } else {
                    // Below 2^-126 the kernel flushes exp to 0.
                    (g - w).abs() <= 1e-6 * w.abs() + 1.2e-38
                };
                assert!(ok, "{op:?}({v}) = {g}, want {w}");
            }
        }
    }
}
