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
        self.dequantize_kv_impl(spec, dim, None)
    }

    /// As `dequantize_kv` for (B, H, T, row_bytes) rows stored relative to a center
    /// (B, H, 1, dim) f32, which is added back.
    pub fn dequantize_kv_centered(
        &self,
        spec: KvQuant,
        dim: usize,
        center: &Array,
    ) -> Result<Array> {
        self.dequantize_kv_impl(spec, dim, Some(center))
    }

    fn dequantize_kv_impl(
        &self,
        spec: KvQuant,
        dim: usize,
        center: Option<&Array>,
    ) -> Result<Array> {
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
        let mut inputs = vec![self.clone()];
        if let Some(c) = center {
            let want = [shape[0], shape.get(1).copied().unwrap_or(0), 1, dim];
            if shape.len() != 4 || c.shape() != want || c.dtype() != DType::F32 {
                return Err(Error::shape(format!(
                    "dequantize_kv: expected (B, H, T, rows) packed rows and an f32 center \
                     {want:?}, found {:?} and {} {:?}",
                    self.shape(),
                    c.dtype(),
                    c.shape()
                )));
            }
            inputs.push(c.clone());
        }
        Ok(Array::new_op(
            Primitive::DequantizeKv {
                centered: center.is_some(),
                spec,
                dim,
            },
            inputs,
            shape,
            DType::F32,
        ))
    }
}

/// The packed input, spec and center of a pending `dequantize_kv` node.
fn packed_source(x: &Array) -> Option<(Array, KvQuant, Option<Array>)> {
    match &*x.lock() {
        State::Pending {
            prim: Primitive::DequantizeKv { spec, centered, .. },
            inputs,
        } => Some((
            inputs[0].clone(),
            *spec,
            centered.then(|| inputs[1].clone()),
        )),
        _ => None,
    }
}

/// A pending `concat([dense head, dequantize_kv(..)], axis 2)`: (head, the dequantize node).
fn split_head(x: &Array) -> Option<(Array, Array)> {
    match &*x.lock() {
        State::Pending {
            prim: Primitive::Concat { axis: 2 },
            inputs,
        } if inputs.len() == 2 && inputs[0].dtype() == DType::F32 => {
            Some((widened(&inputs[0]), inputs[1].clone()))
        }
        _ => None,
    }
}

/// The 16-bit array a pending `astype(f32)` widens (the kernel widens it itself), or `x`.
fn widened(x: &Array) -> Array {
    match &*x.lock() {
        State::Pending {
            prim: Primitive::AsType(DType::F32),
            inputs,
        } if matches!(inputs[0].dtype(), DType::F16 | DType::BF16) => inputs[0].clone(),
        _ => x.clone(),
    }
}

/// A quantized KV cache as attention reads it: packed rows (B, Hkv, T, row_bytes) u8, the
/// keys' center (B, Hkv, 1, D) f32 if they were stored relative to one, and optionally an
/// exact head (f32, f16 or bf16): (B, Hkv, S, D) keys and (B, Hkv, S, Dv) values that come
/// before the packed rows (slots 0..S): the first tokens, which most queries attend to
/// (attention sinks), and a cache's ring of recent positions.
pub struct PackedKv<'a> {
    pub k: &'a Array,
    pub v: &'a Array,
    pub ks: KvQuant,
    pub vs: KvQuant,
    pub dv: usize,
    pub k_center: Option<&'a Array>,
    pub head: Option<(&'a Array, &'a Array)>,
}

impl<'a> PackedKv<'a> {
    /// Packed keys and values alone: no key center, no exact head.
    pub fn new(k: &'a Array, v: &'a Array, ks: KvQuant, vs: KvQuant, dv: usize) -> Self {
        PackedKv {
            k,
            v,
            ks,
            vs,
            dv,
            k_center: None,
            head: None,
        }
    }

