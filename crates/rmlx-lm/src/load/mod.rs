//! Opening a model: a file (.gguf, .safetensors) or a Hugging Face / MLX directory, to a ready
//! `Model`. Weights stay memory-mapped; nothing is dequantized up front.

mod configs;
mod source;

pub use source::{to_weight, FilesSource};

use crate::model::{Model, ModelInfo};
use crate::models::{gpt_oss::GptOss, llama::Llama};
use crate::weights::{Tensor, WeightSource, Weights};
use rmlx_core::{Device, Error, Result};
use rmlx_io::ModelFiles;
use std::path::Path;
use std::sync::Arc;

/// A loaded model and the files it reads from (kept for metadata: tokenizer, template).
pub struct LoadedModel {
    pub model: Box<dyn Model>,
    pub files: Arc<ModelFiles>,
}

/// The architectures rmlx runs, by Hugging Face `model_type` or GGUF `general.architecture`.
pub const SUPPORTED: &[&str] = &["llama", "mistral", "qwen2", "qwen3", "gpt_oss"];

/// Loads a model onto the default device (`rmlx_core::default_device()`): see `load_model_on`.
pub fn load_model(path: impl AsRef<Path>) -> Result<LoadedModel> {
    load_model_on(path, rmlx_core::default_device(), None)
}

/// Progress of an upload: (bytes done, bytes in all).
pub type Progress = Box<dyn FnMut(u64, u64) + Send>;

/// How to open a model.
#[derive(Default)]
pub struct LoadOptions {
    /// Positions to run with (`--ctx`), at most the model's maximum; None: the maximum. Every
    /// prompt is checked against it and each KV cache holds at most this many positions.
    pub context: Option<usize>,
    /// Upload progress (bytes done, total) when the device is a GPU.
    pub progress: Option<Progress>,
}

/// Loads a model onto `device`: each weight is uploaded once, straight from the mmap, while the
/// model is built (`progress` in bytes), and the model's computation then runs there (ops
/// follow their GPU inputs). On the CPU this is `load_model`.
pub fn load_model_on(
    path: impl AsRef<Path>,
    device: Device,
    progress: Option<Progress>,
) -> Result<LoadedModel> {
    let opts = LoadOptions {
        progress,
        ..LoadOptions::default()
    };
    load_model_with(path, device, opts)
}

/// `load_model_on` with options: a context smaller than the model's (checked before any
/// weight is read).
pub fn load_model_with(
    path: impl AsRef<Path>,
    device: Device,
    opts: LoadOptions,
) -> Result<LoadedModel> {
    device.check()?;
    let LoadOptions { context, progress } = opts;
    if device.is_cpu() {
        return rmlx_core::with_default_device(device, || build(path.as_ref(), context, None));
    }
    let progress = progress.unwrap_or_else(|| Box::new(|_, _| {}));
    let loaded =
        rmlx_core::with_default_device(device, || build(path.as_ref(), context, Some(progress)));
    if loaded.is_err() {
        // Nothing half-loaded stays behind: the weights uploaded so far were dropped with the
        // partial model; hand their memory back to the driver, not just to our cache.
        #[cfg(feature = "cuda")]
        if let Device::Cuda(i) = device {
            let _ = rmlx_core::backend::cuda::clear_cache(i);
        }
    }
    loaded
}

/// A source that moves every tensor it hands out to its device (the default device while the
/// model loads) as it goes.
struct Placing {
    inner: Arc<FilesSource>,
    total: u64,
    done: std::sync::Mutex<(u64, Progress)>,
}

