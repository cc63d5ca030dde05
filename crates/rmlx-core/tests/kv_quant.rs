//! Quantized KV cache ops on fresh random inputs: the packed-attention kernel against its
//! composed fallback (dequantize, then `sdpa_reference`), the round trip against the input,
//! and clear errors on bad specs.

mod common;
use common::*;
use rand::Rng;
use rmlx_core::ops::kv_quant::{quantized_sdpa, quantized_sdpa_reference, PackedKv};
use rmlx_core::ops::{sdpa_reference, AttentionMask};
use rmlx_core::primitive::KvQuant;
use rmlx_core::{Array, DType};

fn spec(bits: u8, group: usize, rotate: bool) -> KvQuant {
    KvQuant {
        bits,
        group,
        rotate,
    }
}

/// The kernel rounds each query row to int8 per key group before its integer dots with the key
/// codes (kv_attend.rs); the fallback uses q as is. Each q_c moves by at most a_g/2, with
/// a_g = max|q| over its group / 127, so a score by at most (a_g/2)·Σ|k_c − center|: on these
/// inputs (|q| < 2·scale, |k| < 2) the rms error of q is ~0.5% of its rms, and the outputs
/// differ by at most 4.5e-3 (relative L2, 200 cases over 6 seeds). Bound: 2e-2. Where the
/// rounding is exact (`grid_queries_make_integer_scores_exact`) they agree to 1e-5.
const Q8_TOL: f32 = 2e-2;

/// The kernel's output, checked against the composed fallback: both read the same codes, so
/// they differ only by the queries' int8 rounding (`Q8_TOL`).
fn kernel_vs_fallback(
    q: &Array,
    kv: &PackedKv,
    scale: f32,
    mask: &AttentionMask,
    sinks: Option<&Array>,
    what: &str,
) -> Vec<f32> {
    let run = |o: rmlx_core::Result<Array>| o.unwrap().to_vec::<f32>().unwrap();
    let got = run(quantized_sdpa(q, kv, scale, mask, sinks));
    let want = run(quantized_sdpa_reference(q, kv, scale, mask, sinks));
    assert_close(&got, &want, Q8_TOL, what);
    got
}

/// The kernel and the fallback read the same codes, so they agree up to the queries' int8
/// rounding (`Q8_TOL`); the fused path is the kernel, so it matches it to 1e-5. Both differ
/// from unquantized attention by the quantization error, bounded loosely here
/// (8-bit ~1e-2, 4-bit ~1.5e-1 relative L2 on Gaussian-ish inputs).
#[test]
fn packed_attention_matches_fallback_with_gqa_windows_sinks() {
    let mut r = rng();
    for &(d, hq, hkv, tq, tk, window, sinks) in &[
        (64usize, 9usize, 3usize, 1usize, 40usize, None, false),
        (64, 4, 2, 7, 7, None, true),
        (32, 8, 2, 3, 19, Some(5usize), true),
        (16, 6, 2, 5, 12, Some(3), false),
        (128, 2, 1, 4, 33, None, true),
        // Decode over long caches: the keys are split over threads and merged, including
        // splits that see nothing (the window covers only the last one).
        (64, 8, 1, 1, 1000, None, true),
        (64, 8, 1, 1, 1000, Some(100), true),
        (64, 9, 3, 1, 700, Some(300), false),
    ] {
        for (ks, vs) in [
            (spec(8, 32, false), spec(8, 32, false)),
            (spec(4, 32, true), spec(4, 64, true)),
            (spec(8, 32, true), spec(4, 64, false)),
        ] {
            let (ks, vs) = (
                KvQuant {
                    group: ks.group.min(d),
                    ..ks
                },
                KvQuant {
                    group: vs.group.min(d),
                    ..vs
                },
            );
            let (q, _) = rand_array(&mut r, &[2, hq, tq, d]);
            let (k, _) = rand_array(&mut r, &[2, hkv, tk, d]);
            let (v, _) = rand_array(&mut r, &[2, hkv, tk, d]);
            let (kp, vp) = (k.quantize_kv(ks).unwrap(), v.quantize_kv(vs).unwrap());
            let mask = AttentionMask::causal(tk - tq, tq, window).unwrap();
            let s = sinks.then(|| rand_array(&mut r, &[hq]).0);
            let what = format!(
                "d{d} hq{hq} hkv{hkv} tq{tq} tk{tk} {window:?} sinks {sinks} {ks:?} {vs:?}"
            );
            let scale = 1.0 / (d as f32).sqrt();
            let kv = PackedKv::new(&kp, &vp, ks, vs, d);
            let got = kernel_vs_fallback(&q, &kv, scale, &mask, s.as_ref(), &what);
            // The same through the plain attention op on dequantize nodes (the cache path).
            let fused = q
                .scaled_dot_product_attention(
                    &kp.dequantize_kv(ks, d).unwrap(),
                    &vp.dequantize_kv(vs, d).unwrap(),
                    scale,
                    &mask,
                    s.as_ref(),
                )
                .unwrap()
                .to_vec::<f32>()
                .unwrap();
            assert_close(&fused, &got, 1e-5, &format!("fused {what}"));
            let exact = sdpa_reference(&q, &k, &v, scale, &mask, s.as_ref())
                .unwrap()
                .to_vec::<f32>()
                .unwrap();
            let tol = if ks.bits == 8 && vs.bits == 8 {
                1e-2
            } else {
                1.5e-1
            };
            assert_close(&got, &exact, tol, &format!("vs exact {what}"));
        }
    }
}

