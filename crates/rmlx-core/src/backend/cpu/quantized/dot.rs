//! Dot product of one decoded weight row (u, s, o per 16) with one quantized activation row:
//! Σ_g s_g·d_g·Σ(u·q) + o_g·d_g·Σq, integer inside each group. The AVX-512 VNNI version is in
//! `simd.rs`; this scalar one is the fallback and gives the same integers.

use super::act::XRow;
use crate::quant::GROUP;

/// A weight row in the common form, reused across rows of x (the GEMM's reuse).
pub struct Decoded {
    pub u: Vec<u8>,
    pub s: Vec<f32>,
    pub o: Vec<f32>,
}

impl Decoded {
    pub fn new(k: usize) -> Self {
        Decoded {
            u: vec![0; k],
            s: vec![0.0; k / GROUP],
            o: vec![0.0; k / GROUP],
        }
    }
}

pub type DotFn = fn(&Decoded, &XRow) -> f32;

pub fn dot_scalar(w: &Decoded, x: &XRow) -> f32 {
    let mut acc = 0f32;
    for (g, (wu, xq)) in
        w.u.chunks_exact(GROUP)
            .zip(x.q.chunks_exact(GROUP))
            .enumerate()
    {
        let isum: i32 = wu.iter().zip(xq).map(|(&a, &b)| a as i32 * b as i32).sum();
        acc += w.s[g] * x.d[g] * isum as f32 + w.o[g] * x.sd[g];
    }
    acc
}

pub type DecodeFn = fn(crate::quant::RowRef, &mut Decoded) -> crate::Result<()>;

fn decode_portable(row: crate::quant::RowRef, d: &mut Decoded) -> crate::Result<()> {
    crate::quant::decode_row(row, &mut d.u, &mut d.s, &mut d.o)
}

/// The decoder compiled for the widest SIMD this CPU supports.
pub fn best_decode() -> DecodeFn {
    #[cfg(target_arch = "x86_64")]
    if super::simd::has_avx512_vnni() {
        return super::simd::decode_row;
    }
    #[cfg(target_arch = "x86_64")]
    if super::avx2::has_avx2() {
        return super::avx2::dot::decode_row;
    }
    decode_portable
}

/// The fastest dot this CPU supports for rows of `format`.
pub fn best_dot(format: crate::quant::QuantFormat) -> DotFn {
    #[cfg(target_arch = "x86_64")]
    if super::simd::has_avx512_vnni() {
        return super::simd::dot;
    }
    #[cfg(target_arch = "x86_64")]
    if super::avx2::has_avx2() {
        use super::avx2::dot::{dot, narrow_codes};
        return if narrow_codes(format) {
            dot::<false>
        } else {
            dot::<true>
        };
    }
    let _ = format;
    dot_scalar
}

/// A dot straight from a packed GGUF row, for the types with a fused SIMD kernel.
pub type FusedFn = fn(&[u8], &XRow) -> f32;

pub fn best_fused(format: crate::quant::QuantFormat) -> Option<FusedFn> {
    #[cfg(target_arch = "x86_64")]
    if super::simd::has_avx512_vnni() {
        use super::simd::{dot_fused, Q4_0, Q4_1, Q8_0};
        use crate::quant::{GgmlType as G, QuantFormat::Gguf};
        return match format {
            Gguf(G::Q4_0) => Some(dot_fused::<Q4_0>),
            Gguf(G::Q4_1) => Some(dot_fused::<Q4_1>),
            Gguf(G::Q8_0) => Some(dot_fused::<Q8_0>),
            _ => None,
        };
    }
    let _ = format;
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::quantize::{quantize_q4_0, quantize_q4_1, quantize_q8_0};
    use crate::quant::{GgmlType, QuantFormat, RowRef};

    /// The SIMD kernels (fused and common-form) agree with the scalar fallback.
    #[test]
    fn simd_matches_scalar() {
        let k = 96 + 64; // a pair loop plus an odd tail block
        let x: Vec<f32> = (0..k)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let mut xq = super::super::act::QRows::new(1, k);
        super::super::act::quantize_row(&x, &mut xq.q, &mut xq.d, &mut xq.sd);
        let w: Vec<f32> = (0..k)
            .map(|i| ((i * 53 % 31) as f32 - 15.0) / 9.0)
            .collect();
        for (t, bytes) in [
            (GgmlType::Q4_0, quantize_q4_0(&w)),
            (GgmlType::Q4_1, quantize_q4_1(&w)),
            (GgmlType::Q8_0, quantize_q8_0(&w)),
        ] {
            let mut dec = Decoded::new(k);
            crate::quant::decode_row(RowRef::Gguf(t, &bytes), &mut dec.u, &mut dec.s, &mut dec.o)
                .unwrap();
            let want = dot_scalar(&dec, &xq.row(0));
            let tol = 1e-4 * want.abs().max(1.0);
            let got = best_dot(QuantFormat::Gguf(t))(&dec, &xq.row(0));
            assert!((got - want).abs() < tol, "{t:?}");
            if let Some(f) = best_fused(QuantFormat::Gguf(t)) {
                assert!((f(&bytes, &xq.row(0)) - want).abs() < tol, "{t:?} fused");
            }
        }
    }
}
