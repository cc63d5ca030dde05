//! `rmlx bench`: like llama-bench, random prompt tokens of length -p, then -n greedy decoded
//! tokens; needs no tokenizer.

use anyhow::Result;
use rmlx_lm::batch::Packed;
use rmlx_lm::context::check_fits;
use rmlx_lm::{load_model_with, LoadOptions, Logits};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Model file or directory (default: SmolLM2-135M-Instruct, fetched on first use).
    #[arg(long)]
    model: Option<PathBuf>,
    /// KV cache storage: f32, bf16, f16, q8, q4, k8v4.
    #[arg(long, default_value = "f32")]
    kv_cache: rmlx_lm::cache::CacheKind,
    /// Prompt tokens.
    #[arg(short = 'p', long = "prompt-tokens", default_value_t = 512)]
    prompt: usize,
    /// Generated tokens.
    #[arg(short = 'n', long = "gen-tokens", default_value_t = 128)]
    gen: usize,
    /// Context in tokens, at most the model's (default: the model's): bounds the KV cache;
    /// -p plus -n must fit.
    #[arg(long)]
    ctx: Option<usize>,
    /// Repetitions (the median is reported).
    #[arg(short = 'r', long, default_value_t = 1)]
    repetitions: usize,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Print time per primitive of the decode phase (stderr).
    #[arg(long)]
    profile: bool,
    /// Decode reading each token before encoding the next step. By default decode on a GPU
    /// is pipelined as `rmlx generate`'s greedy loop is: step n+1 is encoded from token n
    /// still on the device before token n is read, so the host's work overlaps the device's.
    #[arg(long)]
    sync_decode: bool,
}

