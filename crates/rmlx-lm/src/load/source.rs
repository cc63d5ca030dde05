//! `ModelFiles` as a `WeightSource` with Hugging Face names: GGUF names are translated the way
//! llama.cpp's converter wrote them; quantized entries become `QuantizedWeight`s.

use crate::weights::{Tensor, WeightSource};
use rmlx_core::quant::QuantizedWeight;
use rmlx_core::{Error, QuantFormat, Result};
use rmlx_io::{Format, ModelFiles, QuantizedTensor, TensorType};
use std::sync::Arc;

pub struct FilesSource {
    files: Arc<ModelFiles>,
    gguf: bool,
}

impl FilesSource {
    pub fn new(files: Arc<ModelFiles>, _arch: &str) -> Self {
        let gguf = files.format() == Format::Gguf;
        FilesSource { files, gguf }
    }
}

/// Hugging Face name → llama.cpp GGUF name (llama, qwen2, qwen3 architectures).
pub fn gguf_name(hf: &str) -> Option<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, leaf) = rest.split_once('.')?;
    let (module, kind) = leaf.rsplit_once('.')?;
    let g = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{g}.{kind}"))
}

/// An io-level quantized tensor as the parts a quantized primitive takes.
pub fn to_weight(q: QuantizedTensor) -> Result<QuantizedWeight> {
    let nd = q.shape.len();
    if !(2..=3).contains(&nd) {
        return Err(Error::format(format!(
            "tensor `{}`: expected a quantized matrix or expert stack, found shape {:?}",
            q.name, q.shape
        )));
    }
    let (n, k) = (q.shape[nd - 2], q.shape[nd - 1]);
    let experts = (nd == 3).then_some(q.shape[0]);
    let parts = match q.format {
        QuantFormat::Gguf(t) => {
            let mut s: Vec<isize> = q.shape[..nd - 1].iter().map(|&d| d as isize).collect();
            s.push(t.row_bytes(k)? as isize);
            vec![q.packed.reshape(&s)?]
        }
        QuantFormat::Mxfp4 => vec![
            q.packed,
            q.scales.ok_or_else(|| missing(&q.name, "scales"))?,
        ],
        QuantFormat::Affine { .. } => vec![
            q.packed,
            q.scales.ok_or_else(|| missing(&q.name, "scales"))?,
            q.biases.ok_or_else(|| missing(&q.name, "biases"))?,
        ],
    };
    QuantizedWeight::new(q.format, n, k, experts, parts)
        .map_err(|e| e.context(format!("tensor `{}`", q.name)))
}

fn missing(name: &str, part: &str) -> Error {
    Error::format(format!(
        "tensor `{name}`: quantized entry without its {part}"
    ))
}

impl WeightSource for FilesSource {
    fn get(&self, name: &str) -> Result<Option<Tensor>> {
        let stored = if self.gguf {
            match gguf_name(name) {
                Some(g) => g,
                None => return Ok(None),
            }
        } else {
            name.to_string()
        };
        let Some(info) = self.files.tensor(&stored) else {
            return Ok(None);
        };
        let t = match info.ty {
            TensorType::Dense(_) => Tensor::Dense(self.files.get(&stored)?),
            TensorType::Quantized(_) => {
                Tensor::Quantized(to_weight(self.files.get_quantized(&stored)?)?)
            }
            TensorType::Unsupported(ty) => {
                return Err(Error::format(format!(
                    "{}: tensor `{stored}` has unsupported type {ty}",
                    self.describe()
                )))
            }
        };
        Ok(Some(t))
    }

    fn describe(&self) -> String {
        format!("model {}", self.files.path().display())
    }
}
