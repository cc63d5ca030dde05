//! Model configs from `config.json` (transformers 4.x or 5.x spelling) or GGUF metadata.

use crate::models::gpt_oss::GptOssConfig;
use crate::models::llama::LlamaConfig;
use rmlx_core::ops::{RopeScaling, YarnParams};
use rmlx_core::primitive::RopeLayout;
use rmlx_core::{Error, Result};
use rmlx_io::{Metadata, ModelConfig, ModelFiles};

fn rope_from_io(r: &rmlx_io::RopeScaling) -> RopeScaling {
    use rmlx_io::RopeScaling as R;
    match r {
        R::None => RopeScaling::None,
        R::Linear { factor } => RopeScaling::Linear { factor: *factor },
        R::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => RopeScaling::Llama3 {
            factor: *factor,
            low_freq_factor: *low_freq_factor,
            high_freq_factor: *high_freq_factor,
            original_max_position_embeddings: *original_max_position_embeddings as f64,
        },
        R::Yarn {
            factor,
            beta_fast,
            beta_slow,
            original_max_position_embeddings,
            truncate,
            mscale,
            mscale_all_dim,
            attention_factor,
        } => RopeScaling::Yarn(YarnParams {
            factor: *factor,
            beta_fast: *beta_fast,
            beta_slow: *beta_slow,
            original_max_position_embeddings: *original_max_position_embeddings as f64,
            truncate: *truncate,
            mscale: *mscale,
            mscale_all_dim: *mscale_all_dim,
            attention_factor: *attention_factor,
        }),
    }
}

/// A config's layer count, checked against the tensors the files hold (every layer has some)
/// before anything is sized by it.
fn layer_count(n: usize, files: &ModelFiles, what: &str) -> Result<usize> {
    let tensors = files.tensors().len();
    if n > tensors {
        return Err(Error::format(format!(
            "{what}: expected at most one layer per tensor ({tensors} tensors), found {n} layers"
        )));
    }
    Ok(n)
}

pub fn llama(files: &ModelFiles, arch: &str) -> Result<LlamaConfig> {
    if let Some(m) = files.gguf().map(|g| g.metadata()) {
        return llama_gguf(m, arch, files);
    }
    let c = files.config().ok_or_else(|| {
        Error::format(format!("model {}: no config.json", files.path().display()))
    })?;
    llama_hf(c, arch, files)
}

fn llama_hf(c: &ModelConfig, arch: &str, files: &ModelFiles) -> Result<LlamaConfig> {
    let heads = c.get_usize("num_attention_heads")?;
    let hidden = c.get_usize("hidden_size")?;
    let rope = c.rope()?;
    let bool_or = |k: &str, d: bool| c.get(k).and_then(|v| v.as_bool()).unwrap_or(d);
    let sliding_window = match arch {
        "mistral" => c
            .get("sliding_window")
            .and_then(|v| v.as_u64())
            .map(|v| v as usize),
        "qwen2" | "qwen3" if bool_or("use_sliding_window", false) => {
            return Err(Error::format(format!(
                "{arch}: use_sliding_window=true is not supported"
            )))
        }
        _ => None,
    };
    if sliding_window == Some(0) {
        return Err(Error::format(format!(
            "{arch} config: expected a sliding_window of at least 1, found 0"
        )));
    }
    Ok(LlamaConfig {
        architecture: arch.to_string(),
        hidden_size: hidden,
        intermediate_size: c.get_usize("intermediate_size")?,
        num_hidden_layers: layer_count(c.get_usize("num_hidden_layers")?, files, arch)?,
        num_attention_heads: heads,
        num_key_value_heads: c.get_usize_or("num_key_value_heads", heads)?,
        head_dim: match c.get("head_dim").and_then(|v| v.as_u64()) {
            Some(d) => d as usize,
            None => hidden / heads.max(1),
        },
        vocab_size: c.get_usize("vocab_size")?,
        rms_norm_eps: c.get_f64_or("rms_norm_eps", 1e-6)? as f32,
        rope_theta: rope.theta,
        rope_scaling: rope_from_io(&rope.scaling),
        rope_layout: RopeLayout::HalfSplit,
        max_position_embeddings: c.get_usize_or("max_position_embeddings", 4096)?,
        tie_word_embeddings: bool_or("tie_word_embeddings", arch != "mistral" && arch != "llama"),
        attention_bias: bool_or("attention_bias", arch == "qwen2"),
        qk_norm: arch == "qwen3",
        sliding_window,
    })
}

