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

use rand::{Rng, SeedableRng};
use rmlx_core::ops::{sdpa_reference, AttentionMask};
use rmlx_core::Array;
use rmlx_lm::cache::{layer_cache, CacheKind};

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
/// values average down in the output, so a few times the unit roundoff bounds it. The packed
/// kinds' bounds are those of rmlx-core/tests/kv_quant.rs (8-bit ~1e-2, 4-bit values ~1.5e-1),
/// plus the int8 query rounding.
fn storage_tol(kind: CacheKind) -> f64 {
    match kind {
        CacheKind::F32 => 2e-5,
        CacheKind::F16 => 2e-3,
        CacheKind::Bf16 => 1.5e-2,
        CacheKind::Q8 => 3e-2,
        CacheKind::Q4 | CacheKind::K8V4 => 1.5e-1,
    }
}

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    assert!(a.iter().all(|x| x.is_finite()), "non-finite output");
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

fn rng() -> rand::rngs::StdRng {
    // Fresh inputs on every run; the seed is printed so a failure can be replayed.
    let seed: u64 = std::env::var("RMLX_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("RMLX_TEST_SEED={seed}");
    rand::rngs::StdRng::seed_from_u64(seed)
}

fn random(rng: &mut impl Rng, shape: &[usize]) -> (Array, Vec<f32>) {
    let v: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| rng.gen_range(-1.0f32..1.0) + rng.gen_range(-1.0f32..1.0))
        .collect();
    (Array::from_slice(&v, shape).unwrap(), v)
}

/// Positions t0..t1 of x (1, H, T, D).
fn span(x: &Array, t0: usize, t1: usize) -> Array {
    x.slice_axis(2, t0, t1).unwrap()
}

fn values(x: rmlx_core::Result<Array>) -> Vec<f32> {
    x.unwrap().to_vec::<f32>().unwrap()
}

/// One case: `tk` keys, the last `tq` of them arriving with the queries.
fn check(
    rng: &mut impl Rng,
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
    let (k, _) = random(rng, &[1, KV_HEADS, tk, d]);
    let (v, _) = random(rng, &[1, KV_HEADS, tk, d]);
    let (q, _) = random(rng, &[1, hq, tq, d]);
    let sinks = with_sinks.then(|| random(rng, &[hq]).0);
    let scale = 1.0 / (d as f32).sqrt();

    let mut cache = layer_cache(kind, window, tk + 8).unwrap();
    if tk > tq {
        cache
            .update(&span(&k, 0, tk - tq), &span(&v, 0, tk - tq))
            .unwrap();
    }
    let view = cache
        .update(&span(&k, tk - tq, tk), &span(&v, tk - tq, tk))
        .unwrap();
    let q_pos: Vec<i32> = (tk - tq..tk).map(|p| p as i32).collect();
    let mask = AttentionMask {
        q_pos: Array::from_slice(&q_pos, &[tq]).unwrap(),
        k_pos: view.k_pos.clone(),
        window,
    };
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

fn every_case(kind: CacheKind) {
    let mut rng = rng();
    for &tk in &LENGTHS {
        for cfg in CONFIGS {
            check(&mut rng, kind, tk, 1, cfg);
            check(&mut rng, kind, tk, if tk <= 129 { tk } else { CHUNK }, cfg);
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
    let mut rng = rng();
    for kind in CacheKind::ALL {
        let (k, _) = random(&mut rng, &[1, KV_HEADS, 20, 64]);
        let (v, _) = random(&mut rng, &[1, KV_HEADS, 20, 64]);
        let (q, _) = random(&mut rng, &[1, 2 * KV_HEADS, 1, 64]);
        let mut cache = layer_cache(kind, None, 64).unwrap();
        let view = cache.update(&k, &v).unwrap();
        // A query at position −1 sees nothing (every key is in its future).
        let mask = AttentionMask {
            q_pos: Array::from_slice(&[-1i32], &[1]).unwrap(),
            k_pos: view.k_pos.clone(),
            window: None,
        };
        let got =
            values(q.scaled_dot_product_attention(&view.keys, &view.values, 0.125, &mask, None));
        assert!(
            got.iter().all(|&x| x == 0.0),
            "{kind:?}: expected zeros, found {got:?}"
        );
    }
}
