//! The AVX2 affine kernel for 4- and 8-bit codes. A step is 32 elements (16 or 32 bytes):
//! bytes are zero-extended to 8 i32 lanes (`vpmovzxbd`), 4-bit bytes split into low and high
//! nibbles (even and odd elements, which is why x is laid out [even, odd] per 16 for them),
//! converted to f32 and multiplied into per-group accumulators; at the group's end
//! acc·scale and bias·Σx join the row's total. Per x row of the call: 4 accumulator chains
//! (1 row) or 2 (2 or 4 rows), and two alternating totals, so that no FMA waits on the
//! previous one's latency.
#![cfg(target_arch = "x86_64")]

use super::super::avx2::hsum;
use super::{AffineRow, Scale};
use crate::dtype::DType;
use std::arch::x86_64::*;

/// Elements per step.
const STEP: usize = 32;

/// res[c] = Σ_k w[k]·x_c[k] for one weight row and 1, 2 or 4 activation rows `xr` ((x laid
/// out for this kernel, Σx per group) each). `pf`: prefetch distance in bytes (0 = off).
/// Panics if the row's parts and x disagree in length, or on another bit width.
pub fn row_dot<S: Scale>(row: &AffineRow<S>, xr: &[(&[f32], &[f32])], res: &mut [f32], pf: usize) {
    let (bits, group) = (row.bits as usize, row.group);
    let ng = row.scales.len();
    let k = ng * group;
    assert!(
        super::super::avx2::has_avx2()
            && matches!(bits, 4 | 8)
            && group.is_multiple_of(STEP)
            && row.biases.len() == ng
            && row.w.len() >= k * bits / 8
            && res.len() == xr.len()
            && xr.iter().all(|(x, s)| x.len() >= k && s.len() >= ng),
        "affine avx2 row_dot: parts of a {bits}-bit row of K = {k} and x disagree, or no AVX2"
    );
    let rp = Row {
        w: row.w.as_ptr(),
        scales: row.scales.as_ptr(),
        biases: row.biases.as_ptr(),
        k,
        group,
    };
    macro_rules! call {
        ($bits:literal, $c:literal, $ch:literal) => {{
            let x = std::array::from_fn(|i| xr[i].0.as_ptr());
            let sums = std::array::from_fn(|i| xr[i].1.as_ptr());
            // SAFETY: AVX2, FMA and F16C detected (`has_avx2`); the lengths `Row` documents were asserted above.
            let out: [f32; $c] = unsafe { row_avx2::<S, $bits, $c, $ch>(rp, x, sums, pf) };
            res.copy_from_slice(&out);
        }};
    }
    match (bits, xr.len()) {
        (4, 1) => call!(4, 1, 4),
        (4, 2) => call!(4, 2, 2),
        (4, 4) => call!(4, 4, 2),
        (8, 1) => call!(8, 1, 4),
        (8, 2) => call!(8, 2, 2),
        (8, 4) => call!(8, 4, 2),
        (_, c) => panic!("affine avx2 row_dot: expected 1, 2 or 4 activation rows, found {c}"),
    }
}

/// One weight row by raw pointers: `w` holds k·BITS/8 bytes, `scales` and `biases` k/group
/// values each; `group` is a multiple of 32 dividing k.
#[derive(Clone, Copy)]
struct Row<S> {
    w: *const u8,
    scales: *const S,
    biases: *const S,
    k: usize,
    group: usize,
}

/// Eight bytes at `p` zero-extended to 8 i32 lanes.
///
/// # Safety
/// AVX2 present; `p` readable for 8 bytes.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn bytes8(p: *const u8) -> __m256i {
    _mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i))
}

/// The step's 32 codes at `p` as 4 vectors of 8 floats, in x's layout: 8 bits, natural
/// order; 4 bits, [even, odd] elements of 0..16, then of 16..32.
///
/// # Safety
/// AVX2 present; `p` readable for 32·BITS/8 bytes.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn codes<const BITS: usize>(p: *const u8) -> [__m256; 4] {
    if BITS == 8 {
        return [
            _mm256_cvtepi32_ps(bytes8(p)),
            _mm256_cvtepi32_ps(bytes8(p.add(8))),
            _mm256_cvtepi32_ps(bytes8(p.add(16))),
            _mm256_cvtepi32_ps(bytes8(p.add(24))),
        ];
    }
    let m = _mm256_set1_epi32(0xF);
    let (b0, b1) = (bytes8(p), bytes8(p.add(8)));
    [
        _mm256_cvtepi32_ps(_mm256_and_si256(b0, m)),
        _mm256_cvtepi32_ps(_mm256_srli_epi32(b0, 4)),
        _mm256_cvtepi32_ps(_mm256_and_si256(b1, m)),
        _mm256_cvtepi32_ps(_mm256_srli_epi32(b1, 4)),
    ]
}

