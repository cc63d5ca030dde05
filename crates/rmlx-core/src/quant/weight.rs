//! `QuantizedWeight`: a quantized matrix W (N, K) — or a stack of E experts — as the arrays of
//! its format, validated once. Ops on it live in `ops/quantized.rs`.

use super::{decode::check_k, QuantFormat};
use crate::array::Array;
use crate::dtype::DType;
use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct QuantizedWeight {
    pub format: QuantFormat,
    /// Output features (rows of W).
    pub n: usize,
    /// Input features (columns of W).
    pub k: usize,
    /// Leading expert dimension of every part, for `gather_qmm`.
    pub experts: Option<usize>,
    /// Gguf: [w u8]; Mxfp4: [blocks u8, scales u8]; Affine: [w u32, scales, biases].
    pub parts: Vec<Array>,
}

const FLOATS: &[DType] = &[DType::F32, DType::F16, DType::BF16];

/// A part's name, expected shape and accepted dtypes.
pub type PartSpec = (&'static str, Vec<usize>, &'static [DType]);

/// The expected shape and dtypes of each part of a format.
pub fn part_specs(
    format: QuantFormat,
    n: usize,
    k: usize,
    experts: Option<usize>,
) -> Result<Vec<PartSpec>> {
    let lead = |rest: &[usize]| {
        let mut s: Vec<usize> = experts.into_iter().collect();
        s.push(n);
        s.extend_from_slice(rest);
        s
    };
    Ok(match format {
        QuantFormat::Gguf(t) => vec![("weight", lead(&[t.row_bytes(k)?]), &[DType::U8])],
        QuantFormat::Mxfp4 => vec![
            ("blocks", lead(&[k / 32, 16]), &[DType::U8]),
            ("scales", lead(&[k / 32]), &[DType::U8]),
        ],
        QuantFormat::Affine { bits, group_size } => {
            let g = k / group_size as usize;
            vec![
                ("weight", lead(&[k * bits as usize / 32]), &[DType::U32]),
                ("scales", lead(&[g]), FLOATS),
                ("biases", lead(&[g]), FLOATS),
            ]
        }
    })
}

impl QuantizedWeight {
    /// Validates the parts against the format: count, shapes, dtypes.
    pub fn new(
        format: QuantFormat,
        n: usize,
        k: usize,
        experts: Option<usize>,
        parts: Vec<Array>,
    ) -> Result<Self> {
        const OP: &str = "quantized weight";
        check_k(format, k, OP)?;
        let specs = part_specs(format, n, k, experts)?;
        if parts.len() != specs.len() {
            return Err(Error::shape(format!(
                "{OP}: expected {} parts for {format}, found {}",
                specs.len(),
                parts.len()
            )));
        }
        for ((name, shape, dtypes), p) in specs.iter().zip(&parts) {
            if p.shape() != shape.as_slice() {
                return Err(Error::shape(format!(
                    "{OP}: expected {format} {name} of shape {shape:?}, found {:?}",
                    p.shape()
                )));
            }
            if !dtypes.contains(&p.dtype()) {
                return Err(Error::dtype(format!(
                    "{OP}: expected {format} {name} of dtype {dtypes:?}, found {}",
                    p.dtype()
                )));
            }
        }
        if let QuantFormat::Affine { .. } = format {
            if parts[1].dtype() != parts[2].dtype() {
                return Err(Error::dtype(format!(
                    "{OP}: expected scales and biases of one dtype, found {} and {}",
                    parts[1].dtype(),
                    parts[2].dtype()
                )));
            }
        }
        Ok(QuantizedWeight {
            format,
            n,
            k,
            experts,
            parts,
        })
    }

    /// A single GGUF tensor (N, row_bytes) of type `t`.
    pub fn gguf(t: super::GgmlType, n: usize, k: usize, w: Array) -> Result<Self> {
        Self::new(QuantFormat::Gguf(t), n, k, None, vec![w])
    }
}
