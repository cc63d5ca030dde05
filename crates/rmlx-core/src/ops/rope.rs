//! Rotary embeddings: the op, and inverse-frequency tables for plain, linear, Llama-3 and YaRN
//! scaling (transformers' formulas, `modeling_rope_utils.py`).

use crate::array::Array;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::{Primitive, RopeLayout};

#[derive(Clone, Debug, PartialEq)]
pub struct YarnParams {
    pub factor: f64,
    pub beta_fast: f64,
    pub beta_slow: f64,
    pub original_max_position_embeddings: f64,
    /// Round the correction range outward to integers (transformers' default true; gpt-oss sets false).
    pub truncate: bool,
    pub mscale: Option<f64>,
    pub mscale_all_dim: Option<f64>,
    pub attention_factor: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    Linear {
        factor: f64,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
    Yarn(YarnParams),
}

/// 1 / base^(2i/dims), i < dims/2.
pub fn plain_inv_freq(base: f64, dims: usize) -> Vec<f64> {
    (0..dims / 2)
        .map(|i| 1.0 / base.powf((2 * i) as f64 / dims as f64))
        .collect()
}

pub fn llama3_inv_freq(
    base: f64,
    dims: usize,
    factor: f64,
    low: f64,
    high: f64,
    old_ctx: f64,
) -> Vec<f64> {
    let low_wavelen = old_ctx / low;
    let high_wavelen = old_ctx / high;
    plain_inv_freq(base, dims)
        .into_iter()
        .map(|f| {
            let wavelen = 2.0 * std::f64::consts::PI / f;
            if wavelen < high_wavelen {
                f
            } else if wavelen > low_wavelen {
                f / factor
            } else {
                let smooth = (old_ctx / wavelen - low) / (high - low);
                (1.0 - smooth) * f / factor + smooth * f
            }
        })
        .collect()
}

/// YaRN: (inv_freq, attention factor applied to cos and sin).
pub fn yarn_inv_freq(base: f64, dims: usize, p: &YarnParams) -> (Vec<f64>, f64) {
    let get_mscale = |scale: f64, m: f64| {
        if scale <= 1.0 {
            1.0
        } else {
            0.1 * m * scale.ln() + 1.0
        }
    };
    let attention = p
        .attention_factor
        .unwrap_or_else(|| match (p.mscale, p.mscale_all_dim) {
            (Some(m), Some(a)) if m != 0.0 && a != 0.0 => {
                get_mscale(p.factor, m) / get_mscale(p.factor, a)
            }
            _ => get_mscale(p.factor, 1.0),
        });
    let d = dims as f64;
    let corr = |rot: f64| {
        (d * (p.original_max_position_embeddings / (rot * 2.0 * std::f64::consts::PI)).ln())
            / (2.0 * base.ln())
    };
    let (mut low, mut high) = (corr(p.beta_fast), corr(p.beta_slow));
    if p.truncate {
        low = low.floor();
        high = high.ceil();
    }
    // Clamped to the valid dims (matters for small head sizes).
    let low = low.max(0.0);
    let mut high = high.min(d - 1.0);
    if low == high {
        high += 0.001;
    }
    let inv = (0..dims / 2)
        .map(|i| {
            let pos_freq = base.powf((2 * i) as f64 / d);
            let extra = 1.0 / pos_freq;
            let inter = 1.0 / (p.factor * pos_freq);
            let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
            let extra_factor = 1.0 - ramp;
            inter * (1.0 - extra_factor) + extra * extra_factor
        })
        .collect();
    (inv, attention)
}

impl RopeScaling {
    /// (inv_freq as an f32 array of dims/2, mscale).
    pub fn tables(&self, base: f64, dims: usize) -> Result<(Array, f32)> {
        let (f, m) = match self {
            RopeScaling::None => (plain_inv_freq(base, dims), 1.0),
            RopeScaling::Linear { factor } => (
                plain_inv_freq(base, dims)
                    .iter()
                    .map(|f| f / factor)
                    .collect(),
                1.0,
            ),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => (
                llama3_inv_freq(
                    base,
                    dims,
                    *factor,
                    *low_freq_factor,
                    *high_freq_factor,
                    *original_max_position_embeddings,
                ),
                1.0,
            ),
            RopeScaling::Yarn(p) => yarn_inv_freq(base, dims, p),
        };
        let f32s: Vec<f32> = f.iter().map(|&v| v as f32).collect();
        Ok((Array::from_slice(&f32s, &[dims / 2])?, m as f32))
    }
}

impl Array {
    /// Rotates the first `dims` of the last axis of (…, T, D) by `positions` (T) i32.
    pub fn rope(
        &self,
        layout: RopeLayout,
        dims: usize,
        inv_freq: &Array,
        mscale: f32,
        positions: &Array,
    ) -> Result<Array> {
        if self.ndim() < 2 {
            return Err(Error::shape(format!(
                "rope: expected (…, T, D), found {:?}",
                self.shape()
            )));
        }
        let (t, d) = (self.dim(-2)?, self.dim(-1)?);
        if dims > d || !dims.is_multiple_of(2) {
            return Err(Error::shape(format!(
                "rope: expected an even number of rotated dims <= {d}, found {dims}"
            )));
        }
        if inv_freq.shape() != [dims / 2] || inv_freq.dtype() != DType::F32 {
            return Err(Error::shape(format!(
                "rope: expected f32 inv_freq of shape [{}], found {} {:?}",
                dims / 2,
                inv_freq.dtype(),
                inv_freq.shape()
            )));
        }
        if positions.shape() != [t] || positions.dtype() != DType::I32 {
            return Err(Error::shape(format!(
                "rope: expected i32 positions of shape [{t}], found {} {:?}",
                positions.dtype(),
                positions.shape()
            )));
        }
        Ok(Array::new_op(
            Primitive::Rope {
                layout,
                dims,
                mscale,
            },
            vec![self.clone(), inv_freq.clone(), positions.clone()],
            self.shape().to_vec(),
            self.dtype(),
        ))
    }

