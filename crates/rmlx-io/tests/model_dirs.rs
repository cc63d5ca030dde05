//! Model directories: sharded and single safetensors, config.json, MLX affine and MXFP4
//! grouping, and the unified `ModelFiles` API.

mod common;
use common::*;
use rmlx_core::{DType, GgmlType, QuantFormat};
use rmlx_io::{Format, ModelConfig, ModelFiles, RopeScaling, TensorType};
use std::path::Path;

const CONFIG: &str =
    r#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"], "rope_theta": 500000.0}"#;

fn shard(dir: &Path, name: &str, tensors: &[(&str, &str, &[usize], &[u8])]) {
    write(dir, name, &st_file(tensors, None));
}

fn err(path: &Path) -> String {
    ModelFiles::open(path)
        .err()
        .expect("expected an error")
        .to_string()
}

#[test]
fn sharded_directory() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "config.json", CONFIG.as_bytes());
    shard(
        d.path(),
        "part-a.safetensors",
        &[("a", "F32", &[2], &f32_bytes(&[1.0, 2.0]))],
    );
    shard(
        d.path(),
        "zz-b.safetensors",
        &[("b", "BF16", &[1], &[0x80, 0x3f])],
    );
    write(
        d.path(),
        "model.safetensors.index.json",
        br#"{"metadata": {}, "weight_map": {"a": "part-a.safetensors", "b": "zz-b.safetensors"}}"#,
    );
    let m = ModelFiles::open(d.path()).unwrap();
    assert_eq!(m.format(), Format::Safetensors);
    assert_eq!(m.architecture(), Some("llama"));
    assert_eq!(m.tensors().len(), 2);
    assert_eq!(m.get("a").unwrap().to_vec::<f32>().unwrap(), vec![1.0, 2.0]);
    assert_eq!(m.get("b").unwrap().dtype(), DType::BF16);
    assert_eq!(m.parameter_count(), 3);
    assert_eq!(m.bytes_by_type().get("f32"), Some(&8));
    assert!(m
        .get("c")
        .unwrap_err()
        .to_string()
        .contains("no tensor named 'c'"));
}

#[test]
fn index_naming_a_missing_shard() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "config.json", CONFIG.as_bytes());
    shard(d.path(), "one.safetensors", &[("a", "U8", &[1], &[1])]);
    write(
        d.path(),
        "model.safetensors.index.json",
        br#"{"weight_map": {"a": "one.safetensors", "b": "two.safetensors"}}"#,
    );
    let e = err(d.path());
    assert!(
        e.contains("shard 'two.safetensors'") && e.contains("'b'") && e.contains("not found"),
        "{e}"
    );

    write(
        d.path(),
        "model.safetensors.index.json",
        br#"{"weight_map": {"a": "../x.safetensors"}}"#,
    );
    assert!(err(d.path()).contains("expected a shard file name, found '../x.safetensors'"));

    write(
        d.path(),
        "model.safetensors.index.json",
        br#"{"weight_map": {"zz": "one.safetensors"}}"#,
    );
    assert!(err(d.path()).contains("expected tensor 'zz' in shard 'one.safetensors'"));

    write(d.path(), "model.safetensors.index.json", b"{not json");
    assert!(err(d.path()).contains("invalid JSON"));
}

#[test]
fn single_file_directory_and_missing_config() {
    let d = tempfile::tempdir().unwrap();
    shard(d.path(), "model.safetensors", &[("a", "U8", &[2], &[1, 2])]);
    let e = err(d.path());
    assert!(
        e.contains("config.json") && e.contains(&d.path().display().to_string()),
        "{e}"
    );
    // The file on its own opens without a config.
    let m = ModelFiles::open(d.path().join("model.safetensors")).unwrap();
    assert_eq!(m.architecture(), None);
    write(d.path(), "config.json", CONFIG.as_bytes());
    let m = ModelFiles::open(d.path()).unwrap();
    assert_eq!(m.get("a").unwrap().to_vec::<u8>().unwrap(), vec![1, 2]);
    // model.safetensors wins over other copies; without it every file is read.
    shard(d.path(), "other.safetensors", &[("a", "U8", &[1], &[1])]);
    assert_eq!(ModelFiles::open(d.path()).unwrap().tensors().len(), 1);
    std::fs::rename(
        d.path().join("model.safetensors"),
        d.path().join("m1.safetensors"),
    )
    .unwrap();
    assert!(err(d.path()).contains("tensor 'a' is in both"));
}