fn llama_gguf(m: &Metadata, arch: &str, files: &ModelFiles) -> Result<LlamaConfig> {
    let k = |s: &str| format!("{arch}.{s}");
    let heads = m.get_usize(&k("attention.head_count"))?;
    let hidden = m.get_usize(&k("embedding_length"))?;
    let head_dim = match m.get(&k("attention.key_length")) {
        Some(_) => m.get_usize(&k("attention.key_length"))?,
        None => hidden / heads.max(1),
    };
    let vocab = match m.get(&k("vocab_size")) {
        Some(_) => m.get_usize(&k("vocab_size"))?,
        None => m.get_array("tokenizer.ggml.tokens")?.len(),
    };
    let rope_scaling = match m.get(&k("rope.scaling.type")).and_then(|v| v.as_str()) {
        None | Some("none") => RopeScaling::None,
        Some("linear") => RopeScaling::Linear {
            factor: m.get_f64(&k("rope.scaling.factor"))?,
        },
        Some(other) => {
            return Err(Error::format(format!(
                "{arch}: GGUF rope scaling `{other}` is not supported"
            )))
        }
    };
    if files.tensor("rope_freqs.weight").is_some() {
        return Err(Error::format(format!(
            "{arch}: GGUF files with rope_freqs (Llama-3.1 frequency factors) are not supported yet"
        )));
    }
    Ok(LlamaConfig {
        architecture: arch.to_string(),
        hidden_size: hidden,
        intermediate_size: m.get_usize(&k("feed_forward_length"))?,
        num_hidden_layers: layer_count(m.get_usize(&k("block_count"))?, files, arch)?,
        num_attention_heads: heads,
        num_key_value_heads: match m.get(&k("attention.head_count_kv")) {
            Some(_) => m.get_usize(&k("attention.head_count_kv"))?,
            None => heads,
        },
        head_dim,
        vocab_size: vocab,
        rms_norm_eps: m.get_f64(&k("attention.layer_norm_rms_epsilon"))? as f32,
        rope_theta: match m.get(&k("rope.freq_base")) {
            Some(_) => m.get_f64(&k("rope.freq_base"))?,
            None => 10000.0,
        },
        rope_scaling,
        // llama.cpp's converter permutes llama q/k rows for its interleaved ("normal") rope;
        // qwen2/qwen3 keep Hugging Face's layout (NeoX rope).
        rope_layout: if arch == "llama" {
            RopeLayout::Interleaved
        } else {
            RopeLayout::HalfSplit
        },
        max_position_embeddings: m.get_usize(&k("context_length"))?,
        tie_word_embeddings: files.tensor("output.weight").is_none(),
        attention_bias: files.tensor("blk.0.attn_q.bias").is_some(),
        qk_norm: files.tensor("blk.0.attn_q_norm.weight").is_some(),
        sliding_window: None,
    })
}

pub fn gpt_oss(files: &ModelFiles) -> Result<GptOssConfig> {
    let c = files.config().ok_or_else(|| {
        Error::format(format!(
            "model {}: gpt-oss needs the Hugging Face layout with config.json",
            files.path().display()
        ))
    })?;
    let layers = layer_count(c.get_usize("num_hidden_layers")?, files, "gpt_oss")?;
    let sliding = match c.get("layer_types").and_then(|v| v.as_array()) {
        Some(types) => types
            .iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                other => Err(Error::format(format!(
                    "gpt_oss config: unknown layer type {other:?}"
                ))),
            })
            .collect::<Result<Vec<_>>>()?,
        None => (0..layers).map(|i| i % 2 == 0).collect(),
    };
    let sliding_window = c.get_usize_or("sliding_window", 128)?;
    if sliding_window == 0 {
        return Err(Error::format(
            "gpt_oss config: expected a sliding_window of at least 1, found 0",
        ));
    }
    if sliding.len() != layers {
        return Err(Error::format(format!(
            "gpt_oss config: expected {layers} layer_types, found {}",
            sliding.len()
        )));
    }
    let rope = c.rope()?;
    Ok(GptOssConfig {
        hidden_size: c.get_usize("hidden_size")?,
        intermediate_size: c.get_usize("intermediate_size")?,
        num_hidden_layers: layers,
        num_attention_heads: c.get_usize("num_attention_heads")?,
        num_key_value_heads: c.get_usize("num_key_value_heads")?,
        head_dim: c.get_usize("head_dim")?,
        vocab_size: c.get_usize("vocab_size")?,
        num_local_experts: c.get_usize("num_local_experts")?,
        experts_per_token: match c.get("num_experts_per_tok") {
            Some(_) => c.get_usize("num_experts_per_tok")?,
            None => c.get_usize("experts_per_token")?,
        },
        rms_norm_eps: c.get_f64_or("rms_norm_eps", 1e-5)? as f32,
        rope_theta: rope.theta,
        rope_scaling: rope_from_io(&rope.scaling),
        sliding_window,
        sliding,
        swiglu_limit: c.get_f64_or("swiglu_limit", 7.0)? as f32,
        max_position_embeddings: c.get_usize_or("max_position_embeddings", 131072)?,
    })
}
