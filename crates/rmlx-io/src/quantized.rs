//! Quantized weights stored as several safetensors tensors, grouped into one logical entry:
//! MLX affine (`X.weight` u32 + `X.scales` + `X.biases`) and Hugging Face MXFP4 (gpt-oss:
//! `P_blocks` + `P_scales`).

use crate::config::QuantizationConfig;
use crate::safetensors::StTensor;
use crate::sharded::SafetensorsSet;
use crate::tensor::{QuantizedTensor, TensorInfo, TensorType};
use rmlx_core::{DType, Error, QuantFormat, Result};
use std::collections::{HashMap, HashSet};

/// Which stored tensors make up a logical quantized entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Parts {
    Affine {
        weight: String,
        scales: String,
        biases: String,
    },
    Mxfp4 {
        blocks: String,
        scales: String,
    },
    /// MLX `mode: mxfp4`: `weight` u32 (..., K/8) holds exactly the bytes of Hugging Face
    /// blocks (..., K/32, 16) (checked against MLX's dequantize), so it is exposed as those.
    MlxMxfp4 {
        weight: String,
        scales: String,
    },
}

/// Logical tensors of a safetensors set, and the parts of the quantized ones.
pub struct Grouped {
    pub tensors: Vec<TensorInfo>,
    pub parts: HashMap<String, (QuantFormat, Parts)>,
}

fn nbytes(t: &StTensor) -> u64 {
    (t.end - t.begin) as u64
}

fn mismatch(what: &str, detail: String) -> Error {
    Error::format(format!("{what}: {detail}"))
}

fn mxfp4(blocks: &StTensor, scales: &StTensor) -> Result<Vec<usize>> {
    let what = format!("mxfp4 '{}'", blocks.name);
    if blocks.dtype != DType::U8 || scales.dtype != DType::U8 {
        return Err(mismatch(
            &what,
            format!(
                "expected u8 blocks and scales, found {} and {}",
                blocks.dtype, scales.dtype
            ),
        ));
    }
    let (b, s) = (&blocks.shape, &scales.shape);
    let ok = b.len() >= 2 && b[b.len() - 1] == 16 && s.as_slice() == &b[..b.len() - 1];
    if !ok {
        return Err(mismatch(
            &what,
            format!("expected blocks (..., n, 16) and scales (..., n), found {b:?} and {s:?}"),
        ));
    }
    let mut shape = s.clone();
    if let Some(last) = shape.last_mut() {
        *last = last
            .checked_mul(32)
            .ok_or_else(|| mismatch(&what, "shape overflows".into()))?;
    }
    Ok(shape)
}

fn affine(w: &StTensor, s: &StTensor, b: &StTensor, bits: u8, gs: u16) -> Result<Vec<usize>> {
    let what = format!("affine '{}' ({bits} bits, group size {gs})", w.name);
    if w.dtype != DType::U32 {
        return Err(mismatch(
            &what,
            format!("expected u32 packed weights, found {}", w.dtype),
        ));
    }
    let (ws, ss) = (&w.shape, &s.shape);
    let Some((&packed, lead)) = ws.split_last() else {
        return Err(mismatch(
            &what,
            "expected at least one dimension, found a scalar".into(),
        ));
    };
    let cols = packed
        .checked_mul(32)
        .filter(|c| c.is_multiple_of(bits as usize))
        .map(|c| c / bits as usize)
        .ok_or_else(|| {
            mismatch(
                &what,
                format!("{packed} packed u32 columns do not hold whole values"),
            )
        })?;
    let groups = cols / gs as usize;
    let expected: Vec<usize> = lead.iter().copied().chain([groups]).collect();
    if !cols.is_multiple_of(gs as usize) || *ss != expected || b.shape != *ss {
        return Err(mismatch(
            &what,
            format!(
                "expected scales and biases {expected:?} for weight {ws:?}, found {ss:?} and {:?}",
                b.shape
            ),
        ));
    }
    Ok(lead.iter().copied().chain([cols]).collect())
}

fn mlx_mxfp4(w: &StTensor, s: &StTensor, bits: u8, gs: u16) -> Result<Vec<usize>> {
    let what = format!("mlx mxfp4 '{}'", w.name);
    if (bits, gs) != (4, 32) || w.dtype != DType::U32 || s.dtype != DType::U8 {
        return Err(mismatch(&what, format!(
            "expected 4 bits, group size 32, u32 weight and u8 scales, found {bits} bits, group size {gs}, {} and {}",
            w.dtype, s.dtype
        )));
    }
    let Some((&packed, lead)) = w.shape.split_last() else {
        return Err(mismatch(
            &what,
            "expected at least one dimension, found a scalar".into(),
        ));
    };
    let expected: Vec<usize> = lead.iter().copied().chain([packed / 4]).collect();
    if !packed.is_multiple_of(4) || s.shape != expected {
        return Err(mismatch(
            &what,
            format!(
                "expected scales {expected:?} for weight {:?}, found {:?}",
                w.shape, s.shape
            ),
        ));
    }
    Ok(lead.iter().copied().chain([packed * 8]).collect())
}

