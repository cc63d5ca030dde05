//! Model files as rmlx-io reads them: safetensors headers, sharded sets through their index
//! JSON (with MLX quantization grouping from a config), and GGUF headers (metadata and tensor
//! tables).

use crate::split::{optional, prefixed, text};
use rmlx_io::{GgufFile, ModelConfig, ModelFiles, SafetensorsFile, SafetensorsSet};
use std::path::Path;
use std::sync::Arc;

/// Arbitrary bytes as a whole safetensors file: header parse, validation and tensor views.
pub fn safetensors_header(data: &[u8]) -> bool {
    let Ok(f) = SafetensorsFile::from_bytes("fuzz.safetensors", Arc::new(data.to_vec())) else {
        return false;
    };
    for t in f.tensors() {
        let _ = f.get(&t.name);
    }
    true
}

/// Arbitrary bytes as a whole GGUF file: header, metadata and tensor table, tensor views.
pub fn gguf_parse(data: &[u8]) -> bool {
    let Ok(f) = GgufFile::from_bytes("fuzz.gguf", Arc::new(data.to_vec())) else {
        return false;
    };
    let _ = f.architecture();
    for (_, v) in f.metadata().iter() {
        let _ = v.to_json(16);
    }
    let _ = f.tensor_infos();
    for t in f.tensors() {
        let _ = f.get(&t.name);
        let _ = f.get_quantized(&t.name);
    }
    true
}

/// The shard files a `safetensors_index` input carries, in field order after the config.
pub const SHARDS: [&str; 3] = ["a.safetensors", "b.safetensors", "c.safetensors"];

/// `model.safetensors.index.json`, `config.json` (empty: none), then the shards `SHARDS`, each
/// length-prefixed (`split::prefixed`): the index is checked against the shards, then the set
/// is grouped into logical (possibly quantized) tensors as a model directory is, and every
/// tensor is read.
pub fn safetensors_index(data: &[u8]) -> bool {
    let [index, config, shards @ ..] = prefixed::<5>(data);
    let set = SafetensorsSet::from_index("fuzz index", &text(index), |name| {
        let Some(i) = SHARDS.iter().position(|s| *s == name) else {
            return Ok(None);
        };
        SafetensorsFile::from_bytes(name, Arc::new(shards[i].to_vec())).map(Some)
    });
    let Ok(set) = set else {
        return false;
    };
    for t in set.tensors() {
        let _ = set.get(&t.name);
    }
    let config = optional(config).and_then(|c| ModelConfig::parse("config.json", &c).ok());
    let Ok(files) = ModelFiles::from_safetensors(Path::new("fuzz"), set, config) else {
        return true;
    };
    for t in files.tensors() {
        let _ = files.get(&t.name);
        let _ = files.get_quantized(&t.name);
    }
    let _ = (files.parameter_count(), files.bytes_by_type());
    let _ = files.metadata_json(16);
    true
}
