//! Replays the committed fuzz corpus (hand-made seeds plus inputs the fuzzers found) through
//! both parsers: each input must give Ok or Err, never a panic.

use rmlx_io::{GgufFile, SafetensorsFile};
use std::path::Path;
use std::sync::Arc;

fn inputs(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus")
        .join(kind);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no corpus in {}", dir.display());
    out
}

#[test]
fn safetensors_corpus_never_panics() {
    let mut ok = 0;
    for (name, bytes) in inputs("safetensors") {
        // Both parsers see every input: a GGUF-shaped input is malformed safetensors.
        let _ = GgufFile::from_bytes(&name, Arc::new(bytes.clone()));
        if let Ok(f) = SafetensorsFile::from_bytes(&name, Arc::new(bytes)) {
            ok += 1;
            for t in f.tensors() {
                let _ = f.get(&t.name);
            }
        }
    }
    assert!(ok > 0, "the seeds should parse");
}

#[test]
fn gguf_corpus_never_panics() {
    let mut ok = 0;
    for (name, bytes) in inputs("gguf") {
        let _ = SafetensorsFile::from_bytes(&name, Arc::new(bytes.clone()));
        if let Ok(f) = GgufFile::from_bytes(&name, Arc::new(bytes)) {
            ok += 1;
            let _ = f.tensor_infos();
            for t in f.tensors() {
                let _ = f.get(&t.name);
                let _ = f.get_quantized(&t.name);
            }
        }
    }
    assert!(ok > 0, "the seeds should parse");
}
