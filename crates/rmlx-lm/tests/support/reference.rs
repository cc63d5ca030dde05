//! Our logits for a committed checkpoint against a reference engine's `logits.npy` (made on
//! the fixture's `tokens.json`), on every device present, all at once and through the KV cache
//! in chunks (shared by `hf_reference.rs` and `mlx_reference.rs`).

#![allow(dead_code)]

use rmlx_core::{with_default_device, Device};
use rmlx_lm::{load_model_on, npy, Logits};
use std::path::Path;

pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
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

/// Asserts that our logits for `dir` are within `tol` (relative L2) of `dir/logits.npy` on
/// every device and chunking; returns the largest error seen.
pub fn check(dir: &Path, tol: f64) -> f64 {
    let name = dir.file_name().unwrap().to_string_lossy();
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap_or_else(|e| panic!("{name}: fixture {f} missing or unreadable: {e}"))
    };
    let tokens: Vec<u32> = serde_json::from_str(&read("tokens.json")).unwrap();
    let (shape, want) = npy::read_f32(&dir.join("logits.npy")).unwrap();
    assert_eq!(shape[0], tokens.len(), "{name}: logits rows vs tokens");
    let mut worst = 0f64;
    for device in rmlx_core::testing::devices() {
        for chunk in [None, Some(1), Some(5)] {
            let got = run(dir, &tokens, chunk, device);
            let err = rel_l2(&got, &want);
            eprintln!("{name} on {device} chunk {chunk:?}: relative L2 error {err:.2e}");
            assert!(
                err < tol,
                "{name} on {device} chunk {chunk:?}: relative L2 error {err:.3e} >= {tol:.0e}"
            );
            worst = worst.max(err);
        }
    }
    worst
}
