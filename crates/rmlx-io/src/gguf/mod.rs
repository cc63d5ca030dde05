//! GGUF v2/v3 files (our own parser: loading is core to the product, and every size in the
//! file is checked against the real file length before anything is allocated).

mod meta;
mod parse;
mod reader;

pub use meta::{MetaValue, Metadata};
pub use parse::{parse, GgufHeader, GgufTensor, DEFAULT_ALIGNMENT, MAX_DIMS};

use crate::bytes::map_and_parse;
use crate::tensor::{QuantizedTensor, TensorInfo, TensorType};
use rmlx_core::buffer::SharedBytes;
use rmlx_core::error::ResultExt;
use rmlx_core::{Array, DType, Error, GgmlType, QuantFormat, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A mapped GGUF file with a validated header.
pub struct GgufFile {
    path: PathBuf,
    bytes: SharedBytes,
    header: GgufHeader,
    index: HashMap<String, usize>,
}

/// How a GGML type is exposed: a plain dtype, a packed quantized format, or unsupported.
pub fn tensor_type(t: GgmlType) -> TensorType {
    match t {
        GgmlType::F32 => TensorType::Dense(DType::F32),
        GgmlType::F16 => TensorType::Dense(DType::F16),
        GgmlType::BF16 => TensorType::Dense(DType::BF16),
        GgmlType::I32 => TensorType::Dense(DType::I32),
        GgmlType::I8 | GgmlType::I16 | GgmlType::I64 | GgmlType::F64 => {
            TensorType::Unsupported(t.name())
        }
        q => TensorType::Quantized(QuantFormat::Gguf(q)),
    }
}

impl GgufFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        map_and_parse(path, |bytes| Self::from_bytes(path, bytes))
    }

    /// Parses bytes already in memory; `path` only names the source in errors.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: SharedBytes) -> Result<Self> {
        let path = path.into();
        let header = parse((*bytes).as_ref()).with_context(|| path.display().to_string())?;
        let index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            path,
            bytes,
            header,
            index,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.header.version
    }

    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    pub fn tensors(&self) -> &[GgufTensor] {
        &self.header.tensors
    }

    pub fn architecture(&self) -> Option<&str> {
        self.metadata()
            .get("general.architecture")
            .and_then(|v| v.as_str())
    }

    pub fn tensor(&self, name: &str) -> Result<&GgufTensor> {
        self.index
            .get(name)
            .map(|&i| &self.header.tensors[i])
            .ok_or_else(|| {
                Error::format(format!(
                    "gguf {}: no tensor named '{name}'",
                    self.path.display()
                ))
            })
    }

    pub fn tensor_infos(&self) -> Vec<TensorInfo> {
        self.tensors()
            .iter()
            .map(|t| TensorInfo {
                name: t.name.clone(),
                shape: t.shape.clone(),
                ty: tensor_type(t.ggml_type),
                nbytes: t.nbytes,
            })
            .collect()
    }

    fn start(&self, t: &GgufTensor) -> usize {
        // In range: parse() checked data_start + offset + nbytes <= file length.
        (self.header.data_start + t.offset) as usize
    }

    /// A plain tensor (F32, F16, BF16, I32) as a zero-copy array.
    pub fn get(&self, name: &str) -> Result<Array> {
        let t = self.tensor(name)?;
        match tensor_type(t.ggml_type) {
            TensorType::Dense(dtype) => {
                Array::from_shared_bytes(self.bytes.clone(), self.start(t), &t.shape, dtype)
            }
            other => Err(Error::format(format!(
                "gguf {}: tensor '{name}': expected a plain tensor, found {other} (use get_quantized)",
                self.path.display()
            ))),
        }
    }

    /// A quantized tensor as a zero-copy u8 array (rows, row_bytes).
    pub fn get_quantized(&self, name: &str) -> Result<QuantizedTensor> {
        let t = self.tensor(name)?;
        let TensorType::Quantized(format) = tensor_type(t.ggml_type) else {
            return Err(Error::format(format!(
                "gguf {}: tensor '{name}': expected a quantized tensor, found {}",
                self.path.display(),
                t.ggml_type.name()
            )));
        };
        let rows = t.rows();
        let row_bytes = t
            .ggml_type
            .row_bytes(t.shape.last().copied().unwrap_or(1))?;
        let packed = Array::from_shared_bytes(
            self.bytes.clone(),
            self.start(t),
            &[rows, row_bytes],
            DType::U8,
        )?;
        Ok(QuantizedTensor {
            name: name.to_string(),
            shape: t.shape.clone(),
            format,
            packed,
            scales: None,
            biases: None,
        })
    }
}
