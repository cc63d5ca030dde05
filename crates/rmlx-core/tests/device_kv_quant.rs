//! Quantized KV rows on every GPU present against the CPU backend: `quantize_kv` bit for bit
//! (4 and 8 bits, groups, rotation, f32 / bf16 / f16 and strided inputs), `dequantize_kv`
//! exactly (centered, sliced caches), and packed attention (`QuantizedSdpa`, which the GPU
//! computes from dequantized K/V with the exact q) against the composed reference, with GQA,
//! windows, sinks, centered keys and an exact head, decode and prefill.

use rmlx_core::ops::kv_quant::{quantized_sdpa, quantized_sdpa_reference, PackedKv};
use rmlx_core::ops::AttentionMask;
use rmlx_core::primitive::KvQuant;
use rmlx_core::testing::{gpus, rel_l2, uniform};
use rmlx_core::{Array, DType, Device};

fn random(shape: &[usize], seed: u64) -> Array {
    uniform(shape, seed, -2.0, 2.0)
}

fn on(a: &Array, d: Device) -> Array {
    a.to_device(d).unwrap()
}

fn spec(bits: u8, group: usize, rotate: bool) -> KvQuant {
    KvQuant {
        bits,
        group,
        rotate,
    }
}

fn specs(d: usize) -> Vec<KvQuant> {
    let mut out = Vec::new();
    for bits in [4, 8] {
        for group in [16, 32, 64] {
            if d.is_multiple_of(group) {
                for rotate in [false, true] {
                    out.push(spec(bits, group, rotate));
                }
            }
        }
    }
    out
}

#[test]
fn quantize_and_dequantize_match_the_cpu_exactly() {
    for dev in gpus() {
        for (i, &d) in [16usize, 48, 64, 96, 128, 256].iter().enumerate() {
            let x = random(&[2, 3, 7, d], i as u64);
            for s in specs(d) {
                for dtype in [DType::F32, DType::BF16, DType::F16] {
                    let xt = x.astype(dtype).unwrap();
                    let what = format!("d{d} {s:?} {dtype}");
                    let cpu = xt.quantize_kv(s).unwrap();
                    let gpu = on(&xt, dev).quantize_kv(s).unwrap();
                    assert_eq!(gpu.shape(), cpu.shape(), "{what}");
                    let (g, c) = (gpu.to_vec::<u8>().unwrap(), cpu.to_vec::<u8>().unwrap());
                    let bad = g.iter().zip(&c).filter(|(a, b)| a != b).count();
                    assert_eq!(bad, 0, "{what}: {bad} of {} bytes differ", c.len());
                    // Dequantize (same packed bytes on both sides).
                    let cd = cpu.dequantize_kv(s, d).unwrap().to_vec::<f32>().unwrap();
                    let gd = on(&cpu, dev)
                        .dequantize_kv(s, d)
                        .unwrap()
                        .to_vec::<f32>()
                        .unwrap();
                    assert_eq!(gd, cd, "{what}: dequantize");
                }
                // A strided (transposed) input.
                let xs = random(&[3, d, 5], 50 + i as u64)
                    .transpose(&[0, 2, 1])
                    .unwrap();
                let cpu = xs.quantize_kv(s).unwrap().to_vec::<u8>().unwrap();
                let gpu = on(&xs, dev).quantize_kv(s).unwrap().to_vec::<u8>().unwrap();
                assert_eq!(gpu, cpu, "d{d} {s:?} strided");
                // Centered rows and a slice over T of a packed cache (rows read in place).
                let packed = x.quantize_kv(s).unwrap();
                let mu = random(&[2, 3, 1, d], 70 + i as u64);
                let sl = packed.slice_axis(2, 2, 6).unwrap();
                let cpu = sl.dequantize_kv_centered(s, d, &mu).unwrap();
                let gpu = on(&packed, dev)
                    .slice_axis(2, 2, 6)
                    .unwrap()
                    .dequantize_kv_centered(s, d, &on(&mu, dev))
                    .unwrap();
                assert_eq!(
                    gpu.to_vec::<f32>().unwrap(),
                    cpu.to_vec::<f32>().unwrap(),
                    "d{d} {s:?} centered slice"
                );
            }
        }
    }
}

fn mask_on(m: &AttentionMask, d: Device) -> AttentionMask {
    AttentionMask {
        q_pos: on(&m.q_pos, d),
        k_pos: on(&m.k_pos, d),
        window: m.window,
    }
}

