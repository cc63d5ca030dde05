//! A checkpoint written by MLX itself (tests/data/make_mlx_tiny.py): affine layers with a
//! per-layer override, an MLX mxfp4 layer exposed in the Hugging Face MXFP4 layout.

use rmlx_core::{DType, QuantFormat};
use rmlx_io::{ModelFiles, TensorType};
use std::path::Path;

fn open() -> ModelFiles {
    ModelFiles::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mlx_tiny")).unwrap()
}

#[test]
fn affine_layers_with_override() {
    let m = open();
    assert_eq!((m.stored_tensor_count(), m.tensors().len()), (9, 4));
    let e = m.tensor("model.embed_tokens.weight").unwrap();
    let fmt = QuantFormat::Affine {
        bits: 4,
        group_size: 64,
    };
    assert_eq!(
        (e.shape.clone(), e.ty),
        (vec![16, 128], TensorType::Quantized(fmt))
    );
    let q = m
        .get_quantized("model.layers.0.mlp.down_proj.weight")
        .unwrap();
    assert_eq!(
        q.format,
        QuantFormat::Affine {
            bits: 8,
            group_size: 32
        }
    );
    assert_eq!(q.shape, vec![8, 64]);
    assert_eq!(
        (q.packed.dtype(), q.packed.shape()),
        (DType::U32, &[8usize, 16][..])
    );
    let scales = q.scales.unwrap();
    assert_eq!(
        (scales.dtype(), scales.shape()),
        (DType::BF16, &[8usize, 2][..])
    );
    assert_eq!(q.biases.unwrap().shape(), &[8, 2]);
}

#[test]
fn mlx_mxfp4_is_exposed_as_hf_blocks() {
    let m = open();
    let q = m
        .get_quantized("model.layers.0.mlp.experts.weight")
        .unwrap();
    assert_eq!(
        (q.format, q.shape.clone()),
        (QuantFormat::Mxfp4, vec![2, 8, 64])
    );
    assert_eq!(
        (q.packed.dtype(), q.packed.shape()),
        (DType::U8, &[2usize, 8, 2, 16][..])
    );
    assert_eq!(q.scales.as_ref().unwrap().shape(), &[2, 8, 2]);
    assert!(q.biases.is_none());
    // Same bytes as the stored u32 weight (little-endian), no copy needed.
    let words = m.get("model.layers.0.mlp.experts.weight").err();
    assert!(words.is_some(), "the logical name is quantized");
    let raw = m
        .safetensors()
        .unwrap()
        .get("model.layers.0.mlp.experts.weight")
        .unwrap();
    let bytes: Vec<u8> = raw
        .to_vec::<u32>()
        .unwrap()
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    assert_eq!(q.packed.to_vec::<u8>().unwrap(), bytes);
}
