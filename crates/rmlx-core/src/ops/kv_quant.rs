//! Quantized KV cache ops: quantize new K/V rows on write, dequantize (reference), and
//! attention over packed rows. `dequantize_kv` nodes that reach `scaled_dot_product_attention`
//! unevaluated are fused into one `QuantizedSdpa` reading the packed cache in place, so models
//! keep calling plain attention on what their cache returns.

use super::nn::{sdpa_reference, AttentionMask};
use crate::array::{Array, State};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::{KvQuant, Primitive};

impl KvQuant {
    /// Checks the spec against a head dim `d`.
    pub fn validate(self, d: usize) -> Result<()> {
        if self.bits != 4 && self.bits != 8 {
            return Err(Error::msg(format!(
                "kv quant: expected 4 or 8 bits, found {}",
                self.bits
            )));
        }
        if self.group == 0 || !self.group.is_multiple_of(16) || !d.is_multiple_of(self.group) {
            return Err(Error::shape(format!(
                "kv quant: expected a group that is a multiple of 16 and divides the head dim \
                 {d}, found {}",
                self.group
            )));
        }
        Ok(())
    }
}

impl Array {
    /// Packs each row of x (…, D) float into (…, row_bytes) u8 as `spec` says.
    pub fn quantize_kv(&self, spec: KvQuant) -> Result<Array> {
        let d = *self
            .shape()
            .last()
            .ok_or_else(|| Error::shape("quantize_kv: expected at least one dimension"))?;
        spec.validate(d)?;
        super::elementwise::expect_dtype(
            "quantize_kv",
            "input",
            self,
            &[DType::F32, DType::F16, DType::BF16],
        )?;
        let mut shape = self.shape().to_vec();
        *shape.last_mut().expect("checked") = spec.row_bytes(d);
        Ok(Array::new_op(
            Primitive::QuantizeKv(spec),
            vec![self.clone()],
            shape,
            DType::U8,
        ))
    }

    /// Unpacks (…, row_bytes) u8 rows of `dim` values into (…, dim) f32.
    pub fn dequantize_kv(&self, spec: KvQuant, dim: usize) -> Result<Array> {
        spec.validate(dim)?;
        if self.dtype() != DType::U8 || self.shape().last() != Some(&spec.row_bytes(dim)) {
            return Err(Error::shape(format!(
                "dequantize_kv: expected u8 rows of {} bytes, found {} {:?}",
                spec.row_bytes(dim),
                self.dtype(),
                self.shape()
            )));
        }
        let mut shape = self.shape().to_vec();
        *shape.last_mut().expect("checked") = dim;
        Ok(Array::new_op(
            Primitive::DequantizeKv { spec, dim },
            vec![self.clone()],
            shape,
            DType::F32,
        ))
    }
}

/// The packed input and spec of a pending `dequantize_kv` node.
fn packed_source(x: &Array) -> Option<(Array, KvQuant)> {
    match &*x.lock() {
        State::Pending {
            prim: Primitive::DequantizeKv { spec, .. },
            inputs,
        } => Some((inputs[0].clone(), *spec)),
        _ => None,
    }
}

/// Attention over packed K/V (B, Hkv, Tk, row_bytes) u8; q (B, Hq, Tq, D) → (B, Hq, Tq, Dv).
#[allow(clippy::too_many_arguments)]
pub fn quantized_sdpa(
    q: &Array,
    k: &Array,
    v: &Array,
    ks: KvQuant,
    vs: KvQuant,
    dv: usize,
    scale: f32,
    mask: &AttentionMask,
    sinks: Option<&Array>,
) -> Result<Array> {
    let d = q.dim(-1);
    ks.validate(d)?;
    vs.validate(dv)?;
    // Validate shapes against what the dequantized operands would be.
    let (kdq, vdq) = (k.dequantize_kv(ks, d)?, v.dequantize_kv(vs, dv)?);
    super::nn::validate_sdpa(q, &kdq, &vdq, mask, sinks)?;
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
    let shape = vec![q.dim(0), q.dim(1), q.dim(2), dv];
    Ok(Array::new_op(
        Primitive::QuantizedSdpa {
            scale,
            window: mask.window,
            has_sinks: sinks.is_some(),
            k: ks,
            v: vs,
        },
        inputs,
        shape,
        q.dtype(),
    ))
}

/// The composed fallback and test oracle: dequantize, then `sdpa_reference`.
#[allow(clippy::too_many_arguments)]
pub fn quantized_sdpa_reference(
    q: &Array,
    k: &Array,
    v: &Array,
    ks: KvQuant,
    vs: KvQuant,
    dv: usize,
    scale: f32,
    mask: &AttentionMask,
    sinks: Option<&Array>,
) -> Result<Array> {
    let kd = k.dequantize_kv(ks, q.dim(-1))?;
    let vd = v.dequantize_kv(vs, dv)?;
    sdpa_reference(q, &kd, &vd, scale, mask, sinks)
}

/// If k and v are both pending `dequantize_kv` nodes, the fused attention over their packed
/// sources (called by `scaled_dot_product_attention`).
pub(crate) fn fuse_packed(
    q: &Array,
    k: &Array,
    v: &Array,
    scale: f32,
    mask: &AttentionMask,
    sinks: Option<&Array>,
) -> Option<Result<Array>> {
    let (kp, ks) = packed_source(k)?;
    let (vp, vs) = packed_source(v)?;
    Some(quantized_sdpa(
        q,
        &kp,
        &vp,
        ks,
        vs,
        v.dim(-1),
        scale,
        mask,
        sinks,
    ))
}
