//! The affine kernels against an f64 dot of the reference dequantization
//! (`crate::quant::dequantize_row`) with the same f32 activations, on fresh random data: every
//! bit width, group size and scale dtype, odd and even group counts, every kernel width, jobs
//! with scattered rows over several tasks.

use super::super::weights::{Parts, WeightView};
use super::super::Job;
use super::*;
use crate::backend::Arg;
use crate::quant::quantize::quantize_affine;
use crate::quant::{decode_row, dequantize_row, QuantFormat};
use crate::{Array, DType, Element};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn arg<T: Element>(v: &[T], shape: &[usize]) -> Arg {
    let a = Array::from_slice(v, shape).unwrap();
    Arg {
        dtype: a.dtype(),
        data: a.data().unwrap(),
        shape: shape.to_vec(),
    }
}

/// Random (n, k) weights quantized as MLX affine, scales and biases stored as `dtype`.
fn weight_args(
    rng: &mut StdRng,
    n: usize,
    k: usize,
    bits: u8,
    group: usize,
    dtype: DType,
) -> Vec<Arg> {
    let w: Vec<f32> = (0..n * k).map(|_| rng.gen::<f32>() * 2.0 - 1.0).collect();
    let (words, scales, biases) = quantize_affine(&w, k, bits, group);
    let floats = |v: &[f32]| match dtype {
        DType::F16 => arg(
            &v.iter()
                .map(|&x| half::f16::from_f32(x))
                .collect::<Vec<_>>(),
            &[n, k / group],
        ),
        DType::BF16 => arg(
            &v.iter()
                .map(|&x| half::bf16::from_f32(x))
                .collect::<Vec<_>>(),
            &[n, k / group],
        ),
        _ => arg(v, &[n, k / group]),
    };
    vec![
        arg(&words, &[n, k * bits as usize / 32]),
        floats(&scales),
        floats(&biases),
    ]
}

/// (Σ w·x in f64, Σ (|s·q| + |bias|)·|x|) for every weight row and activation row: the
/// reference, and the scale of the rounding any f32 evaluation order may make (the scale and
/// bias terms can cancel).
fn reference(w: &WeightView, x: &[f32], m: usize) -> Vec<Vec<(f64, f64)>> {
    let k = w.k();
    let mut row = vec![0f32; k];
    let (mut u, mut s, mut o) = (vec![0u8; k], vec![0f32; k / 16], vec![0f32; k / 16]);
    (0..w.n())
        .map(|r| {
            dequantize_row(w.row(0, r), &mut row).unwrap();
            decode_row(w.row(0, r), &mut u, &mut s, &mut o).unwrap();
            (0..m)
                .map(|c| {
                    let xr = &x[c * k..][..k];
                    let want = row.iter().zip(xr).map(|(&a, &b)| a as f64 * b as f64).sum();
                    let mag = (0..k)
                        .map(|i| {
                            let g = i / 16;
                            ((s[g] * u[i] as f32).abs() + o[g].abs()) as f64 * xr[i].abs() as f64
                        })
                        .sum();
                    (want, mag)
                })
                .collect()
        })
        .collect()
}

fn check_all(kernel: Kernel) {
    let mut rng = StdRng::seed_from_u64(21);
    let bit_widths: &[u8] = if kernel == Kernel::Avx2 {
        &[4, 8]
    } else {
        &[2, 3, 4, 5, 6, 8]
    };
    for &bits in bit_widths {
        for group in [32usize, 64, 128] {
            for dtype in [DType::F32, DType::F16, DType::BF16] {
                // An odd and an even number of groups (the kernel pairs them).
                for k in [3 * group, 4 * group] {
                    let (n, m) = (37, 11);
                    let args = weight_args(&mut rng, n, k, bits, group, dtype);
                    let format = QuantFormat::Affine {
                        bits,
                        group_size: group as u16,
                    };
                    let parts = Parts::new(format, k, &args).unwrap();
                    let w = parts.view(n).unwrap();
                    let x: Vec<f32> = (0..m * k).map(|_| rng.gen::<f32>() * 4.0 - 2.0).collect();
                    let want = reference(&w, &x, m);
                    let xf = x_rows(&arg(&x, &[m, k]), k, bits, group, kernel).unwrap();
                    // x rows scattered over the outputs: 11 rows run as 4 + 4 + 2 + 1.
                    let jobs = [Job {
                        expert: 0,
                        rows: (0..m).map(|o| ((o * 5) % m, o)).collect(),
                    }];
                    let mut out = vec![f32::NAN; m * n];
                    run_into(kernel, &w, &xf, &jobs, &mut out).unwrap();
                    for (o, &(xr, _)) in jobs[0].rows.iter().enumerate() {
                        for r in 0..n {
                            let (got, (v, mag)) = (out[o * n + r] as f64, want[r][xr]);
                            assert!(
                                (got - v).abs() <= 2e-6 * mag,
                                "{kernel:?} {bits} bits g{group} {dtype} k {k} ({o},{r}): \
                                 {got} vs {v} (magnitude {mag})"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn portable_kernel_matches_f64_reference() {
    check_all(Kernel::Portable);
}

#[test]
fn avx2_kernel_matches_f64_reference() {
    if Kernel::pick(4) != Kernel::Avx2 {
        eprintln!("skipping: no AVX2/FMA (or RMLX_QUANT_SCALAR set)");
        return;
    }
    check_all(Kernel::Avx2);
}

/// The x layout of the AVX2 4-bit kernel: [even, odd] elements per 16, sums in natural order.
#[test]
fn pairs_layout_permutes_every_16() {
    let x: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let xf = x_rows(&arg(&x, &[1, 64]), 64, 4, 32, Kernel::Avx2).unwrap();
    let want: Vec<f32> = (0..8)
        .chain(0..8)
        .enumerate()
        .map(|(i, j)| (2 * j + i / 8) as f32)
        .collect();
    assert_eq!(&xf.x[..16], &want[..]);
    assert_eq!(xf.x[16], 16.0);
    assert_eq!(
        xf.sums,
        vec![(0..32).sum::<i32>() as f32, (32..64).sum::<i32>() as f32]
    );
    let bad = x_rows(&arg(&x, &[1, 64]), 64, 4, 48, Kernel::Portable);
    assert!(bad.is_err(), "a group size that is not a multiple of 32");
}
