//! `rmlx logits --model PATH --tokens 1,2,3 --out FILE.npy [--chunk N]`

use anyhow::{bail, Context, Result};
use rmlx_lm::context::check_fits;
use rmlx_lm::{load_model_with, npy, LoadOptions, Logits};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Model file or directory (default: SmolLM2-135M-Instruct, fetched on first use).
    #[arg(long)]
    model: Option<PathBuf>,
    /// KV cache storage: f32, bf16, f16, q8, q4, k8v4.
    #[arg(long, default_value = "f32")]
    kv_cache: rmlx_lm::cache::CacheKind,
    /// Comma-separated token ids.
    #[arg(long)]
    tokens: String,
    /// Output .npy (float32, [T, vocab]).
    #[arg(long)]
    out: PathBuf,
    /// Feed the tokens N at a time through the KV cache (default: all at once).
    #[arg(long)]
    chunk: Option<usize>,
    /// Context in tokens, at most the model's (default: the model's): bounds the KV cache;
    /// the tokens must fit.
    #[arg(long)]
    ctx: Option<usize>,
}

pub fn parse_tokens(s: &str) -> Result<Vec<u32>> {
    let toks: Vec<u32> = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .with_context(|| format!("--tokens: `{t}` is not a token id"))
        })
        .collect::<Result<_>>()?;
    if toks.is_empty() {
        bail!("--tokens: expected at least one token id");
    }
    Ok(toks)
}

pub fn run(a: Args) -> Result<()> {
    let tokens = parse_tokens(&a.tokens)?;
    let chunk = match a.chunk {
        Some(0) => bail!("--chunk: expected a positive chunk size"),
        Some(c) => c,
        None => tokens.len(),
    };
    let path = rmlx_lm::default_model::resolve(a.model)?;
    let opts = LoadOptions {
        context: a.ctx,
        ..Default::default()
    };
    let m = load_model_with(&path, rmlx_core::default_device(), opts)?;
    check_fits("logits", tokens.len(), 0, m.model.info().context_length)?;
    let mut cache = m.model.make_cache_of(a.kv_cache)?;
    let vocab = m.model.info().vocab_size;
    let mut out = Vec::with_capacity(tokens.len() * vocab);
    for c in tokens.chunks(chunk) {
        let l = m.model.forward(c, &mut cache, Logits::All)?;
        out.extend(l.to_vec::<f32>()?);
    }
    npy::write_f32(&a.out, &[tokens.len(), vocab], &out)?;
    Ok(())
}
