//! Every op against a naive reference written here, on fresh random inputs, with explicit
//! tolerances (f32 ~1e-5 relative, bf16 ~1e-2).

#![allow(clippy::needless_range_loop, clippy::type_complexity)] // index loops read like the math

mod common;
use common::*;
use rand::Rng;
use rmlx_core::ops::{sdpa_reference, AttentionMask, RopeScaling};
use rmlx_core::primitive::RopeLayout;
use rmlx_core::{concat, Array, DType};

#[test]
fn binary_broadcast_and_promotion() {
    let mut r = rng();
    let (a, av) = rand_array(&mut r, &[3, 1, 5]);
    let (b, bv) = rand_array(&mut r, &[4, 1]);
    let got = a.mul(&b).unwrap().add(&b).unwrap().to_vec::<f32>().unwrap();
    let mut want = vec![];
    for i in 0..3 {
        for j in 0..4 {
            for k in 0..5 {
                want.push(av[i * 5 + k] * bv[j] + bv[j]);
            }
        }
    }
    assert_close(&got, &want, 1e-6, "mul+add broadcast");
    let ab = a.astype(DType::BF16).unwrap().add(&b).unwrap();
    assert_eq!(ab.dtype(), DType::F32);
    let lt = a.lt(&b).unwrap();
    assert_eq!(lt.dtype(), DType::Bool);
    assert_eq!(lt.shape(), &[3, 4, 5]);
    assert!(a.add(&Array::zeros(&[2, 4], DType::F32).unwrap()).is_err());
}

/// The f32 fast paths (full/full, scalar on either side, one value per row on either side)
/// and the generic path agree with the elementwise math, across parallel chunk boundaries
/// (40 rows of 1000 > one chunk of 16384), for every op with an order (sub, div).
#[test]
fn binary_fast_paths_match_elementwise() {
    use rmlx_core::primitive::BinaryOp::*;
    let mut r = rng();
    let (rows, cols) = (40, 1000);
    let (a, av) = rand_array(&mut r, &[rows, cols]);
    let (b, bv) = rand_array(&mut r, &[rows, cols]);
    let (c, cv) = rand_array(&mut r, &[rows, 1]);
    let (s, sv) = rand_array(&mut r, &[]);
    let f = |op, x: f32, y: f32| match op {
        Add => x + y,
        Sub => x - y,
        Mul => x * y,
        Div => x / y,
        Maximum => x.max(y),
        _ => x.min(y),
    };
    for op in [Add, Sub, Mul, Div, Maximum, Minimum] {
        let cases: [(&Array, &Array, Box<dyn Fn(usize) -> (f32, f32)>); 5] = [
            (&a, &b, Box::new(|i| (av[i], bv[i]))),
            (&a, &s, Box::new(|i| (av[i], sv[0]))),
            (&s, &a, Box::new(|i| (sv[0], av[i]))),
            (&a, &c, Box::new(|i| (av[i], cv[i / cols]))),
            (&c, &a, Box::new(|i| (cv[i / cols], av[i]))),
        ];
        for (k, (x, y, pick)) in cases.iter().enumerate() {
            let got = x.binary(op, y).unwrap().to_vec::<f32>().unwrap();
            let want: Vec<f32> = (0..rows * cols)
                .map(|i| {
                    let (p, q) = pick(i);
                    f(op, p, q)
                })
                .collect();
            assert_eq!(got, want, "{op:?} case {k}");
        }
    }
    // A strided operand (every other column) is copied contiguous first, for each dtype.
    for dt in [DType::F32, DType::BF16, DType::I32] {
        let x = a.astype(dt).unwrap();
        let half = x.slice(&[0, 1], &[rows, cols], &[1, 2]).unwrap();
        let got = half.add(&half).unwrap().astype(DType::F32).unwrap();
        let xs = x.astype(DType::F32).unwrap().to_vec::<f32>().unwrap();
        let want: Vec<f32> = (0..rows * cols / 2)
            .map(|i| {
                let v = xs[(i / (cols / 2)) * cols + 1 + 2 * (i % (cols / 2))];
                let v = Array::from_slice(&[v], &[1]).unwrap().astype(dt).unwrap();
                let v = v.astype(DType::F32).unwrap().to_vec::<f32>().unwrap()[0];
                v + v
            })
            .collect();
        let got = got.to_vec::<f32>().unwrap();
        assert_close(&got, &want, 1e-2, &format!("strided {dt:?}"));
    }
}

