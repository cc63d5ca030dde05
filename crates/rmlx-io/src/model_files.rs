//! One entry point for every model layout: a `.gguf` file, a `.safetensors` file, or a model
//! directory (sharded or single safetensors with config.json, or a lone GGUF). Opening reads
//! headers only; tensor data is touched when an array is evaluated.

use crate::config::ModelConfig;
use crate::gguf::GgufFile;
use crate::quantized::{self, Parts};
use crate::sharded::SafetensorsSet;
use crate::tensor::{QuantizedTensor, TensorInfo, TensorType};
use rmlx_core::{Array, Error, QuantFormat, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Gguf,
    Safetensors,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Gguf => "gguf",
            Format::Safetensors => "safetensors",
        }
    }
}

enum Source {
    Gguf(GgufFile),
    Safetensors {
        set: SafetensorsSet,
        config: Option<ModelConfig>,
        parts: HashMap<String, (QuantFormat, Parts)>,
    },
}

pub struct ModelFiles {
    path: PathBuf,
    source: Source,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
}

fn ext_is(p: &Path, ext: &str) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

impl ModelFiles {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        // Name the path unless the error already does (file parsers prefix their path).
        Self::open_inner(path).map_err(|e| {
            let shown = path.display().to_string();
            if e.to_string().contains(&shown) {
                e
            } else {
                e.context(shown)
            }
        })
    }

    fn open_inner(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Self::open_dir(path);
        }
        if !path.exists() {
            return Err(Error::format(
                "model files: expected a file or directory, found nothing there",
            ));
        }
        if ext_is(path, "gguf") {
            return Ok(Self::from_gguf(path, GgufFile::open(path)?));
        }
        if ext_is(path, "safetensors") {
            // A lone file may sit next to its config.json (MLX quantization lives there).
            let dir = path.parent().filter(|d| d.join("config.json").is_file());
            let config = dir.map(ModelConfig::load_dir).transpose()?;
            return Self::from_safetensors(path, SafetensorsSet::open_file(path)?, config);
        }
        Err(Error::format(format!(
            "model files: expected a .gguf or .safetensors file or a model directory, found '{}'",
            path.display()
        )))
    }

    fn open_dir(dir: &Path) -> Result<Self> {
        let mut st = false;
        let mut ggufs = Vec::new();
        let rd = std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        for p in rd.filter_map(|e| e.ok().map(|e| e.path())) {
            st |= ext_is(&p, "safetensors");
            if ext_is(&p, "gguf") {
                ggufs.push(p);
            }
        }
        if !st && ggufs.len() == 1 {
            return Ok(Self::from_gguf(dir, GgufFile::open(&ggufs[0])?));
        }
        let config = ModelConfig::load_dir(dir)?;
        Self::from_safetensors(dir, SafetensorsSet::open_dir(dir)?, Some(config))
    }

    /// A GGUF file already opened (or parsed from memory); `path` names the model in errors.
    pub fn from_gguf(path: &Path, file: GgufFile) -> Self {
        let tensors = file.tensor_infos();
        Self::assemble(path, Source::Gguf(file), tensors)
    }

    /// A safetensors set already opened (or built in memory) with its config; `path` names the
    /// model in errors.
    pub fn from_safetensors(
        path: &Path,
        set: SafetensorsSet,
        config: Option<ModelConfig>,
    ) -> Result<Self> {
        let q = config
            .as_ref()
            .map(ModelConfig::quantization)
            .transpose()?
            .flatten();
        let g = quantized::group(&set, q.as_ref())?;
        Ok(Self::assemble(
            path,
            Source::Safetensors {
                set,
                config,
                parts: g.parts,
            },
            g.tensors,
        ))
    }

    fn assemble(path: &Path, source: Source, tensors: Vec<TensorInfo>) -> Self {
        let index = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        ModelFiles {
            path: path.to_path_buf(),
            source,
            tensors,
            index,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> Format {
        match self.source {
            Source::Gguf(_) => Format::Gguf,
            Source::Safetensors { .. } => Format::Safetensors,
        }
    }

    /// GGUF `general.architecture`; config.json `model_type`, else its first `architectures`.
    pub fn architecture(&self) -> Option<&str> {
        match &self.source {
            Source::Gguf(f) => f.architecture(),
            Source::Safetensors { config, .. } => {
                config.as_ref().and_then(ModelConfig::architecture)
            }
        }
    }

    /// Logical tensors (quantized groups appear once, under their logical name).
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Tensors as stored in the files (each part of a quantized group counts).
    pub fn stored_tensor_count(&self) -> usize {
        match &self.source {
            Source::Gguf(f) => f.tensors().len(),
            Source::Safetensors { set, .. } => set.len(),
        }
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    pub fn gguf(&self) -> Option<&GgufFile> {
        match &self.source {
            Source::Gguf(f) => Some(f),
            _ => None,
        }
    }

    pub fn config(&self) -> Option<&ModelConfig> {
        match &self.source {
            Source::Safetensors { config, .. } => config.as_ref(),
            _ => None,
        }
    }

    pub fn safetensors(&self) -> Option<&SafetensorsSet> {
        match &self.source {
            Source::Safetensors { set, .. } => Some(set),
            _ => None,
        }
    }

    /// Safetensors `__metadata__` of every file, merged.
    pub fn safetensors_metadata(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(set) = self.safetensors() {
            for f in set.files() {
                out.extend(f.metadata().iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        out
    }

    /// All metadata as JSON: GGUF key/values (arrays longer than `max_array` shown as their
    /// length), or `config` (config.json) and `safetensors` (`__metadata__`) for safetensors.
    pub fn metadata_json(&self, max_array: usize) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        match &self.source {
            Source::Gguf(g) => {
                out.insert("gguf.version".into(), g.version().into());
                for (k, v) in g.metadata().iter() {
                    out.insert(k.to_string(), v.to_json(max_array));
                }
            }
            Source::Safetensors { set, config, .. } => {
                if let Some(c) = config {
                    out.insert("config".into(), c.value.clone());
                }
                let st = self.safetensors_metadata();
                if !st.is_empty() {
                    out.insert(
                        "safetensors".into(),
                        st.into_iter()
                            .map(|(k, v)| (k, serde_json::Value::String(v)))
                            .collect(),
                    );
                }
                out.insert("files".into(), set.files().len().into());
            }
        }
        serde_json::Value::Object(out)
    }

    /// Logical parameters: quantized tensors count their dequantized elements.
    pub fn parameter_count(&self) -> u64 {
        self.tensors.iter().map(TensorInfo::numel).sum()
    }

    /// Stored bytes per dtype or quantization format.
    pub fn bytes_by_type(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for t in &self.tensors {
            *out.entry(t.ty.to_string()).or_insert(0) += t.nbytes;
        }
        out
    }

    fn unknown(&self, name: &str) -> Error {
        Error::format(format!(
            "model files {}: no tensor named '{name}'",
            self.path.display()
        ))
    }

    /// A plain tensor as a zero-copy array. Stored parts of quantized groups (e.g.
    /// `X.scales`, `P_blocks`) can be read this way too.
    pub fn get(&self, name: &str) -> Result<Array> {
        if let Some(t) = self.tensor(name) {
            if let TensorType::Quantized(q) = t.ty {
                return Err(Error::format(format!(
                    "model files {}: tensor '{name}': expected a plain tensor, found {q} (use get_quantized)",
                    self.path.display()
                )));
            }
        }
        match &self.source {
            Source::Gguf(f) => f.get(name),
            Source::Safetensors { set, .. } if set.contains(name) => set.get(name),
            Source::Safetensors { .. } => Err(self.unknown(name)),
        }
    }

    pub fn get_quantized(&self, name: &str) -> Result<QuantizedTensor> {
        let t = self.tensor(name).ok_or_else(|| self.unknown(name))?;
        match &self.source {
            Source::Gguf(f) => f.get_quantized(name),
            Source::Safetensors { set, parts, .. } => match parts.get(name) {
                Some((format, p)) => quantized::load(set, name, *format, p, &t.shape),
                None => Err(Error::format(format!(
                    "model files {}: tensor '{name}': expected a quantized tensor, found {}",
                    self.path.display(),
                    t.ty
                ))),
            },
        }
    }
}
