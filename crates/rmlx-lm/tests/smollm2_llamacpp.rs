//! SmolLM2-135M-Instruct Q4_1 against llama.cpp (fixtures from
//! scripts/reference/smollm2_llamacpp.py): teacher-forced top-1 agreement, free-running greedy
//! equality up to the first near-tie, and first-position logits.
//!
//! llama.cpp rounds activations to 8 bits before each quantized matmul and keeps its KV cache in
//! f16; we quantize activations to 8 bits too but keep f32 elsewhere, so the two part ways at
//! near-ties: a disagreement counts as a near-tie when llama.cpp's own logits for its token and
//! ours differ by less than NEAR_TIE.
//!
//! Why the bounds are not tighter: 8-bit activation rounding makes the whole computation
//! chaotic at the level of single ulps. Multiplying every matmul output by (1 ± 1e-7) moves our
//! logits by ~2% relative L2, and the distance to llama.cpp of one prompt then ranges over
//! 2.8e-2 … 7.0e-2 depending on that sign (measured; SIMD and scalar kernels differ by float
//! summation order only, 5e-7 per call). So each prompt is bounded at 0.1 and the mean at 0.06.

use rmlx_lm::{load_model, npy, Logits};
use serde_json::Value;
use std::path::Path;

const NEAR_TIE: f32 = 0.75;

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/smollm2")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn argmax(row: &[f32]) -> u32 {
    let mut b = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[b] {
            b = i;
        }
    }
    b as u32
}

/// llama.cpp's logit for `tok` at a step (from its top-20), if listed.
fn ref_logit(case: &Value, step: usize, tok: u32) -> Option<f32> {
    let ids = ids(&case["top_ids"][step]);
    let vals = case["top_logits"][step].as_array().unwrap();
    ids.iter()
        .position(|&t| t == tok)
        .map(|i| vals[i].as_f64().unwrap() as f32)
}

#[test]
fn teacher_forced_top1_agrees_with_llama_cpp() {
    let path = rmlx_lm::default_model::fetch_default().unwrap();
    let m = load_model(&path).unwrap();
    let g = fixture("greedy.json");
    let (mut agree, mut total) = (0, 0);
    for case in g["cases"].as_array().unwrap() {
        let prompt = ids(&case["prompt_ids"]);
        let gen = ids(&case["generated_ids"]);
        let mut all = prompt.clone();
        all.extend(&gen);
        let mut cache = m.model.make_cache();
        let logits = m
            .model
            .forward(&all, &mut cache, Logits::All)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let v = m.model.info().vocab_size;
        for (step, &want) in gen.iter().enumerate() {
            let row = &logits[(prompt.len() - 1 + step) * v..(prompt.len() + step) * v];
            let ours = argmax(row);
            total += 1;
            if ours == want {
                agree += 1;
                continue;
            }
            // A disagreement must be a near-tie in llama.cpp's own logits.
            let top = ref_logit(case, step, want).unwrap();
            let gap = ref_logit(case, step, ours).map(|l| top - l);
            eprintln!("step {step}: llama.cpp {want}, ours {ours}, llama.cpp gap {gap:?}");
            assert!(
                gap.is_some_and(|g| g < NEAR_TIE),
                "{}: step {step} disagrees beyond a near-tie",
                case["prompt"]
            );
        }
    }
    let rate = agree as f64 / total as f64;
    eprintln!(
        "teacher-forced top-1 agreement with llama.cpp: {agree}/{total} = {:.1}%",
        100.0 * rate
    );
    assert!(rate >= 0.9, "agreement {rate:.3} < 0.9");
}

#[test]
fn free_running_greedy_matches_llama_cpp_until_a_near_tie() {
    let path = rmlx_lm::default_model::fetch_default().unwrap();
    let m = load_model(&path).unwrap();
    let g = fixture("greedy.json");
    for case in g["cases"].as_array().unwrap() {
        let prompt = ids(&case["prompt_ids"]);
        let want = ids(&case["generated_ids"]);
        let mut cache = m.model.make_cache();
        let mut logits = m
            .model
            .forward(&prompt, &mut cache, Logits::Last)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        for (step, &w) in want.iter().enumerate() {
            let ours = argmax(&logits);
            if ours != w {
                let gap = ref_logit(case, step, w).unwrap()
                    - ref_logit(case, step, ours).unwrap_or(f32::NEG_INFINITY);
                eprintln!(
                    "{}: diverged at step {step} (llama.cpp gap {gap})",
                    case["prompt"]
                );
                assert!(
                    gap < NEAR_TIE,
                    "{}: step {step} diverged beyond a near-tie",
                    case["prompt"]
                );
                break;
            }
            logits = m
                .model
                .forward(&[w], &mut cache, Logits::Last)
                .unwrap()
                .to_vec::<f32>()
                .unwrap();
        }
    }
}

#[test]
fn first_position_logits_close_to_llama_cpp() {
    let path = rmlx_lm::default_model::fetch_default().unwrap();
    let m = load_model(&path).unwrap();
    let g = fixture("greedy.json");
    let mut errs = vec![];
    for (i, case) in g["cases"].as_array().unwrap().iter().enumerate() {
        let prompt = ids(&case["prompt_ids"]);
        let mut cache = m.model.make_cache();
        let ours = m
            .model
            .forward(&prompt, &mut cache, Logits::Last)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2");
        let (_, theirs) = read_npy_any(&dir.join(format!("logits0_{i}.npy")));
        let num: f64 = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let den: f64 = theirs.iter().map(|b| (*b as f64).powi(2)).sum();
        let rel = (num / den).sqrt();
        eprintln!("case {i}: relative L2 vs llama.cpp {rel:.3e}");
        assert!(rel < 0.1, "case {i}: {rel}");
        errs.push(rel);
    }
    let mean = errs.iter().sum::<f64>() / errs.len() as f64;
    eprintln!("mean relative L2 vs llama.cpp: {mean:.3e}");
    assert!(mean < 0.06, "mean {mean}");
}

/// float16 or float32 .npy.
fn read_npy_any(p: &Path) -> (Vec<usize>, Vec<f32>) {
    if let Ok(r) = npy::read_f32(p) {
        return r;
    }
    let b = std::fs::read(p).unwrap();
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    let body = &b[10 + hlen..];
    let v = body
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect::<Vec<_>>();
    (vec![v.len()], v)
}
