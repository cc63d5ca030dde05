//! y = x · Wᵀ + b with W plain (read in its own dtype) or quantized (computed from packed data).

use crate::weights::{Tensor, Weights};
use rmlx_core::quant::QuantizedWeight;
use rmlx_core::{concat, Array, Error, Result};

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
        let bias = bias.map(f32_leaf).transpose()?;
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

impl Linear {
    /// One linear computing `parts` side by side (outputs concatenated), e.g. q/k/v or
    /// gate/up: one matmul instead of several, which matters when decode is bound by per-op
    /// overhead rather than bandwidth. The weights are copied once, at load.
    pub fn fuse(parts: &[&Linear]) -> Result<Linear> {
        let weight = match parts
            .iter()
            .map(|l| &l.weight)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [Tensor::Dense(_), ..] => {
                let ws = parts
                    .iter()
                    .map(|l| match &l.weight {
                        Tensor::Dense(w) => Ok(w.clone()),
                        Tensor::Quantized(_) => Err(mixed()),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let w = concat(&ws, 0)?;
                w.eval()?;
                Tensor::Dense(w)
            }
            [Tensor::Quantized(first), ..] => {
                let qs = parts
                    .iter()
                    .map(|l| match &l.weight {
                        Tensor::Quantized(q)
                            if q.format == first.format
                                && q.k == first.k
                                && q.experts.is_none() =>
                        {
                            Ok(q.clone())
                        }
                        _ => Err(mixed()),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let n = qs.iter().map(|q| q.n).sum();
                let mut fused = Vec::with_capacity(first.parts.len());
                for i in 0..first.parts.len() {
                    let p = concat(
                        &qs.iter().map(|q| q.parts[i].clone()).collect::<Vec<_>>(),
                        0,
                    )?;
                    p.eval()?;
                    fused.push(p);
                }
                Tensor::Quantized(QuantizedWeight::new(first.format, n, first.k, None, fused)?)
            }
            [] => return Err(Error::msg("linear fuse: expected at least one part")),
        };
        let bias = if parts.iter().any(|l| l.bias.is_some()) {
            let bs = parts
                .iter()
                .map(|l| match &l.bias {
                    Some(b) => Ok(b.clone()),
                    None => Array::zeros(&[l.out_features()], rmlx_core::DType::F32),
                })
                .collect::<Result<Vec<_>>>()?;
            let b = concat(&bs, 0)?;
            b.eval()?;
            Some(b)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    pub fn out_features(&self) -> usize {
        self.weight.shape()[self.weight.shape().len() - 2]
    }
}

/// `a` converted to f32 once, now: the models compute activations in f32, so a bias or table
/// kept in f32 is added without a conversion at every step (bf16/f16 → f32 is exact).
pub fn f32_leaf(a: Array) -> Result<Array> {
    let b = a.astype(rmlx_core::DType::F32)?;
    b.eval()?;
    Ok(b)
}

fn mixed() -> Error {
    Error::msg("linear fuse: expected parts of one storage format and input size")
}