/// Keys with a large per-channel offset (as RoPE'd keys of real models have), stored relative
/// to their mean: the kernel adds q·μ back exactly (sinks included), agrees with the composed
/// fallback, and is closer to exact attention than storing the raw keys.
#[test]
fn centered_keys_are_exact_and_closer() {
    let mut r = rng();
    let (b, hq, hkv, d) = (2, 8, 2, 64);
    for &(tq, tk, window) in &[(1usize, 600usize, None), (5, 40, Some(16usize))] {
        let (q, _) = rand_array(&mut r, &[b, hq, tq, d]);
        let (k, _) = rand_array(&mut r, &[b, hkv, tk, d]);
        let (off, _) = rand_array(&mut r, &[b, hkv, 1, d]);
        let k = k
            .add(&off.mul(&Array::from_slice(&[4f32], &[1]).unwrap()).unwrap())
            .unwrap();
        let (v, _) = rand_array(&mut r, &[b, hkv, tk, d]);
        let sinks = rand_array(&mut r, &[hq]).0;
        let (ks, vs) = (spec(4, 32, true), spec(4, 64, true));
        let mu = k.mean(&[2], true).unwrap();
        let kc = k.sub(&mu).unwrap().quantize_kv(ks).unwrap();
        let (kr, vp) = (k.quantize_kv(ks).unwrap(), v.quantize_kv(vs).unwrap());
        let mask = AttentionMask::causal(tk - tq, tq, window).unwrap();
        let scale = 1.0 / (d as f32).sqrt();
        let run = |kp: &Array, c: Option<&Array>| {
            let kv = PackedKv {
                k_center: c,
                ..PackedKv::new(kp, &vp, ks, vs, d)
            };
            quantized_sdpa(&q, &kv, scale, &mask, Some(&sinks))
                .unwrap()
                .to_vec::<f32>()
                .unwrap()
        };
        let got = run(&kc, Some(&mu));
        let kv = PackedKv {
            k_center: Some(&mu),
            ..PackedKv::new(&kc, &vp, ks, vs, d)
        };
        let want = quantized_sdpa_reference(&q, &kv, scale, &mask, Some(&sinks))
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let what = format!("tq{tq} tk{tk} {window:?}");
        assert_close(&got, &want, Q8_TOL, &what);
        // The cache path: plain attention on centered dequantize nodes fuses the same way.
        let fused = q
            .scaled_dot_product_attention(
                &kc.dequantize_kv_centered(ks, d, &mu).unwrap(),
                &vp.dequantize_kv(vs, d).unwrap(),
                scale,
                &mask,
                Some(&sinks),
            )
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_close(&fused, &got, 1e-5, &format!("fused {what}"));
        // With the exact V (dequantized) the only error left is the keys'.
        let vd = vp.dequantize_kv(vs, d).unwrap();
        let exact = sdpa_reference(&q, &k, &vd, scale, &mask, Some(&sinks))
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let err = |a: &[f32]| {
            let n: f32 = a.iter().zip(&exact).map(|(x, y)| (x - y).powi(2)).sum();
            n.sqrt()
        };
        let raw = run(&kr, None);
        assert!(
            err(&got) < 0.8 * err(&raw),
            "{what}: centered error {} not below raw {}",
            err(&got),
            err(&raw)
        );
    }
    // A center of the wrong shape is a clear error.
    let (k, _) = rand_array(&mut r, &[1, 2, 3, 64]);
    let bad = Array::zeros(&[1, 2, 3, 64], DType::F32).unwrap();
    let e = k
        .quantize_kv(spec(8, 32, false))
        .unwrap()
        .dequantize_kv_centered(spec(8, 32, false), 64, &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("center"), "{e}");
}

