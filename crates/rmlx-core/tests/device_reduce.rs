//! Reduction-family kernels (reduce, argmax/argmin, softmax, logsumexp, top-k, swiglu), RMSNorm
//! and RoPE on every GPU present against the CPU backend, on fresh random inputs: contiguous,
//! transposed and sliced views, every float dtype, odd sizes, size-1 and empty dims.

use rand::{Rng, SeedableRng};
use rmlx_core::primitive::RopeLayout;
use rmlx_core::testing::{assert_close as close, gpus, rel_l2, uniform as random};
use rmlx_core::{Array, DType, Device};

/// Small integers as f32: many ties.
fn ties(shape: &[usize], seed: u64, levels: u32) -> Array {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(0..levels) as f32).collect();
    Array::from_slice(&v, shape).unwrap()
}

fn on(a: &Array, d: Device) -> Array {
    a.to_device(d).unwrap()
}

fn same_u32(gpu: &Array, cpu: &Array, what: &str) {
    assert_eq!(gpu.shape(), cpu.shape(), "{what}: shape");
    assert_eq!(gpu.dtype(), DType::U32, "{what}: dtype");
    let g = gpu.to_vec::<u32>().unwrap();
    let c = cpu.to_vec::<u32>().unwrap();
    assert!(g == c, "{what}: indices differ\n gpu {g:?}\n cpu {c:?}");
}

fn tol(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-5,
        DType::F16 | DType::BF16 => 1e-2,
        _ => 0.0,
    }
}

/// `x` and views of it: transposed, sliced with a step.
fn views(x: &Array) -> Vec<(&'static str, Array)> {
    let nd = x.ndim();
    let mut perm: Vec<usize> = (0..nd).collect();
    perm.reverse();
    let stop: Vec<usize> = x.shape().to_vec();
    let mut step = vec![1; nd];
    step[0] = 2;
    vec![
        ("contiguous", x.clone()),
        ("transposed", x.transpose(&perm).unwrap()),
        ("sliced", x.slice(&vec![0; nd], &stop, &step).unwrap()),
    ]
}

#[test]
fn reductions_over_any_axes_match_the_cpu() {
    for d in gpus() {
        for dtype in [DType::F32, DType::BF16, DType::F16, DType::I32] {
            let base = if dtype == DType::I32 {
                random(&[7, 33, 65], 1, -100.0, 100.0)
            } else {
                random(&[7, 33, 65], 1, 0.9, 1.1)
            }
            .astype(dtype)
            .unwrap();
            for (view, x) in views(&base) {
                let xg = match view {
                    "contiguous" => on(&base, d),
                    "transposed" => on(&base, d).transpose(&[2, 1, 0]).unwrap(),
                    _ => on(&base, d)
                        .slice(&[0, 0, 0], &[7, 33, 65], &[2, 1, 1])
                        .unwrap(),
                };
                for axes in [
                    vec![0isize],
                    vec![1],
                    vec![2],
                    vec![0, 2],
                    vec![1, 2],
                    vec![0, 1, 2],
                ] {
                    for (name, cpu, gpu) in [
                        ("sum", x.sum(&axes, false), xg.sum(&axes, false)),
                        ("max", x.max(&axes, false), xg.max(&axes, false)),
                        ("min", x.min(&axes, false), xg.min(&axes, false)),
                        ("prod", x.prod(&axes, true), xg.prod(&axes, true)),
                    ] {
                        // i32 products overflow; f16 products of 15k factors are subnormal
                        // (rounding them differently is not an error).
                        if name == "prod"
                            && (dtype == DType::I32 || (dtype == DType::F16 && axes.len() == 3))
                        {
                            continue;
                        }
                        let t = if dtype == DType::I32 {
                            1e-7
                        } else {
                            tol(dtype)
                        };
                        close(
                            &gpu.unwrap(),
                            &cpu.unwrap(),
                            t,
                            &format!("{name} {dtype} {view} axes {axes:?}"),
                        );
                    }
                }
            }
        }
        // Bool / u8 sums give i32; size-1 dims; empty reductions give the identity.
        let b = random(&[5, 1, 301], 2, -1.0, 1.0)
            .binary(rmlx_core::primitive::BinaryOp::Gt, &Array::scalar(0f32))
            .unwrap();
        close(
            &on(&b, d).sum(&[2], false).unwrap(),
            &b.sum(&[2], false).unwrap(),
            0.0,
            "bool sum",
        );
        let u = random(&[5, 1, 301], 3, 0.0, 255.0)
            .astype(DType::U8)
            .unwrap();
        close(
            &on(&u, d).sum(&[0, 2], false).unwrap(),
            &u.sum(&[0, 2], false).unwrap(),
            0.0,
            "u8 sum",
        );
        let e = Array::zeros(&[4, 0, 3], DType::F32).unwrap();
        for axes in [vec![1isize], vec![0, 1]] {
            close(
                &on(&e, d).sum(&axes, false).unwrap(),
                &e.sum(&axes, false).unwrap(),
                0.0,
                "empty sum",
            );
            close(
                &on(&e, d).prod(&axes, false).unwrap(),
                &e.prod(&axes, false).unwrap(),
                0.0,
                "empty prod",
            );
        }
        // Long rows (split path), a full reduction, tall columns.
        for (shape, axes) in [
            (vec![3, 100_003], vec![1isize]),
            (vec![300_007], vec![0]),
            (vec![1001, 37], vec![0]),
            (vec![37, 1001], vec![1]),
            (vec![2, 70_001, 3], vec![1]),
        ] {
            let x = random(&shape, 4, -1.0, 1.0);
            for (name, cpu, gpu) in [
                ("sum", x.sum(&axes, false), on(&x, d).sum(&axes, false)),
                ("max", x.max(&axes, false), on(&x, d).max(&axes, false)),
            ] {
                close(
                    &gpu.unwrap(),
                    &cpu.unwrap(),
                    1e-5,
                    &format!("{name} {shape:?} {axes:?}"),
                );
            }
        }
    }
}

