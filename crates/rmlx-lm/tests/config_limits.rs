//! Hostile or absurd config.json values (found with the model_config fuzz harness in
//! crates/rmlx-fuzz) are clear errors, or cost only what is used: they used to abort the
//! process (allocations sized by the config) or overflow.

use rmlx_lm::cache::CacheKind;
use rmlx_lm::{load_model, Logits};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A copy of a fixture model directory with its config changed by `edit`.
fn edited(name: &str, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> tempfile::TempDir {
    let src: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name);
    let dir = tempfile::tempdir().unwrap();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    edit(config.as_object_mut().unwrap());
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        src.join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    dir
}

fn load_err(name: &str, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let dir = edited(name, edit);
    match load_model(dir.path()) {
        Ok(_) => panic!("{name}: expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn layer_counts_past_the_tensors_are_errors() {
    // These sized a Vec<Layer> (llama) or a Vec<bool> of layer kinds (gpt-oss) up front.
    let e = load_err("llama", |c| {
        c.insert("num_hidden_layers".into(), 1_000_000_000_000u64.into());
    });
    assert!(e.contains("expected at most one layer per tensor"), "{e}");
    let e = load_err("gpt_oss_gqa3", |c| {
        c.remove("layer_types");
        c.insert("num_hidden_layers".into(), 100_000_000_000u64.into());
    });
    assert!(e.contains("found 100000000000 layers"), "{e}");
}

#[test]
fn sizes_whose_products_overflow_are_errors() {
    for key in ["num_attention_heads", "head_dim", "intermediate_size"] {
        let e = load_err("llama", |c| {
            c.insert(key.into(), (1u64 << 62).into());
            if key == "num_attention_heads" {
                c.insert("num_key_value_heads".into(), (1u64 << 62).into());
            }
        });
        assert!(
            e.contains(&format!("expected {key} below 2^31")),
            "{key}: {e}"
        );
    }
    let e = load_err("gpt_oss_gqa3", |c| {
        c.insert("num_local_experts".into(), (1u64 << 40).into());
    });
    assert!(e.contains("expected num_local_experts below 2^31"), "{e}");
}

#[test]
fn a_huge_sliding_window_costs_only_the_positions_seen() {
    // The rotating cache preallocated its whole window: 10^15 positions.
    let dir = edited("mistral", |c| {
        c.insert("sliding_window".into(), 1_000_000_000_000_000u64.into());
    });
    let m = load_model(dir.path()).unwrap();
    for kind in [CacheKind::F32, CacheKind::Q4] {
        let mut cache = m.model.make_cache_of(kind).unwrap();
        let logits = m
            .model
            .forward(&[1, 2, 3], &mut cache, Logits::Last)
            .unwrap();
        assert_eq!(logits.to_vec::<f32>().unwrap().len(), 256);
        // Two layers, keys and values, at most one 256-position step of 2 heads × 16 dims.
        assert!(
            cache.nbytes() <= 2 * 2 * 256 * 2 * 16 * 4,
            "{}",
            cache.nbytes()
        );
    }
}

#[test]
fn a_window_longer_than_a_step_grows_then_wraps_like_one_prefill() {
    // Window 300 > the 256-position growth step: token by token the cache grows (256, 300)
    // and then wraps; all at once the chunk is attended in one piece. Same logits.
    let dir = edited("mistral", |c| {
        c.insert("sliding_window".into(), 300.into());
    });
    let m = load_model(dir.path()).unwrap();
    let tokens: Vec<u32> = (0..340).map(|i| (i * 7 % 256) as u32).collect();
    let mut cache = m.model.make_cache();
    let all = m
        .model
        .forward(&tokens, &mut cache, Logits::All)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let mut cache = m.model.make_cache();
    let mut one = vec![];
    for t in &tokens {
        let l = m.model.forward(&[*t], &mut cache, Logits::All).unwrap();
        one.extend(l.to_vec::<f32>().unwrap());
    }
    let num: f64 = all
        .iter()
        .zip(&one)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum();
    let den: f64 = all.iter().map(|a| (*a as f64).powi(2)).sum();
    assert!(
        (num / den).sqrt() < 1e-5,
        "relative L2 {:e}",
        (num / den).sqrt()
    );
}
