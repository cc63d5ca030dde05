//! CUDA graphs (`backend/cuda/graph.rs`): a decode-like loop — a growing cache, per-step host
//! scalars (small uploads captured as graph copies), GEMVs, softmax and a long elementwise tail
//! — computes on every GPU what the CPU computes, step after step, while its graphs are
//! instantiated once and then only updated; an eval that reads a GPU value in the middle (a CPU
//! op on a GPU result) still sees it computed.

use rmlx_core::ops::concat;
use rmlx_core::primitive::UnaryOp;
use rmlx_core::testing::{assert_close, gpus, uniform};
use rmlx_core::{async_eval, Array, Device};

const D: usize = 64;

/// One step: h = (x·Wᵀ)·scale, cache ← [cache; h], y = softmax(h·cacheᵀ)·cache, then a tail
/// of elementwise ops long enough that one step spans several graph chunks.
fn step(x: &Array, w: &Array, cache: &Array, scale: f32) -> (Array, Array) {
    let dev = x.device();
    let s = Array::scalar(scale).to_device(dev).unwrap();
    let h = x
        .matmul(&w.transpose(&[1, 0]).unwrap())
        .unwrap()
        .mul(&s)
        .unwrap();
    let cache = concat(&[cache.clone(), h.clone()], 0).unwrap();
    let scores = h.matmul(&cache.transpose(&[1, 0]).unwrap()).unwrap();
    let mut y = scores.softmax(-1).unwrap().matmul(&cache).unwrap();
    for i in 0..150 {
        let c = Array::scalar(1.0 + i as f32 * 1e-3).to_device(dev).unwrap();
        y = match i % 3 {
            0 => y.unary(UnaryOp::Tanh).unwrap(),
            1 => y.mul(&c).unwrap(),
            _ => y.add(&x.unary(UnaryOp::Sigmoid).unwrap()).unwrap(),
        };
    }
    (y, cache)
}

fn on(a: &Array, d: Device) -> Array {
    a.to_device(d).unwrap()
}

#[test]
fn decode_like_steps_match_the_cpu_and_reuse_their_graphs() {
    for d in gpus() {
        let Device::Cuda(ordinal) = d else { continue };
        let w = uniform(&[D, D], 1, -0.2, 0.2);
        let (gw, mut gcache) = (on(&w, d), on(&uniform(&[1, D], 2, -1.0, 1.0), d));
        let mut cache = uniform(&[1, D], 2, -1.0, 1.0);
        let mut x = uniform(&[1, D], 3, -1.0, 1.0);
        let mut gx = on(&x, d);
        let before = rmlx_core::backend::cuda::graph_stats(ordinal).unwrap();
        for t in 0..8 {
            let scale = 0.5 + 0.1 * t as f32;
            let (y, c) = step(&x, &w, &cache, scale);
            let (gy, gc) = step(&gx, &gw, &gcache, scale);
            async_eval(&[&gy, &gc]).unwrap();
            assert_close(&gy, &y, 1e-5, &format!("{d} step {t}"));
            assert_close(&gc, &c, 1e-6, &format!("{d} cache at step {t}"));
            (x, cache, gx, gcache) = (y, c, gy, gc);
        }
        let after = rmlx_core::backend::cuda::graph_stats(ordinal).unwrap();
        if std::env::var("RMLX_CUDA_GRAPHS").is_ok_and(|v| v == "0") {
            assert_eq!(after, before, "RMLX_CUDA_GRAPHS=0: no graph may run");
            eprintln!("RMLX_CUDA_GRAPHS=0: graph reuse not checked");
            continue;
        }
        let launched = after.launched - before.launched;
        let updated = after.updated - before.updated;
        let made = after.instantiated - before.instantiated;
        // Every step runs > 300 kernels: several chunks a step, the same topologies each step
        // (the cache grows: only sizes and grids change).
        assert!(launched >= 16, "{d}: {launched} graphs launched in 8 steps");
        assert!(
            updated >= launched / 2 && made < launched / 2,
            "{d}: {made} graphs instantiated, {updated} updated of {launched}: steps must reuse \
             their executable graphs"
        );
    }
}

#[test]
fn a_cpu_op_inside_an_eval_sees_the_gpu_values() {
    for d in gpus() {
        let x = uniform(&[33, 7], 5, -1.0, 1.0);
        let g = on(&x, d).unary(UnaryOp::Exp).unwrap();
        // The CPU consumer pulls g across in the middle of the tape (a download, which must
        // launch what is captured first), then the GPU goes on.
        let back = on(&g, Device::Cpu).unary(UnaryOp::Log).unwrap();
        let again = on(&back, d).mul(&g).unwrap();
        async_eval(&[&again]).unwrap();
        let want = x.mul(&x.unary(UnaryOp::Exp).unwrap()).unwrap();
        assert_close(&again, &want, 1e-6, &format!("{d}: GPU → CPU → GPU"));
    }
}

#[test]
fn read_async_returns_the_values_while_later_work_is_queued() {
    for d in std::iter::once(Device::Cpu).chain(gpus()) {
        let x = uniform(&[5, 3], 9, -2.0, 2.0);
        let y = on(&x, d).unary(UnaryOp::Exp).unwrap();
        let pending = y.transpose(&[1, 0]).unwrap().read_async::<f32>().unwrap();
        // Work encoded after the read is queued does not change what it returns.
        let mut z = y.clone();
        for _ in 0..50 {
            z = z.mul(&y).unwrap();
        }
        async_eval(&[&z]).unwrap();
        let got = pending.wait().unwrap();
        let want = x
            .unary(UnaryOp::Exp)
            .unwrap()
            .transpose(&[1, 0])
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(got.len(), 15, "{d}");
        let err = rmlx_core::testing::rel_l2(&got, &want);
        assert!(err < 1e-6, "{d}: read_async rel L2 {err:.2e}");
        // Another dtype than the array's converts, as to_vec does.
        let ints = on(&Array::from_slice(&[3u32, 1, 4], &[3]).unwrap(), d)
            .read_async::<f32>()
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(ints, vec![3.0, 1.0, 4.0], "{d}");
    }
}