#[test]
fn unary_ops_match_std() {
    let mut r = rng();
    let (a, av) = rand_array(&mut r, &[7, 9]);
    let checks: Vec<(Array, Box<dyn Fn(f32) -> f32>)> = vec![
        (a.exp().unwrap(), Box::new(|x: f32| x.exp())),
        (a.silu().unwrap(), Box::new(|x: f32| x / (1.0 + (-x).exp()))),
        (
            a.sigmoid().unwrap(),
            Box::new(|x: f32| 1.0 / (1.0 + (-x).exp())),
        ),
        (a.tanh().unwrap(), Box::new(|x: f32| x.tanh())),
        (
            a.abs().unwrap().sqrt().unwrap(),
            Box::new(|x: f32| x.abs().sqrt()),
        ),
        (
            a.gelu().unwrap(),
            Box::new(|x: f32| 0.5 * x * (1.0 + libm_erf(x / 2f32.sqrt()))),
        ),
    ];
    for (i, (arr, f)) in checks.into_iter().enumerate() {
        let want: Vec<f32> = av.iter().map(|&x| f(x)).collect();
        assert_close(
            &arr.to_vec::<f32>().unwrap(),
            &want,
            1e-5,
            &format!("unary #{i}"),
        );
    }
}

#[test]
fn swiglu_matches_silu_times_up() {
    let mut r = rng();
    // Decode's one row, rows past a task's chunk, an odd half width; f32 takes the SIMD path.
    for (rows, n) in [(1, 1536), (37, 13), (9, 2048)] {
        let (x, xv) = rand_array(&mut r, &[rows, 2 * n]);
        let want: Vec<f32> = (0..rows * n)
            .map(|i| {
                let (g, u) = (xv[(i / n) * 2 * n + i % n], xv[(i / n) * 2 * n + n + i % n]);
                g / (1.0 + (-g).exp()) * u
            })
            .collect();
        let got = x.swiglu().unwrap();
        assert_eq!(got.shape(), &[rows, n]);
        assert_close(&got.to_vec::<f32>().unwrap(), &want, 1e-5, "swiglu f32");
        let b = x.astype(DType::BF16).unwrap().swiglu().unwrap();
        assert_eq!(b.dtype(), DType::BF16);
        let bv = b.astype(DType::F32).unwrap().to_vec::<f32>().unwrap();
        assert_close(&bv, &want, 2e-2, "swiglu bf16");
    }
    let (odd, _) = rand_array(&mut r, &[2, 7]);
    let e = odd.swiglu().map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("even size"), "{e}");
    let ints = Array::from_slice(&[1i32, 2, 3, 4], &[1, 4]).unwrap();
    assert!(ints.swiglu().is_err());
}

