//! Fusion: elementwise chains on 1M–16M elements, the plain graph against the compiled one, on
//! the CPU and every GPU present (the bar: compiled ≥ 3× the uncompiled graph).
//! - GELU written out: 0.5·x·(1 + erf(x/√2)) (5 ops);
//! - gpt-oss's clamped SwiGLU: (clip(up, ±7) + 1) · g·σ(1.702·g), g = min(gate, 7) (8 ops).
//!
//! `cargo bench -p rmlx-core --bench compile_fusion` (on the GPU machine: `bench-compile_fusion`
//! from scripts/gpu/build_carry.sh). Median of 7 runs after a warm-up, ms, and the effective
//! bandwidth of the compiled run (bytes of its inputs and output over its time).

use rmlx_core::compile::compile;
use rmlx_core::testing::{devices, uniform};
use rmlx_core::{with_default_device, Array, Result};
use std::time::Instant;

fn gelu(xs: &[Array]) -> Result<Vec<Array>> {
    let x = &xs[0];
    let inner = x
        .mul_scalar(std::f32::consts::FRAC_1_SQRT_2)?
        .erf()?
        .add_scalar(1.0)?;
    Ok(vec![x.mul_scalar(0.5)?.mul(&inner)?])
}

fn swiglu(xs: &[Array]) -> Result<Vec<Array>> {
    let gate = xs[0].clip(None, Some(7.0))?;
    let up = xs[1].clip(Some(-7.0), Some(7.0))?;
    let glu = gate.mul(&gate.mul_scalar(1.702)?.sigmoid()?)?;
    Ok(vec![up.add_scalar(1.0)?.mul(&glu)?])
}

/// Median milliseconds of `f` (evaluated and waited for) over 7 runs after one warm-up.
fn time(f: &dyn Fn() -> Array) -> f64 {
    f().eval().unwrap();
    let mut ms: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            f().eval().unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    ms[3]
}

fn main() {
    type Chain = fn(&[Array]) -> Result<Vec<Array>>;
    let chains: [(&str, Chain, usize); 2] = [("gelu", gelu, 1), ("swiglu_oss", swiglu, 2)];
    println!("| device | chain | elements | graph ms | compiled ms | speedup | compiled GB/s |");
    println!("|---|---|---|---|---|---|---|");
    for d in devices() {
        with_default_device(d, || {
            for (name, chain, n_in) in chains {
                let compiled = compile(chain);
                for n in [1usize << 20, 1 << 22, 1 << 24] {
                    let inputs: Vec<Array> = (0..n_in)
                        .map(|i| {
                            let a = uniform(&[n], 7 + i as u64, -8.0, 8.0);
                            let a = a.to_device(d).unwrap();
                            a.eval().unwrap();
                            a
                        })
                        .collect();
                    let plain = time(&|| chain(&inputs).unwrap().remove(0));
                    let fused = time(&|| compiled.call(&inputs).unwrap().remove(0));
                    let bytes = (n_in + 1) * n * 4;
                    println!(
                        "| {d} | {name} | {n} | {plain:.2} | {fused:.2} | {:.2}× | {:.1} |",
                        plain / fused,
                        bytes as f64 / fused / 1e6
                    );
                }
            }
        });
    }
}
