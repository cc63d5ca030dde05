//! Host cost of encoding one small op on each GPU: build a chain of 4,000 adds, queue it
//! (`async_eval`), then wait. Decode of a small model is ~600 such ops a token.
//! `cargo bench -p rmlx-core --bench gpu_encode` (on the GPU machine: the `bench-gpu_encode`
//! binary that scripts/gpu/build_carry.sh packs).

use rmlx_core::testing::gpus;
use rmlx_core::{async_eval, Array};

fn main() {
    let gpus = gpus();
    if gpus.is_empty() {
        println!("no GPU: nothing to measure");
    }
    for d in gpus {
        let x = Array::from_slice(&[1f32; 576], &[576])
            .unwrap()
            .to_device(d)
            .unwrap();
        x.eval().unwrap();
        for round in 0..3 {
            let n = 4000;
            let t0 = std::time::Instant::now();
            let mut y = x.clone();
            for _ in 0..n {
                y = y.add(&x).unwrap();
            }
            let t1 = std::time::Instant::now();
            async_eval(&[&y]).unwrap();
            let t2 = std::time::Instant::now();
            y.eval().unwrap();
            let t3 = std::time::Instant::now();
            println!(
                "{d} round {round}: build {:.2} µs/op, encode {:.2} µs/op, then waited {:.2} ms",
                (t1 - t0).as_secs_f64() * 1e6 / n as f64,
                (t2 - t1).as_secs_f64() * 1e6 / n as f64,
                (t3 - t2).as_secs_f64() * 1e3
            );
        }
    }
}
