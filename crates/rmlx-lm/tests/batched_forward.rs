//! `Model::forward_batch`: several sequences in one packed step give, row for row, the logits
//! each gives run alone with `forward` — sequences of different lengths at different offsets
//! (a decode token, a fresh prompt, a chunk after a sliding window has wrapped), on the default
//! model (SmolLM2, GGUF Q4_1) and tiny gpt-oss checkpoints (sinks, sliding windows of 6 and 3,
//! MXFP4 experts) and the Llama family (Mistral's window of 8, Qwen3's q/k norms), with
//! every KV-cache kind; and the caches the batch wrote serve the next
//! step as the caches written alone do.

use rmlx_lm::cache::{CacheKind, ModelCache};
use rmlx_lm::{load_model, Logits, Model, SeqChunk};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name)
}

/// Relative L2 distance of `a` from `b`.
fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

/// A sequence of the test: tokens already in its cache, then the chunk of the batched step,
/// then one decode token for the step after.
struct Case {
    history: Vec<u32>,
    chunk: Vec<u32>,
    next: u32,
}

/// Three sequences: a decode token after 5 cached ones, a fresh 7-token prompt, and a 3-token
/// chunk after 9 cached ones (past the gpt-oss fixtures' windows, so their rotating caches
/// have wrapped); ids below `vocab`.
fn cases(vocab: u32) -> Vec<Case> {
    let ids = |seed: u32, n: usize| -> Vec<u32> {
        (0..n as u32)
            .map(|i| (seed * 7919 + i * 104729) % vocab)
            .collect()
    };
    vec![
        Case {
            history: ids(1, 5),
            chunk: ids(2, 1),
            next: 3 % vocab,
        },
        Case {
            history: vec![],
            chunk: ids(3, 7),
            next: 11 % vocab,
        },
        Case {
            history: ids(4, 9),
            chunk: ids(5, 3),
            next: 17 % vocab,
        },
    ]
}

/// A cache of `kind` holding `history` (computed alone, so both paths start equal).
fn primed(model: &dyn Model, kind: CacheKind, history: &[u32]) -> ModelCache {
    let mut cache = model.make_cache_of(kind).unwrap();
    if !history.is_empty() {
        model
            .forward(history, &mut cache, Logits::Last)
            .unwrap()
            .eval()
            .unwrap();
    }
    cache
}

/// (step logits, next-step logits) of every case, each sequence run alone.
fn alone(model: &dyn Model, kind: CacheKind, cases: &[Case]) -> Vec<(Vec<f32>, Vec<f32>)> {
    cases
        .iter()
        .map(|c| {
            let mut cache = primed(model, kind, &c.history);
            let step = model.forward(&c.chunk, &mut cache, Logits::Last).unwrap();
            let next = model.forward(&[c.next], &mut cache, Logits::Last).unwrap();
            (step.to_vec().unwrap(), next.to_vec().unwrap())
        })
        .collect()
}

/// The same two steps with all sequences batched: (step logits, next-step logits) per row.
fn batched(model: &dyn Model, kind: CacheKind, cases: &[Case]) -> (Vec<f32>, Vec<f32>) {
    let mut caches: Vec<ModelCache> = cases
        .iter()
        .map(|c| primed(model, kind, &c.history))
        .collect();
    let mut refs: Vec<&mut ModelCache> = caches.iter_mut().collect();
    let chunks: Vec<SeqChunk> = cases
        .iter()
        .map(|c| SeqChunk { tokens: &c.chunk })
        .collect();
    let step = model.forward_batch(&chunks, &mut refs).unwrap();
    assert_eq!(step.shape(), [cases.len(), model.info().vocab_size]);
    let nexts: Vec<[u32; 1]> = cases.iter().map(|c| [c.next]).collect();
    let chunks: Vec<SeqChunk> = nexts.iter().map(|t| SeqChunk { tokens: t }).collect();
    let next = model.forward_batch(&chunks, &mut refs).unwrap();
    for (c, cache) in cases.iter().zip(&caches) {
        assert_eq!(cache.offset(), c.history.len() + c.chunk.len() + 1);
    }
    (step.to_vec().unwrap(), next.to_vec().unwrap())
}

/// Batched rows against the lone runs, within `tol` relative L2 per row.
fn check(name: &str, model: &dyn Model, kind: CacheKind, tol: f64) {
    let vocab = model.info().vocab_size;
    let cases = cases(vocab as u32);
    let want = alone(model, kind, &cases);
    let (step, next) = batched(model, kind, &cases);
    // The comparison discriminates: the sequences' own logits are far apart.
    for i in 1..want.len() {
        let apart = rel_l2(&want[i].0, &want[0].0);
        assert!(
            apart > 1e-2,
            "{name}: sequences 0 and {i} agree ({apart:.1e})"
        );
    }
    for (i, (w_step, w_next)) in want.iter().enumerate() {
        let rows = i * vocab..(i + 1) * vocab;
        let e_step = rel_l2(&step[rows.clone()], w_step);
        let e_next = rel_l2(&next[rows], w_next);
        eprintln!("{name} {kind:?} seq {i}: step {e_step:.2e}, next {e_next:.2e}");
        assert!(
            e_step < tol && e_next < tol,
            "{name} {kind:?} seq {i}: {e_step:.2e} / {e_next:.2e} (tolerance {tol:.0e})"
        );
    }
}