/// Σ q·x over group `g` for each of the C rows (CH accumulator chains per row), into `t`.
///
/// # Safety
/// AVX2 and FMA present; `w` as `Row` says, each x[c] readable for k floats; g < k/group.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn group_dot<const BITS: usize, const C: usize, const CH: usize>(
    w: *const u8,
    group: usize,
    g: usize,
    x: &[*const f32; C],
    t: &mut [__m256; C],
) {
    let mut a = [[_mm256_setzero_ps(); CH]; C];
    let e0 = g * group;
    for s in 0..group / STEP {
        let e = e0 + s * STEP;
        let v = codes::<BITS>(w.add(e * BITS / 8));
        for c in 0..C {
            for i in 0..4 {
                let xv = _mm256_loadu_ps(x[c].add(e + 8 * i));
                a[c][i % CH] = _mm256_fmadd_ps(v[i], xv, a[c][i % CH]);
            }
        }
    }
    for c in 0..C {
        let mut sum = a[c][0];
        for &ah in &a[c][1..] {
            sum = _mm256_add_ps(sum, ah);
        }
        t[c] = sum;
    }
}

/// The scale or bias at `p` as f32 (f16 through F16C).
///
/// # Safety
/// AVX2 and F16C present; `p` readable (an element of a scales or biases part).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale_f32<S: Scale>(p: *const S) -> f32 {
    match S::DTYPE {
        // An f16 is its 16 bits (`half::f16` is a transparent u16).
        DType::F16 => _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(
            (p as *const u16).read() as i32
        ))),
        _ => (*p).to_f32(),
    }
}

/// # Safety
/// AVX2, FMA and F16C present; `w` as `Row` documents; x[c] readable for k floats and sums[c] for
/// k/group floats. Prefetches never fault.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn row_avx2<S: Scale, const BITS: usize, const C: usize, const CH: usize>(
    w: Row<S>,
    x: [*const f32; C],
    sums: [*const f32; C],
    pf: usize,
) -> [f32; C] {
    let ng = w.k / w.group;
    let gb = w.group * BITS / 8;
    let mut tot = [[_mm256_setzero_ps(); 2]; C];
    let mut bsum = [[0f32; 2]; C];
    let mut t = [_mm256_setzero_ps(); C];
    // Group g's partial sums `t` times its scale into total slot `$slot`, its bias times Σx
    // into `bsum[c][$slot]` (two slots: consecutive groups do not wait on each other's FMAs).
    macro_rules! add_group {
        ($g:expr, $slot:literal) => {
            let s = _mm256_set1_ps(scale_f32(w.scales.add($g)));
            let b = scale_f32(w.biases.add($g));
            for c in 0..C {
                tot[c][$slot] = _mm256_fmadd_ps(t[c], s, tot[c][$slot]);
                bsum[c][$slot] = b.mul_add(*sums[c].add($g), bsum[c][$slot]);
            }
        };
    }
    let mut g = 0;
    while g + 2 <= ng {
        _mm_prefetch(w.w.wrapping_add(g * gb + pf) as *const i8, _MM_HINT_T0);
        group_dot::<BITS, C, CH>(w.w, w.group, g, &x, &mut t);
        add_group!(g, 0);
        group_dot::<BITS, C, CH>(w.w, w.group, g + 1, &x, &mut t);
        add_group!(g + 1, 1);
        g += 2;
    }
    if g < ng {
        group_dot::<BITS, C, CH>(w.w, w.group, g, &x, &mut t);
        add_group!(g, 0);
    }
    let mut out = [0f32; C];
    for c in 0..C {
        out[c] = hsum(_mm256_add_ps(tot[c][0], tot[c][1])) + (bsum[c][0] + bsum[c][1]);
    }
    out
}
