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
    /// Bytes per row of the packed codes (GGUF blocks, MXFP4 blocks, affine words).
    rb: usize,
    /// Whole rows every part holds (the SIMD kernels read rows by raw pointer).
    rows: usize,
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
        let (rb, rows) = row_layout(self.format, self.k, &bytes, &floats)?;
        Ok(WeightView {
            format: self.format,
            k: self.k,
            n,
            rb,
            rows,
            bytes,
            floats,
        })
    }
}

/// Bytes per packed row and the whole rows that every part holds, or an error naming what
/// does not fit the format (K not a whole number of blocks, parts missing).
fn row_layout(
    format: QuantFormat,
    k: usize,
    bytes: &[&[u8]],
    floats: &[Floats],
) -> Result<(usize, usize)> {
    let bad = |what: String| Error::format(format!("quantized weight ({format}): {what}"));
    let rows_of = |len: usize, per: usize| len.checked_div(per).unwrap_or(0);
    let need = |nb: usize, nf: usize| {
        if bytes.len() < nb || floats.len() < nf {
            Err(bad(format!(
                "expected {nb} packed and {nf} float parts, found {} and {}",
                bytes.len(),
                floats.len()
            )))
        } else {
            Ok(())
        }
    };
    match format {
        QuantFormat::Gguf(t) => {
            need(1, 0)?;
            let rb = t.row_bytes(k)?;
            Ok((rb, rows_of(bytes[0].len(), rb)))
        }
        QuantFormat::Mxfp4 => {
            need(2, 0)?;
            if !k.is_multiple_of(32) {
                return Err(bad(format!("K = {k} is not a multiple of 32")));
            }
            let rows = rows_of(bytes[0].len(), k / 2).min(rows_of(bytes[1].len(), k / 32));
            Ok((k / 2, rows))
        }
        QuantFormat::Affine { bits, group_size } => {
            need(1, 2)?;
            let g = group_size as usize;
            if g == 0 || !k.is_multiple_of(g) || !(k * bits as usize).is_multiple_of(8) {
                return Err(bad(format!(
                    "K = {k} does not fit groups of {g} at {bits} bits"
                )));
            }
            let (rb, ng) = (k * bits as usize / 8, k / g);
            let rows = rows_of(bytes[0].len(), rb)
                .min(rows_of(floats[0].len(), ng))
                .min(rows_of(floats[1].len(), ng));
            Ok((rb, rows))
        }
    }
}

fn sub<'a>(f: Floats<'a>, start: usize, len: usize) -> Floats<'a> {
    match f {
        Floats::F32(v) => Floats::F32(&v[start..start + len]),
        Floats::F16(v) => Floats::F16(&v[start..start + len]),
        Floats::BF16(v) => Floats::BF16(&v[start..start + len]),
    }
}

impl Floats<'_> {
    fn len(&self) -> usize {
        match self {
            Floats::F32(v) => v.len(),
            Floats::F16(v) => v.len(),
            Floats::BF16(v) => v.len(),
        }
    }
}

impl<'a> WeightView<'a> {
    pub fn n(&self) -> usize {
        self.n
    }

    pub fn k(&self) -> usize {
        self.k
    }

    /// Whole rows (over all experts) that the parts hold.
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn format(&self) -> QuantFormat {
        self.format
    }

    /// Row r of expert e; panics past `rows()` (callers check their indices against it).
    pub fn row(&self, e: usize, r: usize) -> RowRef<'a> {
        let i = e * self.n + r;
        let (k, rb) = (self.k, self.rb);
        match self.format {
            QuantFormat::Gguf(t) => RowRef::Gguf(t, &self.bytes[0][i * rb..][..rb]),
            QuantFormat::Mxfp4 => RowRef::Mxfp4 {
                blocks: &self.bytes[0][i * rb..][..rb],
                scales: &self.bytes[1][i * k / 32..][..k / 32],
            },
            QuantFormat::Affine { group_size, bits } => {
                let (wb, g) = (rb, k / group_size as usize);
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