    /// What the cache's view means: (keys, values) as f32 arrays (the composed fallback).
    fn dequantized(&self, d: usize) -> Result<(Array, Array)> {
        let k = match self.k_center {
            Some(c) => self.k.dequantize_kv_centered(self.ks, d, c)?,
            None => self.k.dequantize_kv(self.ks, d)?,
        };
        let v = self.v.dequantize_kv(self.vs, self.dv)?;
        Ok(match self.head {
            Some((hk, hv)) => (
                crate::concat(&[hk.astype(DType::F32)?, k], 2)?,
                crate::concat(&[hv.astype(DType::F32)?, v], 2)?,
            ),
            None => (k, v),
        })
    }
}

/// Attention over a packed KV cache; q (B, Hq, Tq, D) → (B, Hq, Tq, Dv).
pub fn quantized_sdpa(
    q: &Array,
    kv: &PackedKv,
    scale: f32,
    mask: &AttentionMask,
    sinks: Option<&Array>,
) -> Result<Array> {
    let d = q.dim(-1)?;
    kv.ks.validate(d)?;
    kv.vs.validate(kv.dv)?;
    // Validate shapes against what the dequantized operands would be.
    let (kdq, vdq) = kv.dequantized(d)?;
    super::nn::validate_sdpa(q, &kdq, &vdq, mask, sinks)?;
    let mut inputs = vec![
        q.clone(),
        kv.k.clone(),
        kv.v.clone(),
        mask.q_pos.clone(),
        mask.k_pos.clone(),
    ];
    inputs.extend(sinks.cloned());
    inputs.extend(kv.k_center.cloned());
    let mut head = 0;
    if let Some((hk, hv)) = kv.head {
        let float = |t: DType| matches!(t, DType::F32 | DType::F16 | DType::BF16);
        if !float(hk.dtype()) || hk.dtype() != hv.dtype() {
            return Err(Error::dtype(format!(
                "quantized_sdpa: expected an exact head of one float dtype (f32, f16, bf16), \
                 found {} and {}",
                hk.dtype(),
                hv.dtype()
            )));
        }
        head = hk.dim(2)?;
        inputs.extend([hk.clone(), hv.clone()]);
    }
    let shape = vec![q.dim(0)?, q.dim(1)?, q.dim(2)?, kv.dv];
    Ok(Array::new_op(
        Primitive::QuantizedSdpa {
            k_centered: kv.k_center.is_some(),
            head,
            scale,
            window: mask.window,
            has_sinks: sinks.is_some(),
            k: kv.ks,
            v: kv.vs,
        },
        inputs,
        shape,
        q.dtype(),
    ))
}

/// The composed fallback and test oracle: dequantize, then `sdpa_reference`.
pub fn quantized_sdpa_reference(
    q: &Array,
    kv: &PackedKv,
    scale: f32,
    mask: &AttentionMask,
    sinks: Option<&Array>,
) -> Result<Array> {
    let (k, v) = kv.dequantized(q.dim(-1)?)?;
    sdpa_reference(q, &k, &v, scale, mask, sinks)
}

/// If k and v are a quantized cache's view (pending `dequantize_kv` nodes, each possibly
/// behind an exact head), the fused attention over their packed sources (called by
/// `scaled_dot_product_attention`).
pub(crate) fn fuse_packed(
    q: &Array,
    k: &Array,
    v: &Array,
    scale: f32,
    mask: &AttentionMask,
    sinks: Option<&Array>,
) -> Option<Result<Array>> {
    let (kh, kq) = split_head(k).map_or((None, k.clone()), |(h, x)| (Some(h), x));
    let (vh, vq) = split_head(v).map_or((None, v.clone()), |(h, x)| (Some(h), x));
    let (kp, ks, kc) = packed_source(&kq)?;
    let (vp, vs, vc) = packed_source(&vq)?;
    if vc.is_some() || kh.is_some() != vh.is_some() {
        return None; // no fused kernel for these; the composed path handles them
    }
    let dv = match v.dim(-1) {
        Ok(dv) => dv,
        Err(e) => return Some(Err(e)),
    };
    let kv = PackedKv {
        k: &kp,
        v: &vp,
        ks,
        vs,
        dv,
        k_center: kc.as_ref(),
        head: kh.as_ref().zip(vh.as_ref()),
    };
    Some(quantized_sdpa(q, &kv, scale, mask, sinks))
}
