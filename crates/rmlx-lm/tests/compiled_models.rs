//! Models that use `compile` give the same logits compiled and uncompiled (f32: 1e-6 relative),
//! for every tiny Hugging Face fixture, on every device present, all at once and through the
//! KV cache in chunks. One test in its own binary: it switches compilation off and on globally.

#[path = "support/hf_logits.rs"]
mod hf_logits;

use hf_logits::{fixtures, reference, run};
use rmlx_core::compile;
use rmlx_core::testing::{devices, rel_l2};

#[test]
fn compiled_and_uncompiled_models_agree() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.iter().any(|n| n.starts_with("gpt_oss")), "{names:?}");
    for name in &names {
        let dir = fixtures().join(name);
        let (tokens, _) = reference(&dir);
        for device in devices() {
            for chunk in [None, Some(5)] {
                compile::set_enabled(true);
                let compiled = run(&dir, &tokens, chunk, device);
                compile::set_enabled(false);
                let plain = run(&dir, &tokens, chunk, device);
                compile::set_enabled(true);
                let err = rel_l2(&compiled, &plain);
                eprintln!("{name} on {device} chunk {chunk:?}: compiled vs not {err:.2e}");
                assert!(err <= 1e-6, "{name} on {device} chunk {chunk:?}: {err:.3e}");
            }
        }
    }
}