#[test]
fn argmax_argmin_match_the_cpu_on_ties_and_nan() {
    for d in gpus() {
        for dtype in [DType::F32, DType::BF16, DType::I32] {
            let base = ties(&[9, 17, 301], 5, 7).astype(dtype).unwrap();
            for (view, x) in views(&base) {
                let xg = on(&x.contiguous().unwrap(), d);
                let xg = match view {
                    "contiguous" => xg,
                    // The same view built on the device, so the kernel sees strides.
                    "transposed" => on(&base, d).transpose(&[2, 1, 0]).unwrap(),
                    _ => on(&base, d)
                        .slice(&[0, 0, 0], &[9, 17, 301], &[2, 1, 1])
                        .unwrap(),
                };
                for axis in 0..3isize {
                    same_u32(
                        &xg.argmax(axis, false).unwrap(),
                        &x.argmax(axis, false).unwrap(),
                        &format!("argmax {dtype} {view} axis {axis}"),
                    );
                    same_u32(
                        &xg.argmin(axis, true).unwrap(),
                        &x.argmin(axis, true).unwrap(),
                        &format!("argmin {dtype} {view} axis {axis}"),
                    );
                }
            }
        }
        let nan = f32::NAN;
        let v = [
            nan, 1.0, 5.0, 2.0, // NaN first: index 0
            1.0, nan, 5.0, 5.0, // NaN skipped, first 5 wins
            -1.0, -1.0, nan, -1.0,
        ];
        let x = Array::from_slice(&v, &[3, 4]).unwrap();
        for axis in [0isize, 1] {
            same_u32(
                &on(&x, d).argmax(axis, false).unwrap(),
                &x.argmax(axis, false).unwrap(),
                "argmax nan",
            );
            same_u32(
                &on(&x, d).argmin(axis, false).unwrap(),
                &x.argmin(axis, false).unwrap(),
                "argmin nan",
            );
        }
        // A vocabulary-sized row.
        let x = random(&[2, 151_937], 6, -10.0, 10.0);
        same_u32(
            &on(&x, d).argmax(-1, false).unwrap(),
            &x.argmax(-1, false).unwrap(),
            "argmax vocab",
        );
        // Long rows are split across blocks: ties across chunks go to the first index, NaN is
        // skipped except as the first element.
        let mut v: Vec<f32> = (0..3 * 100_000)
            .map(|i| ((i * 7919) % 1000) as f32)
            .collect();
        v[5] = 2000.0;
        v[70_000] = 2000.0; // tie, later chunk
        v[100_000] = f32::NAN; // row 1 starts with NaN
        v[200_000 + 99_999] = 3000.0;
        v[200_000 + 50_000] = f32::NAN;
        let x = Array::from_slice(&v, &[3, 100_000]).unwrap();
        for dtype in [DType::F32, DType::BF16] {
            let x = x.astype(dtype).unwrap();
            same_u32(
                &on(&x, d).argmax(-1, false).unwrap(),
                &x.argmax(-1, false).unwrap(),
                &format!("argmax long rows {dtype}"),
            );
            same_u32(
                &on(&x, d).argmin(-1, false).unwrap(),
                &x.argmin(-1, false).unwrap(),
                &format!("argmin long rows {dtype}"),
            );
        }
    }
}

