//! `rmlx inspect PATH [--json] [--tensors]`: what a model file or directory holds. Reads
//! headers only, never tensor data, so it is instant on any model size.

use anyhow::Context;
use rmlx_io::{Format, ModelFiles};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A .gguf or .safetensors file, or a model directory.
    path: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also list every tensor (name, type, shape).
    #[arg(long)]
    tensors: bool,
}

/// Metadata arrays longer than this are shown as their length (tokenizer vocabularies).
const MAX_ARRAY: usize = 16;

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.2}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// A metadata value on one line, long values cut.
fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let s = s.replace('\n', "\\n");
    if s.chars().count() > 100 {
        format!(
            "{}… ({} chars)",
            s.chars().take(100).collect::<String>(),
            s.chars().count()
        )
    } else {
        s
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let m = ModelFiles::open(&args.path).context("inspect")?;
    let arch = m.architecture().map(str::to_string);
    let bytes = m.bytes_by_type();
    let meta = m.metadata_json(MAX_ARRAY);
    if args.json {
        let mut out = json!({
            "path": args.path.display().to_string(),
            "format": m.format().name(),
            "architecture": arch,
            "tensor_count": m.stored_tensor_count(),
            "logical_tensor_count": m.tensors().len(),
            "parameter_count": m.parameter_count(),
            "total_bytes": bytes.values().sum::<u64>(),
            "bytes_by_type": bytes,
            "metadata": meta,
        });
        if args.tensors {
            out["tensors"] = m
                .tensors()
                .iter()
                .map(|t| json!({"name": t.name, "type": t.ty.to_string(), "shape": t.shape, "bytes": t.nbytes}))
                .collect();
        }
        return emit(serde_json::to_string_pretty(&out)? + "\n");
    }
    let mut o = String::new();
    let params = m.parameter_count();
    writeln!(o, "path:          {}", args.path.display())?;
    writeln!(o, "format:        {}", m.format().name())?;
    writeln!(
        o,
        "architecture:  {}",
        arch.as_deref().unwrap_or("(unknown)")
    )?;
    let (stored, logical) = (m.stored_tensor_count(), m.tensors().len());
    if stored == logical {
        writeln!(o, "tensors:       {stored}")?;
    } else {
        writeln!(
            o,
            "tensors:       {stored} stored, {logical} logical (quantized parts grouped)"
        )?;
    }
    writeln!(o, "parameters:    {} ({params})", human_count(params))?;
    writeln!(o, "bytes:         {}", human_bytes(bytes.values().sum()))?;
    for (ty, n) in &bytes {
        writeln!(o, "  {ty:<14} {:>12}", human_bytes(*n))?;
    }
    writeln!(o, "metadata:")?;
    if let Value::Object(map) = &meta {
        for (k, v) in map {
            match (m.format(), k.as_str(), v) {
                (Format::Safetensors, "config", Value::Object(c)) => {
                    for (ck, cv) in c {
                        writeln!(o, "  {ck} = {}", short(cv))?;
                    }
                }
                _ => writeln!(o, "  {k} = {}", short(v))?,
            }
        }
    }
    if args.tensors {
        writeln!(o, "tensors:")?;
        for t in m.tensors() {
            writeln!(o, "  {:<60} {:<12} {:?}", t.name, t.ty.to_string(), t.shape)?;
        }
    }
    emit(o)
}

/// Writes to stdout; a closed pipe (`rmlx inspect … | head`) is not an error.
fn emit(s: String) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(s.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
