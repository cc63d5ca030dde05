//! `Primitive::Compiled` on CUDA: each fused run becomes one generated kernel, one thread per
//! output element, every intermediate in a register. The source is built from the run's ops
//! with the same f32 expressions as the unfused kernels (`elementwise.rs`) and the rounding
//! `compile::FusedKernel` specifies, compiled once per (run, input access pattern) by NVRTC and
//! cached in memory and on disk like every other kernel.

use super::device::CudaDevice;
use super::elementwise::{binary_float_expr, unary_expr};
use super::launch::{base_ptr, c_type, output, ptr_at, source, Launch, Layout};
use crate::array::Data;
use crate::backend::common::broadcast_strides;
use crate::backend::Arg;
use crate::compile::{ElemOp, FusedKernel, FusedOp, Operand};
use crate::dtype::DType;
use crate::error::Result;
use crate::primitive::{BinaryOp, UnaryOp};
use std::fmt::Write;
use std::sync::Arc;

/// How the kernel reads one input.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Contiguous in the output's shape: `in[i]`.
    Full,
    /// One value: `in[0]`.
    Scalar,
    /// Through a layout broadcast to the output's shape.
    Strided,
}

impl Access {
    fn of(a: &Arg, shape: &[usize]) -> Access {
        if a.numel() == 1 {
            Access::Scalar
        } else if a.is_contiguous() && a.shape == shape {
            Access::Full
        } else {
            Access::Strided
        }
    }

    fn code(self) -> char {
        match self {
            Access::Full => 'f',
            Access::Scalar => 's',
            Access::Strided => 'v',
        }
    }
}

pub(crate) fn compiled(
    dev: &Arc<CudaDevice>,
    kernel: &FusedKernel,
    inputs: &[Arg],
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    kernel.check(
        &inputs.iter().map(|a| a.dtype).collect::<Vec<_>>(),
        out_dtype,
    )?;
    let n = crate::shape::numel(shape);
    let (data, out) = output(dev, shape, out_dtype)?;
    if n == 0 {
        return Ok(data);
    }
    let access: Vec<Access> = inputs.iter().map(|a| Access::of(a, shape)).collect();
    let mut key = String::with_capacity(kernel.signature().len() + 16);
    key.push_str("compiled/");
    key.extend(access.iter().map(|a| a.code()));
    key.push('/');
    key.push_str(kernel.signature());
    let f = dev.function(&key, || generate(kernel, &access), "fused")?;
    let mut launch = Launch::new(f, "fused");
    for (a, acc) in inputs.iter().zip(&access) {
        match acc {
            Access::Full | Access::Scalar => launch.arg(ptr_at(a, dev)?),
            Access::Strided => {
                let strides = broadcast_strides(&a.shape, &a.data.strides, shape);
                launch
                    .arg(base_ptr(a, dev)?)
                    .arg(Layout::new(shape, &strides, a.data.offset)?)
            }
        };
    }
    launch.arg(out).arg(n as i64);
    // SAFETY: the parameters follow `generate`'s signature: per input its address (its first
    // element for full and scalar reads, which `Access::of` checked hold n and 1 elements) or
    // its base with a layout broadcast to `shape` (stride 0 on broadcast axes keeps every
    // index inside the view), then `out`, a fresh buffer of n elements, and n.
    unsafe { launch.run_1d(dev, n)? };
    Ok(data)
}

