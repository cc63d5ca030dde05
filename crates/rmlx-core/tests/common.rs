//! Helpers shared by the core tests: fresh random inputs and tolerance checks.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rmlx_core::Array;

pub fn rng() -> rand::rngs::StdRng {
    // Fresh inputs on every run; the seed is printed so a failure can be replayed.
    let seed: u64 = std::env::var("RMLX_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("RMLX_TEST_SEED={seed}");
    rand::rngs::StdRng::seed_from_u64(seed)
}

pub fn randn(rng: &mut impl Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| rng.gen_range(-1.0f32..1.0) + rng.gen_range(-1.0f32..1.0))
        .collect()
}

pub fn rand_array(rng: &mut impl Rng, shape: &[usize]) -> (Array, Vec<f32>) {
    let v = randn(rng, shape.iter().product());
    (Array::from_slice(&v, shape).unwrap(), v)
}

/// ‖a − b‖ / ‖b‖ ≤ tol (and no NaN).
pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let mut num = 0f64;
    let mut den = 0f64;
    for (x, y) in a.iter().zip(b) {
        assert!(!x.is_nan(), "{what}: NaN in result");
        num += ((x - y) as f64).powi(2);
        den += (*y as f64).powi(2);
    }
    let rel = (num / den.max(1e-30)).sqrt();
    assert!(
        rel <= tol as f64,
        "{what}: relative L2 error {rel:.3e} > {tol:.1e}"
    );
}
