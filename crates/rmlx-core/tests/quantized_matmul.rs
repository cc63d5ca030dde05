//! Quantized matmul, gather_qmm and quantized_take against dequantize-then-f32-matmul, through
//! the public Array API. The GGUF kernels quantize activations to 8 bits (per 32 values, as
//! llama.cpp does), so their tolerance is a relative L2 error of 2e-2 (typically ~4e-3);
//! Hugging Face MXFP4 takes them as two 8-bit planes (x and its rounding residual): 1e-4;
//! MLX affine keeps float activations (as MLX does) and meets f32's 1e-5.

use half::{bf16, f16};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rmlx_core::quant::QuantizedWeight;
use rmlx_core::{Array, DType, GgmlType, QuantFormat};

#[path = "support/quant.rs"]
mod quant;
use quant::{matmul_t, randn, weight};

/// The relative L2 error allowed for a format (see the header).
fn tol(f: QuantFormat) -> f32 {
    match f {
        QuantFormat::Affine { .. } => 1e-5,
        QuantFormat::Mxfp4 => 1e-4,
        _ => 2e-2,
    }
}

fn rel_l2(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let num: f32 = got.iter().zip(want).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f32 = want.iter().map(|b| b * b).sum();
    (num / den.max(1e-30)).sqrt()
}

fn formats() -> Vec<(QuantFormat, usize)> {
    use GgmlType::*;
    let mut v: Vec<(QuantFormat, usize)> = [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4]
        .iter()
        .map(|&t| (QuantFormat::Gguf(t), 96)) // 3 blocks: a 32-element SIMD tail
        .collect();
    v.extend(
        [Q2_K, Q3_K, Q4_K, Q5_K, Q6_K]
            .iter()
            .map(|&t| (QuantFormat::Gguf(t), 512)),
    );
    v.push((QuantFormat::Mxfp4, 160));
    for (bits, gs) in [
        (2, 32),
        (3, 64),
        (4, 32),
        (4, 64),
        (5, 32),
        (6, 128),
        (8, 64),
    ] {
        v.push((
            QuantFormat::Affine {
                bits,
                group_size: gs,
            },
            256,
        ));
    }
    v
}

#[test]
fn quantized_matmul_matches_dequantized_f32_for_every_format() {
    let mut rng = StdRng::seed_from_u64(7);
    for (f, k) in formats() {
        let n = 33;
        let w = weight(&mut rng, f, None, n, k);
        let wd = w.dequantize().unwrap().to_vec::<f32>().unwrap();
        for m in [1usize, 3, 37] {
            let x = randn(&mut rng, m * k);
            let xa = Array::from_slice(&x, &[m, k]).unwrap();
            let y = w.quantized_matmul(&xa).unwrap();
            assert_eq!(y.shape(), &[m, n]);
            let err = rel_l2(&y.to_vec::<f32>().unwrap(), &matmul_t(&x, &wd, m, n, k));
            assert!(err < tol(f), "{f} m={m}: relative L2 error {err}");
        }
    }
}

#[test]
fn large_parallel_and_low_precision_inputs() {
    let mut rng = StdRng::seed_from_u64(8);
    let (n, k) = (512, 1024); // large enough to run on several threads
    for f in [
        QuantFormat::Gguf(GgmlType::Q4_K),
        QuantFormat::Gguf(GgmlType::Q6_K),
        QuantFormat::Gguf(GgmlType::Q4_1),
        QuantFormat::Gguf(GgmlType::Q8_0),
        QuantFormat::Mxfp4,
        QuantFormat::Affine {
            bits: 4,
            group_size: 64,
        },
    ] {
        let w = weight(&mut rng, f, None, n, k);
        let wd = w.dequantize().unwrap().to_vec::<f32>().unwrap();
        for m in [1usize, 70] {
            let x = randn(&mut rng, m * k);
            let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
            let xr: Vec<f32> = xb.iter().map(|v| v.to_f32()).collect();
            let y = w
                .quantized_matmul(&Array::from_slice(&xb, &[1, m, k]).unwrap())
                .unwrap();
            assert_eq!((y.shape(), y.dtype()), (&[1, m, n][..], DType::BF16));
            let err = rel_l2(&y.to_vec::<f32>().unwrap(), &matmul_t(&xr, &wd, m, n, k));
            // The bf16 output alone rounds by up to 2^-9 relative.
            let t = tol(f).max(4e-3);
            assert!(err < t, "{f} m={m}: relative L2 error {err}");
        }
    }
}

