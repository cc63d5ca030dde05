//! CPU attention over every KV cache kind at key lengths around the kernels' block and split
//! boundaries (blocks of 8 keys, decode splits of 256, the packed caches' exact head of 4 and
//! ring of 48, gpt-oss's window of 128, 4k+1), with sinks, sliding windows and GQA.
//!
//! Each case fills a real layer cache (`layer_cache`) with random keys and values, then runs
//! `scaled_dot_product_attention` on the cache's view, in decode (one query) and in prefill (a
//! chunk of queries), and checks it twice:
//! - against `sdpa_reference` (softmax(q·kᵀ·scale + mask, sinks)·v composed of plain ops) on
//!   the same view, i.e. on the values the cache stores: this isolates the kernel;
//! - against `sdpa_reference` on the original f32 keys and values with a plain causal mask:
//!   this checks the cache too (slot order, windows, the exact head and ring) within the error
//!   its storage format allows.

use rand::Rng;
use rmlx_core::ops::{sdpa_reference, AttentionMask};
use rmlx_core::testing::{rel_l2, uniform};
use rmlx_core::Array;
use rmlx_lm::cache::{layer_cache, CacheKind, KvView};

/// Key lengths: around 8 (key blocks), 52 (head + ring of the packed caches), 64/128 (tiles,
/// gpt-oss's window), 256 (decode key splits), 1024 and 4096.
const LENGTHS: [usize; 19] = [
    1, 7, 8, 9, 52, 53, 63, 64, 65, 127, 128, 129, 255, 257, 1023, 1024, 1025, 4096, 4097,
];

/// (query heads per KV head, sliding window, sinks, head dim).
const CONFIGS: [(usize, Option<usize>, bool, usize); 4] = [
    (1, None, false, 64),
    (3, None, true, 64),
    (4, Some(128), true, 64),
    (2, Some(7), false, 128),
];

const KV_HEADS: usize = 2;

/// Queries of a prefill chunk once the keys outnumber them (shorter contexts prefill whole).
const CHUNK: usize = 17;

/// The kernel against the reference on the values the cache stores. Dense kinds read exactly
/// those values and sum in f32: agreement to f32 rounding. Packed kinds round each query row to
/// int8 per key group before their integer dots (kv_attend.rs); that moves a score by at most
/// half a step of q per group, measured ≤ 4.5e-3 relative L2 on such inputs
/// (rmlx-core/tests/kv_quant.rs): bound 2e-2.
fn kernel_tol(kind: CacheKind) -> f64 {
    match kind {
        CacheKind::F32 | CacheKind::Bf16 | CacheKind::F16 => 2e-5,
        CacheKind::Q8 | CacheKind::Q4 | CacheKind::K8V4 => 2e-2,
    }
}

/// Against attention over the original f32 keys and values: the storage's rounding on top.
/// f16 keeps 11 bits (relative error ≤ 2^-11 a value), bf16 8 (≤ 2^-8); errors of independent
/// values average down in the output, so a few times the unit roundoff bounds it. Packed rows
/// (rotated: Gaussian-like, a group of 32 spans ~±2σ) round with a step of range/levels:
/// rms error ~0.3% of a value at 8 bits, ~8% at 4 bits. At 4 bits that moves each output by
/// ~8% through the values and about as much through the keys (each score by ~0.08·|q|·|k|·scale,
/// and so each weight): ~0.12 when both are 4-bit (q4, measured up to 0.16 at 255 keys), ~0.08
/// when only the values are (k8v4). The bounds leave room for that spread; a cache that mixed up
/// slots or positions would be off by ~1.4 (unrelated outputs).
fn storage_tol(kind: CacheKind) -> f64 {
    match kind {
        CacheKind::F32 => 2e-5,
        CacheKind::F16 => 2e-3,
        CacheKind::Bf16 => 1.5e-2,
        CacheKind::Q8 => 3e-2,
        CacheKind::K8V4 => 1.5e-1,
        CacheKind::Q4 => 2.5e-1,
    }
}

/// Fresh inputs on every run (the base seed is printed so a failure can be replayed with
/// RMLX_TEST_SEED), each array from its own seed.
struct Inputs(u64);

