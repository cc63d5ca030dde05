//! Random quantized weights for the quantized-kernel tests (CPU and per-device), shared through
//! `#[path = "support/quant.rs"] mod quant;`.
#![allow(dead_code)]

use half::f16;
use rand::{rngs::StdRng, Rng};
use rmlx_core::quant::quantize::{quantize_affine, quantize_q4_0, quantize_q4_1, quantize_q8_0};
use rmlx_core::quant::QuantizedWeight;
use rmlx_core::{Array, GgmlType, QuantFormat};

pub fn randn(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen::<f32>() * 2.0 - 1.0).collect()
}

/// (m, k) · (n, k)ᵀ, accumulated in f64.
pub fn matmul_t(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let xr = &x[i * k..][..k];
            let wr = &w[j * k..][..k];
            out[i * n + j] = xr
                .iter()
                .zip(wr)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum::<f64>() as f32;
        }
    }
    out
}

/// Random blocks of a GGUF type with finite f16 scales at the type's scale offsets.
pub fn random_gguf(rng: &mut StdRng, t: GgmlType, rows: usize, k: usize) -> Vec<u8> {
    use GgmlType::*;
    let offs: &[usize] = match t {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q6_K => &[208],
        Q8_K | MXFP4 => &[],
        _ => panic!("no random blocks for {t:?}"),
    };
    let size = t.type_size();
    let nb = rows * k / t.block_size();
    let mut b: Vec<u8> = (0..nb * size).map(|_| rng.gen()).collect();
    for blk in b.chunks_exact_mut(size) {
        for &o in offs {
            let d = f16::from_f32((rng.gen::<f32>() - 0.3) * 0.05)
                .to_bits()
                .to_le_bytes();
            blk[o..o + 2].copy_from_slice(&d);
        }
        match t {
            MXFP4 => blk[0] = rng.gen_range(120..132),
            Q8_K => blk[..4].copy_from_slice(&(rng.gen::<f32>() * 0.01).to_le_bytes()),
            _ => {}
        }
    }
    b
}

/// A random weight (optionally with experts) of each format, on the CPU.
pub fn weight(
    rng: &mut StdRng,
    f: QuantFormat,
    e: Option<usize>,
    n: usize,
    k: usize,
) -> QuantizedWeight {
    let rows = e.unwrap_or(1) * n;
    let mut lead: Vec<usize> = e.into_iter().collect();
    lead.push(n);
    let shape = |rest: &[usize]| [lead.as_slice(), rest].concat();
    let parts = match f {
        QuantFormat::Gguf(t) => {
            let x = randn(rng, rows * k);
            let b = match t {
                GgmlType::Q4_0 => quantize_q4_0(&x),
                GgmlType::Q4_1 => quantize_q4_1(&x),
                GgmlType::Q8_0 => quantize_q8_0(&x),
                _ => random_gguf(rng, t, rows, k),
            };
            vec![Array::from_vec(b, &shape(&[t.row_bytes(k).unwrap()])).unwrap()]
        }
        QuantFormat::Mxfp4 => {
            let blocks: Vec<u8> = (0..rows * k / 2).map(|_| rng.gen()).collect();
            let scales: Vec<u8> = (0..rows * k / 32)
                .map(|_| rng.gen_range(120..130))
                .collect();
            vec![
                Array::from_vec(blocks, &shape(&[k / 32, 16])).unwrap(),
                Array::from_vec(scales, &shape(&[k / 32])).unwrap(),
            ]
        }
        QuantFormat::Affine { bits, group_size } => {
            let (w, s, b) = quantize_affine(&randn(rng, rows * k), k, bits, group_size as usize);
            let g = shape(&[k / group_size as usize]);
            let wq = Array::from_vec(w, &shape(&[k * bits as usize / 32])).unwrap();
            // scales in f16 for 4-bit, f32 otherwise: both paths exercised
            let (s, b) = if bits == 4 {
                let h = |v: Vec<f32>| v.into_iter().map(f16::from_f32).collect::<Vec<_>>();
                (
                    Array::from_vec(h(s), &g).unwrap(),
                    Array::from_vec(h(b), &g).unwrap(),
                )
            } else {
                (
                    Array::from_vec(s, &g).unwrap(),
                    Array::from_vec(b, &g).unwrap(),
                )
            };
            vec![wq, s, b]
        }
    };
    QuantizedWeight::new(f, n, k, e, parts).unwrap()
}
