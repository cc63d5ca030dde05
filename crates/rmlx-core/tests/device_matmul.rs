//! Matmul (cuBLAS) on every GPU present against the CPU backend, on fresh random inputs:
//! batched and broadcast batch dims, transposed and sliced operands, odd sizes, M = 1 (decode),
//! K = 0, mixed dtypes, every float dtype.

use rmlx_core::testing::{assert_close as close, gpus, uniform};
use rmlx_core::{Array, DType, Device};

fn random(shape: &[usize], seed: u64) -> Array {
    uniform(shape, seed, -1.0, 1.0)
}

fn on(a: &Array, d: Device) -> Array {
    a.to_device(d).unwrap()
}

fn tol(dtype: DType) -> f64 {
    if dtype == DType::F32 {
        1e-5
    } else {
        1e-2
    }
}

fn check(a: &Array, b: &Array, d: Device, what: &str) {
    let cpu = a.matmul(b).unwrap();
    let gpu = on(a, d).matmul(&on(b, d)).unwrap();
    // cuBLAS multiplies one dtype: beside a 16-bit operand an f32 one is rounded to 16 bits
    // (bf16: 2^-9 relative per element), where the CPU widens the 16-bit one to f32.
    let sixteen = |x: &Array| matches!(x.dtype(), DType::BF16 | DType::F16);
    let t = if sixteen(a) || sixteen(b) {
        1e-2
    } else {
        tol(cpu.dtype())
    };
    close(&gpu, &cpu, t, what);
}

#[test]
fn plain_and_odd_sizes_match_the_cpu() {
    for d in gpus() {
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            for (i, &(m, k, n)) in [
                (1, 1, 1),
                (1, 64, 96),
                (1, 257, 33),
                (3, 5, 7),
                (37, 65, 129),
                (128, 256, 64),
                (200, 3, 1),
            ]
            .iter()
            .enumerate()
            {
                let a = random(&[m, k], 10 + i as u64).astype(dtype).unwrap();
                let b = random(&[k, n], 20 + i as u64).astype(dtype).unwrap();
                check(&a, &b, d, &format!("{dtype} {m}x{k}x{n}"));
            }
        }
    }
}

#[test]
fn transposed_and_sliced_operands_match_the_cpu() {
    for d in gpus() {
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            for &(m, k, n) in &[(1, 96, 130), (4, 33, 17), (65, 128, 31)] {
                // The models' x · wᵀ: w (N, K) row-major, passed transposed.
                let a = random(&[m, k], 1).astype(dtype).unwrap();
                let w = random(&[n, k], 2).astype(dtype).unwrap();
                let wt = w.transpose(&[1, 0]).unwrap();
                check(&a, &wt, d, &format!("{dtype} x·wT {m}x{k}x{n}"));
                // Both transposed.
                let at = random(&[k, m], 3)
                    .astype(dtype)
                    .unwrap()
                    .transpose(&[1, 0])
                    .unwrap();
                check(&at, &wt, d, &format!("{dtype} aT·wT {m}x{k}x{n}"));
                // A column slice (row stride > cols) and a strided slice (neither layout).
                let big = random(&[m, k + 5], 4).astype(dtype).unwrap();
                let sl = big.slice(&[0, 2], &[m, k + 2], &[1, 1]).unwrap();
                let b = random(&[k, n], 5).astype(dtype).unwrap();
                check(&sl, &b, d, &format!("{dtype} sliced {m}x{k}x{n}"));
                let big = random(&[k, 2 * n], 6).astype(dtype).unwrap();
                let st = big.slice(&[0, 0], &[k, 2 * n], &[1, 2]).unwrap();
                check(&a, &st, d, &format!("{dtype} step-2 {m}x{k}x{n}"));
            }
        }
    }
}

