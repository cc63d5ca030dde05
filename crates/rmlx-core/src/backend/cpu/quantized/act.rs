//! Activations quantized to 8 bits once per matmul (llama.cpp's Q8 idea): per 32 values one
//! scale, q = round(x / d) in −127..=127. Scales and d·Σq are stored per 16-element group so
//! the dot kernels combine them with the weights' per-16 scales and offsets directly.

use crate::quant::GROUP;

pub struct QRows {
    pub k: usize,
    /// (rows, K)
    pub q: Vec<i8>,
    /// (rows, K/16): the scale of the 32-block holding each group.
    pub d: Vec<f32>,
    /// (rows, K/16): d · Σ q over the group (multiplies the weight offset).
    pub sd: Vec<f32>,
}

pub struct XRow<'a> {
    pub q: &'a [i8],
    pub d: &'a [f32],
    pub sd: &'a [f32],
}

impl QRows {
    pub fn new(rows: usize, k: usize) -> Self {
        let g = k / GROUP;
        QRows {
            k,
            q: vec![0; rows * k],
            d: vec![0.0; rows * g],
            sd: vec![0.0; rows * g],
        }
    }

    pub fn row(&self, r: usize) -> XRow<'_> {
        let g = self.k / GROUP;
        XRow {
            q: &self.q[r * self.k..][..self.k],
            d: &self.d[r * g..][..g],
            sd: &self.sd[r * g..][..g],
        }
    }
}

/// `x` as `q.len() / x.len()` planes of 8-bit rows (each `quantize_row`'s layout, one after
/// the other): plane 0 rounds x, each next plane the residual the planes before left, so
/// x ≈ Σ_p d_p·q_p with an error ~127^−(planes) of the block's largest value. `x` is left
/// holding the last residual.
pub fn quantize_planes(x: &mut [f32], q: &mut [i8], d: &mut [f32], sd: &mut [f32]) {
    let (k, g) = (x.len(), x.len() / GROUP);
    let planes = q.len() / k.max(1);
    for p in 0..planes {
        let (qp, dp, sp) = (
            &mut q[p * k..][..k],
            &mut d[p * g..][..g],
            &mut sd[p * g..][..g],
        );
        quantize_row_fast(x, qp, dp, sp);
        if p + 1 < planes {
            for (i, v) in x.iter_mut().enumerate() {
                *v -= dp[i / GROUP] * qp[i] as f32;
            }
        }
    }
}

/// `quantize_row` compiled with AVX2 where the CPU has it: rounding becomes an instruction
/// (baseline x86-64 calls libm's `roundf` per element) and the loops vectorize. Same results.
pub fn quantize_row_fast(x: &[f32], q: &mut [i8], d: &mut [f32], sd: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::avx2::has_avx2() {
        // SAFETY: AVX2 and FMA were detected (`has_avx2`).
        return unsafe { quantize_row_avx2(x, q, d, sd) };
    }
    quantize_row(x, q, d, sd)
}

/// # Safety
/// AVX2 and FMA must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row_avx2(x: &[f32], q: &mut [i8], d: &mut [f32], sd: &mut [f32]) {
    quantize_row(x, q, d, sd)
}

/// Quantizes one row of K floats (K a multiple of 16; a trailing 16 forms its own block).
#[inline(always)]
pub fn quantize_row(x: &[f32], q: &mut [i8], d: &mut [f32], sd: &mut [f32]) {
    for (b, xb) in x.chunks(32).enumerate() {
        let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
        let db = amax / 127.0;
        let id = if db > 0.0 { 1.0 / db } else { 0.0 };
        let qb = &mut q[b * 32..b * 32 + xb.len()];
        for (qi, xi) in qb.iter_mut().zip(xb) {
            *qi = (xi * id).round() as i8;
        }
        for (h, qg) in qb.chunks(GROUP).enumerate() {
            let sum: i32 = qg.iter().map(|&v| v as i32).sum();
            d[2 * b + h] = db;
            sd[2 * b + h] = db * sum as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two planes approximate x within half a 127th of a 254th of each block's largest value
    /// (one plane: half a 127th), and each plane's offsets are its d·Σq.
    #[test]
    fn two_planes_leave_a_residual_of_a_32000th() {
        let k = 96;
        let x: Vec<f32> = (0..k)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0 * if i % 32 == 5 { 20.0 } else { 1.0 })
            .collect();
        let (mut xr, g) = (x.clone(), k / GROUP);
        let (mut q, mut d, mut sd) = (vec![0i8; 2 * k], vec![0f32; 2 * g], vec![0f32; 2 * g]);
        quantize_planes(&mut xr, &mut q, &mut d, &mut sd);
        for (b, xb) in x.chunks(32).enumerate() {
            let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
            for (j, &v) in xb.iter().enumerate() {
                let (i, h) = (b * 32 + j, (b * 32 + j) / GROUP);
                let one = d[h] * q[i] as f32;
                let two = one + d[g + h] * q[k + i] as f32;
                assert!(
                    (one - v).abs() <= amax / 127.0 * 0.5 * 1.001,
                    "plane 1 at {i}"
                );
                assert!(
                    (two - v).abs() <= amax / 127.0 / 254.0 * 0.5 * 1.01,
                    "plane 2 at {i}"
                );
            }
        }
        for p in 0..2 {
            for h in 0..g {
                let sum: i32 = q[p * k + h * GROUP..][..GROUP]
                    .iter()
                    .map(|&v| v as i32)
                    .sum();
                assert_eq!(sd[p * g + h], d[p * g + h] * sum as f32);
            }
        }
    }
}
