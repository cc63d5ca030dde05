//! Model configs of every supported architecture, through the whole loader. The first input
//! byte picks a set of real (tiny) weights from the test fixtures:
//! - Hugging Face / MLX safetensors: the rest of the input is the `config.json`;
//! - GGUF: the rest is a JSON object of metadata edits (`{"llama.block_count": 3}`; null
//!   removes a key) applied to the file's own metadata, the file rewritten with them.
//!
//! A config that matches its weights loads, and the model then runs two steps through a KV
//! cache of a kind the first byte picks too, so RoPE scaling, sliding windows, quantization
//! settings and cache sizes from the config all get exercised.

use crate::gguf_writer::GgufWriter;
use crate::split::text;
use rmlx_io::{GgufFile, MetaValue, ModelConfig, ModelFiles, SafetensorsFile, SafetensorsSet};
use rmlx_lm::cache::CacheKind;
use rmlx_lm::Logits;
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, OnceLock};

macro_rules! fixture {
    ($dir:literal, $file:literal) => {
        (
            concat!($dir, "/", $file),
            include_bytes!(concat!("../../rmlx-lm/tests/fixtures/", $dir, "/", $file)).as_slice(),
        )
    };
}

/// The weight sets by fixture path; the safetensors ones have a matching config.json next to
/// them (the seed corpus holds those).
pub const WEIGHTS: &[(&str, &[u8])] = &[
    fixture!("hf/llama", "model.safetensors"),
    fixture!("hf/llama3", "model.safetensors"),
    fixture!("hf/mistral", "model.safetensors"),
    fixture!("hf/qwen2", "model.safetensors"),
    fixture!("hf/qwen3", "model.safetensors"),
    fixture!("hf/gpt_oss_gqa3", "model.safetensors"),
    fixture!("formats/llama-mlx4", "model.safetensors"),
    fixture!("formats/qwen2-mlx4", "model.safetensors"),
    fixture!("formats/llama-q8", "model.gguf"),
    fixture!("formats/qwen2-q8", "model.gguf"),
];

/// The weights copied to the heap once (allocations are aligned for every dtype; the bytes
/// embedded in the binary are not).
fn weights(i: usize) -> Arc<Vec<u8>> {
    static COPIES: OnceLock<Vec<Arc<Vec<u8>>>> = OnceLock::new();
    COPIES.get_or_init(|| WEIGHTS.iter().map(|(_, w)| Arc::new(w.to_vec())).collect())[i].clone()
}

/// A JSON value as GGUF metadata: numbers take the type of the value they replace (else u32,
/// i64 or f32), arrays their first element's type. None for what GGUF cannot hold (objects).
fn meta_value(v: &Value, like: Option<&MetaValue>) -> Option<MetaValue> {
    use MetaValue::*;
    Some(match v {
        Value::Bool(b) => Bool(*b),
        Value::String(s) => String(s.clone()),
        Value::Number(n) => {
            let (i, f) = (n.as_i64().unwrap_or(n.as_f64()? as i64), n.as_f64()?);
            match like {
                Some(U8(_)) => U8(i as u8),
                Some(I8(_)) => I8(i as i8),
                Some(U16(_)) => U16(i as u16),
                Some(I16(_)) => I16(i as i16),
                Some(I32(_)) => I32(i as i32),
                Some(U64(_)) => U64(n.as_u64().unwrap_or(i as u64)),
                Some(I64(_)) => I64(i),
                Some(F32(_)) => F32(f as f32),
                Some(F64(_)) => F64(f),
                _ if n.is_f64() => F32(f as f32),
                _ if (0..=u32::MAX as i64).contains(&i) => U32(i as u32),
                _ => I64(i),
            }
        }
        Value::Array(items) => {
            let first = items.first().and_then(|x| meta_value(x, None));
            let like = match like {
                Some(Array(old)) => old.first().cloned().or(first),
                _ => first,
            };
            let items = items.iter().map(|x| meta_value(x, like.as_ref()));
            let items: Vec<MetaValue> = items.collect::<Option<_>>()?;
            // GGUF arrays hold one type.
            if items.iter().any(|x| x.type_name() != items[0].type_name()) {
                return None;
            }
            Array(items)
        }
        Value::Null | Value::Object(_) => return None,
    })
}

/// The GGUF fixture with its metadata edited by `edits`, rewritten.
fn edited_gguf(
    original: &GgufFile,
    bytes: &[u8],
    edits: &serde_json::Map<String, Value>,
) -> Vec<u8> {
    let mut g = GgufWriter::default();
    for (key, value) in original.metadata().iter() {
        match edits.get(key) {
            None => g.kv(key, value),
            Some(Value::Null) => {}
            Some(edit) => g.kv(key, &meta_value(edit, Some(value)).unwrap_or(value.clone())),
        }
    }
    for (key, edit) in edits {
        if original.metadata().get(key).is_none() {
            if let Some(v) = meta_value(edit, None) {
                g.kv(key, &v);
            }
        }
    }
    let h = original.header();
    for t in &h.tensors {
        let start = (h.data_start + t.offset) as usize;
        let data = &bytes[start..start + t.nbytes as usize];
        g.tensor(&t.name, &t.dims, t.ggml_type.id(), data);
    }
    g.bytes(h.alignment)
}

/// The model files for weight set `which` and the rest of the input.
fn files(which: usize, rest: &[u8]) -> Option<ModelFiles> {
    let (name, _) = WEIGHTS[which];
    let path = Path::new(name);
    if name.ends_with(".gguf") {
        let Ok(Value::Object(edits)) = serde_json::from_slice::<Value>(rest) else {
            return None;
        };
        let original = weights(which);
        let file = GgufFile::from_bytes(name, original.clone())
            .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
        let bytes = edited_gguf(&file, &original, &edits);
        let file = GgufFile::from_bytes(name, Arc::new(bytes)).ok()?;
        return Some(ModelFiles::from_gguf(path, file));
    }
    let config = ModelConfig::parse("config.json", &text(rest)).ok()?;
    let _ = (config.architecture(), config.rope(), config.quantization());
    let set = SafetensorsFile::from_bytes("model.safetensors", weights(which))
        .and_then(|f| SafetensorsSet::from_files(vec![f]))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    ModelFiles::from_safetensors(path, set, Some(config)).ok()
}

/// Byte 0: weight set (`WEIGHTS`) and cache kind; the rest: config.json or GGUF metadata edits.
pub fn run(data: &[u8]) -> bool {
    let Some((&pick, rest)) = data.split_first() else {
        return false;
    };
    let which = pick as usize % WEIGHTS.len();
    let cache_kind = CacheKind::ALL[pick as usize / WEIGHTS.len() % CacheKind::ALL.len()];
    let Some(files) = files(which, rest) else {
        return false;
    };
    let Ok(loaded) = rmlx_lm::load::model_from_files(Arc::new(files)) else {
        return false;
    };
    let model = loaded.model;
    let Ok(mut cache) = model.make_cache_of(cache_kind) else {
        return true;
    };
    for tokens in [&[1u32, 2, 3][..], &[4]] {
        match model.forward(tokens, &mut cache, Logits::Last) {
            Ok(logits) => {
                let _ = logits.to_vec::<f32>();
            }
            Err(_) => break,
        }
    }
    true
}
