//! MLX-quantized checkpoints against mlx-lm itself: tiny random Llama (untied lm_head) and
//! Qwen3 (tied embeddings, q/k norms) models quantized by `mlx_lm.utils.quantize_model`
//! (affine, 4 and 8 bits, group sizes 32 and 64, float32 scales), and mlx-lm's logits for a
//! fixed token sequence, made by scripts/reference/mlx_quantized.py. MLX multiplies float
//! activations by the dequantized weights, and so do we (`backend/cpu/quantized/affine`):
//! the bound is 1e-3 relative L2 (measured: ~1e-6).

use std::path::PathBuf;

#[path = "support/hf_logits.rs"]
mod hf_logits;

/// Relative L2 error allowed against mlx-lm (the bound).
const TOL: f64 = 1e-3;

fn fixture(arch: &str, bits: u8, group: u16) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mlx")
        .join(format!("{arch}-{bits}bit-g{group}"))
}

fn check_all(arch: &str) {
    for (bits, group) in [(4, 32), (4, 64), (8, 32), (8, 64)] {
        let dir = fixture(arch, bits, group);
        let files =
            rmlx_io::ModelFiles::open(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let format = files
            .get_quantized("model.layers.0.mlp.down_proj.weight")
            .unwrap()
            .format;
        assert_eq!(
            format,
            rmlx_core::QuantFormat::Affine {
                bits,
                group_size: group
            },
            "{}",
            dir.display()
        );
        hf_logits::check(&dir, TOL);
    }
}

#[test]
fn llama_affine_matches_mlx_lm() {
    check_all("llama");
}

#[test]
fn qwen3_affine_matches_mlx_lm() {
    check_all("qwen3");
}