fn libm_erf(x: f32) -> f32 {
    // Abramowitz–Stegun 7.1.26 is too coarse; integrate instead (test-only, exact enough).
    let n = 2000;
    let h = x as f64 / n as f64;
    let f = |t: f64| (-t * t).exp();
    let mut s = f(0.0) + f(x as f64);
    for i in 1..n {
        s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    (s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()) as f32
}

#[test]
fn reductions() {
    let mut r = rng();
    let (a, av) = rand_array(&mut r, &[4, 6, 5]);
    let s = a.sum(&[1], false).unwrap().to_vec::<f32>().unwrap();
    let mx = a.max(&[0, 2], true).unwrap();
    assert_eq!(mx.shape(), &[1, 6, 1]);
    let mx = mx.to_vec::<f32>().unwrap();
    let mean = a.mean(&[-1], false).unwrap().to_vec::<f32>().unwrap();
    let am = a.argmax(-1, false).unwrap().to_vec::<u32>().unwrap();
    let lse = a.logsumexp(1, false).unwrap().to_vec::<f32>().unwrap();
    for i in 0..4 {
        for k in 0..5 {
            let col: Vec<f32> = (0..6).map(|j| av[i * 30 + j * 5 + k]).collect();
            let want: f32 = col.iter().sum();
            assert!((s[i * 5 + k] - want).abs() < 1e-5);
            let m = col.iter().cloned().fold(f32::MIN, f32::max);
            let l = m + col.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
            assert!((lse[i * 5 + k] - l).abs() < 1e-5, "logsumexp");
        }
        for j in 0..6 {
            let row = &av[i * 30 + j * 5..i * 30 + j * 5 + 5];
            let best = (0..5).fold(0, |b, k| if row[k] > row[b] { k } else { b });
            assert_eq!(am[i * 6 + j] as usize, best);
            assert!((mean[i * 6 + j] - row.iter().sum::<f32>() / 5.0).abs() < 1e-5);
        }
    }
    for j in 0..6 {
        let m = (0..4)
            .flat_map(|i| (0..5).map(move |k| (i, k)))
            .map(|(i, k)| av[i * 30 + j * 5 + k])
            .fold(f32::MIN, f32::max);
        assert_eq!(mx[j], m);
    }
}

/// argmax/argmin over long rows (the vectorized sampling path) against a sequential scan:
/// ties go to the first index, NaN never wins unless it comes first.
#[test]
fn arg_reductions_on_long_rows() {
    let mut r = rng();
    let n = 1003;
    let (_, mut v) = rand_array(&mut r, &[n]);
    let scan = |v: &[f32], better: &dyn Fn(f32, f32) -> bool| {
        (0..v.len()).fold(0, |b, i| if better(v[i], v[b]) { i } else { b })
    };
    let check = |v: &[f32], what: &str| {
        let a = Array::from_slice(v, &[1, v.len()]).unwrap();
        let got_max = a.argmax(-1, false).unwrap().to_vec::<u32>().unwrap()[0] as usize;
        let got_min = a.argmin(-1, false).unwrap().to_vec::<u32>().unwrap()[0] as usize;
        assert_eq!(got_max, scan(v, &|x, y| x > y), "argmax {what}");
        assert_eq!(got_min, scan(v, &|x, y| x < y), "argmin {what}");
    };
    check(&v, "random");
    // Ties: the maximum twice, the later one in the tail past the 8-lane chunks.
    let m = v.iter().cloned().fold(f32::MIN, f32::max);
    v[n - 1] = m;
    v[500] = m + 1.0;
    v[900] = m + 1.0;
    check(&v, "ties");
    v[17] = f32::NAN;
    check(&v, "a NaN inside");
    v[0] = f32::NAN;
    check(&v, "a NaN first");
}

#[test]
fn softmax_and_topk() {
    let mut r = rng();
    let (a, av) = rand_array(&mut r, &[3, 17]);
    let sm = a.softmax(-1).unwrap().to_vec::<f32>().unwrap();
    let sm0 = a.softmax(0).unwrap().to_vec::<f32>().unwrap();
    let tk = a.topk_indices(4).unwrap().to_vec::<u32>().unwrap();
    for i in 0..3 {
        let row = &av[i * 17..(i + 1) * 17];
        let m = row.iter().cloned().fold(f32::MIN, f32::max);
        let z: f32 = row.iter().map(|v| (v - m).exp()).sum();
        let want: Vec<f32> = row.iter().map(|v| (v - m).exp() / z).collect();
        assert_close(&sm[i * 17..(i + 1) * 17], &want, 1e-6, "softmax");
        let mut idx: Vec<usize> = (0..17).collect();
        idx.sort_by(|&x, &y| row[y].partial_cmp(&row[x]).unwrap());
        assert_eq!(
            tk[i * 4..(i + 1) * 4]
                .iter()
                .map(|&v| v as usize)
                .collect::<Vec<_>>(),
            idx[..4].to_vec()
        );
    }
    for j in 0..17 {
        let s: f32 = (0..3).map(|i| sm0[i * 17 + j]).sum();
        assert!((s - 1.0).abs() < 1e-5);
    }
    assert!(a.topk_indices(18).is_err());
}

fn naive_matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut o = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            o[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    o
}

#[test]
fn matmul_batched_transposed_and_gemv() {
    let mut r = rng();
    for &(m, k, n) in &[
        (1usize, 33usize, 17usize),
        (3, 64, 40),
        (37, 70, 29),
        (64, 128, 96),
        (17, 96, 203),
    ] {
        let (a, av) = rand_array(&mut r, &[m, k]);
        let (w, wv) = rand_array(&mut r, &[n, k]); // weight (N, K): x · Wᵀ
        let mut bt = vec![0f32; k * n];
        for i in 0..n {
            for j in 0..k {
                bt[j * n + i] = wv[i * k + j];
            }
        }
        let want = naive_matmul(&av, &bt, m, k, n);
        let got = a.matmul(&w.t().unwrap()).unwrap().to_vec::<f32>().unwrap();
        assert_close(&got, &want, 1e-5, &format!("x·Wᵀ {m}x{k}x{n}"));
        let wb = w.astype(DType::BF16).unwrap();
        let wbv = wb.to_vec::<f32>().unwrap();
        let mut btb = vec![0f32; k * n];
        for i in 0..n {
            for j in 0..k {
                btb[j * n + i] = wbv[i * k + j];
            }
        }
        let got = a.matmul(&wb.t().unwrap()).unwrap().to_vec::<f32>().unwrap();
        assert_close(&got, &naive_matmul(&av, &btb, m, k, n), 1e-5, "bf16 weight");
    }
    // batched with broadcast batch dims
    let (a, av) = rand_array(&mut r, &[2, 1, 5, 6]);
    let (b, bv) = rand_array(&mut r, &[3, 6, 4]);
    let got = a.matmul(&b).unwrap();
    assert_eq!(got.shape(), &[2, 3, 5, 4]);
    let got = got.to_vec::<f32>().unwrap();
    for i in 0..2 {
        for j in 0..3 {
            let want = naive_matmul(
                &av[i * 30..(i + 1) * 30],
                &bv[j * 24..(j + 1) * 24],
                5,
                6,
                4,
            );
            assert_close(
                &got[(i * 3 + j) * 20..(i * 3 + j + 1) * 20],
                &want,
                1e-5,
                "batched",
            );
        }
    }
    assert!(a
        .matmul(&Array::zeros(&[5, 4], DType::F32).unwrap())
        .is_err());
}

#[test]
fn rms_norm_matches_reference() {
    let mut r = rng();
    let (x, xv) = rand_array(&mut r, &[3, 4, 64]);
    let (w, wv) = rand_array(&mut r, &[64]);
    let got = x.rms_norm(&w, 1e-5).unwrap().to_vec::<f32>().unwrap();
    let mut want = vec![];
    for row in xv.chunks(64) {
        let ms: f32 = row.iter().map(|v| v * v).sum::<f32>() / 64.0;
        let inv = 1.0 / (ms + 1e-5).sqrt();
        want.extend(row.iter().zip(&wv).map(|(v, w)| v * inv * w));
    }
    assert_close(&got, &want, 1e-5, "rms_norm");
    let fb = x
        .rms_norm_reference(&w, 1e-5)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_close(&fb, &want, 1e-5, "rms_norm fallback");
    let xb = x.astype(DType::BF16).unwrap();
    let gb = xb.rms_norm(&w, 1e-5).unwrap().to_vec::<f32>().unwrap();
    assert_close(&gb, &want, 1e-2, "rms_norm bf16");
    assert!(x
        .rms_norm(&Array::zeros(&[63], DType::F32).unwrap(), 1e-5)
        .is_err());
}

#[test]
fn rope_layouts_match_naive() {
    let mut r = rng();
    let (b, h, t, d) = (1, 3, 5, 16);
    for layout in [RopeLayout::HalfSplit, RopeLayout::Interleaved] {
        for dims in [16usize, 8] {
            let (x, xv) = rand_array(&mut r, &[b, h, t, d]);
            let (inv, m) = RopeScaling::None.tables(10000.0, dims).unwrap();
            let invv = inv.to_vec::<f32>().unwrap();
            let pos_v: Vec<i32> = (0..t as i32).map(|p| p + 7).collect();
            let pos = Array::from_slice(&pos_v, &[t]).unwrap();
            let got = x
                .rope(layout, dims, &inv, m, &pos)
                .unwrap()
                .to_vec::<f32>()
                .unwrap();
            let mut want = xv.clone();
            for hh in 0..h {
                for tt in 0..t {
                    let base = (hh * t + tt) * d;
                    for i in 0..dims / 2 {
                        let (a, bb) = match layout {
                            RopeLayout::HalfSplit => (i, i + dims / 2),
                            RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                        };
                        let ang = pos_v[tt] as f32 * invv[i];
                        let (x0, x1) = (xv[base + a], xv[base + bb]);
                        want[base + a] = x0 * ang.cos() - x1 * ang.sin();
                        want[base + bb] = x0 * ang.sin() + x1 * ang.cos();
                    }
                }
            }
            assert_close(&got, &want, 1e-5, &format!("rope {layout:?} dims {dims}"));
            let fb = x
                .rope_reference(layout, dims, &inv, m, &pos)
                .unwrap()
                .to_vec::<f32>()
                .unwrap();
            assert_close(&fb, &want, 1e-5, "rope fallback");
        }
    }
}

#[test]
fn sdpa_matches_reference_with_gqa_window_and_sinks() {
    let mut r = rng();
    for &(hq, hkv, tq, tk, window, sinks, d) in &[
        (4usize, 2usize, 5usize, 5usize, None, false, 16usize),
        (8, 2, 3, 11, Some(4usize), true, 16),
        (4, 4, 1, 9, None, true, 16),
        (6, 3, 7, 7, Some(3), false, 16),
        // Head size 64 and runs of keys longer than the SIMD steps (4 keys, 32 outputs).
        (6, 2, 9, 41, Some(30), true, 64),
        (3, 3, 1, 37, None, false, 64),
    ] {
        let (q, _) = rand_array(&mut r, &[2, hq, tq, d]);
        let (k, _) = rand_array(&mut r, &[2, hkv, tk, d]);
        let (v, _) = rand_array(&mut r, &[2, hkv, tk, d]);
        let mask = AttentionMask::causal(tk - tq, tq, window).unwrap();
        let s = if sinks {
            Some(rand_array(&mut r, &[hq]).0)
        } else {
            None
        };
        let got = q
            .scaled_dot_product_attention(&k, &v, 0.25, &mask, s.as_ref())
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let want = sdpa_reference(&q, &k, &v, 0.25, &mask, s.as_ref())
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_close(
            &got,
            &want,
            1e-5,
            &format!("sdpa hq{hq} hkv{hkv} tq{tq} tk{tk} {window:?} sinks {sinks}"),
        );
    }
}

#[test]
fn sdpa_reads_strided_cache_views() {
    let mut r = rng();
    // A cache of capacity 16 of which 6 slots are filled: attention on the slice view.
    let (k, _) = rand_array(&mut r, &[1, 2, 16, 8]);
    let (v, _) = rand_array(&mut r, &[1, 2, 16, 8]);
    let (q, _) = rand_array(&mut r, &[1, 4, 1, 8]);
    let (ks, vs) = (
        k.slice_axis(2, 0, 6).unwrap(),
        v.slice_axis(2, 0, 6).unwrap(),
    );
    let mask = AttentionMask::causal(5, 1, None).unwrap();
    let got = q
        .scaled_dot_product_attention(&ks, &vs, 0.3, &mask, None)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let want = sdpa_reference(
        &q,
        &ks.contiguous().unwrap(),
        &vs.contiguous().unwrap(),
        0.3,
        &mask,
        None,
    )
    .unwrap()
    .to_vec::<f32>()
    .unwrap();
    assert_close(&got, &want, 1e-5, "sdpa on views");
}

#[test]
fn unit_axis_transposes_and_reshape_chains_keep_values() {
    let mut r = rng();
    // Rows of a wider array (strided, as a fused projection's q/k/v slices are).
    let (a, av) = rand_array(&mut r, &[2, 40]);
    let s = a.slice_axis(-1, 4, 40).unwrap(); // (2, 36)
    let want: Vec<f32> = (0..2)
        .flat_map(|i| av[i * 40 + 4..i * 40 + 40].to_vec())
        .collect();
    // (2, 36) → (2, 1, 9, 4) → (2, 9, 1, 4): only a unit axis moves, the order is kept.
    let h = s.reshape(&[2, 1, 9, 4]).unwrap();
    let t = h.transpose(&[0, 2, 1, 3]).unwrap();
    assert_eq!(t.shape(), &[2, 9, 1, 4]);
    assert_eq!(t.to_vec::<f32>().unwrap(), want);
    let back = t.reshape(&[2, 36]).unwrap();
    assert_eq!(back.to_vec::<f32>().unwrap(), want);
    // Moving axes of size > 1 still permutes the data.
    let p = s
        .reshape(&[2, 9, 4])
        .unwrap()
        .transpose(&[1, 0, 2])
        .unwrap();
    let pv = p.to_vec::<f32>().unwrap();
    for i in 0..2 {
        for j in 0..9 {
            for k in 0..4 {
                assert_eq!(pv[(j * 2 + i) * 4 + k], want[i * 36 + j * 4 + k]);
            }
        }
    }
}

#[test]
fn views_take_concat_slice_update() {
    let mut r = rng();
    let (a, av) = rand_array(&mut r, &[4, 6]);
    let t = a.t().unwrap().to_vec::<f32>().unwrap();
    for i in 0..4 {
        for j in 0..6 {
            assert_eq!(t[j * 4 + i], av[i * 6 + j]);
        }
    }
    let s = a.slice(&[1, 0], &[4, 6], &[2, 3]).unwrap();
    assert_eq!(s.shape(), &[2, 2]);
    assert_eq!(
        s.to_vec::<f32>().unwrap(),
        vec![av[6], av[9], av[18], av[21]]
    );
    let idx = Array::from_slice(&[3u32, 0, 3], &[3]).unwrap();
    let g = a.take(&idx, 0).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(&g[..6], &av[18..24]);
    assert_eq!(&g[6..12], &av[0..6]);
    assert!(a
        .take(&Array::from_slice(&[4u32], &[1]).unwrap(), 0)
        .unwrap()
        .eval()
        .is_err());
    let c = concat(&[a.clone(), a.mul_scalar(2.0).unwrap()], 1).unwrap();
    assert_eq!(c.shape(), &[4, 12]);
    let cv = c.to_vec::<f32>().unwrap();
    assert_eq!(cv[6], av[0] * 2.0);
    let b = a.broadcast_to(&[2, 4, 6]).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(&b[24..], &av[..]);
    // slice_update in place: the cache buffer is reused when nothing else holds it.
    let cache = Array::zeros(&[1, 8, 3], DType::F32).unwrap();
    let upd = Array::from_slice(&[1f32, 2., 3., 4., 5., 6.], &[1, 2, 3]).unwrap();
    let cache = cache.slice_update(&upd, &[0, 5, 0]).unwrap();
    cache.eval().unwrap();
    let ptr = cache.data().unwrap().host().unwrap().bytes().as_ptr();
    let cache2 = cache
        .slice_update(&upd.mul_scalar(10.0).unwrap(), &[0, 0, 0])
        .unwrap();
    drop(cache);
    cache2.eval().unwrap();
    let v = cache2.to_vec::<f32>().unwrap();
    assert_eq!(&v[..6], &[10., 20., 30., 40., 50., 60.]);
    assert_eq!(&v[15..21], &[1., 2., 3., 4., 5., 6.]);
    assert_eq!(
        cache2.data().unwrap().host().unwrap().bytes().as_ptr(),
        ptr,
        "slice_update was not in place"
    );
    assert!(cache2.slice_update(&upd, &[0, 7, 0]).is_err());
}

#[test]
fn deep_graph_builds_and_drops_without_overflow() {
    let mut x = Array::from_slice(&[1f32], &[1]).unwrap();
    for _ in 0..100_000 {
        x = x.add_scalar(1.0).unwrap();
    }
    drop(x.clone());
    let mut y = Array::from_slice(&[0f32], &[1]).unwrap();
    for _ in 0..100_000 {
        y = y.add_scalar(1.0).unwrap();
    }
    assert_eq!(y.item::<f32>().unwrap(), 100_000.0);
    drop(x);
}

#[test]
fn yarn_and_llama3_frequencies() {
    // Hand-checked properties: with factor 1 both equal the plain table; YaRN's high-frequency
    // end is unscaled and its low-frequency end is divided by the factor.
    let plain = rmlx_core::ops::plain_inv_freq(10000.0, 64);
    let l3 = rmlx_core::ops::llama3_inv_freq(500000.0, 64, 8.0, 1.0, 4.0, 8192.0);
    let p3 = rmlx_core::ops::plain_inv_freq(500000.0, 64);
    assert_eq!(l3[0], p3[0]);
    assert!((l3[31] - p3[31] / 8.0).abs() < 1e-12);
    let y = rmlx_core::ops::YarnParams {
        factor: 32.0,
        beta_fast: 32.0,
        beta_slow: 1.0,
        original_max_position_embeddings: 4096.0,
        truncate: false,
        mscale: None,
        mscale_all_dim: None,
        attention_factor: None,
    };
    let (f, att) = rmlx_core::ops::yarn_inv_freq(10000.0, 64, &y);
    assert!((f[0] - plain[0]).abs() < 1e-12);
    assert!((f[31] - plain[31] / 32.0).abs() < 1e-12);
    assert!((att - (0.1 * 32f64.ln() + 1.0)).abs() < 1e-12);
    let _ = rand::thread_rng().gen::<u8>();
}

#[test]
fn erf_matches_known_values() {
    // erf(x) to 10 digits (Abramowitz & Stegun, table 7.1); ±1 in f32 beyond |x| ≈ 3.9.
    let known = [
        (0.0f32, 0.0f64),
        (0.1, 0.1124629160),
        (0.5, 0.5204998778),
        (1.0, 0.8427007929),
        (-1.5, -0.9661051465),
        (2.0, 0.9953222650),
        (3.5, 0.9999992569),
        (-6.0, -1.0),
    ];
    let x = Array::from_slice(&known.map(|k| k.0), &[known.len()]).unwrap();
    let got = x.erf().unwrap().to_vec::<f32>().unwrap();
    for ((x, want), got) in known.iter().zip(got) {
        assert!(
            (got as f64 - want).abs() < 5e-7,
            "erf({x}) = {got}, expected {want}"
        );
    }
}