#[test]
fn softmax_and_logsumexp_match_the_cpu() {
    for d in gpus() {
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            for shape in [vec![5, 17], vec![3, 1], vec![2, 3, 4099], vec![1, 70_001]] {
                let x = random(&shape, 7, -8.0, 8.0).astype(dtype).unwrap();
                let xg = on(&x, d);
                // The CPU sums a softmax row left to right in f32 (error ~√d·ε, 5.8e-5 measured
                // at d = 70,001 on an H100 run); the GPU's tree sum is the more exact of the two.
                let long = shape.iter().product::<usize>() > 10_000;
                let stol = if long {
                    tol(dtype).max(2e-4)
                } else {
                    tol(dtype)
                };
                for axis in [-1isize, 0] {
                    close(
                        &xg.softmax(axis).unwrap(),
                        &x.softmax(axis).unwrap(),
                        stol,
                        &format!("softmax {dtype} {shape:?} axis {axis}"),
                    );
                    close(
                        &xg.logsumexp(axis, false).unwrap(),
                        &x.logsumexp(axis, false).unwrap(),
                        tol(dtype),
                        &format!("logsumexp {dtype} {shape:?} axis {axis}"),
                    );
                }
            }
        }
        // The long row against softmax in f64: the GPU itself is exact to f32 rounding.
        let x = random(&[1, 70_001], 7, -8.0, 8.0);
        let v = x.to_vec::<f32>().unwrap();
        let m = v.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let s: f64 = v.iter().map(|&e| (e as f64 - m).exp()).sum();
        let want: Vec<f32> = v
            .iter()
            .map(|&e| ((e as f64 - m).exp() / s) as f32)
            .collect();
        let got = on(&x, d).softmax(-1).unwrap().to_vec::<f32>().unwrap();
        let e = rel_l2(&got, &want);
        assert!(e < 2e-6, "GPU softmax of 70,001 vs f64: rel L2 {e:.2e}");
        // Masked rows (-inf), an all -inf row, +inf.
        let ninf = f32::NEG_INFINITY;
        let v = [
            1.0, ninf, 2.0, ninf, //
            ninf, ninf, ninf, ninf, //
            0.5, 0.25, 3.0, -2.0,
        ];
        let x = Array::from_slice(&v, &[3, 4]).unwrap();
        let (g, c) = (
            on(&x, d).softmax(-1).unwrap().to_vec::<f32>().unwrap(),
            x.softmax(-1).unwrap().to_vec::<f32>().unwrap(),
        );
        for (a, b) in g.iter().zip(&c) {
            assert!(
                (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-6,
                "masked softmax: {g:?} vs {c:?}"
            );
        }
        let (g, c) = (
            on(&x, d)
                .logsumexp(-1, false)
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            x.logsumexp(-1, false).unwrap().to_vec::<f32>().unwrap(),
        );
        assert_eq!(g[1], c[1], "logsumexp of an all -inf row");
        assert!(rel_l2(&g, &c) <= 1e-6, "masked logsumexp: {g:?} vs {c:?}");
    }
}

#[test]
fn topk_matches_the_cpu_tie_order() {
    for d in gpus() {
        for dtype in [DType::F32, DType::BF16] {
            for (rows, n) in [(33usize, 64usize), (5, 257), (3, 5000), (4, 8)] {
                for levels in [5u32, 1000] {
                    let x = ties(&[rows, n], 8, levels).astype(dtype).unwrap();
                    for k in [1, 3, 8, 64] {
                        if k > n {
                            continue;
                        }
                        same_u32(
                            &on(&x, d).topk_indices(k).unwrap(),
                            &x.topk_indices(k).unwrap(),
                            &format!("topk {dtype} [{rows}, {n}] k {k} levels {levels}"),
                        );
                    }
                }
            }
        }
        // A transposed input and k = d.
        let x = random(&[13, 6], 9, -1.0, 1.0);
        same_u32(
            &on(&x, d).t().unwrap().topk_indices(13).unwrap(),
            &x.t().unwrap().topk_indices(13).unwrap(),
            "topk transposed",
        );
    }
}

