//! The common form every format decodes to, one row at a time: per group of 16 elements,
//! unsigned integer codes `u` (0..=255), a scale `s` and an offset `o`, value = s·u + o.
//! Every supported format fits it exactly (scales and offsets are exact in f32), so it serves
//! both as the reference dequantizer and as the input of the integer (VNNI) dot kernels.

use super::{affine, gguf, mxfp4, QuantFormat};
use crate::error::{Error, Result};
use half::{bf16, f16};

/// Elements per scale/offset group of the common form (Q6_K, Q3_K and Q2_K scale per 16).
pub const GROUP: usize = 16;

/// A float row of affine scales or biases, in whatever dtype the checkpoint stores.
#[derive(Clone, Copy)]
pub enum Floats<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
}

impl Floats<'_> {
    #[inline(always)]
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Floats::F32(v) => v[i],
            Floats::F16(v) => v[i].to_f32(),
            Floats::BF16(v) => v[i].to_f32(),
        }
    }
}

/// One row (of K elements) of a quantized matrix, borrowed from its parts.
#[derive(Clone, Copy)]
pub enum RowRef<'a> {
    Gguf(super::GgmlType, &'a [u8]),
    /// Hugging Face layout: blocks (K/32 × 16 bytes), scales (K/32 E8M0 bytes).
    Mxfp4 {
        blocks: &'a [u8],
        scales: &'a [u8],
    },
    /// MLX layout: the row's u32 words as little-endian bytes.
    Affine {
        bits: u8,
        group: usize,
        w: &'a [u8],
        scales: Floats<'a>,
        biases: Floats<'a>,
    },
}

/// Decodes a row of `u.len()` elements; `s` and `o` hold `u.len() / GROUP` entries.
#[inline(always)]
pub fn decode_row(row: RowRef, u: &mut [u8], s: &mut [f32], o: &mut [f32]) -> Result<()> {
    debug_assert!(
        u.len().is_multiple_of(GROUP) && s.len() == u.len() / GROUP && o.len() == s.len()
    );
    match row {
        RowRef::Gguf(t, bytes) => gguf::decode(t, bytes, u, s, o),
        RowRef::Mxfp4 { blocks, scales } => {
            mxfp4::decode_hf(blocks, scales, u, s, o);
            Ok(())
        }
        RowRef::Affine {
            bits,
            group,
            w,
            scales,
            biases,
        } => {
            affine::decode(bits, group, w, scales, biases, u, s, o);
            Ok(())
        }
    }
}

/// Reference dequantization of one row into `out` (K values). Computed in f64 and rounded
/// once, which equals ggml's f32 formulas (their products are exact in f32).
pub fn dequantize_row(row: RowRef, out: &mut [f32]) -> Result<()> {
    let k = out.len();
    let (mut u, mut s, mut o) = (vec![0u8; k], vec![0f32; k / GROUP], vec![0f32; k / GROUP]);
    decode_row(row, &mut u, &mut s, &mut o)?;
    for (i, v) in out.iter_mut().enumerate() {
        let g = i / GROUP;
        *v = (s[g] as f64 * u[i] as f64 + o[g] as f64) as f32;
    }
    Ok(())
}

/// Checks that a format can hold rows of `k` elements.
pub fn check_k(format: QuantFormat, k: usize, op: &str) -> Result<()> {
    let block = match format {
        QuantFormat::Gguf(t) => {
            if !gguf::supported(t) {
                return Err(Error::NotImplemented {
                    op: format!("{op} ({})", t.name()),
                    device: "any device (not a supported quantized GGUF type)".into(),
                });
            }
            t.block_size()
        }
        QuantFormat::Mxfp4 => 32,
        QuantFormat::Affine { bits, group_size } => {
            if !matches!(bits, 2 | 3 | 4 | 5 | 6 | 8) || !matches!(group_size, 32 | 64 | 128) {
                return Err(Error::msg(format!(
                    "{op}: expected affine bits in {{2,3,4,5,6,8}} and group size in {{32,64,128}}, \
                     found bits {bits}, group size {group_size}"
                )));
            }
            group_size as usize
        }
    };
    if k == 0 || !k.is_multiple_of(block) {
        return Err(Error::shape(format!(
            "{op}: expected K a positive multiple of {block} for {format}, found {k}"
        )));
    }
    Ok(())
}
