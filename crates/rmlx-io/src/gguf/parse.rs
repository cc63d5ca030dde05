//! GGUF v2/v3 header: magic, version, counts, metadata, tensor infos, aligned data section.
//! Everything is checked against the input length before it is trusted.

use super::meta::{MetaValue, Metadata};
use super::reader::Reader;
use rmlx_core::error::ResultExt;
use rmlx_core::{Error, GgmlType, Result};
use std::collections::HashSet;

pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most 4 dimensions (GGML_MAX_DIMS).
pub const MAX_DIMS: usize = 4;

/// One tensor as the file describes it. `dims` are GGUF's (innermost first); `shape` is ours
/// (row-major, outermost first). `offset` is relative to the data section.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufTensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub shape: Vec<usize>,
    pub ggml_type: GgmlType,
    pub offset: u64,
    pub nbytes: u64,
}

impl GgufTensor {
    /// Rows of the packed (rows, row_bytes) view: every dim but the innermost.
    pub fn rows(&self) -> usize {
        // parse() checked the product of the dims; saturate for hand-built values.
        self.shape
            .iter()
            .rev()
            .skip(1)
            .fold(1usize, |a, &d| a.saturating_mul(d))
    }
}

#[derive(Clone, Debug)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<GgufTensor>,
    pub alignment: u64,
    pub data_start: u64,
}

pub fn parse(bytes: &[u8]) -> Result<GgufHeader> {
    let mut r = Reader::new(bytes);
    let magic = r.take(4, &"magic")?;
    if magic != GGUF_MAGIC {
        return Err(Error::format(format!(
            "gguf: expected magic \"GGUF\", found {:?}",
            String::from_utf8_lossy(magic)
        )));
    }
    let version = r.u32(&"version")?;
    match version {
        2 | 3 => {}
        1 => return Err(Error::format("gguf: version 1 is not supported (expected 2 or 3)")),
        v if v.swap_bytes() <= 3 => {
            return Err(Error::format(format!(
                "gguf: expected a little-endian file (version 2 or 3), found version {v} (a big-endian file?)"
            )))
        }
        v => return Err(Error::format(format!("gguf: expected version 2 or 3, found {v}"))),
    }
    // Minimum encodings: a tensor info is name len (8) + n_dims (4) + type (4) + offset (8);
    // a key/value is key len (8) + value type (4) + one byte of value.
    let n_tensors_raw = r.u64(&"tensor count")?;
    let n_kv = r.count(13, &"metadata key/value count")?;
    let mut metadata = Metadata::default();
    for i in 0..n_kv {
        let key = r.utf8(&format_args!("metadata key #{i}"))?;
        let ty = r.u32(&format_args!("value type of '{key}'"))?;
        let value = MetaValue::read(&mut r, ty, &key, 0)?;
        if !metadata.insert(key.clone(), value) {
            return Err(Error::format(format!(
                "gguf: duplicate metadata key '{key}'"
            )));
        }
    }
    let left = r.remaining() as u64;
    if n_tensors_raw.checked_mul(24).is_none_or(|need| need > left) {
        return Err(Error::format(format!(
            "gguf: tensor count {n_tensors_raw} cannot fit in the {left} bytes left in the file"
        )));
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_int() {
            Some(a) if a > 0 && a <= 1 << 30 && (a & (a - 1)) == 0 => a as u64,
            _ => {
                return Err(Error::format(format!(
                    "gguf: general.alignment: expected a power of two, found {} {}",
                    v.type_name(),
                    v.to_json(4)
                )))
            }
        },
    };

    let mut tensors = Vec::with_capacity(n_tensors_raw as usize);
    let mut names = HashSet::new();
    for i in 0..n_tensors_raw {
        let t = read_tensor_info(&mut r, i)?;
        if !names.insert(t.name.clone()) {
            return Err(Error::format(format!(
                "gguf: duplicate tensor name '{}'",
                t.name
            )));
        }
        tensors.push(t);
    }
    let pos = r.pos() as u64;
    let data_start = pos.div_ceil(alignment) * alignment;
    check_data(&tensors, alignment, data_start, bytes.len() as u64)?;
    Ok(GgufHeader {
        version,
        metadata,
        tensors,
        alignment,
        data_start,
    })
}

fn read_tensor_info(r: &mut Reader, i: u64) -> Result<GgufTensor> {
    let name = r.utf8(&format_args!("name of tensor #{i}"))?;
    let what = format!("tensor '{name}'");
    let n_dims = r.u32(&format_args!("{what}: n_dims"))? as usize;
    if n_dims > MAX_DIMS {
        return Err(Error::format(format!(
            "gguf: {what}: expected at most {MAX_DIMS} dimensions, found {n_dims}"
        )));
    }
    let mut dims = Vec::with_capacity(n_dims);
    for _ in 0..n_dims {
        dims.push(r.u64(&format_args!("{what}: dims"))?);
    }
    let type_id = r.u32(&format_args!("{what}: type"))?;
    let offset = r.u64(&format_args!("{what}: offset"))?;
    let ggml_type = GgmlType::from_id(type_id).context(format!("gguf: {what}"))?;

    let shape: Vec<usize> = dims
        .iter()
        .rev()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::format(format!("gguf: {what}: dims {dims:?} do not fit in usize")))?;
    let overflow = || {
        Error::format(format!(
            "gguf: {what}: dims {dims:?} overflow the element count"
        ))
    };
    let numel = crate::tensor::checked_numel(&shape).ok_or_else(overflow)?;
    let ne0 = shape.last().copied().unwrap_or(1);
    let row_bytes = ggml_type.row_bytes(ne0).context(format!("gguf: {what}"))?;
    let rows = numel.checked_div(ne0).unwrap_or(0);
    let nbytes = row_bytes.checked_mul(rows).ok_or_else(overflow)? as u64;
    Ok(GgufTensor {
        name,
        dims,
        shape,
        ggml_type,
        offset,
        nbytes,
    })
}

fn check_data(
    tensors: &[GgufTensor],
    alignment: u64,
    data_start: u64,
    file_len: u64,
) -> Result<()> {
    let data_len = file_len.saturating_sub(data_start);
    for t in tensors {
        if !t.offset.is_multiple_of(alignment) {
            return Err(Error::format(format!(
                "gguf: tensor '{}': expected an offset aligned to {alignment} bytes, found {}",
                t.name, t.offset
            )));
        }
        if t.offset
            .checked_add(t.nbytes)
            .is_none_or(|end| end > data_len)
        {
            return Err(Error::format(format!(
                "gguf: tensor '{}': data [{}, {}+{}) past the end of the data section ({data_len} bytes)",
                t.name, t.offset, t.offset, t.nbytes
            )));
        }
    }
    let mut order: Vec<&GgufTensor> = tensors.iter().filter(|t| t.nbytes > 0).collect();
    order.sort_by_key(|t| t.offset);
    for w in order.windows(2) {
        if w[1].offset < w[0].offset + w[0].nbytes {
            return Err(Error::format(format!(
                "gguf: tensors '{}' [{}, +{}) and '{}' [{}, +{}) overlap",
                w[0].name, w[0].offset, w[0].nbytes, w[1].name, w[1].offset, w[1].nbytes
            )));
        }
    }
    Ok(())
}