/// Deterministic pseudo-random token ids (xorshift), avoiding id 0..3 (often special).
fn random_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (4 + s % (vocab.max(5) as u64 - 4)) as u32
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(a: Args) -> Result<()> {
    let path = rmlx_lm::default_model::resolve(a.model)?;
    let pipeline = rmlx_core::default_device().is_gpu() && !a.sync_decode;
    let t0 = Instant::now();
    let opts = LoadOptions {
        context: a.ctx,
        ..Default::default()
    };
    let m = load_model_with(&path, rmlx_core::default_device(), opts)?;
    let load_s = t0.elapsed().as_secs_f64();
    let info = m.model.info().clone();
    check_fits("bench", a.prompt.max(1), a.gen, info.context_length)?;
    let (mut pp, mut tg) = (vec![], vec![]);
    // Decode seconds spent building the graph, encoding it (on a GPU: queueing kernels; on the
    // CPU: computing it), and waiting for the device afterwards.
    let mut split = [0f64; 3];
    // Bytes one cached position takes over all layers, and the cache's bytes after a run.
    let mut kv_bytes_per_token = 0.0;
    let mut kv_cache_bytes = 0;
    // The warm-up runs `warm` prompt tokens and one decode step, within the context.
    let warm = a.prompt.clamp(1, 64).min(info.context_length - 1);
    if rmlx_core::default_device().is_gpu() && warm > 0 {
        // Compile (or load from the disk cache) every kernel both passes use before timing.
        let mut cache = m.model.make_cache_of(a.kv_cache)?;
        let warm = random_tokens(warm, info.vocab_size, 7);
        let l = m.model.forward(&warm, &mut cache, Logits::Last)?;
        let t = l.argmax(-1, false)?.to_vec::<u32>()?[0];
        m.model
            .forward(&[t], &mut cache, Logits::Last)?
            .to_vec::<f32>()?;
    }
    for rep in 0..a.repetitions.max(1) {
        let prompt = random_tokens(a.prompt.max(1), info.vocab_size, 42 + rep as u64);
        let mut cache = m.model.make_cache_of(a.kv_cache)?;
        let t = Instant::now();
        let logits = m.model.forward(&prompt, &mut cache, Logits::Last)?;
        let mut next = logits.argmax(-1, false)?.to_vec::<u32>()?[0];
        pp.push(prompt.len() as f64 / t.elapsed().as_secs_f64());
        kv_bytes_per_token = cache.bytes_per_token() as f64;
        rmlx_core::profile::enable(a.profile);
        let t = Instant::now();
        // Pipelined: the token array of the step before and the read of its value in flight.
        let mut prev = rmlx_core::Array::from_slice(&[next], &[1])?;
        let mut reading: Option<rmlx_core::PendingRead<u32>> = None;
        for _ in 0..a.gen {
            let t_build = Instant::now();
            let logits = if pipeline {
                let step = Packed::from_ids(m.model.as_ref(), prev.clone(), &cache)?;
                m.model
                    .forward_packed(&step, &mut [&mut cache], Logits::Last)?
            } else {
                m.model.forward(&[next], &mut cache, Logits::Last)?
            };
            let token = logits.argmax(-1, false)?;
            let t_encode = Instant::now();
            if pipeline {
                let read = token.read_async::<u32>()?;
                let t_wait = Instant::now();
                if let Some(r) = reading.replace(read) {
                    next = r.wait()?[0];
                }
                prev = token;
                split[2] += t_wait.elapsed().as_secs_f64();
                split[1] += (t_wait - t_encode).as_secs_f64();
            } else {
                rmlx_core::async_eval(&[&token])?;
                let t_wait = Instant::now();
                next = token.to_vec::<u32>()?[0];
                split[1] += (t_wait - t_encode).as_secs_f64();
                split[2] += t_wait.elapsed().as_secs_f64();
            }
            split[0] += (t_encode - t_build).as_secs_f64();
        }
        if let Some(r) = reading.take() {
            r.wait()?; // the last token's copy: read, so no copy is left in flight
        }
        if a.gen > 0 {
            tg.push(a.gen as f64 / t.elapsed().as_secs_f64());
        }
        kv_cache_bytes = cache.nbytes();
        rmlx_core::profile::enable(false);
    }
    if a.profile {
        let rows = rmlx_core::profile::take()?;
        let total: f64 = rows.iter().map(|r| r.2.as_secs_f64()).sum();
        let tokens = (a.gen * a.repetitions.max(1)).max(1);
        // Views (reshape, transpose, slice, broadcast) change strides only: no kernel.
        let is_view = |name: &str| {
            ["reshape ", "transpose ", "slice ", "broadcast_to "]
                .iter()
                .any(|v| name.starts_with(v))
        };
        let ops = rows.iter().map(|r| r.1 as usize).sum::<usize>();
        let kernels = rows
            .iter()
            .filter(|r| !is_view(&r.0))
            .map(|r| r.1 as usize)
            .sum::<usize>();
        eprintln!(
            "decode profile: {:.1} ms in kernels over {tokens} tokens; {} ops a token, {} of them \
             not views (a kernel or more each on a GPU)",
            total * 1e3,
            ops / tokens,
            kernels / tokens
        );
        // By primitive (the label's first word), then the costliest (primitive, shape) pairs.
        let families = rmlx_core::profile::families(&rows);
        for (family, n, d) in families.iter().take(12) {
            eprintln!(
                "{:>8.3} ms/token {:>5.1}% {:>6.1} calls/token  {family}",
                d * 1e3 / tokens as f64,
                100.0 * d / total,
                *n as f64 / tokens as f64
            );
        }
        eprintln!("costliest ops:");
        for (name, n, d) in rows.iter().take(25) {
            eprintln!(
                "{:>8.2} ms {:>5.1}% {:>7} calls  {name}",
                d.as_secs_f64() * 1e3,
                100.0 * d.as_secs_f64() / total,
                n
            );
        }
    }
    let (pp, tg) = (median(pp), if tg.is_empty() { 0.0 } else { median(tg) });
    let threads = rmlx_core::backend::cpu::num_threads();
    let device = device_name(rmlx_core::default_device());
    let decode_tokens = (a.gen * a.repetitions.max(1)).max(1) as f64;
    if a.json {
        let j = serde_json::json!({
            "model": path.display().to_string(),
            "architecture": info.architecture,
            "device": device,
            "threads": threads,
            "load_s": load_s,
            "prompt_tokens": a.prompt,
            "gen_tokens": a.gen,
            "prefill_tok_s": pp,
            "decode_tok_s": tg,
            "weight_bytes": info.weight_bytes,
            "kv_cache": format!("{:?}", a.kv_cache).to_lowercase(),
            "kv_bytes_per_token": kv_bytes_per_token,
            "kv_cache_bytes": kv_cache_bytes,
            // VmHWM: the whole process's peak (weights, KV cache, scratch), or "unknown".
            "peak_rss_bytes": super::peak_memory::json_value(),
            "context": info.context_length,
            "repetitions": a.repetitions.max(1),
            "pipeline": pipeline,
            "decode_ms_per_token": {
                "build": split[0] * 1e3 / decode_tokens,
                "encode": split[1] * 1e3 / decode_tokens,
                "wait": split[2] * 1e3 / decode_tokens,
            },
            "cuda_graphs": cuda_graphs(rmlx_core::default_device()),
        });
        println!("{j}");
    } else {
        println!("| model | arch | device | threads | load s | test | tok/s |");
        println!("|---|---|---|---|---|---|---|");
        let name = path
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        println!(
            "| {name} | {} | {device} | {threads} | {load_s:.3} | pp{} | {pp:.2} |",
            info.architecture, a.prompt
        );
        println!(
            "| {name} | {} | {device} | {threads} | {load_s:.3} | tg{} | {tg:.2} |",
            info.architecture, a.gen
        );
    }
    Ok(())
}

/// "cpu", or "cuda:0 (NVIDIA H100 80GB HBM3)".
fn device_name(d: rmlx_core::Device) -> String {
    match d {
        rmlx_core::Device::Cuda(i) => match rmlx_core::backend::cuda::describe(i) {
            Ok(name) => format!("{d} ({name})"),
            Err(_) => d.to_string(),
        },
        other => other.to_string(),
    }
}

/// What the device's CUDA graphs did over the whole run (null off CUDA).
fn cuda_graphs(device: rmlx_core::Device) -> serde_json::Value {
    if let rmlx_core::Device::Cuda(i) = device {
        if let Ok(s) = rmlx_core::backend::cuda::graph_stats(i) {
            return serde_json::json!({
                "launched": s.launched,
                "instantiated": s.instantiated,
                "updated": s.updated,
                "nodes": s.nodes,
                "host_us": {
                    "end_capture": s.end_us,
                    "update": s.update_us,
                    "instantiate": s.instantiate_us,
                    "launch": s.launch_us,
                },
            });
        }
    }
    serde_json::Value::Null
}
