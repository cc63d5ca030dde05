//! Time of one batched decode step (`forward_batch` over N sequences, one token each, logits
//! evaluated and each row's argmax read, as the scheduler does) at N = 1, 4, 8, 16:
//! `cargo bench -p rmlx-lm --bench batch_step`. Environment: `RMLX_MODEL` (default: the
//! default model), `BATCH_KV` (f16), `BATCH_SEQS` ("1 4 8 16"), `BATCH_PROMPT` (prompt
//! tokens a sequence, 64), `BATCH_STEPS` (decode steps timed, 64), `BATCH_PROFILE=1` (time per
//! primitive, stderr).

use rand::{rngs::StdRng, Rng, SeedableRng};
use rmlx_lm::batch::SeqChunk;
use rmlx_lm::cache::CacheKind;
use rmlx_lm::{load_model_with, LoadOptions, Logits};
use std::time::Instant;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` random token ids past the first 4 (often special).
fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(4..vocab as u32)).collect()
}

fn main() -> rmlx_core::Result<()> {
    let path = rmlx_lm::default_model::resolve(std::env::var_os("RMLX_MODEL").map(Into::into))
        .map_err(|e| rmlx_core::Error::msg(e.to_string()))?;
    let kind: CacheKind = std::env::var("BATCH_KV")
        .unwrap_or_else(|_| "f16".into())
        .parse()
        .map_err(|e| rmlx_core::Error::msg(format!("BATCH_KV: {e}")))?;
    let seqs: Vec<usize> = std::env::var("BATCH_SEQS")
        .unwrap_or_else(|_| "1 4 8 16".into())
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let prompt: usize = env_or("BATCH_PROMPT", 64);
    let steps: usize = env_or("BATCH_STEPS", 64);
    let profile = std::env::var("BATCH_PROFILE").is_ok_and(|v| v == "1");
    let opts = LoadOptions {
        context: Some(2048),
        ..Default::default()
    };
    let m = load_model_with(&path, rmlx_core::default_device(), opts)?;
    let vocab = m.model.info().vocab_size;
    for &n in &seqs {
        let mut caches = (0..n)
            .map(|_| m.model.make_cache_of(kind))
            .collect::<rmlx_core::Result<Vec<_>>>()?;
        let mut next = Vec::with_capacity(n);
        for (i, cache) in caches.iter_mut().enumerate() {
            let p = tokens(prompt, vocab, 42 + i as u64);
            let l = m.model.forward(&p, cache, Logits::Last)?;
            next.push(l.argmax(-1, false)?.to_vec::<u32>()?[0]);
        }
        let mut times = Vec::with_capacity(steps);
        rmlx_core::profile::enable(profile);
        for _ in 0..steps {
            let t = Instant::now();
            let chunks: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
            let batch: Vec<SeqChunk> = chunks.iter().map(|c| SeqChunk { tokens: c }).collect();
            let mut refs: Vec<_> = caches.iter_mut().collect();
            let logits = m.model.forward_batch(&batch, &mut refs)?;
            logits.eval()?;
            for (r, tok) in next.iter_mut().enumerate() {
                let row = logits.slice_axis(0, r, r + 1)?.to_vec::<f32>()?;
                *tok = row
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(0, |(i, _)| i as u32);
            }
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        rmlx_core::profile::enable(false);
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let med = sorted[sorted.len() / 2];
        println!(
            "seqs {n:>2}: step median {med:6.2} ms (min {:6.2}, max {:6.2}) = {:6.1} tok/s",
            sorted[0],
            sorted[sorted.len() - 1],
            n as f64 * 1e3 / med
        );
        if profile {
            let rows = rmlx_core::profile::take()?;
            let total: f64 = rows.iter().map(|r| r.2.as_secs_f64()).sum();
            let fam = rmlx_core::profile::families(&rows);
            eprintln!("  {:.2} ms a step in ops", total * 1e3 / steps as f64);
            for (f, c, d) in fam.iter().take(12) {
                eprintln!(
                    "  {:>7.3} ms/step {:>6.1} calls/step  {f}",
                    d * 1e3 / steps as f64,
                    *c as f64 / steps as f64
                );
            }
            for (name, c, d) in rows.iter().take(12) {
                eprintln!(
                    "  {:>7.3} ms/step {:>6.1} calls/step  {name}",
                    d.as_secs_f64() * 1e3 / steps as f64,
                    *c as f64 / steps as f64
                );
            }
        }
    }
    Ok(())
}
