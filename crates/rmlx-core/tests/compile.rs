//! `compile`: traces are replayed without calling the function again and retraced on new
//! shapes; simplification merges and folds; fused kernels agree with the unfused graph on every
//! device present (contiguous, strided, broadcast and scalar inputs, every float dtype); bad
//! calls are clear errors.

use rmlx_core::compile::compile;
use rmlx_core::testing::{assert_close, devices, uniform};
use rmlx_core::{with_default_device, Array, DType, Device, Result};
use std::sync::atomic::{AtomicUsize, Ordering};

/// GELU written out, as the benchmark has it: 0.5·x·(1 + erf(x/√2)).
fn gelu(x: &Array) -> Result<Array> {
    let inner = x
        .mul_scalar(std::f32::consts::FRAC_1_SQRT_2)?
        .erf()?
        .add_scalar(1.0)?;
    x.mul_scalar(0.5)?.mul(&inner)
}

/// gpt-oss's clamped SwiGLU: (clip(up, -7, 7) + 1) · gate · σ(1.702 · gate), gate ≤ 7.
fn swiglu_oss(gate: &Array, up: &Array) -> Result<Array> {
    let gate = gate.clip(None, Some(7.0))?;
    let up = up.clip(Some(-7.0), Some(7.0))?;
    let glu = gate.mul(&gate.mul_scalar(1.702)?.sigmoid()?)?;
    up.add_scalar(1.0)?.mul(&glu)
}

fn on(a: &Array, d: Device) -> Array {
    a.to_device(d).unwrap()
}

/// Exact on the CPU (the fused loop rounds as the unfused ops store); on a GPU the compiler may
/// contract a multiply and an add into one FMA inside a fused kernel, which moves f32 results
/// by an ulp and, rarely, a 16-bit rounding by one step.
fn tolerance(d: Device, dtype: DType) -> f64 {
    match (d, dtype) {
        (Device::Cpu, _) => 0.0,
        (_, DType::F32) => 1e-6,
        _ => 2e-3,
    }
}

#[test]
fn a_trace_is_replayed_without_retracing_and_retraced_when_shapes_change() {
    let calls = AtomicUsize::new(0);
    let f = compile(|xs: &[Array]| {
        calls.fetch_add(1, Ordering::Relaxed);
        Ok(vec![gelu(&xs[0])?])
    });
    let a = uniform(&[8, 16], 1, -3.0, 3.0);
    let b = uniform(&[8, 16], 2, -3.0, 3.0);
    for x in [&a, &b, &a] {
        let got = &f.call(std::slice::from_ref(x)).unwrap()[0];
        assert_close(got, &gelu(x).unwrap(), 0.0, "replayed gelu");
    }
    assert_eq!(
        calls.load(Ordering::Relaxed),
        1,
        "traced once for one signature"
    );
    assert_eq!(f.trace_count(), 1);
    let c = uniform(&[5, 3], 3, -3.0, 3.0);
    assert_close(
        &f.call(std::slice::from_ref(&c)).unwrap()[0],
        &gelu(&c).unwrap(),
        0.0,
        "new shape",
    );
    let h = c.astype(DType::BF16).unwrap();
    assert_close(
        &f.call(std::slice::from_ref(&h)).unwrap()[0],
        &gelu(&h).unwrap(),
        0.0,
        "new dtype",
    );
    assert_eq!(
        f.trace_count(),
        3,
        "a new shape and a new dtype each trace again"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 3);
}

#[test]
fn gelu_written_out_becomes_one_kernel_that_matches_the_graph_on_every_device() {
    let f = compile(|xs: &[Array]| Ok(vec![gelu(&xs[0])?]));
    for d in devices() {
        // Ops with no GPU input run on the default device: make it d (RMLX_DEVICE may
        // name another).
        with_default_device(d, || {
            for dtype in [DType::F32, DType::BF16, DType::F16] {
                let x = on(&uniform(&[33, 129], 7, -4.0, 4.0).astype(dtype).unwrap(), d);
                let got = f.call(std::slice::from_ref(&x)).unwrap().remove(0);
                let prims = f.traced_primitives(std::slice::from_ref(&x)).unwrap();
                assert_eq!(prims, ["compiled(5)"], "{d} {dtype}: one fused node");
                let want = gelu(&x).unwrap();
                assert_eq!(got.device(), d);
                assert_close(
                    &got,
                    &want,
                    tolerance(d, dtype),
                    &format!("gelu {d} {dtype}"),
                );
            }
        });
    }
}