#[test]
fn batched_and_broadcast_match_the_cpu() {
    for d in gpus() {
        for dtype in [DType::F32, DType::BF16] {
            let cases: Vec<(Vec<usize>, Vec<usize>)> = vec![
                (vec![3, 5, 7], vec![3, 7, 9]),
                (vec![3, 1, 7], vec![3, 7, 9]),
                (vec![2, 3, 17, 33], vec![33, 5]),
                (vec![17, 33], vec![4, 33, 6]),
                (vec![2, 1, 4, 8], vec![1, 3, 8, 5]),
                (vec![4, 1, 1, 64], vec![4, 1, 64, 40]),
                (vec![1, 6, 9], vec![6, 9, 2]),
            ];
            for (i, (sa, sb)) in cases.iter().enumerate() {
                let a = random(sa, 30 + i as u64).astype(dtype).unwrap();
                let b = random(sb, 40 + i as u64).astype(dtype).unwrap();
                check(&a, &b, d, &format!("{dtype} {sa:?}@{sb:?}"));
            }
            // Batched with transposed matrices (attention-style k.transpose).
            let q = random(&[2, 3, 5, 16], 7).astype(dtype).unwrap();
            let k = random(&[2, 3, 11, 16], 8).astype(dtype).unwrap();
            let kt = k.transpose(&[0, 1, 3, 2]).unwrap();
            check(&q, &kt, d, &format!("{dtype} q·kT"));
            // Batch dims permuted: not one batch stride.
            let x = random(&[3, 2, 5, 6], 9).astype(dtype).unwrap();
            let xp = x.transpose(&[1, 0, 2, 3]).unwrap();
            let y = random(&[2, 3, 6, 4], 10).astype(dtype).unwrap();
            check(&xp, &y, d, &format!("{dtype} permuted batch"));
        }
    }
}

#[test]
fn mixed_dtypes_vectors_and_empty_match_the_cpu() {
    for d in gpus() {
        let a = random(&[5, 33], 1);
        let w = random(&[33, 7], 2).astype(DType::BF16).unwrap();
        check(&a, &w, d, "f32 @ bf16");
        let h = random(&[5, 33], 3).astype(DType::F16).unwrap();
        check(&h, &w, d, "f16 @ bf16");
        let v = random(&[33], 4);
        check(&v, &random(&[33, 7], 5), d, "vector @ matrix");
        check(&random(&[6, 33], 6), &v, d, "matrix @ vector");
        // K = 0: zeros. (M = 0 / N = 0 are not compared: the CPU kernel panics on them.)
        check(&random(&[4, 0], 7), &random(&[0, 3], 8), d, "K = 0");
    }
}

/// Decode shapes: x (M ≤ 8, K) · w.transpose with W (N, K) stored in f32/bf16/f16 — the GEMV
/// kernels (block per column; warp per two columns for one row and many columns), vectorized
/// (K a multiple of 8) and scalar (odd K), with an exact f32 reference: the
/// kernel multiplies in f32 from the stored weights, as the CPU does.
#[test]
fn decode_gemv_matches_the_cpu_exactly_in_f32() {
    for d in gpus() {
        for wdt in [DType::F32, DType::BF16, DType::F16] {
            for (m, n, k) in [
                (1, 201, 2880),
                (1, 2051, 2880), // a warp per two columns (N ≥ 2048), an odd last column
                (1, 4096, 64),
                (3, 64, 4096),
                (8, 37, 33),
                (1, 1, 8),
                (5, 300, 576),
            ] {
                let x = random(&[m, k], 11);
                let w = random(&[n, k], 12).astype(wdt).unwrap();
                let cpu = x.matmul(&w.transpose(&[1, 0]).unwrap()).unwrap();
                let gpu = on(&x, d)
                    .matmul(&on(&w, d).transpose(&[1, 0]).unwrap())
                    .unwrap();
                close(&gpu, &cpu, 1e-5, &format!("gemv {wdt} m{m} n{n} k{k}"));
            }
        }
    }
}