/// Groups a set's tensors. Affine grouping needs the config's quantization (bits and group
/// size are not recoverable from shapes alone); MXFP4 pairs are recognized by name.
pub fn group(set: &SafetensorsSet, q: Option<&QuantizationConfig>) -> Result<Grouped> {
    // First pass: groups keyed by their leading stored tensor (`P_blocks` or `X.weight`), and
    // the other parts to hide wherever they appear in file order.
    let mut groups: HashMap<String, (TensorInfo, Parts)> = HashMap::new();
    let mut hidden = HashSet::new();
    for t in set.tensors() {
        if let Some(base) = t.name.strip_suffix("_blocks") {
            let sname = format!("{base}_scales");
            if let Some(s) = set.info(&sname) {
                let info = TensorInfo {
                    name: base.to_string(),
                    shape: mxfp4(t, s)?,
                    ty: TensorType::Quantized(QuantFormat::Mxfp4),
                    nbytes: nbytes(t) + nbytes(s),
                };
                hidden.insert(sname.clone());
                let parts = Parts::Mxfp4 {
                    blocks: t.name.clone(),
                    scales: sname,
                };
                groups.insert(t.name.clone(), (info, parts));
            }
        } else if let (Some(prefix), Some(cfg)) = (t.name.strip_suffix(".weight"), q) {
            let (sname, bname) = (format!("{prefix}.scales"), format!("{prefix}.biases"));
            let Some(s) = set.info(&sname) else { continue };
            let b = set.info(&bname);
            let params = match cfg.params_for(prefix) {
                Some(p) => p,
                None if cfg.default.is_some() && b.is_some() => {
                    return Err(Error::format(format!(
                        "affine '{}': has scales and biases but config.json leaves '{prefix}' unquantized",
                        t.name
                    )))
                }
                None => continue,
            };
            let (bits, group_size) = (params.bits, params.group_size);
            let (info, parts) = match (params.mode.as_str(), b) {
                ("affine", Some(b)) => {
                    hidden.insert(bname.clone());
                    let info = TensorInfo {
                        name: t.name.clone(),
                        shape: affine(t, s, b, bits, group_size)?,
                        ty: TensorType::Quantized(QuantFormat::Affine { bits, group_size }),
                        nbytes: nbytes(t) + nbytes(s) + nbytes(b),
                    };
                    (
                        info,
                        Parts::Affine {
                            weight: t.name.clone(),
                            scales: sname.clone(),
                            biases: bname,
                        },
                    )
                }
                ("affine", None) => {
                    return Err(Error::format(format!(
                        "affine '{}': expected '{bname}' next to '{sname}', found none",
                        t.name
                    )))
                }
                ("mxfp4", _) => {
                    let info = TensorInfo {
                        name: t.name.clone(),
                        shape: mlx_mxfp4(t, s, bits, group_size)?,
                        ty: TensorType::Quantized(QuantFormat::Mxfp4),
                        nbytes: nbytes(t) + nbytes(s),
                    };
                    (
                        info,
                        Parts::MlxMxfp4 {
                            weight: t.name.clone(),
                            scales: sname.clone(),
                        },
                    )
                }
                _ => continue, // other MLX modes: listed as their stored tensors
            };
            hidden.insert(sname);
            groups.insert(t.name.clone(), (info, parts));
        }
    }
    let mut tensors = Vec::with_capacity(set.len());
    let mut parts = HashMap::with_capacity(groups.len());
    for t in set.tensors().filter(|t| !hidden.contains(&t.name)) {
        match groups.remove(&t.name) {
            Some((info, p)) => {
                if let TensorType::Quantized(format) = info.ty {
                    parts.insert(info.name.clone(), (format, p));
                }
                tensors.push(info);
            }
            None => tensors.push(TensorInfo {
                name: t.name.clone(),
                shape: t.shape.clone(),
                ty: TensorType::Dense(t.dtype),
                nbytes: nbytes(t),
            }),
        }
    }
    Ok(Grouped { tensors, parts })
}

/// The arrays of a grouped quantized entry (zero-copy views).
pub fn load(
    set: &SafetensorsSet,
    name: &str,
    format: QuantFormat,
    parts: &Parts,
    shape: &[usize],
) -> Result<QuantizedTensor> {
    let (packed, scales, biases) = match parts {
        Parts::Affine {
            weight,
            scales,
            biases,
        } => (set.get(weight)?, set.get(scales)?, Some(set.get(biases)?)),
        Parts::Mxfp4 { blocks, scales } => (set.get(blocks)?, set.get(scales)?, None),
        Parts::MlxMxfp4 { weight, scales } => {
            // (..., K/8) u32 viewed as (..., K/32, 16) u8: same bytes, no copy.
            let mut blocks = shape.to_vec();
            if let Some(k) = blocks.last_mut() {
                *k /= 32;
            }
            blocks.push(16);
            (
                set.get_as(weight, DType::U8, &blocks)?,
                set.get(scales)?,
                None,
            )
        }
    };
    Ok(QuantizedTensor {
        name: name.to_string(),
        shape: shape.to_vec(),
        format,
        packed,
        scales: Some(scales),
        biases,
    })
}