/// The cache's view with an exact f32 head (the first tokens) before the packed rows, keys
/// centered: the kernel reads slots 0..S from the head and agrees with the composed view,
/// decode (split keys) and prefill, with sinks and a window.
#[test]
fn exact_head_before_packed_rows() {
    let mut r = rng();
    let (b, hq, hkv, d, s) = (1, 6, 2, 64, 4);
    for &(tq, tk, window) in &[
        (1usize, 700usize, None),
        (6, 30, Some(12usize)),
        (3, 5, None),
    ] {
        let (q, _) = rand_array(&mut r, &[b, hq, tq, d]);
        let (k, _) = rand_array(&mut r, &[b, hkv, tk, d]);
        let (v, _) = rand_array(&mut r, &[b, hkv, tk, d]);
        let sinks = rand_array(&mut r, &[hq]).0;
        let (ks, vs) = (spec(4, 32, true), spec(4, 64, true));
        let mu = k.mean(&[2], true).unwrap();
        let (hk, hv) = (
            k.slice_axis(2, 0, s).unwrap(),
            v.slice_axis(2, 0, s).unwrap(),
        );
        let kp = k
            .slice_axis(2, s, tk)
            .unwrap()
            .sub(&mu)
            .unwrap()
            .quantize_kv(ks)
            .unwrap();
        let vp = v.slice_axis(2, s, tk).unwrap().quantize_kv(vs).unwrap();
        let mask = AttentionMask::causal(tk - tq, tq, window).unwrap();
        let scale = 1.0 / (d as f32).sqrt();
        let kv = PackedKv {
            k_center: Some(&mu),
            head: Some((&hk, &hv)),
            ..PackedKv::new(&kp, &vp, ks, vs, d)
        };
        let what = format!("tq{tq} tk{tk} {window:?}");
        let got = kernel_vs_fallback(&q, &kv, scale, &mask, Some(&sinks), &what);
        // Through plain attention on the view a cache hands out: concat(head, dequantize).
        let keys = rmlx_core::concat(
            &[hk.clone(), kp.dequantize_kv_centered(ks, d, &mu).unwrap()],
            2,
        )
        .unwrap();
        let values = rmlx_core::concat(&[hv.clone(), vp.dequantize_kv(vs, d).unwrap()], 2).unwrap();
        let fused = q
            .scaled_dot_product_attention(&keys, &values, scale, &mask, Some(&sinks))
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_close(&fused, &got, 1e-5, &format!("fused {what}"));
        let exact = sdpa_reference(&q, &k, &v, scale, &mask, Some(&sinks))
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_close(&got, &exact, 1.5e-1, &format!("vs exact {what}"));
    }
}

#[test]
fn round_trip_error_is_within_half_a_step() {
    let mut r = rng();
    for s in [
        spec(8, 32, false),
        spec(4, 32, false),
        spec(4, 64, true),
        spec(8, 16, true),
    ] {
        let (x, xv) = rand_array(&mut r, &[3, 2, 5, 64]);
        let back = x
            .quantize_kv(s)
            .unwrap()
            .dequantize_kv(s, 64)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        // Per element: half a step of a group whose range is at most ~4 (|x| < 2), plus f16
        // rounding of scale and min; rotated rows mix groups, so compare in L2.
        let step = 4.0 / ((1u32 << s.bits) - 1) as f32;
        let rms = (xv
            .iter()
            .zip(&back)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f32>()
            / xv.len() as f32)
            .sqrt();
        assert!(
            rms <= 0.5 * step,
            "{s:?}: rms error {rms} > half a step {}",
            0.5 * step
        );
        if !s.rotate {
            for (a, b) in xv.iter().zip(&back) {
                assert!((a - b).abs() <= 0.5 * step + 2e-3, "{s:?}: {a} vs {b}");
            }
        }
    }
    // bf16 input quantizes the same values.
    let (x, _) = rand_array(&mut r, &[1, 1, 2, 32]);
    let s = spec(8, 32, false);
    let a = x.quantize_kv(s).unwrap().to_vec::<u8>().unwrap();
    let b = x
        .astype(DType::BF16)
        .unwrap()
        .astype(DType::F32)
        .unwrap()
        .quantize_kv(s)
        .unwrap()
        .to_vec::<u8>()
        .unwrap();
    assert_eq!(a.len(), s.row_bytes(32) * 2);
    assert_eq!(b.len(), a.len());
}