#[test]
fn swiglu_matches_the_cpu() {
    for d in gpus() {
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let x = random(&[3, 5, 154], 10, -4.0, 4.0).astype(dtype).unwrap();
            close(
                &on(&x, d).swiglu().unwrap(),
                &x.swiglu().unwrap(),
                tol(dtype).max(1e-5),
                &format!("swiglu {dtype}"),
            );
            // A transposed view: (…, 2n) with 2n not the contiguous axis.
            let y = random(&[38, 7], 11, -4.0, 4.0).astype(dtype).unwrap();
            close(
                &on(&y, d).t().unwrap().swiglu().unwrap(),
                &y.t().unwrap().swiglu().unwrap(),
                tol(dtype).max(1e-5),
                &format!("swiglu {dtype} transposed"),
            );
        }
    }
}

#[test]
fn rms_norm_matches_the_cpu() {
    for d in gpus() {
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            for wdtype in [DType::F32, dtype] {
                // Rows up to 8192 values are held in registers; 9000 takes the looping kernel.
                for shape in [vec![4, 7, 129], vec![1, 2048], vec![3, 1], vec![2, 9000]] {
                    let x = random(&shape, 12, -3.0, 3.0).astype(dtype).unwrap();
                    let dd = *shape.last().unwrap();
                    let w = random(&[dd], 13, 0.5, 1.5).astype(wdtype).unwrap();
                    close(
                        &on(&x, d).rms_norm(&on(&w, d), 1e-5).unwrap(),
                        &x.rms_norm(&w, 1e-5).unwrap(),
                        tol(dtype),
                        &format!("rms_norm {dtype} w {wdtype} {shape:?}"),
                    );
                }
            }
            // Non-contiguous rows.
            let x = random(&[96, 5], 14, -3.0, 3.0).astype(dtype).unwrap();
            let w = random(&[96], 15, 0.5, 1.5);
            close(
                &on(&x, d).t().unwrap().rms_norm(&on(&w, d), 1e-6).unwrap(),
                &x.t().unwrap().rms_norm(&w, 1e-6).unwrap(),
                tol(dtype),
                &format!("rms_norm {dtype} transposed"),
            );
        }
    }
}

#[test]
fn rope_matches_the_cpu() {
    for d in gpus() {
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            for layout in [RopeLayout::HalfSplit, RopeLayout::Interleaved] {
                // 9 positions take the one-kernel path (angles computed per element), 40 the
                // table of angles built first.
                for (dd, dims, t) in [
                    (64usize, 64usize, 9usize),
                    (64, 32, 9),
                    (80, 80, 9),
                    (6, 2, 9),
                    (64, 64, 40),
                    (64, 32, 40),
                ] {
                    let (b, h) = (2, 3);
                    // (B, T, H, D) transposed to (B, H, T, D): a strided input.
                    let x = random(&[b, t, h, dd], 16, -2.0, 2.0).astype(dtype).unwrap();
                    let inv: Vec<f32> = (0..dims / 2)
                        .map(|i| 10000f32.powf(-(2.0 * i as f32) / dims as f32))
                        .collect();
                    let inv = Array::from_slice(&inv, &[dims / 2]).unwrap();
                    let pos: Vec<i32> = (0..t as i32).map(|i| i * 977 + 3).collect();
                    let pos = Array::from_slice(&pos, &[t]).unwrap();
                    let cpu = x
                        .transpose(&[0, 2, 1, 3])
                        .unwrap()
                        .rope(layout, dims, &inv, 1.25, &pos)
                        .unwrap();
                    let gpu = on(&x, d)
                        .transpose(&[0, 2, 1, 3])
                        .unwrap()
                        .rope(layout, dims, &on(&inv, d), 1.25, &on(&pos, d))
                        .unwrap();
                    close(
                        &gpu,
                        &cpu,
                        tol(dtype),
                        &format!("rope {dtype} {layout:?} D {dd} dims {dims} T {t}"),
                    );
                }
            }
        }
    }
}
