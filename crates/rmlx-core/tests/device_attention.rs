//! Scaled dot-product attention on every GPU present against the CPU backend: GQA, sliding
//! windows, sinks, empty cache slots, a query that sees no key, decode (Tq = 1) and prefill
//! (Tq > 1), non-contiguous q/k/v views, head dims up to 256, f32 / bf16 / f16 inputs.

use rmlx_core::ops::AttentionMask;
use rmlx_core::testing::{assert_close as close, gpus, uniform};
use rmlx_core::{Array, DType, Device};

fn random(shape: &[usize], seed: u64) -> Array {
    uniform(shape, seed, -1.0, 1.0)
}

fn on(a: &Array, d: Device) -> Array {
    a.to_device(d).unwrap()
}

fn mask(q: &[i32], k: &[i32], window: Option<usize>) -> AttentionMask {
    AttentionMask {
        q_pos: Array::from_slice(q, &[q.len()]).unwrap(),
        k_pos: Array::from_slice(k, &[k.len()]).unwrap(),
        window,
    }
}

fn mask_on(m: &AttentionMask, d: Device) -> AttentionMask {
    AttentionMask {
        q_pos: on(&m.q_pos, d),
        k_pos: on(&m.k_pos, d),
        window: m.window,
    }
}

#[allow(clippy::too_many_arguments)]
fn check(
    q: &Array,
    k: &Array,
    v: &Array,
    m: &AttentionMask,
    sinks: Option<&Array>,
    d: Device,
    tol: f64,
    what: &str,
) {
    let scale = 1.0 / (q.dim(3).unwrap() as f32).sqrt();
    let cpu = q
        .scaled_dot_product_attention(k, v, scale, m, sinks)
        .unwrap();
    let gs = sinks.map(|s| on(s, d));
    let gpu = on(q, d)
        .scaled_dot_product_attention(&on(k, d), &on(v, d), scale, &mask_on(m, d), gs.as_ref())
        .unwrap();
    close(&gpu, &cpu, tol, what);
}

struct Case {
    b: usize,
    hq: usize,
    hkv: usize,
    tq: usize,
    tk: usize,
    d: usize,
    dv: usize,
}

#[test]
fn attention_matches_the_cpu() {
    let cases = [
        Case {
            b: 1,
            hq: 4,
            hkv: 4,
            tq: 1,
            tk: 1,
            d: 64,
            dv: 64,
        },
        Case {
            b: 1,
            hq: 8,
            hkv: 2,
            tq: 1,
            tk: 133,
            d: 64,
            dv: 64,
        },
        Case {
            b: 2,
            hq: 6,
            hkv: 3,
            tq: 7,
            tk: 70,
            d: 48,
            dv: 40,
        },
        Case {
            b: 1,
            hq: 4,
            hkv: 1,
            tq: 37,
            tk: 37,
            d: 128,
            dv: 128,
        },
        Case {
            b: 1,
            hq: 2,
            hkv: 2,
            tq: 5,
            tk: 300,
            d: 256,
            dv: 256,
        },
        Case {
            b: 1,
            hq: 3,
            hkv: 1,
            tq: 3,
            tk: 9,
            d: 1,
            dv: 200,
        },
        // Decode over long caches: keys split over blocks and merged (flash-decoding).
        Case {
            b: 1,
            hq: 4,
            hkv: 2,
            tq: 1,
            tk: 1000,
            d: 64,
            dv: 64,
        },
        Case {
            b: 2,
            hq: 2,
            hkv: 1,
            tq: 2,
            tk: 611,
            d: 96,
            dv: 80,
        },
    ];
    for d in gpus() {
        for (ci, c) in cases.iter().enumerate() {
            for dtype in [DType::F32, DType::BF16, DType::F16] {
                let tol = if dtype == DType::F32 { 1e-5 } else { 1e-2 };
                let seed = 100 * ci as u64;
                let q = random(&[c.b, c.hq, c.tq, c.d], seed).astype(dtype).unwrap();
                let k = random(&[c.b, c.hkv, c.tk, c.d], seed + 1)
                    .astype(dtype)
                    .unwrap();
                let v = random(&[c.b, c.hkv, c.tk, c.dv], seed + 2)
                    .astype(dtype)
                    .unwrap();
                let off = c.tk - c.tq;
                let causal = AttentionMask::causal(off, c.tq, None).unwrap();
                let what = |s: &str| format!("case {ci} {dtype} {s}");
                check(&q, &k, &v, &causal, None, d, tol, &what("causal"));
                let win = AttentionMask::causal(off, c.tq, Some(5)).unwrap();
                check(&q, &k, &v, &win, None, d, tol, &what("window 5"));
                let sinks = random(&[c.hq], seed + 3).astype(dtype).unwrap();
                check(&q, &k, &v, &causal, Some(&sinks), d, tol, &what("sinks"));
                check(
                    &q,
                    &k,
                    &v,
                    &win,
                    Some(&sinks),
                    d,
                    tol,
                    &what("window + sinks"),
                );
                // Empty slots (negative positions) scattered through the cache, a ring order.
                let kp: Vec<i32> = (0..c.tk as i32)
                    .map(|j| {
                        if j % 3 == 1 {
                            -1
                        } else {
                            (j * 7) % c.tk as i32
                        }
                    })
                    .collect();
                let qp: Vec<i32> = (0..c.tq as i32).map(|i| off as i32 + i).collect();
                let ring = mask(&qp, &kp, None);
                check(&q, &k, &v, &ring, None, d, tol, &what("empty slots"));
                // A query that sees nothing (zeros), with and without sinks.
                let mut qp0 = qp.clone();
                qp0[0] = -5;
                let none = mask(&qp0, &kp, Some(3));
                check(&q, &k, &v, &none, None, d, tol, &what("no visible key"));
                check(
                    &q,
                    &k,
                    &v,
                    &none,
                    Some(&sinks),
                    d,
                    tol,
                    &what("no key + sinks"),
                );
            }
        }
    }
}

