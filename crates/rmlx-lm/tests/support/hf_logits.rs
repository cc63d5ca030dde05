//! Logits of the tiny reference fixtures, shared by the tests that run them: the Hugging Face
//! ones (`fixtures/hf/<name>`, made by scripts/reference/transformers_logits.py) and the
//! mlx-lm ones (`fixtures/mlx/<name>`, scripts/reference/mlx_quantized.py). Each directory
//! holds a checkpoint, `tokens.json` and the reference engine's `logits.npy` for them.

#![allow(dead_code)] // each test binary uses part of it

use rmlx_core::{with_default_device, Device};
use rmlx_lm::{load_model_on, npy, Logits};
use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf")
}

/// The fixture's tokens and transformers' logits for them (tokens × vocab, row-major).
pub fn reference(dir: &Path) -> (Vec<u32>, Vec<f32>) {
    let tokens: Vec<u32> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokens.json")).unwrap()).unwrap();
    let (shape, want) = npy::read_f32(&dir.join("logits.npy")).unwrap();
    assert_eq!(shape[0], tokens.len());
    (tokens, want)
}

/// Our logits for `tokens` on `device`, fed `chunk` at a time (None: all at once).
pub fn run(dir: &Path, tokens: &[u32], chunk: Option<usize>, device: Device) -> Vec<f32> {
    let m = load_model_on(dir, device, None).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    with_default_device(device, || {
        let mut cache = m.model.make_cache();
        let mut out = vec![];
        for c in tokens.chunks(chunk.unwrap_or(tokens.len())) {
            let l = m.model.forward(c, &mut cache, Logits::All).unwrap();
            assert_eq!(
                l.device(),
                device,
                "logits computed on {} instead",
                l.device()
            );
            out.extend(l.to_vec::<f32>().unwrap());
        }
        out
    })
}

/// Asserts that our logits for `dir` are within `tol` (relative L2) of its reference on every
/// device, all at once and through the KV cache in chunks of 1 and 5.
pub fn check(dir: &Path, tol: f64) {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let (tokens, want) = reference(dir);
    for device in rmlx_core::testing::devices() {
        for chunk in [None, Some(1), Some(5)] {
            let got = run(dir, &tokens, chunk, device);
            let err = rmlx_core::testing::rel_l2(&got, &want);
            eprintln!("{name} on {device} chunk {chunk:?}: relative L2 error {err:.2e}");
            assert!(
                err < tol,
                "{name} on {device} chunk {chunk:?}: relative L2 error {err:.3e} >= {tol:.0e}"
            );
        }
    }
}
