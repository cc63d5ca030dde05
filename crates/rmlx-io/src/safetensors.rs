//! Safetensors: an 8-byte little-endian header length, a JSON header, then raw tensor data.
//!
//! The header is parsed with serde_json into our own types rather than with the `safetensors`
//! crate: its metadata parser silently keeps the last of duplicate names (it collects into a
//! HashMap), rejects files with gaps between tensors that we can load fine, and its error enum
//! does not say which tensor or what was found. Our validation reports the tensor, the
//! expected value and the found value.

use crate::bytes::map_and_parse;
use crate::tensor::checked_numel;
use rmlx_core::buffer::SharedBytes;
use rmlx_core::error::ResultExt;
use rmlx_core::{Array, DType, Error, Result};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// Headers are small (a few MB for the largest checkpoints); the cap guards against a corrupt
/// length making us parse or allocate gigabytes. The `safetensors` crate uses the same limit.
pub const MAX_HEADER_BYTES: u64 = 100 << 20;

/// One tensor of the header; offsets are relative to the start of the data section.
#[derive(Clone, Debug, PartialEq)]
pub struct StTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub begin: usize,
    pub end: usize,
}

/// A validated header: tensors in file order, `__metadata__`, and where the data starts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Header {
    pub tensors: Vec<StTensor>,
    pub metadata: BTreeMap<String, String>,
    pub data_start: usize,
}

#[derive(Deserialize)]
#[serde(expecting = "a tensor entry {dtype, shape, data_offsets}")]
struct RawEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// The header map, read entry by entry so duplicate tensor names are caught (a plain map
/// deserialization would keep the last one silently).
struct RawHeader {
    entries: Vec<(String, RawEntry)>,
    metadata: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHeader;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<RawHeader, A::Error> {
                let mut seen = HashSet::new();
                let mut out = RawHeader {
                    entries: Vec::new(),
                    metadata: BTreeMap::new(),
                };
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("duplicate entry '{key}'")));
                    }
                    if key == "__metadata__" {
                        out.metadata = map.next_value()?;
                    } else {
                        let entry: RawEntry = map.next_value()?;
                        out.entries.push((key, entry));
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

fn parse_dtype(name: &str, s: &str) -> Result<DType> {
    Ok(match s {
        "BOOL" => DType::Bool,
        "U8" => DType::U8,
        "U32" => DType::U32,
        "I32" => DType::I32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F32" => DType::F32,
        "I8" | "I16" | "U16" | "I64" | "U64" | "F64" | "F8_E4M3" | "F8_E5M2" | "F8_E8M0"
        | "F4" | "F6_E2M3" | "F6_E3M2" | "C64" => {
            return Err(Error::format(format!(
                "safetensors: tensor '{name}': unsupported dtype {s} (expected one of BOOL, U8, U32, I32, F16, BF16, F32)"
            )))
        }
        other => {
            return Err(Error::format(format!(
                "safetensors: tensor '{name}': expected a dtype like F32 or BF16, found unknown dtype '{other}'"
            )))
        }
    })
}

/// Parses and validates the header of a whole safetensors file held in `bytes`.
pub fn parse_header(bytes: &[u8]) -> Result<Header> {
    if bytes.len() < 8 {
        return Err(Error::format(format!(
            "safetensors: expected at least 8 bytes (header length), found a file of {} bytes",
            bytes.len()
        )));
    }
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[..8]);
    let header_len = u64::from_le_bytes(buf);
    let available = bytes.len() as u64 - 8;
    if header_len > available {
        return Err(Error::format(format!(
            "safetensors: header length {header_len} runs past the end of the file ({available} bytes after the length field)"
        )));
    }
    if header_len > MAX_HEADER_BYTES {
        return Err(Error::format(format!(
            "safetensors: expected a header of at most {MAX_HEADER_BYTES} bytes, found {header_len}"
        )));
    }
    let data_start = 8 + header_len as usize;
    let json = &bytes[8..data_start];
    let raw: RawHeader = serde_json::from_slice(json)
        .map_err(|e| Error::format(format!("safetensors: invalid JSON header: {e}")))?;
    let data_len = bytes.len() - data_start;

    let mut tensors = Vec::with_capacity(raw.entries.len());
    for (name, e) in raw.entries {
        let dtype = parse_dtype(&name, &e.dtype)?;
        let nbytes = checked_numel(&e.shape).and_then(|n| n.checked_mul(dtype.size()));
        let Some(nbytes) = nbytes else {
            return Err(Error::format(format!(
                "safetensors: tensor '{name}': shape {:?} overflows the element count",
                e.shape
            )));
        };
        let [begin, end] = e.data_offsets;
        if begin > end {
            return Err(Error::format(format!(
                "safetensors: tensor '{name}': data_offsets reversed, expected begin <= end, found [{begin}, {end}]"
            )));
        }
        if end > data_len as u64 {
            return Err(Error::format(format!(
                "safetensors: tensor '{name}': data_offsets [{begin}, {end}] past the end of the data section ({data_len} bytes)"
            )));
        }
        if end - begin != nbytes as u64 {
            return Err(Error::format(format!(
                "safetensors: tensor '{name}': expected {nbytes} bytes for {} {:?}, found data_offsets spanning {}",
                e.dtype,
                e.shape,
                end - begin
            )));
        }
        tensors.push(StTensor {
            name,
            dtype,
            shape: e.shape,
            begin: begin as usize,
            end: end as usize,
        });
    }
    check_overlaps(&tensors)?;
    Ok(Header {
        tensors,
        metadata: raw.metadata,
        data_start,
    })
}