#[test]
fn bad_specs_are_clear_errors() {
    let mut r = rng();
    let (x, _) = rand_array(&mut r, &[1, 1, 2, 48]);
    let e = x.quantize_kv(spec(4, 32, false)).unwrap_err().to_string();
    assert!(e.contains("divides the head dim 48"), "{e}");
    let e = x.quantize_kv(spec(3, 16, false)).unwrap_err().to_string();
    assert!(e.contains("4 or 8 bits"), "{e}");
    let e = x
        .dequantize_kv(spec(8, 16, false), 48)
        .unwrap_err()
        .to_string();
    assert!(e.contains("u8 rows"), "{e}");
    let s = spec(8, 16, false);
    let (q, _) = rand_array(&mut r, &[1, 3, 1, 48]);
    let kp = x.quantize_kv(s).unwrap();
    let mask = AttentionMask::causal(1, 1, None).unwrap();
    // 3 query heads over 1 kv head is fine; a wrong value width is not.
    let kv = |dv| PackedKv::new(&kp, &kp, s, s, dv);
    assert!(quantized_sdpa(&q, &kv(48), 1.0, &mask, None).is_ok());
    assert!(quantized_sdpa(&q, &kv(32), 1.0, &mask, None).is_err());
}

/// Prefill tiles with many query rows (several tiles, the last one partial) and a rotating
/// cache's slot order: key positions out of order, with empty slots (−1) inside blocks of 8,
/// decode and prefill, windows and sinks, GQA 3 and 8 (kernel vs fallback, `Q8_TOL`).
#[test]
fn tiles_and_ring_slots_match_fallback() {
    let mut r = rng();
    let (d, b) = (64, 1);
    for &(hq, hkv, tq, tk, window, ring) in &[
        (9usize, 3usize, 70usize, 90usize, None, false),
        (16, 2, 33, 33, Some(7usize), false),
        (9, 3, 1, 300, Some(64), true),
        (9, 3, 20, 300, Some(64), true),
        (8, 1, 45, 130, None, true),
    ] {
        let (q, _) = rand_array(&mut r, &[b, hq, tq, d]);
        let (k, _) = rand_array(&mut r, &[b, hkv, tk, d]);
        let (v, _) = rand_array(&mut r, &[b, hkv, tk, d]);
        let (ks, vs) = (spec(4, 32, true), spec(4, 64, true));
        let (kp, vp) = (k.quantize_kv(ks).unwrap(), v.quantize_kv(vs).unwrap());
        let start = (tk - tq) as i32 + if ring { 40 } else { 0 };
        let q_pos: Vec<i32> = (start..start + tq as i32).collect();
        // Ring: slot j holds position (j + shift) wrapped, with every 5th slot empty.
        let k_pos: Vec<i32> = (0..tk as i32)
            .map(|j| match ring {
                false => j,
                true if j % 5 == 3 => -1,
                true => (j + 37) % tk as i32 + (start + tq as i32 - tk as i32),
            })
            .collect();
        let mask = AttentionMask {
            q_pos: Array::from_slice(&q_pos, &[tq]).unwrap(),
            k_pos: Array::from_slice(&k_pos, &[tk]).unwrap(),
            window,
        };
        let sinks = rand_array(&mut r, &[hq]).0;
        let kv = PackedKv::new(&kp, &vp, ks, vs, d);
        let scale = 1.0 / (d as f32).sqrt();
        let what = format!("hq{hq} hkv{hkv} tq{tq} tk{tk} {window:?} ring {ring}");
        kernel_vs_fallback(&q, &kv, scale, &mask, Some(&sinks), &what);
    }
}