#[test]
fn fused_kernels_read_strided_broadcast_and_scalar_inputs() {
    // where(x > b, x · m, silu(x) + b): x a transposed view, b one value per column, m a scalar.
    let body = |x: &Array, b: &Array, m: &Array| -> Result<Array> {
        let mask = x.gt(b)?;
        mask.where_(&x.mul(m)?, &x.silu()?.add(b)?)
    };
    let f = compile(|xs: &[Array]| Ok(vec![body(&xs[0], &xs[1], &xs[2])?]));
    for d in devices() {
        // Ops with no GPU input run on the default device: make it d (RMLX_DEVICE may
        // name another).
        with_default_device(d, || {
            for dtype in [DType::F32, DType::BF16, DType::F16] {
                let cast = |a: Array| on(&a.astype(dtype).unwrap(), d);
                let x = cast(uniform(&[40, 24], 11, -2.0, 2.0))
                    .transpose(&[1, 0])
                    .unwrap();
                let b = cast(uniform(&[40], 12, -1.0, 1.0));
                let m = cast(Array::scalar(1.5f32));
                let got = f
                    .call(&[x.clone(), b.clone(), m.clone()])
                    .unwrap()
                    .remove(0);
                let prims = f
                    .traced_primitives(&[x.clone(), b.clone(), m.clone()])
                    .unwrap();
                assert_eq!(
                    prims.len(),
                    1,
                    "{d} {dtype}: one fused node, found {prims:?}"
                );
                let want = body(&x, &b, &m).unwrap();
                assert_close(
                    &got,
                    &want,
                    tolerance(d, dtype),
                    &format!("select {d} {dtype}"),
                );
            }
        });
    }
}

#[test]
fn the_gpt_oss_swiglu_chain_fuses_with_two_inputs_and_matches() {
    let f = compile(|xs: &[Array]| Ok(vec![swiglu_oss(&xs[0], &xs[1])?]));
    for d in devices() {
        // Ops with no GPU input run on the default device: make it d (RMLX_DEVICE may
        // name another).
        with_default_device(d, || {
            for dtype in [DType::F32, DType::BF16] {
                let g = on(&uniform(&[6, 256], 21, -9.0, 9.0).astype(dtype).unwrap(), d);
                let u = on(&uniform(&[6, 256], 22, -9.0, 9.0).astype(dtype).unwrap(), d);
                let got = f.call(&[g.clone(), u.clone()]).unwrap().remove(0);
                let prims = f.traced_primitives(&[g.clone(), u.clone()]).unwrap();
                assert_eq!(prims.len(), 1, "{d} {dtype}: {prims:?}");
                let want = swiglu_oss(&g, &u).unwrap();
                assert_close(
                    &got,
                    &want,
                    tolerance(d, dtype),
                    &format!("swiglu {d} {dtype}"),
                );
            }
        });
    }
}

#[test]
fn equal_subexpressions_merge_and_views_fold() {
    let f = compile(|xs: &[Array]| {
        let x = &xs[0];
        // Two separately built x·2 (each with its own scalar) are one node after tracing.
        let y = x.mul_scalar(2.0)?.add(&x.mul_scalar(2.0)?)?;
        // A reshape chain is one reshape; an identity transpose disappears.
        let z = x.reshape(&[6, 4])?.reshape(&[24])?.reshape(&[2, 12])?;
        let z = z.transpose(&[0, 1])?;
        Ok(vec![y, z])
    })
    .without_fusion();
    let x = uniform(&[4, 6], 5, -1.0, 1.0);
    let out = f.call(std::slice::from_ref(&x)).unwrap();
    let prims = f.traced_primitives(std::slice::from_ref(&x)).unwrap();
    assert_eq!(prims, ["mul", "add", "reshape"]);
    assert_close(&out[0], &x.mul_scalar(4.0).unwrap(), 0.0, "x·2 + x·2");
    assert_close(&out[1], &x.reshape(&[2, 12]).unwrap(), 0.0, "reshape chain");
}

