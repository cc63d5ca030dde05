//! `rmlx perplexity --model PATH --file TEXT [--ctx 512] [--kv-cache K] [--batch 128] [--json]`
//!
//! llama-perplexity's protocol: tokenize the whole file (BOS added only if the model adds it),
//! cut it into non-overlapping chunks of `ctx` tokens (the tail that does not fill a chunk is
//! dropped), replace each chunk's first token by BOS when the model adds BOS, and score the
//! second half: the logits at positions ctx/2 … ctx−2 predict tokens ctx/2+1 … ctx−1
//! (ctx − 1 − ctx/2 per chunk). ppl = exp(mean NLL). Each chunk is fed through the KV cache in
//! pieces of `batch` tokens so the cache path is what is measured. The model runs with a context
//! of `ctx` (checked against its maximum before anything is read), so its KV cache holds at
//! most one chunk.

use anyhow::{bail, Context, Result};
use rmlx_lm::{Engine, LoadOptions, Logits};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Model file or directory (default: SmolLM2-135M-Instruct, fetched on first use).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Text file to score.
    #[arg(long)]
    file: PathBuf,
    /// Tokens per chunk, and the context the model runs with (at most the model's); the
    /// first half of each chunk is context only.
    #[arg(long, default_value_t = 512)]
    ctx: usize,
    /// Tokens fed per forward call within a chunk.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// KV cache storage: f32, bf16, f16, q8, q4, k8v4.
    #[arg(long, default_value = "f32")]
    kv_cache: rmlx_lm::cache::CacheKind,
    /// Score at most this many chunks (default: all).
    #[arg(long)]
    chunks: Option<usize>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// −log softmax(logits)[target], in f64.
fn nll(logits: &[f32], target: usize) -> f64 {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&x| (x as f64 - m).exp()).sum();
    m + sum.ln() - logits[target] as f64
}

pub fn run(a: Args) -> Result<()> {
    if a.ctx < 4 {
        bail!("perplexity: expected --ctx of at least 4, found {}", a.ctx);
    }
    if a.batch == 0 {
        bail!("perplexity: expected a positive --batch");
    }
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("perplexity: cannot read {}", a.file.display()))?;
    let path = rmlx_lm::default_model::resolve(a.model)?;
    let opts = LoadOptions {
        context: Some(a.ctx),
        ..Default::default()
    };
    let engine = Engine::load_with(&path, opts)?;
    let add_bos = engine.tokenizer.add_bos();
    let bos = engine.tokenizer.bos_id();
    let tokens = engine.tokenizer.encode(&text, true)?;
    let mut n_chunks = tokens.len() / a.ctx;
    if let Some(c) = a.chunks {
        n_chunks = n_chunks.min(c);
    }
    if n_chunks == 0 {
        bail!(
            "perplexity: expected at least {} tokens (one chunk of --ctx), found {}",
            a.ctx,
            tokens.len()
        );
    }
    let vocab = engine.model.info().vocab_size;
    let first = a.ctx / 2;
    let (mut sum, mut count) = (0f64, 0usize);
    let t0 = Instant::now();
    for c in 0..n_chunks {
        let mut chunk = tokens[c * a.ctx..(c + 1) * a.ctx].to_vec();
        if let (true, Some(b)) = (add_bos, bos) {
            chunk[0] = b;
        }
        let mut cache = engine.model.make_cache_of(a.kv_cache)?;
        // Score each piece as it comes: a chunk's logits at once would be ctx × vocab floats
        // (1.6 GB for SmolLM2 at --ctx 8192). Pieces in the unscored first half need no logits
        // but the last.
        let mut at = 0;
        for piece in chunk.chunks(a.batch) {
            let scored = first.max(at)..(at + piece.len()).min(a.ctx - 1);
            let which = if scored.is_empty() {
                Logits::Last
            } else {
                Logits::All
            };
            let l = engine.model.forward(piece, &mut cache, which)?;
            if !scored.is_empty() {
                let logits = l.to_vec::<f32>()?;
                for i in scored {
                    let target = chunk[i + 1] as usize;
                    if target >= vocab {
                        bail!("perplexity: token {target} is outside the vocabulary ({vocab})");
                    }
                    let row = (i - at) * vocab;
                    sum += nll(&logits[row..row + vocab], target);
                    count += 1;
                }
            } else {
                l.eval()?; // write this piece into the cache now, not in one graph later
            }
            at += piece.len();
        }
        if !a.json {
            eprint!("[{}]{:.4} ", c + 1, (sum / count as f64).exp());
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let ppl = (sum / count as f64).exp();
    if a.json {
        let j = serde_json::json!({
            "ppl": ppl,
            "nll": sum / count as f64,
            "tokens": count,
            "chunks": n_chunks,
            "ctx": a.ctx,
            "batch": a.batch,
            "kv_cache": format!("{:?}", a.kv_cache).to_lowercase(),
            "file_tokens": tokens.len(),
            "add_bos": add_bos,
            "seconds": secs,
            "peak_rss_bytes": super::peak_memory::json_value(),
        });
        println!("{j}");
    } else {
        eprintln!();
        println!(
            "ppl = {ppl:.4} over {count} tokens in {n_chunks} chunks of {} ({:?} cache, {secs:.1} s)",
            a.ctx, a.kv_cache
        );
    }
    Ok(())
}
