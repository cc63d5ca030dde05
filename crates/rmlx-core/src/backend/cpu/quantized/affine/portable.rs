//! The portable affine kernel, for every bit width (2–8): each group's codes are unpacked
//! into a small stack buffer (at most 128 bytes, in L1) and multiplied with every activation
//! row of the call, in lanes the compiler vectorizes. x is in natural element order.

use super::{AffineRow, Scale};
use crate::quant::affine::unpack;

/// The largest group size MLX uses (`check_k` allows 32, 64 and 128).
const MAX_GROUP: usize = 128;

/// res[c] = Σ_k w[k]·x_c[k] for one weight row and the activation rows `xr` ((x, Σx per
/// group) each). Panics if the row's parts and x disagree in length.
pub fn row_dot<S: Scale>(row: &AffineRow<S>, xr: &[(&[f32], &[f32])], res: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::super::avx2::has_avx2() {
        // SAFETY: AVX2 and FMA were detected (`has_avx2`).
        return unsafe { row_dot_avx2(row, xr, res) };
    }
    row_dot_impl(row, xr, res)
}

/// `row_dot_impl` compiled with AVX2 (same code, vectorized wider).
///
/// # Safety
/// AVX2 and FMA must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_dot_avx2<S: Scale>(row: &AffineRow<S>, xr: &[(&[f32], &[f32])], res: &mut [f32]) {
    row_dot_impl(row, xr, res)
}

#[inline(always)]
fn row_dot_impl<S: Scale>(row: &AffineRow<S>, xr: &[(&[f32], &[f32])], res: &mut [f32]) {
    let (bits, group) = (row.bits as usize, row.group);
    assert!(
        group <= MAX_GROUP && group.is_multiple_of(8) && res.len() == xr.len(),
        "affine row_dot: group {group}, {} results for {} rows",
        res.len(),
        xr.len()
    );
    let gb = group * bits / 8; // bytes per group
    let ng = row.scales.len();
    assert!(row.biases.len() == ng && row.w.len() >= ng * gb);
    let mut q = [0u8; MAX_GROUP];
    res.fill(0.0);
    for g in 0..ng {
        let q = &mut q[..group];
        unpack(row.bits, &row.w[g * gb..][..gb], q);
        let (s, b) = (row.scales[g].to_f32(), row.biases[g].to_f32());
        for ((x, sums), out) in xr.iter().zip(res.iter_mut()) {
            let d = dot(q, &x[g * group..][..group]);
            *out += s * d + b * sums[g];
        }
    }
}

/// Σ q·x in 8 independent lanes (vectorizable without reassociating a float sum).
#[inline(always)]
fn dot(q: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (qc, xc) in q.chunks_exact(8).zip(x.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += qc[l] as f32 * xc[l];
        }
    }
    acc.iter().sum()
}
