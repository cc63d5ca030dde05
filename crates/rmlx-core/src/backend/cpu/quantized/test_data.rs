//! Random weights of every fused kind for the kernel tests (AVX-512 `fused_tests.rs`, AVX2
//! `avx2/tests.rs`).

use super::stack::{Q4_0, Q4_1, Q4_K, Q6_K, Q8_0};
use crate::quant::{GgmlType, RowRef};
use rand::{rngs::StdRng, Rng};

/// The GGUF type of a fused kind (None: MXFP4).
pub fn ggml(kind: u8) -> Option<GgmlType> {
    Some(match kind {
        Q4_0 => GgmlType::Q4_0,
        Q4_1 => GgmlType::Q4_1,
        Q8_0 => GgmlType::Q8_0,
        Q4_K => GgmlType::Q4_K,
        Q6_K => GgmlType::Q6_K,
        _ => return None,
    })
}

/// Random GGUF bytes of `n` rows with finite f16 scales at the type's scale offsets (every
/// code pattern, Q8_0's −128 included).
pub fn gguf_bytes(rng: &mut StdRng, t: GgmlType, n: usize, k: usize) -> Vec<u8> {
    use GgmlType::*;
    let offs: &[usize] = match t {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q6_K => &[208],
        Q8_K => &[],
        _ => panic!("no random blocks for {t:?}"),
    };
    let size = t.type_size();
    let mut b: Vec<u8> = (0..n * k / t.block_size() * size)
        .map(|_| rng.gen())
        .collect();
    for blk in b.chunks_exact_mut(size) {
        for &o in offs {
            let d = half::f16::from_f32((rng.gen::<f32>() - 0.3) * 0.05);
            blk[o..o + 2].copy_from_slice(&d.to_bits().to_le_bytes());
        }
        if t == Q8_K {
            blk[..4].copy_from_slice(&(rng.gen::<f32>() * 0.01).to_le_bytes());
        }
    }
    b
}

/// `n` random MXFP4 rows: (blocks, exponents), exponents around 1 plus the subnormal and
/// tiny ones.
pub fn mxfp4_bytes(rng: &mut StdRng, n: usize, k: usize) -> (Vec<u8>, Vec<u8>) {
    let b = (0..n * k / 2).map(|_| rng.gen()).collect();
    let mut e: Vec<u8> = (0..n * k / 32).map(|_| rng.gen_range(118..134)).collect();
    e[0] = 0;
    if e.len() > 3 {
        e[3] = 1;
    }
    (b, e)
}

/// Row `r` of random weights of `kind` (bytes `b`, MXFP4 exponents `e`).
pub fn row_ref<'a>(kind: u8, b: &'a [u8], e: &'a [u8], r: usize, k: usize) -> RowRef<'a> {
    match ggml(kind) {
        Some(t) => {
            let rb = t.row_bytes(k).unwrap();
            RowRef::Gguf(t, &b[r * rb..][..rb])
        }
        None => RowRef::Mxfp4 {
            blocks: &b[r * k / 2..][..k / 2],
            scales: &e[r * k / 32..][..k / 32],
        },
    }
}
