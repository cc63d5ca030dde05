//! Fused neural-network primitives (RMSNorm, attention) and their composed fallbacks, which
//! are the test oracles of the kernels.

use super::elementwise::expect_dtype;
use crate::array::Array;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::Primitive;

/// Which keys each query may see, by absolute position.
#[derive(Clone, Debug)]
pub struct AttentionMask {
    /// Position of each query (Tq), i32.
    pub q_pos: Array,
    /// Position of each key slot (Tk), i32; negative = empty slot.
    pub k_pos: Array,
    /// Sliding window: key visible iff q_pos − k_pos < window.
    pub window: Option<usize>,
}

impl AttentionMask {
    /// Causal mask for `tq` new queries after `offset` cached tokens, keys 0..offset+tq.
    pub fn causal(offset: usize, tq: usize, window: Option<usize>) -> Result<Self> {
        let q: Vec<i32> = (offset..offset + tq).map(|p| p as i32).collect();
        let k: Vec<i32> = (0..offset + tq).map(|p| p as i32).collect();
        Ok(AttentionMask {
            q_pos: Array::from_slice(&q, &[tq])?,
            k_pos: Array::from_slice(&k, &[offset + tq])?,
            window,
        })
    }
}

impl Array {
    /// x · rsqrt(mean(x², -1) + eps) · weight over the last axis.
    pub fn rms_norm(&self, weight: &Array, eps: f32) -> Result<Array> {
        let d = *self
            .shape()
            .last()
            .ok_or_else(|| Error::shape("rms_norm: expected at least one dimension"))?;
        if weight.shape() != [d] {
            return Err(Error::shape(format!(
                "rms_norm: expected a weight of shape [{d}], found {:?}",
                weight.shape()
            )));
        }
        expect_dtype(
            "rms_norm",
            "input",
            self,
            &[DType::F32, DType::F16, DType::BF16],
        )?;
        Ok(Array::new_op(
            Primitive::RmsNorm { eps },
            vec![self.clone(), weight.clone()],
            self.shape().to_vec(),
            self.dtype(),
        ))
    }

    /// The composed RMSNorm (f32 math), oracle of the fused kernel.
    pub fn rms_norm_reference(&self, weight: &Array, eps: f32) -> Result<Array> {
        let x = self.astype(DType::F32)?;
        let r = x.square()?.mean(&[-1], true)?.add_scalar(eps)?.rsqrt()?;
        x.mul(&r)?
            .mul(&weight.astype(DType::F32)?)?
            .astype(self.dtype())
    }

    /// Attention: q (B, Hq, Tq, D), k (B, Hkv, Tk, D), v (B, Hkv, Tk, Dv) → (B, Hq, Tq, Dv).
    /// Hq must be a multiple of Hkv (GQA). `sinks` (Hq): one learned logit per head that joins
    /// the softmax and is dropped.
    pub fn scaled_dot_product_attention(
        &self,
        k: &Array,
        v: &Array,
        scale: f32,
        mask: &AttentionMask,
        sinks: Option<&Array>,
    ) -> Result<Array> {
        let q = self;
        if let Some(fused) = super::kv_quant::fuse_packed(q, k, v, scale, mask, sinks) {
            return fused; // K/V are a quantized cache: read it packed.
        }
        validate_sdpa(q, k, v, mask, sinks)?;
        let mut inputs = vec![
            q.clone(),
            k.clone(),
            v.clone(),
            mask.q_pos.clone(),
            mask.k_pos.clone(),
        ];
        if let Some(s) = sinks {
            inputs.push(s.clone());
        }
        let shape = vec![q.dim(0)?, q.dim(1)?, q.dim(2)?, v.dim(3)?];
        Ok(Array::new_op(
            Primitive::ScaledDotProductAttention {
                scale,
                window: mask.window,
                has_sinks: sinks.is_some(),
            },
            inputs,
            shape,
            q.dtype(),
        ))
    }
}

