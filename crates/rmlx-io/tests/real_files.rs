//! A sharded gpt-oss checkpoint as Hugging Face lays it out (MXFP4 experts, YaRN rope): the
//! committed tiny fixture of rmlx-lm's reference tests (made by transformers, see
//! crates/rmlx-lm/tests/fixtures/hf). The SmolLM2 GGUF checks live with the default model's
//! fetch, in crates/rmlx-lm/tests/default_model_files.rs.

use rmlx_core::QuantFormat;
use rmlx_io::{ModelFiles, RopeScaling, TensorType};
use std::path::PathBuf;

fn gpt_oss_tiny() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../rmlx-lm/tests/fixtures/hf/gpt_oss_tiny_sharded");
    assert!(p.is_dir(), "fixture missing: {}", p.display());
    p
}

#[test]
fn gpt_oss_tiny_safetensors() {
    let m = ModelFiles::open(gpt_oss_tiny()).unwrap();
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
