//! RoPE on CUDA, as `backend/cpu/rope.rs` (cos/sin of f64 angles, same pairing for both
//! layouts, unrotated tail past `dims`): one thread per element. Few positions (decode) compute
//! their angles in that one kernel; many (prefill) share a (T, dims/2) table built first.

use super::device::CudaDevice;
use super::elementwise::contiguous;
use super::launch::{c_type, output, ptr_at, source, Launch};
use super::reduce::float_only;
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::RopeLayout;
use std::sync::Arc;

const BODY: &str = include_str!("kernels/rope.cu");

/// Up to this many positions a RoPE is one kernel computing its own angles (see the header).
const DIRECT_POSITIONS: usize = 16;

fn key_src(t: DType, layout: RopeLayout) -> (String, String) {
    let split = if layout == RopeLayout::HalfSplit {
        "#define HALF_SPLIT\n"
    } else {
        ""
    };
    (
        format!("rope/{t}/{layout:?}"),
        source(&format!("#define T_ {}\n{split}{BODY}", c_type(t))),
    )
}

pub(crate) fn rope(
    dev: &Arc<CudaDevice>,
    layout: RopeLayout,
    dims: usize,
    mscale: f32,
    inputs: &[Arg],
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let (x, freqs, pos) = (&inputs[0], &inputs[1], &inputs[2]);
    float_only(x.dtype, "rope")?;
    if out_dtype != x.dtype {
        return Err(Error::dtype("rope: output dtype must equal the input's"));
    }
    if freqs.dtype != DType::F32 || pos.dtype != DType::I32 {
        return Err(Error::dtype(
            "rope: expected f32 inv_freq and i32 positions",
        ));
    }
    let nd = shape.len();
    let (t, d) = (shape[nd - 2], shape[nd - 1]);
    let half = dims / 2;
    let n = crate::shape::numel(shape);
    let (data, out) = output(dev, shape, out_dtype)?;
    if n == 0 {
        return Ok(data);
    }
    let as_arg = |a: &Arg| -> Result<Arg> {
        Ok(Arg {
            data: contiguous(dev, a)?,
            shape: a.shape.clone(),
            dtype: a.dtype,
        })
    };
    let (xc, fc, pc) = (as_arg(x)?, as_arg(freqs)?, as_arg(pos)?);
    let (key, s) = key_src(x.dtype, layout);
    if t <= DIRECT_POSITIONS {
        let f = dev.function(&key, || s, "rope_direct")?;
        let mut launch = Launch::new(f, "rope_direct");
        launch
            .arg(ptr_at(&xc, dev)?)
            .arg(ptr_at(&fc, dev)?)
            .arg(ptr_at(&pc, dev)?)
            .arg(out)
            .arg(n as i64)
            .arg(t as i64)
            .arg(d as i64)
            .arg(dims as i64)
            .arg(mscale);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); `xc` is a
        // contiguous copy of n values (rows of d, t positions), `fc` holds dims/2 f32
        // frequencies and `pc` t i32 positions (contiguous), `out` a fresh buffer of n.
        unsafe { launch.run_1d(dev, n)? };
        return Ok(data);
    }
    let table = dev.alloc((t * half).max(1) * 8)?;
    if half > 0 {
        let f = dev.function(&key, || s.clone(), "rope_table")?;
        let mut launch = Launch::new(f, "rope_table");
        launch
            .arg(ptr_at(&fc, dev)?)
            .arg(ptr_at(&pc, dev)?)
            .arg(table.ptr())
            .arg(t as i64)
            .arg(half as i64)
            .arg(mscale);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); `fc` holds
        // half f32 frequencies and `pc` t i32 positions (contiguous copies), `table` a fresh
        // buffer of t·half cos/sin pairs (8 bytes each).
        unsafe { launch.run_1d(dev, t * half)? };
    }
    let f = dev.function(&key, || s, "rope_apply")?;
    let mut launch = Launch::new(f, "rope_apply");
    launch
        .arg(ptr_at(&xc, dev)?)
        .arg(table.ptr())
        .arg(out)
        .arg(n as i64)
        .arg(t as i64)
        .arg(d as i64)
        .arg(dims as i64);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); `xc` is a
    // contiguous copy of n values (rows of d, t positions), `table` the t·half pairs written
    // by the kernel before it on this stream, `out` a fresh buffer of n.
    unsafe { launch.run_1d(dev, n)? };
    // The table is freed once both kernels are queued: stream-ordered reuse waits behind them.
    drop(table);
    Ok(data)
}

/// One source per kernel module this family can build, for the NVRTC compile test.
pub(crate) fn sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in [DType::F32, DType::F16, DType::BF16] {
        for l in [RopeLayout::HalfSplit, RopeLayout::Interleaved] {
            out.push(key_src(t, l));
        }
    }
    out
}