#[test]
fn not_a_model() {
    let d = tempfile::tempdir().unwrap();
    assert!(err(&d.path().join("nope")).contains("found nothing there"));
    write(d.path(), "x.bin", b"hello");
    assert!(err(&d.path().join("x.bin")).contains("expected a .gguf or .safetensors file"));
    write(d.path(), "config.json", CONFIG.as_bytes());
    assert!(err(d.path()).contains("expected *.safetensors files"));
    write(d.path(), "config.json", b"[1]");
    assert!(err(d.path()).contains("expected a JSON object"));
}

#[test]
fn rope_transformers_4_and_5() {
    let c = ModelConfig::parse("c", r#"{"rope_theta": 150000, "rope_scaling": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0, "original_max_position_embeddings": 4096, "truncate": false}}"#).unwrap();
    let c5 = ModelConfig::parse("c", r#"{"rope_parameters": {"rope_type": "yarn", "rope_theta": 150000, "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0, "original_max_position_embeddings": 4096, "truncate": false}}"#).unwrap();
    let r = c.rope().unwrap();
    assert_eq!(r, c5.rope().unwrap());
    assert_eq!(r.theta, 150000.0);
    match r.scaling {
        RopeScaling::Yarn {
            factor,
            truncate,
            original_max_position_embeddings,
            mscale,
            ..
        } => {
            assert_eq!(
                (factor, truncate, original_max_position_embeddings, mscale),
                (32.0, false, 4096, None)
            );
        }
        other => panic!("{other:?}"),
    }
    let l3 = r#"{"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}"#;
    assert!(matches!(
        ModelConfig::parse("c", l3).unwrap().rope().unwrap().scaling,
        RopeScaling::Llama3 { factor: 8.0, .. }
    ));
    let lin =
        r#"{"rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}}"#;
    assert_eq!(
        ModelConfig::parse("c", lin)
            .unwrap()
            .rope()
            .unwrap()
            .scaling,
        RopeScaling::Linear { factor: 2.0 }
    );
    let plain = ModelConfig::parse("c", "{}").unwrap().rope().unwrap();
    assert_eq!((plain.theta, plain.scaling), (10000.0, RopeScaling::None));
    let bad = ModelConfig::parse("c", r#"{"rope_scaling": {"type": "longrope"}}"#).unwrap();
    assert!(bad
        .rope()
        .unwrap_err()
        .to_string()
        .contains("found 'longrope'"));
    let bad = ModelConfig::parse(
        "c",
        r#"{"rope_scaling": {"type": "linear", "factor": "x"}}"#,
    )
    .unwrap();
    assert!(bad
        .rope()
        .unwrap_err()
        .to_string()
        .contains("'factor': expected a number"));
}

#[test]
fn mlx_affine_quantized() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "config.json",
        br#"{"model_type": "llama", "quantization": {"group_size": 64, "bits": 4, "lm_head": {"group_size": 32, "bits": 8}}}"#,
    );
    // 4 bits: 128 columns = 16 packed u32 = 2 groups of 64. lm_head 8 bits: 64 cols = 16 u32 = 2 groups of 32.
    shard(
        d.path(),
        "model.safetensors",
        &[
            ("l.weight", "U32", &[3, 16], &[0; 192]),
            ("l.scales", "F16", &[3, 2], &[0; 12]),
            ("l.biases", "F16", &[3, 2], &[0; 12]),
            ("lm_head.weight", "U32", &[2, 16], &[0; 128]),
            ("lm_head.scales", "BF16", &[2, 2], &[0; 8]),
            ("lm_head.biases", "BF16", &[2, 2], &[0; 8]),
            ("norm.weight", "F32", &[4], &[0; 16]),
        ],
    );
    let m = ModelFiles::open(d.path()).unwrap();
    assert_eq!(m.tensors().len(), 3);
    assert_eq!(m.stored_tensor_count(), 7);
    let l = m.tensor("l.weight").unwrap();
    assert_eq!(l.shape, vec![3, 128]);
    assert_eq!(
        l.ty,
        TensorType::Quantized(QuantFormat::Affine {
            bits: 4,
            group_size: 64
        })
    );
    assert_eq!(l.nbytes, 192 + 24);
    let q = m.get_quantized("lm_head.weight").unwrap();
    assert_eq!(
        (q.format, q.shape.clone()),
        (
            QuantFormat::Affine {
                bits: 8,
                group_size: 32
            },
            vec![2, 64]
        )
    );
    assert_eq!(q.scales.as_ref().unwrap().shape(), &[2, 2]);
    assert!(q.biases.is_some());
    assert!(m
        .get("l.weight")
        .unwrap_err()
        .to_string()
        .contains("use get_quantized"));
    assert_eq!(m.get("l.scales").unwrap().dtype(), DType::F16);
    assert!(m
        .get_quantized("norm.weight")
        .unwrap_err()
        .to_string()
        .contains("expected a quantized tensor"));
    assert_eq!(m.parameter_count(), 3 * 128 + 2 * 64 + 4);

    // Scales that do not match the declared group size.
    shard(
        d.path(),
        "model.safetensors",
        &[
            ("l.weight", "U32", &[3, 16], &[0; 192]),
            ("l.scales", "F16", &[3, 4], &[0; 24]),
            ("l.biases", "F16", &[3, 4], &[0; 24]),
        ],
    );
    let e = err(d.path());
    assert!(
        e.contains("affine 'l.weight'") && e.contains("expected scales and biases [3, 2]"),
        "{e}"
    );
}

#[test]
fn hf_mxfp4_pairs() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "config.json",
        br#"{"model_type": "gpt_oss", "quantization_config": {"quant_method": "mxfp4"}}"#,
    );
    // E=2 experts, 3 rows, K=64: blocks [2, 3, 2, 16], scales [2, 3, 2].
    shard(
        d.path(),
        "model.safetensors",
        &[
            ("e.down_proj_bias", "BF16", &[2, 3], &[0; 12]),
            ("e.down_proj_blocks", "U8", &[2, 3, 2, 16], &[0; 192]),
            ("e.down_proj_scales", "U8", &[2, 3, 2], &[127; 12]),
        ],
    );
    let m = ModelFiles::open(d.path()).unwrap();
    let t = m.tensor("e.down_proj").unwrap();
    assert_eq!(
        (t.shape.clone(), t.ty, t.nbytes),
        (
            vec![2, 3, 64],
            TensorType::Quantized(QuantFormat::Mxfp4),
            204
        )
    );
    let q = m.get_quantized("e.down_proj").unwrap();
    assert_eq!(q.packed.shape(), &[2, 3, 2, 16]);
    assert_eq!(q.scales.unwrap().to_vec::<u8>().unwrap(), vec![127; 12]);
    assert_eq!(m.bytes_by_type().get("mxfp4"), Some(&204));

    shard(
        d.path(),
        "model.safetensors",
        &[
            ("e_blocks", "U8", &[3, 2, 16], &[0; 96]),
            ("e_scales", "U8", &[3, 3], &[0; 9]),
        ],
    );
    let e = err(d.path());
    assert!(
        e.contains("mxfp4 'e_blocks'") && e.contains("found [3, 2, 16] and [3, 3]"),
        "{e}"
    );
}

#[test]
fn gguf_through_model_files() {
    let d = tempfile::tempdir().unwrap();
    let mut g = Gguf::default();
    g.kv_str("general.architecture", "gpt-oss")
        .tensor("f", &[4], 0, &f32_bytes(&[1.0; 4]))
        .tensor("x", &[32, 2, 3], 39, &[0; 17 * 6]);
    write(d.path(), "m.gguf", &g.build());
    for path in [d.path().join("m.gguf"), d.path().to_path_buf()] {
        let m = ModelFiles::open(&path).unwrap();
        assert_eq!(
            (m.format(), m.architecture()),
            (Format::Gguf, Some("gpt-oss"))
        );
        let q = m.get_quantized("x").unwrap();
        assert_eq!(q.format, QuantFormat::Gguf(GgmlType::MXFP4));
        assert_eq!(
            (q.shape.clone(), q.packed.shape().to_vec()),
            (vec![3, 2, 32], vec![6, 17])
        );
        assert_eq!(m.parameter_count(), 4 + 192);
        assert_eq!(m.get("f").unwrap().to_vec::<f32>().unwrap(), vec![1.0; 4]);
    }
}