#[test]
fn gather_qmm_selects_experts() {
    let mut rng = StdRng::seed_from_u64(9);
    // The second size runs on several threads (N split into chunks, not a multiple of 4).
    for ((e, n, k, top_k, b), f) in [(4, 24, 128, 2, 3), (6, 1030, 512, 3, 2)]
        .into_iter()
        .flat_map(|s| {
            [
                QuantFormat::Mxfp4,
                QuantFormat::Gguf(GgmlType::Q4_0),
                QuantFormat::Affine {
                    bits: 8,
                    group_size: 32,
                },
            ]
            .map(|f| (s, f))
        })
    {
        let w = weight(&mut rng, f, Some(e), n, k);
        let wd = w.dequantize().unwrap().to_vec::<f32>().unwrap();
        assert_eq!(wd.len(), e * n * k);
        let ids: Vec<u32> = (0..b * top_k).map(|_| rng.gen_range(0..e as u32)).collect();
        let idx = Array::from_slice(&ids, &[b, top_k]).unwrap();
        for per_slot in [false, true] {
            let xr = if per_slot { b * top_k } else { b };
            let x = randn(&mut rng, xr * k);
            let shape = if per_slot {
                vec![b, top_k, k]
            } else {
                vec![b, k]
            };
            let y = w
                .gather_qmm(&Array::from_slice(&x, &shape).unwrap(), &idx)
                .unwrap();
            assert_eq!(y.shape(), &[b, top_k, n]);
            let y = y.to_vec::<f32>().unwrap();
            let mut want = Vec::new();
            for (o, &ex) in ids.iter().enumerate() {
                let xrow = if per_slot { o } else { o / top_k };
                let we = &wd[ex as usize * n * k..][..n * k];
                want.extend(matmul_t(&x[xrow * k..][..k], we, 1, n, k));
            }
            let err = rel_l2(&y, &want);
            assert!(
                err < tol(f),
                "{f} per_slot={per_slot}: relative L2 error {err}"
            );
        }
        let bad = Array::from_slice(&[0u32, e as u32], &[1, 2]).unwrap();
        let x = Array::from_slice(&randn(&mut rng, k), &[1, k]).unwrap();
        assert!(
            w.gather_qmm(&x, &bad).unwrap().eval().is_err(),
            "expert out of range"
        );
    }
}

#[test]
fn quantized_take_returns_rows_in_the_asked_dtype() {
    let mut rng = StdRng::seed_from_u64(10);
    let (n, k) = (10, 64);
    let w = weight(
        &mut rng,
        QuantFormat::Affine {
            bits: 4,
            group_size: 32,
        },
        None,
        n,
        k,
    );
    let all = w.dequantize().unwrap().to_vec::<f32>().unwrap();
    let idx = Array::from_slice(&[9u32, 1, 1, 0], &[2, 2]).unwrap();
    let t = w.take_rows(&idx).unwrap();
    assert_eq!((t.shape(), t.dtype()), (&[2, 2, k][..], DType::F16));
    let t = t.to_vec::<f32>().unwrap();
    for (o, r) in [9usize, 1, 1, 0].iter().enumerate() {
        for j in 0..k {
            let want = f16::from_f32(all[r * k + j]).to_f32();
            assert_eq!(t[o * k + j], want);
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let mut rng = StdRng::seed_from_u64(11);
    let q4 = QuantFormat::Gguf(GgmlType::Q4_0);
    let w = weight(&mut rng, q4, None, 8, 64);
    let x = |shape: &[usize]| Array::zeros(shape, DType::F32).unwrap();
    assert!(w.quantized_matmul(&x(&[2, 63])).is_err(), "wrong K");
    assert!(
        w.quantized_matmul(&Array::zeros(&[2, 64], DType::I32).unwrap())
            .is_err(),
        "int x"
    );
    assert!(w
        .gather_qmm(&x(&[1, 64]), &Array::zeros(&[1, 1], DType::U32).unwrap())
        .is_err());
    let wrong_bytes = Array::zeros(&[8, 35], DType::U8).unwrap();
    assert!(
        QuantizedWeight::new(q4, 8, 64, None, vec![wrong_bytes]).is_err(),
        "row bytes"
    );
    assert!(
        QuantizedWeight::new(q4, 8, 48, None, vec![x(&[8, 27])]).is_err(),
        "K not blocks"
    );
    let aff = QuantFormat::Affine {
        bits: 4,
        group_size: 32,
    };
    let (wq, s) = (Array::zeros(&[8, 8], DType::U32).unwrap(), x(&[8, 2]));
    assert!(
        QuantizedWeight::new(aff, 8, 64, None, vec![wq.clone(), s.clone()]).is_err(),
        "parts"
    );
    let s16 = Array::zeros(&[8, 2], DType::F16).unwrap();
    assert!(QuantizedWeight::new(aff, 8, 64, None, vec![wq.clone(), s.clone(), s16]).is_err());
    let u8w = Array::zeros(&[8, 8], DType::U8).unwrap();
    assert!(QuantizedWeight::new(aff, 8, 64, None, vec![u8w, s.clone(), s.clone()]).is_err());
    let odd = QuantFormat::Affine {
        bits: 7,
        group_size: 32,
    };
    assert!(
        QuantizedWeight::new(odd, 8, 64, None, vec![wq, s.clone(), s]).is_err(),
        "7 bits"
    );
    let e = weight(&mut rng, q4, Some(2), 8, 64);
    assert!(
        e.quantized_matmul(&x(&[1, 64])).is_err(),
        "experts need gather_qmm"
    );
    let idx_f = Array::zeros(&[1, 1], DType::F32).unwrap();
    assert!(e.gather_qmm(&x(&[1, 64]), &idx_f).is_err(), "float indices");
    let idx = Array::zeros(&[3, 2], DType::U32).unwrap();
    assert!(e.gather_qmm(&x(&[2, 64]), &idx).is_err(), "batch mismatch");
}

/// A weight of no rows (N = 0) gives an empty output in every format, not a panic.
#[test]
fn empty_weights_give_empty_outputs() {
    let mut rng = StdRng::seed_from_u64(12);
    for (f, k) in formats() {
        let w = weight(&mut rng, f, None, 0, k);
        let x = Array::from_slice(&randn(&mut rng, 2 * k), &[2, k]).unwrap();
        let y = w.quantized_matmul(&x).unwrap();
        assert_eq!(y.shape(), &[2, 0]);
        assert!(y.to_vec::<f32>().unwrap().is_empty(), "{f}");
    }
}