/// The packed kernel's own checks are errors, not panics: more than 64 query heads per KV
/// head (at eval), and an exact head that is not f32 (when the op is built).
#[test]
fn packed_kernel_rejects_wide_groups_and_non_float_heads() {
    let mut r = rng();
    let s = spec(4, 32, true);
    let (k, _) = rand_array(&mut r, &[1, 1, 6, 32]);
    let kp = k.quantize_kv(s).unwrap();
    let mask = AttentionMask::causal(5, 1, None).unwrap();
    let kv = PackedKv::new(&kp, &kp, s, s, 32);
    let (q, _) = rand_array(&mut r, &[1, 65, 1, 32]);
    let e = quantized_sdpa(&q, &kv, 1.0, &mask, None)
        .and_then(|o| o.to_vec::<f32>())
        .unwrap_err()
        .to_string();
    assert!(e.contains("at most 64 query heads"), "{e}");
    let (q, _) = rand_array(&mut r, &[1, 2, 1, 32]);
    let mask = AttentionMask::causal(7, 1, None).unwrap();
    let hk = k.slice_axis(2, 0, 2).unwrap();
    // 16-bit exact heads are read as they are (caches keep them in f16), and agree with f32.
    let with_head = |h: &Array| {
        let kv = PackedKv {
            head: Some((h, h)),
            ..PackedKv::new(&kp, &kp, s, s, 32)
        };
        quantized_sdpa(&q, &kv, 1.0, &mask, None).and_then(|o| o.to_vec::<f32>())
    };
    let exact = with_head(&hk).unwrap();
    for t in [DType::F16, DType::BF16] {
        let h = hk.astype(t).unwrap().astype(DType::F32).unwrap();
        let want = with_head(&h).unwrap();
        let got = with_head(&hk.astype(t).unwrap()).unwrap();
        assert_close(&got, &want, 1e-6, &format!("{t} head, kernel vs widened"));
        assert_close(&got, &exact, 1e-2, &format!("{t} head vs f32"));
    }
    let e = with_head(&hk.astype(DType::I32).unwrap())
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("exact head of one float dtype"), "{e}");
}

/// Queries on the grid of the kernel's int8 rounding (per key group: integers up to ±127 times
/// 2^−6, one of them ±127; a power-of-two scale; no rotation) round exactly, so the kernel's
/// integer scores match the fallback to f32 rounding (1e-5). Covers each code layout of the
/// integer dots: 4-bit in blocks of 32 with groups of 32 and 64 and a 32-value tail, groups of
/// 16 (splitting a block) and blocks of 16; 8-bit with groups of 16, 32, 64 and a 16-value
/// tail; GQA 12 and 16; decode (split keys) and prefill; a group of zeros.
#[test]
fn grid_queries_make_integer_scores_exact() {
    let mut r = rng();
    for &(d, bits, group, hq, hkv, tq, tk) in &[
        (64usize, 4u8, 32usize, 9usize, 3usize, 1usize, 300usize),
        (128, 4, 64, 4, 2, 1, 100),
        (96, 4, 32, 2, 1, 3, 50),
        (64, 4, 16, 12, 1, 1, 77),
        (48, 4, 16, 2, 1, 2, 40),
        (48, 4, 48, 4, 2, 1, 33),
        (64, 8, 32, 9, 3, 1, 300),
        (48, 8, 16, 4, 2, 5, 60),
        (64, 8, 64, 16, 1, 1, 45),
    ] {
        let ks = spec(bits, group, false);
        let vs = spec(12 - bits, 16, false);
        let mut qv = Vec::with_capacity(hq * tq * d);
        for row in 0..hq * tq {
            for g in 0..d / group {
                let mut n: Vec<i32> = (0..group).map(|_| r.gen_range(-127..=127)).collect();
                n[r.gen_range(0..group)] = if r.gen() { 127 } else { -127 };
                if row == 1 && g == 0 {
                    n.iter_mut().for_each(|x| *x = 0);
                }
                qv.extend(n.iter().map(|&x| x as f32 / 64.0));
            }
        }
        let q = Array::from_slice(&qv, &[1, hq, tq, d]).unwrap();
        let (k, _) = rand_array(&mut r, &[1, hkv, tk, d]);
        let (v, _) = rand_array(&mut r, &[1, hkv, tk, d]);
        let (kp, vp) = (k.quantize_kv(ks).unwrap(), v.quantize_kv(vs).unwrap());
        let mask = AttentionMask::causal(tk - tq, tq, None).unwrap();
        let kv = PackedKv::new(&kp, &vp, ks, vs, d);
        let run = |o: rmlx_core::Result<Array>| o.unwrap().to_vec::<f32>().unwrap();
        let got = run(quantized_sdpa(&q, &kv, 0.125, &mask, None));
        let want = run(quantized_sdpa_reference(&q, &kv, 0.125, &mask, None));
        let what = format!("d{d} {ks:?} hq{hq} hkv{hkv} tq{tq} tk{tk}");
        assert_close(&got, &want, 1e-5, &what);
    }
}