impl Inputs {
    fn new() -> Self {
        let env = std::env::var("RMLX_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok());
        let seed = env.unwrap_or_else(|| rand::thread_rng().gen());
        eprintln!("RMLX_TEST_SEED={seed}");
        Inputs(seed)
    }

    fn array(&mut self, shape: &[usize]) -> Array {
        self.0 = self.0.wrapping_add(1);
        uniform(shape, self.0, -2.0, 2.0)
    }
}

/// Positions t0..t1 of x (1, H, T, D).
fn span(x: &Array, t0: usize, t1: usize) -> Array {
    x.slice_axis(2, t0, t1).unwrap()
}

fn values(x: rmlx_core::Result<Array>) -> Vec<f32> {
    let v = x.unwrap().to_vec::<f32>().unwrap();
    assert!(
        v.iter().all(|x| x.is_finite()),
        "non-finite attention output"
    );
    v
}

/// One case: `tk` keys, the last `tq` of them arriving with the queries.
fn check(
    inputs: &mut Inputs,
    kind: CacheKind,
    tk: usize,
    tq: usize,
    cfg: (usize, Option<usize>, bool, usize),
) {
    let (group, window, with_sinks, d) = cfg;
    let hq = KV_HEADS * group;
    let what = format!(
        "{kind:?} tk {tk} tq {tq} group {group} window {window:?} sinks {with_sinks} d {d}"
    );
    let k = inputs.array(&[1, KV_HEADS, tk, d]);
    let v = inputs.array(&[1, KV_HEADS, tk, d]);
    let q = inputs.array(&[1, hq, tq, d]);
    let sinks = with_sinks.then(|| inputs.array(&[hq]));
    let scale = 1.0 / (d as f32).sqrt();
    let q_pos: Vec<i32> = (tk - tq..tk).map(|p| p as i32).collect();
    let (mask, view) = cached_mask(kind, window, &k, &v, tq, &q_pos);
    let got = values(q.scaled_dot_product_attention(
        &view.keys,
        &view.values,
        scale,
        &mask,
        sinks.as_ref(),
    ));
    let stored = values(sdpa_reference(
        &q,
        &view.keys,
        &view.values,
        scale,
        &mask,
        sinks.as_ref(),
    ));
    let e = rel_l2(&got, &stored);
    assert!(
        e <= kernel_tol(kind),
        "{what}: kernel vs reference on the stored values: {e:.3e}"
    );

    let exact_mask = AttentionMask::causal(tk - tq, tq, window).unwrap();
    let exact = values(sdpa_reference(
        &q,
        &k,
        &v,
        scale,
        &exact_mask,
        sinks.as_ref(),
    ));
    let e = rel_l2(&got, &exact);
    assert!(
        e <= storage_tol(kind),
        "{what}: vs exact attention over f32 keys: {e:.3e}"
    );
}

/// A `kind` layer cache fed k, v (1, H, T, D): all but the last `tq` positions, then those;
/// the mask of queries at `q_pos` over the view the last update returned.
fn cached_mask(
    kind: CacheKind,
    window: Option<usize>,
    k: &Array,
    v: &Array,
    tq: usize,
    q_pos: &[i32],
) -> (AttentionMask, KvView) {
    let tk = k.dim(2).unwrap();
    let mut cache = layer_cache(kind, window, tk + 8).unwrap();
    if tk > tq {
        cache
            .update(&span(k, 0, tk - tq), &span(v, 0, tk - tq))
            .unwrap();
    }
    let view = cache
        .update(&span(k, tk - tq, tk), &span(v, tk - tq, tk))
        .unwrap();
    let mask = AttentionMask {
        q_pos: Array::from_slice(q_pos, &[q_pos.len()]).unwrap(),
        k_pos: view.k_pos.clone(),
        window,
    };
    (mask, view)
}

fn every_case(kind: CacheKind) {
    let mut inputs = Inputs::new();
    for &tk in &LENGTHS {
        for cfg in CONFIGS {
            check(&mut inputs, kind, tk, 1, cfg);
            check(
                &mut inputs,
                kind,
                tk,
                if tk <= 129 { tk } else { CHUNK },
                cfg,
            );
        }
    }
}

#[test]
fn f32_cache() {
    every_case(CacheKind::F32);
}

#[test]
fn f16_cache() {
    every_case(CacheKind::F16);
}

#[test]
fn bf16_cache() {
    every_case(CacheKind::Bf16);
}

#[test]
fn q8_cache() {
    every_case(CacheKind::Q8);
}

#[test]
fn q4_cache() {
    every_case(CacheKind::Q4);
}

#[test]
fn k8v4_cache() {
    every_case(CacheKind::K8V4);
}

/// A query that sees no key and has no sink gives zeros (the kernels' documented convention;
/// the reference would divide 0 by 0), on every kind.
#[test]
fn no_visible_key_gives_zeros() {
    let mut inputs = Inputs::new();
    for kind in CacheKind::ALL {
        let k = inputs.array(&[1, KV_HEADS, 20, 64]);
        let v = inputs.array(&[1, KV_HEADS, 20, 64]);
        let q = inputs.array(&[1, 2 * KV_HEADS, 1, 64]);
        // A query at position −1 sees nothing (every key is in its future).
        let (mask, view) = cached_mask(kind, None, &k, &v, 20, &[-1]);
        let got =
            values(q.scaled_dot_product_attention(&view.keys, &view.values, 0.125, &mask, None));
        assert!(
            got.iter().all(|&x| x == 0.0),
            "{kind:?}: expected zeros, found {got:?}"
        );
    }
}
