//! Elementwise kernels on every GPU present against the CPU backend, on fresh random inputs:
//! contiguous, strided (transposed), broadcast and scalar operands, every float dtype.

use rmlx_core::primitive::{BinaryOp, UnaryOp};
use rmlx_core::testing::{assert_close as close, gpus, uniform as random};
use rmlx_core::{Array, DType, Device};

fn on(a: &Array, d: Device) -> Array {
    a.to_device(d).unwrap()
}

#[test]
fn unary_ops_match_the_cpu() {
    use UnaryOp::*;
    let ops = [
        Neg, Abs, Exp, Log, Sqrt, Rsqrt, Square, Recip, Sin, Cos, Tanh, Sigmoid, Silu, Gelu,
        GeluTanh, Floor, Ceil, Round, LogicalNot, Erf,
    ];
    for d in gpus() {
        for (k, dtype) in [DType::F32, DType::BF16, DType::F16]
            .into_iter()
            .enumerate()
        {
            // Positive inputs so log/sqrt are defined; a transposed view exercises strides.
            let x = random(&[37, 65], 10 + k as u64, 0.05, 4.0)
                .astype(dtype)
                .unwrap();
            for op in ops {
                let cpu = x.unary(op).unwrap();
                let gpu = on(&x, d).unary(op).unwrap();
                let tol = if dtype == DType::F32 { 1e-6 } else { 1e-2 };
                close(&gpu, &cpu, tol, &format!("{op:?} {dtype}"));
                let xt = x.transpose(&[1, 0]).unwrap();
                let cpu = xt.unary(op).unwrap();
                let gpu = on(&x, d).transpose(&[1, 0]).unwrap().unary(op).unwrap();
                close(&gpu, &cpu, tol, &format!("{op:?} {dtype} transposed"));
            }
        }
    }
}

#[test]
fn binary_ops_broadcast_like_the_cpu() {
    use BinaryOp::*;
    let ops = [
        Add, Sub, Mul, Div, Maximum, Minimum, Pow, Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr,
    ];
    for d in gpus() {
        for dtype in [DType::F32, DType::BF16, DType::I32] {
            let a = random(&[4, 33, 17], 1, 0.5, 3.0).astype(dtype).unwrap();
            for (j, bshape) in [vec![4, 33, 17], vec![33, 1], vec![1], vec![17]]
                .iter()
                .enumerate()
            {
                let b = random(bshape, 2 + j as u64, 0.5, 3.0)
                    .astype(dtype)
                    .unwrap();
                for op in ops {
                    let cpu = a.binary(op, &b).unwrap();
                    let gpu = on(&a, d).binary(op, &on(&b, d)).unwrap();
                    let tol = if dtype == DType::BF16 { 1e-2 } else { 1e-6 };
                    close(&gpu, &cpu, tol, &format!("{op:?} {dtype} {bshape:?}"));
                }
            }
        }
    }
}

#[test]
fn astype_and_where_match_the_cpu() {
    for d in gpus() {
        let x = random(&[300], 5, -300.0, 300.0);
        for from in DType::ALL {
            let xs = x.astype(from).unwrap();
            for to in DType::ALL {
                let cpu = xs.astype(to).unwrap();
                let gpu = on(&xs, d).astype(to).unwrap();
                close(&gpu, &cpu, 0.0, &format!("astype {from} -> {to}"));
            }
        }
        let c = random(&[8, 9], 6, -1.0, 1.0)
            .binary(BinaryOp::Gt, &Array::scalar(0f32))
            .unwrap();
        let a = random(&[8, 9], 7, -1.0, 1.0);
        let b = random(&[9], 8, -1.0, 1.0);
        let cpu = c.where_(&a, &b).unwrap();
        let gpu = on(&c, d).where_(&on(&a, d), &on(&b, d)).unwrap();
        close(&gpu, &cpu, 0.0, "where");
    }
}

#[test]
fn large_uploads_and_downloads_round_trip() {
    for d in gpus() {
        // 40 MB: crosses the pinned staging path (16 MB chunks, two buffers in turn).
        let n = 10_000_003;
        let v: Vec<f32> = (0..n).map(|i| (i % 1013) as f32 * 0.5 - 7.0).collect();
        let x = Array::from_slice(&v, &[n]).unwrap();
        let back = on(&x, d).to_vec::<f32>().unwrap();
        assert!(back == v, "round trip through {d} changed the data");
    }
}