#[test]
fn packed_attention_matches_the_reference() {
    let cases = [
        // (d, hq, hkv, tq, tk, head, window, sinks, centered)
        (
            64usize, 8usize, 2usize, 1usize, 300usize, 0usize, None, false, false,
        ),
        (64, 6, 2, 1, 200, 4, None, true, true),
        (128, 4, 4, 7, 40, 0, Some(9usize), true, false),
        (48, 6, 3, 5, 21, 3, Some(4), false, true),
        (96, 2, 1, 3, 3, 0, None, false, false),
    ];
    for dev in gpus() {
        for (ci, &(d, hq, hkv, tq, tk, head, window, with_sinks, centered)) in
            cases.iter().enumerate()
        {
            let seed = 1000 + 10 * ci as u64;
            let b = 2;
            let k = random(&[b, hkv, tk, d], seed + 1);
            let v = random(&[b, hkv, tk, d], seed + 2);
            let sinks = random(&[hq], seed + 3);
            let mask = AttentionMask::causal(tk - tq, tq, window).unwrap();
            let scale = 1.0 / (d as f32).sqrt();
            let kgroup = if d.is_multiple_of(32) { 32 } else { 16 };
            for (ks, vs) in [
                (spec(8, kgroup, false), spec(8, 16, false)),
                (spec(4, 16, true), spec(4, 16, true)),
            ] {
                for qdt in [DType::F32, DType::BF16] {
                    let q = random(&[b, hq, tq, d], seed).astype(qdt).unwrap();
                    let mu = k.mean(&[2], true).unwrap();
                    let kbody = k.slice_axis(2, head, tk).unwrap();
                    let kbody = if centered {
                        kbody.sub(&mu).unwrap()
                    } else {
                        kbody
                    };
                    let kp = kbody.quantize_kv(ks).unwrap();
                    let vp = v.slice_axis(2, head, tk).unwrap().quantize_kv(vs).unwrap();
                    let (hk, hv) = (
                        k.slice_axis(2, 0, head)
                            .unwrap()
                            .astype(DType::F16)
                            .unwrap(),
                        v.slice_axis(2, 0, head)
                            .unwrap()
                            .astype(DType::F16)
                            .unwrap(),
                    );
                    let cpu_parts = (kp.clone(), vp.clone(), mu.clone(), hk.clone(), hv.clone());
                    let gpu_parts = (
                        on(&kp, dev),
                        on(&vp, dev),
                        on(&mu, dev),
                        on(&hk, dev),
                        on(&hv, dev),
                    );
                    type Parts = (Array, Array, Array, Array, Array);
                    type Packed = (Array, Array, Option<Array>, Option<(Array, Array)>);
                    let packed = |p: &Parts| -> Packed {
                        (
                            p.0.clone(),
                            p.1.clone(),
                            centered.then(|| p.2.clone()),
                            (head > 0).then(|| (p.3.clone(), p.4.clone())),
                        )
                    };
                    let (ck, cv, cmu, chead) = packed(&cpu_parts);
                    let (gk, gv, gmu, ghead) = packed(&gpu_parts);
                    let ckv = PackedKv {
                        k_center: cmu.as_ref(),
                        head: chead.as_ref().map(|(a, b)| (a, b)),
                        ..PackedKv::new(&ck, &cv, ks, vs, d)
                    };
                    let gkv = PackedKv {
                        k_center: gmu.as_ref(),
                        head: ghead.as_ref().map(|(a, b)| (a, b)),
                        ..PackedKv::new(&gk, &gv, ks, vs, d)
                    };
                    let s_cpu = with_sinks.then(|| sinks.clone());
                    let s_gpu = with_sinks.then(|| on(&sinks, dev));
                    let what = format!("case {ci} {ks:?} {qdt}");
                    let want = quantized_sdpa_reference(&q, &ckv, scale, &mask, s_cpu.as_ref())
                        .unwrap()
                        .astype(qdt)
                        .unwrap()
                        .to_vec::<f32>()
                        .unwrap();
                    let fused_cpu = quantized_sdpa(&q, &ckv, scale, &mask, s_cpu.as_ref())
                        .unwrap()
                        .to_vec::<f32>()
                        .unwrap();
                    let got = quantized_sdpa(
                        &on(&q, dev),
                        &gkv,
                        scale,
                        &mask_on(&mask, dev),
                        s_gpu.as_ref(),
                    )
                    .unwrap();
                    assert_eq!(got.dtype(), qdt, "{what}: dtype");
                    let got = got.to_vec::<f32>().unwrap();
                    let tol = if qdt == DType::F32 { 1e-5 } else { 1e-2 };
                    let e = rel_l2(&got, &want);
                    assert!(e <= tol, "{what}: vs reference rel L2 {e:.3e} > {tol:.0e}");
                    // The CPU's fused kernel rounds q to int8 for its key dots (kv_quant.rs).
                    let e = rel_l2(&got, &fused_cpu);
                    assert!(e <= 2e-2, "{what}: vs CPU kernel rel L2 {e:.3e}");
                }
            }
        }
    }
}
