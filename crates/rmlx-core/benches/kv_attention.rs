//! Decode attention over a long KV cache, dense (f32, f16, bf16: flash-decoding over the 16-bit
//! rows as stored) and packed, against the dense bf16 kernel:
//! `RAYON_NUM_THREADS=1 cargo bench -p rmlx-core --bench kv_attention`. Shapes of SmolLM2-135M
//! (9 query heads over 3 KV heads, head dim 64) at 4,096 tokens (`KV_BENCH_DEPTH=8192` for
//! another depth), the packed kinds with the cache's exact head. The kinds run round-robin and
//! each prints its minimum over many calls (the host is shared and noisy) and its ratio to
//! bf16.

use rand::{rngs::StdRng, Rng, SeedableRng};
use rmlx_core::ops::kv_quant::{quantized_sdpa, PackedKv};
use rmlx_core::ops::AttentionMask;
use rmlx_core::primitive::KvQuant;
use rmlx_core::{Array, DType};
use std::time::Instant;

/// One kind's attention call.
type Run<'a> = Box<dyn Fn() + 'a>;

/// Wall time of one call of `f`, in µs.
fn us(f: &dyn Fn()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e6
}

fn main() {
    let tk = std::env::var("KV_BENCH_DEPTH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096);
    let (hq, hkv, d) = (9, 3, 64);
    let mut rng = StdRng::seed_from_u64(1);
    let mut rand = |shape: &[usize]| {
        let v: Vec<f32> = (0..shape.iter().product())
            .map(|_| rng.gen_range(-2.0f32..2.0))
            .collect();
        Array::from_slice(&v, shape).unwrap()
    };
    let (q, k, v) = (
        rand(&[1, hq, 1, d]),
        rand(&[1, hkv, tk, d]),
        rand(&[1, hkv, tk, d]),
    );
    let mask = AttentionMask::causal(tk - 1, 1, None).unwrap();
    let head = 68;
    let (hk, hv) = (rand(&[1, hkv, head, d]), rand(&[1, hkv, head, d]));
    let scale = 1.0 / (d as f32).sqrt();
    let reps = 400;
    let (kb, vb) = (
        k.astype(DType::BF16).unwrap(),
        v.astype(DType::BF16).unwrap(),
    );
    let qb = q.astype(DType::BF16).unwrap();
    let (kh, vh) = (k.astype(DType::F16).unwrap(), v.astype(DType::F16).unwrap());
    for a in [&kb, &vb, &qb, &kh, &vh, &k, &v] {
        a.eval().unwrap();
    }
    // KV_BENCH=name runs only the kinds whose name contains it (for profiling one).
    let only = std::env::var("KV_BENCH").ok();
    let skip = |name: &str| only.as_ref().is_some_and(|o| !name.contains(o.as_str()));
    let spec = |bits, group| KvQuant {
        bits,
        group,
        rotate: true,
    };
    // As the cache hands them out: keys centered on their mean, 68 exact rows (4 first and 64
    // recent positions) before the packed ones.
    let mu = k.mean(&[2], true).unwrap();
    mu.eval().unwrap();
    let mut packed = Vec::new();
    for (name, ks, vs) in [
        ("q4 (k4/32, v4/64)", spec(4, 32), spec(4, 64)),
        ("q8 (k8/32, v8/32)", spec(8, 32), spec(8, 32)),
        ("k8v4 (k8/32, v4/64)", spec(8, 32), spec(4, 64)),
    ] {
        let (kp, vp) = (
            k.slice_axis(2, head, tk).unwrap().quantize_kv(ks).unwrap(),
            v.slice_axis(2, head, tk).unwrap().quantize_kv(vs).unwrap(),
        );
        kp.eval().unwrap();
        vp.eval().unwrap();
        packed.push((name, ks, vs, kp, vp));
    }
    // Dense kinds: q in f32 (as the models hand it) for f32 and f16 caches.
    let dense = |q: &Array, k: &Array, v: &Array| {
        q.scaled_dot_product_attention(k, v, scale, &mask, None)
            .unwrap()
            .eval()
            .unwrap();
    };
    let mut runs: Vec<(&str, Run)> = vec![
        ("bf16 dense", Box::new(|| dense(&qb, &kb, &vb))),
        ("f16 dense", Box::new(|| dense(&q, &kh, &vh))),
        ("f32 dense", Box::new(|| dense(&q, &k, &v))),
    ];
    for (name, ks, vs, kp, vp) in &packed {
        let kv = PackedKv {
            k_center: Some(&mu),
            head: Some((&hk, &hv)),
            ..PackedKv::new(kp, vp, *ks, *vs, d)
        };
        let q = &q;
        let mask = &mask;
        runs.push((
            name,
            Box::new(move || {
                quantized_sdpa(q, &kv, scale, mask, None)
                    .unwrap()
                    .eval()
                    .unwrap();
            }),
        ));
    }
    runs.retain(|(name, _)| !skip(name));
    // Round-robin, so a busy spell of the host slows every kind alike.
    let mut best = vec![f64::INFINITY; runs.len()];
    for _ in 0..reps {
        for (b, (_, f)) in best.iter_mut().zip(&runs) {
            *b = b.min(us(f.as_ref()));
        }
    }
    let bf16 = runs.iter().position(|(n, _)| n.starts_with("bf16"));
    for ((name, _), t) in runs.iter().zip(&best) {
        let ratio = bf16.map_or(String::new(), |i| format!("({:.2}x bf16)", t / best[i]));
        println!("{name:<19} {t:>8.1} us  {ratio}");
    }
}