/// The kernel source of `kernel` reading its inputs as `access` says.
fn generate(kernel: &FusedKernel, access: &[Access]) -> String {
    let mut s = String::new();
    for (t, op) in kernel.ops().iter().enumerate() {
        match op.op {
            ElemOp::Unary(u) => {
                let _ = writeln!(
                    s,
                    "__device__ __forceinline__ float rmlx_op{t}(float v) {{ return {}; }}",
                    unary_expr(u)
                );
            }
            ElemOp::Binary(b) => {
                let _ = writeln!(
                    s,
                    "__device__ __forceinline__ float rmlx_op{t}(float x, float y) {{ return {}; }}",
                    binary_float_expr(b)
                );
            }
            ElemOp::Cast | ElemOp::Where => {}
        }
    }
    s.push_str("extern \"C\" __global__ void fused(");
    for (i, (d, acc)) in kernel.inputs().iter().zip(access).enumerate() {
        let _ = write!(s, "const {}* __restrict__ in{i}, ", c_type(*d));
        if *acc == Access::Strided {
            let _ = write!(s, "Layout l{i}, ");
        }
    }
    let _ = writeln!(
        s,
        "{}* __restrict__ out, i64 n) {{\n  RMLX_FOR_EACH(i, n) {{",
        c_type(kernel.out_dtype())
    );
    for (i, (d, acc)) in kernel.inputs().iter().zip(access).enumerate() {
        let at = match acc {
            Access::Full => "i".to_string(),
            Access::Scalar => "0".to_string(),
            Access::Strided => format!("layout_offset(l{i}, i)"),
        };
        let _ = writeln!(
            s,
            "    const float a{i} = Num<{}>::to_f32(in{i}[{at}]);",
            c_type(*d)
        );
    }
    for (t, op) in kernel.ops().iter().enumerate() {
        let _ = writeln!(s, "    float t{t} = {};", expression(t, op));
        if op.dtype != DType::F32 {
            let c = c_type(op.dtype);
            let _ = writeln!(s, "    t{t} = Num<{c}>::to_f32(Num<{c}>::from_f32(t{t}));");
        }
    }
    let last = kernel.len() - 1;
    let _ = writeln!(
        s,
        "    out[i] = Num<{}>::from_f32(t{last});\n  }}\n}}",
        c_type(kernel.out_dtype())
    );
    source(&s)
}

fn expression(t: usize, op: &FusedOp) -> String {
    let arg = |k: usize| match op.args[k] {
        Operand::Input(j) => format!("a{j}"),
        Operand::Op(j) => format!("t{j}"),
    };
    match op.op {
        ElemOp::Cast => arg(0),
        ElemOp::Unary(_) => format!("rmlx_op{t}({})", arg(0)),
        ElemOp::Binary(_) => format!("rmlx_op{t}({}, {})", arg(0), arg(1)),
        ElemOp::Where => format!("({} != 0.0f ? {} : {})", arg(0), arg(1), arg(2)),
    }
}

/// Sources of representative fused kernels, for the NVRTC compile test: GELU written out in
/// f32 and bf16 (strided and scalar inputs), and a masked select.
pub(crate) fn sources() -> Vec<(String, String)> {
    use DType::*;
    let op = |op, args: Vec<Operand>, dtype| FusedOp { op, args, dtype };
    let (i, t) = (Operand::Input, Operand::Op);
    let gelu = |d: DType| {
        FusedKernel::new(
            vec![d, d, d, d],
            vec![
                op(ElemOp::Binary(BinaryOp::Mul), vec![i(0), i(1)], d),
                op(ElemOp::Unary(UnaryOp::Erf), vec![t(0)], d),
                op(ElemOp::Binary(BinaryOp::Add), vec![t(1), i(2)], d),
                op(ElemOp::Binary(BinaryOp::Mul), vec![i(0), i(3)], d),
                op(ElemOp::Binary(BinaryOp::Mul), vec![t(3), t(2)], d),
            ],
        )
    };
    let select = FusedKernel::new(
        vec![F32, F32, BF16],
        vec![
            op(ElemOp::Binary(BinaryOp::Gt), vec![i(0), i(1)], Bool),
            op(ElemOp::Cast, vec![i(2)], F32),
            op(ElemOp::Where, vec![t(0), i(0), t(1)], F32),
            op(ElemOp::Cast, vec![t(2)], BF16),
        ],
    );
    use Access::*;
    vec![
        (gelu(F32), vec![Full, Scalar, Scalar, Scalar]),
        (gelu(BF16), vec![Strided, Scalar, Full, Scalar]),
        (select, vec![Full, Scalar, Strided]),
    ]
    .into_iter()
    .map(|(k, a)| (format!("compiled/{}", k.signature()), generate(&k, &a)))
    .collect()
}