    /// RoPE composed of plain ops (f32): the oracle of the fused kernel.
    pub fn rope_reference(
        &self,
        layout: RopeLayout,
        dims: usize,
        inv_freq: &Array,
        mscale: f32,
        positions: &Array,
    ) -> Result<Array> {
        let (t, d) = (self.dim(-2)?, self.dim(-1)?);
        let half = dims / 2;
        let ang = positions
            .astype(DType::F32)?
            .reshape(&[t as isize, 1])?
            .mul(&inv_freq.reshape(&[1, half as isize])?)?; // (T, half)
        let (cos, sin) = (
            ang.cos()?.mul_scalar(mscale)?,
            ang.sin()?.mul_scalar(mscale)?,
        );
        let x = self.astype(DType::F32)?;
        let lead: Vec<isize> = self.shape()[..self.ndim() - 1]
            .iter()
            .map(|&v| v as isize)
            .collect();
        let (x0, x1, rest) = match layout {
            RopeLayout::HalfSplit => (
                x.slice_axis(-1, 0, half)?,
                x.slice_axis(-1, half, dims)?,
                x.slice_axis(-1, dims, d)?,
            ),
            RopeLayout::Interleaved => {
                let mut s = lead.clone();
                s.extend([half as isize, 2]);
                let pairs = x.slice_axis(-1, 0, dims)?.reshape(&s)?;
                (
                    pairs.slice_axis(-1, 0, 1)?.squeeze(-1)?,
                    pairs.slice_axis(-1, 1, 2)?.squeeze(-1)?,
                    x.slice_axis(-1, dims, d)?,
                )
            }
        };
        let r0 = x0.mul(&cos)?.sub(&x1.mul(&sin)?)?;
        let r1 = x0.mul(&sin)?.add(&x1.mul(&cos)?)?;
        let rotated = match layout {
            RopeLayout::HalfSplit => crate::ops::concat(&[r0, r1], -1)?,
            RopeLayout::Interleaved => {
                let mut s = lead.clone();
                s.push(dims as isize);
                crate::ops::concat(&[r0.expand_dims(-1)?, r1.expand_dims(-1)?], -1)?.reshape(&s)?
            }
        };
        crate::ops::concat(&[rotated, rest], -1)?.astype(self.dtype())
    }
}