/// An f32 cache differs only by summation order (the batch's projections take GEMM paths a
/// lone decode token does not), ~1e-6. A rounding cache may turn that last-bit difference in a
/// new K/V row into one rounding step of a stored value (as across chunk sizes:
/// `kv_cache_kinds.rs`), bounded at 3e-3.
fn tolerance(kind: CacheKind) -> f64 {
    if kind == CacheKind::F32 {
        1e-5
    } else {
        3e-3
    }
}

#[test]
fn gpt_oss_batched_rows_equal_each_sequence_alone() {
    for name in ["gpt_oss_wide", "gpt_oss_gqa3"] {
        let m = load_model(fixture(name)).unwrap();
        for kind in CacheKind::ALL {
            check(name, m.model.as_ref(), kind, tolerance(kind));
        }
    }
}

#[test]
fn llama_family_batched_rows_equal_each_sequence_alone() {
    // mistral: a sliding window over a llama body; qwen3: per-head q/k norms.
    for name in ["llama", "mistral", "qwen3"] {
        let m = load_model(fixture(name)).unwrap();
        for kind in [CacheKind::F32, CacheKind::Q4] {
            check(name, m.model.as_ref(), kind, tolerance(kind));
        }
    }
}

#[test]
fn default_model_batched_rows_equal_each_sequence_alone() {
    let path = rmlx_lm::default_model::fetch_default().expect("default model");
    let m = load_model(&path).unwrap();
    for kind in [CacheKind::F32, CacheKind::Q8] {
        check("SmolLM2", m.model.as_ref(), kind, tolerance(kind));
    }
}

#[test]
fn bad_batches_are_clear_errors() {
    let m = load_model(fixture("llama")).unwrap();
    let model = m.model.as_ref();
    let (mut a, mut b) = (model.make_cache(), model.make_cache());
    let err = |r: rmlx_core::Result<rmlx_core::Array>| r.expect_err("an error").to_string();
    let e = err(model.forward_batch(&[], &mut []));
    assert!(e.contains("at least one sequence"), "{e}");
    let e = err(model.forward_batch(&[SeqChunk { tokens: &[1] }], &mut [&mut a, &mut b]));
    assert!(e.contains("1 sequences and 2 caches"), "{e}");
    let e = err(model.forward_batch(
        &[SeqChunk { tokens: &[1] }, SeqChunk { tokens: &[] }],
        &mut [&mut a, &mut b],
    ));
    assert!(e.contains("sequence 1"), "{e}");
    let big = model.info().vocab_size as u32;
    let e = err(model.forward_batch(
        &[SeqChunk { tokens: &[1] }, SeqChunk { tokens: &[big] }],
        &mut [&mut a, &mut b],
    ));
    assert!(e.contains("outside the vocabulary"), "{e}");
    let long = vec![1u32; model.info().context_length + 1];
    let e = err(model.forward_batch(
        &[SeqChunk { tokens: &long }, SeqChunk { tokens: &[1] }],
        &mut [&mut a, &mut b],
    ));
    assert!(e.contains("exceed the context"), "{e}");
    // Nothing was written by the refused steps.
    assert_eq!((a.offset(), b.offset()), (0, 0));
}

/// Greedy decode fed by the token *array* of the step before (`Packed::from_ids`, the
/// pipelined loop: step n+1 encoded before token n is read, tokens read with `read_async`)
/// gives the same tokens as decode fed by the ids read back, on every device's model tests
/// (`RMLX_DEVICE`), for gpt-oss and a Llama.
#[test]
fn pipelined_decode_gives_the_tokens_of_plain_decode() {
    use rmlx_lm::batch::Packed;
    for name in ["gpt_oss_gqa3", "llama3"] {
        let loaded = load_model(fixture(name)).unwrap();
        let model = loaded.model.as_ref();
        let prompt = [5u32, 9, 2, 7];
        let plain = {
            let mut cache = model.make_cache_of(CacheKind::F32).unwrap();
            let l = model.forward(&prompt, &mut cache, Logits::Last).unwrap();
            let mut next = l.argmax(-1, false).unwrap().to_vec::<u32>().unwrap()[0];
            let mut out = vec![next];
            for _ in 0..12 {
                let l = model.forward(&[next], &mut cache, Logits::Last).unwrap();
                next = l.argmax(-1, false).unwrap().to_vec::<u32>().unwrap()[0];
                out.push(next);
            }
            out
        };
        let piped = {
            let mut cache = model.make_cache_of(CacheKind::F32).unwrap();
            let l = model.forward(&prompt, &mut cache, Logits::Last).unwrap();
            let mut token = l.argmax(-1, false).unwrap();
            let mut reading = token.read_async::<u32>().unwrap();
            let mut out = vec![];
            for _ in 0..12 {
                let step = Packed::from_ids(model, token.clone(), &cache).unwrap();
                let l = model
                    .forward_packed(&step, &mut [&mut cache], Logits::Last)
                    .unwrap();
                token = l.argmax(-1, false).unwrap();
                let next = token.read_async::<u32>().unwrap();
                out.push(std::mem::replace(&mut reading, next).wait().unwrap()[0]);
            }
            out.push(reading.wait().unwrap()[0]);
            out
        };
        assert_eq!(piped, plain, "{name}: pipelined vs plain greedy tokens");
        assert_eq!(piped.len(), 13);
        // Ids of the wrong kind are a clear error.
        let cache = model.make_cache_of(CacheKind::F32).unwrap();
        let bad = rmlx_core::Array::from_slice(&[1f32], &[1]).unwrap();
        let e = Packed::from_ids(model, bad, &cache).err().unwrap();
        assert!(e.to_string().contains("u32 token ids"), "{e}");
    }
}