fn check_overlaps(tensors: &[StTensor]) -> Result<()> {
    let mut order: Vec<&StTensor> = tensors.iter().filter(|t| t.end > t.begin).collect();
    order.sort_by_key(|t| t.begin);
    for w in order.windows(2) {
        if w[1].begin < w[0].end {
            return Err(Error::format(format!(
                "safetensors: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap",
                w[0].name, w[0].begin, w[0].end, w[1].name, w[1].begin, w[1].end
            )));
        }
    }
    Ok(())
}

/// A mapped safetensors file with a validated header.
pub struct SafetensorsFile {
    path: PathBuf,
    bytes: SharedBytes,
    header: Header,
    index: HashMap<String, usize>,
}

impl SafetensorsFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        map_and_parse(path, |bytes| Self::from_bytes(path, bytes))
    }

    /// Parses bytes already in memory; `path` only names the source in errors.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: SharedBytes) -> Result<Self> {
        let path = path.into();
        let header = parse_header((*bytes).as_ref()).with_context(|| path.display().to_string())?;
        let index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(SafetensorsFile {
            path,
            bytes,
            header,
            index,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn tensors(&self) -> &[StTensor] {
        &self.header.tensors
    }

    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.header.metadata
    }

    pub fn info(&self, name: &str) -> Option<&StTensor> {
        self.index.get(name).map(|&i| &self.header.tensors[i])
    }

    /// The tensor's bytes viewed with another dtype and shape of the same byte size (e.g.
    /// packed u32 quantized weights as bytes).
    pub fn get_as(&self, name: &str, dtype: DType, shape: &[usize]) -> Result<Array> {
        let t = self.info(name).ok_or_else(|| {
            Error::format(format!(
                "safetensors {}: no tensor named '{name}'",
                self.path.display()
            ))
        })?;
        let n = checked_numel(shape).and_then(|n| n.checked_mul(dtype.size()));
        if n != Some(t.end - t.begin) {
            return Err(Error::format(format!(
                "safetensors {}: tensor '{name}': expected a view of {} bytes, found {dtype} {shape:?}",
                self.path.display(),
                t.end - t.begin
            )));
        }
        Array::from_shared_bytes(
            self.bytes.clone(),
            self.header.data_start + t.begin,
            shape,
            dtype,
        )
    }

    /// A zero-copy array viewing the tensor's bytes in the mapping.
    pub fn get(&self, name: &str) -> Result<Array> {
        let t = self.info(name).ok_or_else(|| {
            Error::format(format!(
                "safetensors {}: no tensor named '{name}'",
                self.path.display()
            ))
        })?;
        Array::from_shared_bytes(
            self.bytes.clone(),
            self.header.data_start + t.begin,
            &t.shape,
            t.dtype,
        )
        .with_context(|| format!("safetensors {}: tensor '{name}'", self.path.display()))
    }
}
