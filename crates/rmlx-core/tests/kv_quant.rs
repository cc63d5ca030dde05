//! Quantized KV cache ops on fresh random inputs: the packed-attention kernel against its
//! composed fallback (dequantize, then `sdpa_reference`), the round trip against the input,
//! and clear errors on bad specs.

mod common;
use common::*;
use rmlx_core::ops::kv_quant::{quantized_sdpa, quantized_sdpa_reference};
use rmlx_core::ops::{sdpa_reference, AttentionMask};
use rmlx_core::primitive::KvQuant;
use rmlx_core::DType;

fn spec(bits: u8, group: usize, rotate: bool) -> KvQuant {
    KvQuant {
        bits,
        group,
        rotate,
    }
}

/// The kernel and the fallback read the same codes, so they agree to f32 rounding (1e-5);
/// both differ from unquantized attention by the quantization error, bounded loosely here
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
            let got = quantized_sdpa(&q, &kp, &vp, ks, vs, d, scale, &mask, s.as_ref())
                .unwrap()
                .to_vec::<f32>()
                .unwrap();
            let want = quantized_sdpa_reference(&q, &kp, &vp, ks, vs, d, scale, &mask, s.as_ref())
                .unwrap()
                .to_vec::<f32>()
                .unwrap();
            assert_close(&got, &want, 1e-5, &what);
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
            assert_close(&fused, &want, 1e-5, &format!("fused {what}"));
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
    assert!(quantized_sdpa(&q, &kp, &kp, s, s, 48, 1.0, &mask, None).is_ok());
    assert!(quantized_sdpa(&q, &kp, &kp, s, s, 32, 1.0, &mask, None).is_err());
}
