//! `rmlx serve`: the model behind an OpenAI-compatible HTTP API (see rmlx-server).

use super::sampling::load_model;
use anyhow::{Context, Result};
use rmlx_lm::{Worker, WorkerOptions};
use rmlx_server::{AppState, ServerConfig};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Model file or directory (default: SmolLM2-135M-Instruct, fetched on first use).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Context in tokens, at most the model's (default: the model's); longer requests are 400s.
    #[arg(long)]
    ctx: Option<usize>,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long)]
    api_key: Option<String>,
    /// The model id clients name in `model` (default: the model's file or directory name).
    #[arg(long)]
    model_id: Option<String>,
    /// Requests run at once, batched into one forward pass per step (each holds a KV cache).
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Most tokens one forward pass runs: a token of each decoding request, prompt chunks of
    /// new ones in the rest.
    #[arg(long, default_value_t = 512)]
    step_tokens: usize,
    /// Requests that may wait for a free slot; more are answered 429.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// KV cache storage: f32, bf16, f16, q8, q4, k8v4.
    #[arg(long, default_value = "f32")]
    kv_cache: rmlx_lm::cache::CacheKind,
}

pub fn run(a: Args) -> Result<()> {
    let engine = load_model(a.model.clone(), a.ctx)?;
    let model_id = match a.model_id {
        Some(id) => id,
        None => model_name(engine.files.path()),
    };
    let context = engine.model.info().context_length;
    let parallel = a.parallel;
    let opts = WorkerOptions {
        queue: a.queue,
        parallel: a.parallel,
        step_tokens: a.step_tokens,
    };
    let worker = Arc::new(Worker::spawn_with(engine, opts)?);
    let config = ServerConfig {
        api_key: a.api_key,
        kv_cache: a.kv_cache,
        ..ServerConfig::new(model_id.clone())
    };
    let state = AppState::new(worker, config);
    let addr = format!("{}:{}", a.host, a.port);
    let rt = tokio::runtime::Runtime::new().context("serve: starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("serve: cannot listen on {addr}"))?;
        eprintln!(
            "rmlx: serving `{model_id}` (context {context}, {parallel} at once) on http://{} \
             (OpenAI API under /v1)",
            listener.local_addr()?
        );
        rmlx_server::serve(listener, state)
            .await
            .context("serve: the server stopped")
    })
}

/// A model's id: the file name without `.gguf`/`.safetensors`, or the directory's name.
fn model_name(path: &std::path::Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    for ext in [".gguf", ".safetensors"] {
        if let Some(stem) = name.strip_suffix(ext) {
            return stem.to_string();
        }
    }
    name
}
