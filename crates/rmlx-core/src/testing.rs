//! Helpers for tests that run on every device present (candle's `test_device!` idea): the CPU
//! always, CUDA devices when a usable GPU is here. A test loops over `devices()` and compares
//! each device with the CPU or a reference; a missing GPU is said once, never a silent pass.

use crate::device::Device;

/// The CPU, then every usable GPU. Prints why GPUs are skipped when there are none.
pub fn devices() -> Vec<Device> {
    let mut out = vec![Device::Cpu];
    out.extend(gpus());
    out
}

/// Usable GPUs only (empty, with a message, on machines without one).
pub fn gpus() -> Vec<Device> {
    #[cfg(feature = "cuda")]
    {
        let n = crate::backend::cuda::device_count();
        let usable: Vec<Device> = (0..n)
            .filter(|&i| crate::backend::cuda::is_available(i))
            .map(Device::Cuda)
            .collect();
        if usable.is_empty() {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                let why = crate::backend::cuda::describe(0)
                    .err()
                    .map_or("no usable GPU".to_string(), |e| e.to_string());
                eprintln!("GPU tests skipped: no usable CUDA device ({why})");
            });
        }
        usable
    }
    #[cfg(not(feature = "cuda"))]
    {
        eprintln!("GPU tests skipped: built without the `cuda` feature");
        Vec::new()
    }
}

/// Relative L2 distance ‖a − b‖ / ‖b‖ (0 when both are zero); NaN anywhere gives infinity.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "rel_l2: lengths differ");
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        if x.is_nan() != y.is_nan() {
            return f64::INFINITY;
        }
        if x.is_nan() || (x.is_infinite() && x == y) {
            continue; // equal NaN positions, or the same infinity: nothing to measure
        }
        num += (*x as f64 - *y as f64).powi(2);
        den += (*y as f64).powi(2);
    }
    if den == 0.0 {
        return num.sqrt();
    }
    (num / den).sqrt()
}

/// An f32 array of `shape` with values uniform in [lo, hi), from `seed` (SplitMix64: tests
/// need fresh, reproducible inputs, not a statistics-grade generator).
pub fn uniform(shape: &[usize], seed: u64, lo: f32, hi: f32) -> crate::Array {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            lo + (hi - lo) * u
        })
        .collect();
    crate::Array::from_slice(&v, shape).expect("the shape holds n values")
}

/// Asserts `got` has `want`'s shape and dtype and is within `tol` of it (relative L2).
pub fn assert_close(got: &crate::Array, want: &crate::Array, tol: f64, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    let g = got.to_vec::<f32>().expect("readable");
    let w = want.to_vec::<f32>().expect("readable");
    let e = rel_l2(&g, &w);
    assert!(e <= tol, "{what}: rel L2 {e:.3e} > {tol:.0e}");
}