pub(crate) fn validate_sdpa(
    q: &Array,
    k: &Array,
    v: &Array,
    mask: &AttentionMask,
    sinks: Option<&Array>,
) -> Result<()> {
    if q.ndim() != 4 || k.ndim() != 4 || v.ndim() != 4 {
        return Err(Error::shape(format!(
            "sdpa: expected 4-D q, k, v (B, H, T, D), found {:?}, {:?}, {:?}",
            q.shape(),
            k.shape(),
            v.shape()
        )));
    }
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    let (b, hq, tq, d) = (qs[0], qs[1], qs[2], qs[3]);
    let (hkv, tk) = (ks[1], ks[2]);
    if ks[0] != b || vs[0] != b || ks[3] != d || vs[1] != hkv || vs[2] != tk {
        return Err(Error::shape(format!(
            "sdpa: q {:?}, k {:?}, v {:?} do not agree",
            q.shape(),
            k.shape(),
            v.shape()
        )));
    }
    if hkv == 0 || hq % hkv != 0 {
        return Err(Error::shape(format!(
            "sdpa: expected query heads ({hq}) to be a multiple of kv heads ({hkv})"
        )));
    }
    if mask.q_pos.shape() != [tq] || mask.k_pos.shape() != [tk] {
        return Err(Error::shape(format!(
            "sdpa: expected positions of shape [{tq}] and [{tk}], found {:?} and {:?}",
            mask.q_pos.shape(),
            mask.k_pos.shape()
        )));
    }
    expect_dtype("sdpa", "q_pos", &mask.q_pos, &[DType::I32])?;
    expect_dtype("sdpa", "k_pos", &mask.k_pos, &[DType::I32])?;
    if let Some(s) = sinks {
        if s.shape() != [hq] {
            return Err(Error::shape(format!(
                "sdpa: expected sinks of shape [{hq}], found {:?}",
                s.shape()
            )));
        }
    }
    Ok(())
}

/// Attention composed of plain ops (f32): the oracle of the fused kernel.
pub fn sdpa_reference(
    q: &Array,
    k: &Array,
    v: &Array,
    scale: f32,
    mask: &AttentionMask,
    sinks: Option<&Array>,
) -> Result<Array> {
    validate_sdpa(q, k, v, mask, sinks)?;
    let (b, hq, tq) = (q.dim(0)?, q.dim(1)?, q.dim(2)?);
    let (hkv, tk) = (k.dim(1)?, k.dim(2)?);
    let rep = hq / hkv;
    // Repeat kv heads: (B, Hkv, 1, Tk, D) → (B, Hkv, rep, Tk, D) → (B, Hq, Tk, D).
    let expand = |x: &Array| -> Result<Array> {
        let x = x.astype(DType::F32)?.expand_dims(2)?;
        let mut s = x.shape().to_vec();
        s[2] = rep;
        x.broadcast_to(&s)?
            .reshape(&[b as isize, hq as isize, tk as isize, -1])
    };
    let (k, v) = (expand(k)?, expand(v)?);
    let scores = q.astype(DType::F32)?.mul_scalar(scale)?.matmul(&k.t()?)?; // (B, Hq, Tq, Tk)
    let qp = mask.q_pos.reshape(&[tq as isize, 1])?;
    let kp = mask.k_pos.reshape(&[1, tk as isize])?;
    let zero = Array::scalar(0i32);
    let mut visible = kp.ge(&zero)?.logical_and(&kp.le(&qp)?)?;
    if let Some(w) = mask.window {
        let dist = qp.sub(&kp)?;
        visible = visible.logical_and(&dist.lt(&Array::scalar(w as i32))?)?;
    }
    let neg = Array::scalar(f32::NEG_INFINITY);
    let scores = visible.where_(&scores, &neg)?;
    let probs = match sinks {
        None => scores.softmax(-1)?,
        Some(s) => {
            let s = s
                .astype(DType::F32)?
                .reshape(&[1, hq as isize, 1, 1])?
                .broadcast_to(&[b, hq, tq, 1])?;
            let all = crate::ops::concat(&[scores, s], -1)?.softmax(-1)?;
            all.slice_axis(-1, 0, tk)?
        }
    };
    probs.matmul(&v)?.astype(q.dtype())
}
