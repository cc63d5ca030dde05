//! Where model code gets its tensors: Hugging Face dotted names, looked up through a prefix
//! builder (`w.pp("model").pp("layers.0")`), over any source (safetensors, GGUF, MLX-quantized).

use rmlx_core::quant::QuantizedWeight;
use rmlx_core::{Array, Error, Result};
use std::sync::Arc;

/// A stored tensor: plain (f32/f16/bf16) or packed in a quantization format.
#[derive(Clone)]
pub enum Tensor {
    Dense(Array),
    Quantized(QuantizedWeight),
}

impl Tensor {
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Tensor::Dense(a) => a.shape().to_vec(),
            Tensor::Quantized(q) => q.experts.into_iter().chain([q.n, q.k]).collect(),
        }
    }

    /// Bytes of the stored data (packed for quantized tensors).
    pub fn nbytes(&self) -> usize {
        match self {
            Tensor::Dense(a) => a.nbytes(),
            Tensor::Quantized(q) => q.parts.iter().map(|p| p.nbytes()).sum(),
        }
    }
}

/// A model's tensors by Hugging Face name (sources translate their own naming).
pub trait WeightSource: Send + Sync {
    fn get(&self, name: &str) -> Result<Option<Tensor>>;
    /// Where the tensors come from, for error messages.
    fn describe(&self) -> String;
}

/// A prefix view of a weight source, as in candle's `VarBuilder`.
#[derive(Clone)]
pub struct Weights {
    source: Arc<dyn WeightSource>,
    prefix: String,
}

impl Weights {
    pub fn new(source: Arc<dyn WeightSource>) -> Self {
        Weights {
            source,
            prefix: String::new(),
        }
    }

    /// Pushes a name component.
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        Weights {
            source: self.source.clone(),
            prefix,
        }
    }

    pub fn name(&self, leaf: &str) -> String {
        if self.prefix.is_empty() {
            leaf.to_string()
        } else {
            format!("{}.{leaf}", self.prefix)
        }
    }

    pub fn get_opt(&self, leaf: &str) -> Result<Option<Tensor>> {
        self.source.get(&self.name(leaf))
    }

    pub fn get(&self, leaf: &str) -> Result<Tensor> {
        self.get_opt(leaf)?.ok_or_else(|| {
            Error::format(format!(
                "{}: missing tensor `{}`",
                self.source.describe(),
                self.name(leaf)
            ))
        })
    }

    /// A plain tensor with an exact expected shape.
    pub fn dense(&self, leaf: &str, shape: &[usize]) -> Result<Array> {
        match self.get(leaf)? {
            Tensor::Dense(a) => {
                if a.shape() != shape {
                    return Err(Error::format(format!(
                        "{}: tensor `{}` expected shape {shape:?}, found {:?}",
                        self.source.describe(),
                        self.name(leaf),
                        a.shape()
                    )));
                }
                Ok(a)
            }
            Tensor::Quantized(q) => Err(Error::format(format!(
                "{}: tensor `{}` expected a plain tensor, found {} data",
                self.source.describe(),
                self.name(leaf),
                q.format
            ))),
        }
    }

    pub fn dense_opt(&self, leaf: &str, shape: &[usize]) -> Result<Option<Array>> {
        match self.get_opt(leaf)? {
            None => Ok(None),
            Some(_) => self.dense(leaf, shape).map(Some),
        }
    }

    /// A tensor (plain or quantized) whose logical shape must be `shape`.
    pub fn tensor(&self, leaf: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.get(leaf)?;
        if t.shape() != shape {
            return Err(Error::format(format!(
                "{}: tensor `{}` expected shape {shape:?}, found {:?}",
                self.source.describe(),
                self.name(leaf),
                t.shape()
            )));
        }
        Ok(t)
    }
}
