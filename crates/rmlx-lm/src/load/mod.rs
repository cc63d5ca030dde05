//! Opening a model: a file (.gguf, .safetensors) or a Hugging Face / MLX directory, to a ready
//! `Model`. Weights stay memory-mapped; nothing is dequantized up front.

mod configs;
mod source;

pub use source::{to_weight, FilesSource};

use crate::model::{Model, ModelInfo};
use crate::models::{gpt_oss::GptOss, llama::Llama};
use crate::weights::Weights;
use rmlx_core::{Error, Result};
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

pub fn load_model(path: impl AsRef<Path>) -> Result<LoadedModel> {
    let files = Arc::new(ModelFiles::open(path.as_ref())?);
    let arch = files
        .architecture()
        .map(|a| a.replace('-', "_"))
        .ok_or_else(|| {
            Error::format(format!(
                "model {}: no architecture (model_type or general.architecture)",
                path.as_ref().display()
            ))
        })?;
    let source = Arc::new(FilesSource::new(files.clone(), &arch));
    let w = Weights::new(source.clone());
    let model: Box<dyn Model> = match arch.as_str() {
        "llama" | "mistral" | "qwen2" | "qwen3" => {
            let cfg = configs::llama(&files, &arch)?;
            let info = info(
                &arch,
                cfg.vocab_size,
                cfg.max_position_embeddings,
                cfg.num_hidden_layers,
                cfg.hidden_size,
                &files,
            );
            Box::new(Llama::load(cfg, &w, info)?)
        }
        "gpt_oss" => {
            let cfg = configs::gpt_oss(&files)?;
            let info = info(
                &arch,
                cfg.vocab_size,
                cfg.max_position_embeddings,
                cfg.num_hidden_layers,
                cfg.hidden_size,
                &files,
            );
            Box::new(GptOss::load(cfg, &w, info)?)
        }
        other => {
            return Err(Error::format(format!(
                "model {}: unknown architecture `{other}` (supported: {})",
                path.as_ref().display(),
                SUPPORTED.join(", ")
            )))
        }
    };
    Ok(LoadedModel { model, files })
}

fn info(
    arch: &str,
    vocab: usize,
    ctx: usize,
    layers: usize,
    hidden: usize,
    files: &ModelFiles,
) -> ModelInfo {
    ModelInfo {
        architecture: arch.to_string(),
        vocab_size: vocab,
        context_length: ctx,
        num_layers: layers,
        hidden_size: hidden,
        parameters: files.parameter_count() as usize,
        weight_bytes: files.tensors().iter().map(|t| t.nbytes as usize).sum(),
    }
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
