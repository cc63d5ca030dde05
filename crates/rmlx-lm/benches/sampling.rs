//! Sampler time per token on a 200k vocabulary (gpt-oss's), host logits:
//! `cargo bench -p rmlx-lm --bench sampling`.

use rand::{rngs::StdRng, Rng, SeedableRng};
use rmlx_lm::{Sampler, SamplerConfig};

fn random_logits(n: usize, seed: u64) -> Vec<f32> {
    let mut r = StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.gen_range(-8.0f32..8.0)).collect()
}

fn main() {
    let l = random_logits(201_088, 11);
    let hist: Vec<u32> = (0..64).collect();
    for (name, cfg) in [
        (
            "greedy+penalty",
            SamplerConfig {
                repetition_penalty: 1.1,
                ..SamplerConfig::greedy()
            },
        ),
        (
            "llama.cpp default",
            SamplerConfig {
                seed: Some(1),
                ..Default::default()
            },
        ),
        (
            "top_p only",
            SamplerConfig {
                seed: Some(1),
                top_k: 0,
                min_p: 0.0,
                ..Default::default()
            },
        ),
    ] {
        let mut s = Sampler::new(cfg).unwrap();
        let t = std::time::Instant::now();
        for _ in 0..100 {
            s.sample(&l, &hist).unwrap();
        }
        println!("{name}: {:.3} ms/token", t.elapsed().as_secs_f64() * 10.0);
    }
}