#[test]
fn a_value_used_twice_is_computed_once_and_integer_math_keeps_its_kernels() {
    let f = compile(|xs: &[Array]| {
        let a = xs[0].exp()?;
        Ok(vec![a.add_scalar(1.0)?, a.mul_scalar(2.0)?])
    });
    let x = uniform(&[10], 9, -1.0, 1.0);
    let out = f.call(std::slice::from_ref(&x)).unwrap();
    assert_eq!(
        f.traced_primitives(std::slice::from_ref(&x)).unwrap(),
        ["exp", "add", "mul"]
    );
    let a = x.exp().unwrap();
    assert_close(&out[0], &a.add_scalar(1.0).unwrap(), 0.0, "exp + 1");
    assert_close(&out[1], &a.mul_scalar(2.0).unwrap(), 0.0, "exp · 2");

    let g = compile(|xs: &[Array]| Ok(vec![xs[0].add_scalar(3.0)?.mul_scalar(5.0)?]));
    let i = Array::from_slice(&[1i32, -2, 2_000_000_000], &[3]).unwrap();
    let out = g.call(std::slice::from_ref(&i)).unwrap().remove(0);
    assert_eq!(
        g.traced_primitives(std::slice::from_ref(&i)).unwrap(),
        ["add", "mul"]
    );
    let want = i.add_scalar(3.0).unwrap().mul_scalar(5.0).unwrap();
    assert_eq!(out.to_vec::<i32>().unwrap(), want.to_vec::<i32>().unwrap());
}

#[test]
fn constants_are_captured_and_a_pending_one_is_computed_once() {
    let w = uniform(&[4, 3], 31, -1.0, 1.0);
    let wt = w.transpose(&[1, 0]).unwrap().contiguous().unwrap();
    let f = compile(|xs: &[Array]| Ok(vec![xs[0].matmul(&wt)?.add_scalar(1.0)?]));
    let x = uniform(&[2, 3], 32, -1.0, 1.0);
    for _ in 0..2 {
        let got = f.call(std::slice::from_ref(&x)).unwrap().remove(0);
        let want = x
            .matmul(&w.transpose(&[1, 0]).unwrap())
            .unwrap()
            .add_scalar(1.0)
            .unwrap();
        assert_close(&got, &want, 1e-6, "x · wᵀ + 1");
        assert!(
            wt.is_evaluated(),
            "the captured transpose was computed and kept"
        );
    }
    let prims = f.traced_primitives(&[x]).unwrap();
    assert_eq!(
        prims,
        ["matmul", "add"],
        "the constant's transpose is not in the tape"
    );
}

#[test]
fn bad_calls_are_clear_errors() {
    let f = compile(|xs: &[Array]| Ok(vec![xs[0].add(&xs[1])?]));
    let a = uniform(&[2, 3], 1, 0.0, 1.0);
    f.call(&[a.clone(), a.clone()]).unwrap();
    let e = f
        .call(std::slice::from_ref(&a))
        .expect_err("one input is an error")
        .to_string();
    assert!(e.contains("takes 2 inputs, called with 1"), "{e}");
    let b = uniform(&[4, 5], 2, 0.0, 1.0);
    let e = f.call(&[a.clone(), b]).expect_err("bad shapes").to_string();
    assert!(
        e.contains("compile: tracing"),
        "the function's own error, traced: {e}"
    );

    let g = compile(|xs: &[Array]| {
        let s: f32 = xs[0].sum(&[0, 1], false)?.item()?;
        Ok(vec![xs[0].mul_scalar(s)?])
    });
    let e = g
        .call(&[a])
        .expect_err("reading data while tracing")
        .to_string();
    assert!(e.contains("may only build the graph"), "{e}");
}

#[test]
fn traces_are_bounded_and_an_evicted_signature_traces_again() {
    let f = compile(|xs: &[Array]| Ok(vec![xs[0].add_scalar(1.0)?.mul_scalar(2.0)?]));
    let call = |n: usize| {
        let x = uniform(&[n], n as u64, -1.0, 1.0);
        let got = f.call(std::slice::from_ref(&x)).unwrap().remove(0);
        let want = x.add_scalar(1.0).unwrap().mul_scalar(2.0).unwrap();
        assert_close(&got, &want, 0.0, &format!("length {n}"));
    };
    for n in 1..=100 {
        call(n);
    }
    assert_eq!(f.trace_count(), 100);
    call(100); // recent: replayed
    assert_eq!(f.trace_count(), 100);
    call(1); // the oldest, evicted: traced again
    assert_eq!(f.trace_count(), 101);
}
