//! Borrowing rows of a quantized weight from the evaluated parts of a primitive.

use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::quant::{Floats, QuantFormat, RowRef};

/// The parts of a weight, contiguous, kept alive while rows are borrowed from them.
pub struct Parts {
    format: QuantFormat,
    k: usize,
    data: Vec<(Data, usize, DType)>,
}

/// Rows of a weight: `row(e, r)` is row r of expert e (e = 0 without experts).
pub struct WeightView<'a> {
    format: QuantFormat,
    k: usize,
    n: usize,
    bytes: Vec<&'a [u8]>,
    floats: Vec<Floats<'a>>,
}

impl Parts {
    pub fn new(format: QuantFormat, k: usize, args: &[Arg]) -> Result<Self> {
        let data = args
            .iter()
            .map(|a| Ok((super::super::contiguous(a)?, a.numel(), a.dtype)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Parts { format, k, data })
    }

    pub fn view(&self, n: usize) -> Result<WeightView<'_>> {
        let (mut bytes, mut floats) = (Vec::new(), Vec::new());
        for (d, numel, dtype) in &self.data {
            match dtype {
                DType::U8 => bytes.push(d.host_slice::<u8>(*numel)?),
                DType::U32 => {
                    let w = d.host_slice::<u32>(*numel)?;
                    // SAFETY: reading u32s as their bytes (little-endian, as MLX writes them).
                    bytes.push(unsafe {
                        std::slice::from_raw_parts(w.as_ptr() as *const u8, w.len() * 4)
                    });
                }
                DType::F32 => floats.push(Floats::F32(d.host_slice(*numel)?)),
                DType::F16 => floats.push(Floats::F16(d.host_slice(*numel)?)),
                DType::BF16 => floats.push(Floats::BF16(d.host_slice(*numel)?)),
                other => {
                    return Err(Error::dtype(format!(
                        "quantized weight: expected u8, u32 or float parts, found {other}"
                    )))
                }
            }
        }
        Ok(WeightView {
            format: self.format,
            k: self.k,
            n,
            bytes,
            floats,
        })
    }
}

fn sub<'a>(f: Floats<'a>, start: usize, len: usize) -> Floats<'a> {
    match f {
        Floats::F32(v) => Floats::F32(&v[start..start + len]),
        Floats::F16(v) => Floats::F16(&v[start..start + len]),
        Floats::BF16(v) => Floats::BF16(&v[start..start + len]),
    }
}

impl<'a> WeightView<'a> {
    pub fn n(&self) -> usize {
        self.n
    }

    pub fn format(&self) -> QuantFormat {
        self.format
    }

    pub fn row(&self, e: usize, r: usize) -> RowRef<'a> {
        let i = e * self.n + r;
        let k = self.k;
        match self.format {
            QuantFormat::Gguf(t) => {
                let rb = t.row_bytes(k).expect("validated by the op");
                RowRef::Gguf(t, &self.bytes[0][i * rb..][..rb])
            }
            QuantFormat::Mxfp4 => RowRef::Mxfp4 {
                blocks: &self.bytes[0][i * k / 2..][..k / 2],
                scales: &self.bytes[1][i * k / 32..][..k / 32],
            },
            QuantFormat::Affine { bits, group_size } => {
                let (wb, g) = (k * bits as usize / 8, k / group_size as usize);
                RowRef::Affine {
                    bits,
                    group: group_size as usize,
                    w: &self.bytes[0][i * wb..][..wb],
                    scales: sub(self.floats[0], i * g, g),
                    biases: sub(self.floats[1], i * g, g),
                }
            }
        }
    }
}