#[test]
fn strided_views_and_mixed_dtypes_match_the_cpu() {
    for d in gpus() {
        let (b, hq, hkv, tq, tk, dh) = (2, 8, 2, 3, 41, 64);
        // q as (B, T, H, D) transposed to (B, H, T, D), the models' layout.
        let q = random(&[b, tq, hq, dh], 1)
            .transpose(&[0, 2, 1, 3])
            .unwrap();
        // A KV cache of capacity 64 read as a slice over T.
        let kc = random(&[b, hkv, 64, dh], 2);
        let vc = random(&[b, hkv, 64, dh], 3);
        let k = kc
            .slice(&[0, 0, 0, 0], &[b, hkv, tk, dh], &[1, 1, 1, 1])
            .unwrap();
        let v = vc
            .slice(&[0, 0, 0, 0], &[b, hkv, tk, dh], &[1, 1, 1, 1])
            .unwrap();
        let m = AttentionMask::causal(tk - tq, tq, None).unwrap();
        check(&q, &k, &v, &m, None, d, 1e-5, "strided f32");
        // k with D not contiguous (a transposed view): copied first.
        let kt = random(&[b, hkv, dh, tk], 4)
            .transpose(&[0, 1, 3, 2])
            .unwrap();
        check(&q, &kt, &v, &m, None, d, 1e-5, "k transposed");
        // bf16 cache, f32 queries (output f32).
        let kb = k.astype(DType::BF16).unwrap();
        let vb = v.astype(DType::BF16).unwrap();
        check(&q, &kb, &vb, &m, None, d, 1e-5, "f32 q, bf16 kv");
        // bf16 sinks with f32 q.
        let s = random(&[hq], 5).astype(DType::BF16).unwrap();
        check(&q, &kb, &vb, &m, Some(&s), d, 1e-5, "bf16 sinks");
        // Empty cache (Tk = 0): zeros, or zeros with sinks.
        let k0 = random(&[b, hkv, 0, dh], 6);
        let m0 = mask(&[0, 1, 2], &[], None);
        check(&q, &k0, &k0, &m0, None, d, 1e-5, "Tk = 0");
        check(&q, &k0, &k0, &m0, Some(&s), d, 1e-5, "Tk = 0 + sinks");
    }
}