impl WeightSource for Placing {
    fn get(&self, name: &str) -> Result<Option<Tensor>> {
        let t = self.inner.get(name)?;
        if let Some(t) = &t {
            let arrays: Vec<&rmlx_core::Array> = match t {
                Tensor::Dense(a) => vec![a],
                Tensor::Quantized(q) => q.parts.iter().collect(),
            };
            for a in arrays {
                a.place()
                    .map_err(|e| e.context(format!("uploading {name}")))?;
            }
            let mut g = self.done.lock().unwrap_or_else(|p| p.into_inner());
            g.0 = (g.0 + t.nbytes() as u64).min(self.total);
            let done = g.0;
            (g.1)(done, self.total);
        }
        Ok(t)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

fn build(path: &Path, context: Option<usize>, progress: Option<Progress>) -> Result<LoadedModel> {
    build_model(Arc::new(ModelFiles::open(path)?), context, progress)
}

/// Builds the model from files already opened (or assembled in memory) on the default device,
/// at the model's full context and without moving weights: what `load_model` does after
/// opening the path.
pub fn model_from_files(files: Arc<ModelFiles>) -> Result<LoadedModel> {
    build_model(files, None, None)
}

fn build_model(
    files: Arc<ModelFiles>,
    context: Option<usize>,
    progress: Option<Progress>,
) -> Result<LoadedModel> {
    let path = files.path().to_path_buf();
    let arch = files
        .architecture()
        .map(|a| a.replace('-', "_"))
        .ok_or_else(|| {
            Error::format(format!(
                "model {}: no architecture (model_type or general.architecture)",
                path.display()
            ))
        })?;
    let source = Arc::new(FilesSource::new(files.clone(), &arch));
    let w = match progress {
        None => Weights::new(source.clone()),
        Some(p) => Weights::new(Arc::new(Placing {
            inner: source.clone(),
            total: files.tensors().iter().map(|t| t.nbytes).sum(),
            done: std::sync::Mutex::new((0, p)),
        })),
    };
    let model: Box<dyn Model> = match arch.as_str() {
        "llama" | "mistral" | "qwen2" | "qwen3" => {
            let cfg = configs::llama(&files, &arch)?;
            let info = info(
                &arch,
                cfg.vocab_size,
                (context, cfg.max_position_embeddings),
                cfg.num_hidden_layers,
                cfg.hidden_size,
                &files,
            )?;
            Box::new(Llama::load(cfg, &w, info)?)
        }
        "gpt_oss" => {
            let cfg = configs::gpt_oss(&files)?;
            let info = info(
                &arch,
                cfg.vocab_size,
                (context, cfg.max_position_embeddings),
                cfg.num_hidden_layers,
                cfg.hidden_size,
                &files,
            )?;
            Box::new(GptOss::load(cfg, &w, info)?)
        }
        other => {
            return Err(Error::format(format!(
                "model {}: unknown architecture `{other}` (supported: {})",
                path.display(),
                SUPPORTED.join(", ")
            )))
        }
    };
    Ok(LoadedModel { model, files })
}

/// The model's facts; `(context, max)`: the context asked for and the model's maximum, checked
/// here, before the weights are read.
fn info(
    arch: &str,
    vocab: usize,
    (context, max): (Option<usize>, usize),
    layers: usize,
    hidden: usize,
    files: &ModelFiles,
) -> Result<ModelInfo> {
    Ok(ModelInfo {
        architecture: arch.to_string(),
        vocab_size: vocab,
        context_length: crate::context::resolve_context(context, max)?,
        max_context_length: max,
        num_layers: layers,
        hidden_size: hidden,
        parameters: files.parameter_count() as usize,
        weight_bytes: files.tensors().iter().map(|t| t.nbytes as usize).sum(),
    })
}

/// Reads every page of the model's weights once (they are memory-mapped), so the first tokens
/// do not stall on page faults; `progress(done, total)` is called as bytes are touched.
pub fn prefault(files: &ModelFiles, progress: &mut dyn FnMut(u64, u64)) -> Result<()> {
    let total: u64 = files.tensors().iter().map(|t| t.nbytes).sum();
    let mut done = 0u64;
    for t in files.tensors() {
        let arrays: Vec<rmlx_core::Array> = match t.ty {
            rmlx_io::TensorType::Dense(_) => vec![files.get(&t.name)?],
            rmlx_io::TensorType::Quantized(_) => {
                let q = files.get_quantized(&t.name)?;
                [Some(q.packed), q.scales, q.biases]
                    .into_iter()
                    .flatten()
                    .collect()
            }
            rmlx_io::TensorType::Unsupported(_) => vec![],
        };
        for a in arrays {
            let data = a.data()?;
            let bytes = data.host()?.bytes();
            let mut sum = 0u8;
            for chunk in bytes.chunks(4096) {
                sum = sum.wrapping_add(chunk[0]);
            }
            std::hint::black_box(sum);
        }
        done += t.nbytes;
        progress(done, total);
    }
    Ok(())
}
