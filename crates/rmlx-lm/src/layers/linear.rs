//! y = x · Wᵀ + b with W plain (read in its own dtype) or quantized (computed from packed data).

use crate::weights::{Tensor, Weights};
use rmlx_core::{Array, Result};

#[derive(Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Array>,
}

impl Linear {
    /// `prefix.weight` of logical shape (out, in), and `prefix.bias` (out) if `bias`.
    pub fn load(w: &Weights, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let weight = w.tensor("weight", &[out_dim, in_dim])?;
        let bias = if bias {
            Some(w.dense("bias", &[out_dim])?)
        } else {
            w.dense_opt("bias", &[out_dim])?
        };
        Ok(Linear { weight, bias })
    }

    pub fn from_tensor(weight: Tensor, bias: Option<Array>) -> Self {
        Linear { weight, bias }
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        let y = match &self.weight {
            Tensor::Dense(w) => x.matmul(&w.t()?)?,
            Tensor::Quantized(q) => q.quantized_matmul(x)?,
        };
        match &self.bias {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }
}
