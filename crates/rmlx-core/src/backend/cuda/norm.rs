//! RMSNorm on CUDA: one block per row, f32 sums of squares, as `backend/cpu/norm.rs` (the
//! output has the input's dtype; the weight may be any float dtype).

use super::device::CudaDevice;
use super::elementwise::contiguous;
use super::launch::{c_type, output, ptr_at, source, Launch};
use super::reduce::float_only;
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::Result;
use std::sync::Arc;

const BODY: &str = include_str!("kernels/norm.cu");
const ROWOPS: &str = include_str!("kernels/rowops.cuh");

fn src(ti: DType, tw: DType) -> String {
    source(&format!(
        "#define TI {}\n#define TW {}\n{ROWOPS}\n{BODY}",
        c_type(ti),
        c_type(tw)
    ))
}

/// Values a thread of `rms_norm_rows_regs` holds (`RMS_REGS` in norm.cu).
const REGS: usize = 8;

pub(crate) fn rms_norm(
    dev: &Arc<CudaDevice>,
    eps: f32,
    x: &Arg,
    w: &Arg,
    shape: &[usize],
    _out_dtype: DType,
) -> Result<Data> {
    float_only(x.dtype, "rms_norm")?;
    float_only(w.dtype, "rms_norm")?;
    let d = *shape.last().unwrap_or(&1);
    let rows = crate::shape::numel(shape) / d.max(1);
    // The CPU writes the input's dtype whatever the node says (ops make them equal).
    let (data, out) = output(dev, shape, x.dtype)?;
    if rows == 0 || d == 0 {
        return Ok(data);
    }
    let as_arg = |a: &Arg| -> Result<Arg> {
        Ok(Arg {
            data: contiguous(dev, a)?,
            shape: a.shape.clone(),
            dtype: a.dtype,
        })
    };
    let (xc, wc) = (as_arg(x)?, as_arg(w)?);
    let key = format!("rms_norm/{}/{}", x.dtype, w.dtype);
    // Rows that fit a block's registers (`RMS_REGS` = 8 values a thread) are read once.
    let threads = (d.div_ceil(REGS).div_ceil(32) * 32).max(32);
    let (entry, block) = if threads <= 1024 {
        ("rms_norm_rows_regs", threads)
    } else {
        ("rms_norm_rows", 512)
    };
    let f = dev.function(&key, || src(x.dtype, w.dtype), entry)?;
    let mut launch = Launch::new(f, entry);
    launch
        .arg(ptr_at(&xc, dev)?)
        .arg(ptr_at(&wc, dev)?)
        .arg(out)
        .arg(rows as i64)
        .arg(d as i64)
        .arg(eps);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); `xc` holds
    // rows·d and `wc` d contiguous values, `out` is a fresh buffer of rows·d; block i
    // normalizes row i (rows capped at 2^20 blocks, grid-stride beyond); the register kernel
    // gets blocks of ≥ d / 8 threads, as it requires.
    unsafe {
        launch.run(
            dev,
            (rows.min(1 << 20) as u32, 1, 1),
            (block as u32, 1, 1),
            0,
        )?
    };
    Ok(data)
}

/// One source per kernel module this family can build, for the NVRTC compile test.
pub(crate) fn sources() -> Vec<(String, String)> {
    use DType::*;
    [
        (F32, F32),
        (F16, F16),
        (BF16, BF16),
        (BF16, F32),
        (F16, F32),
    ]
    .into_iter()
    .map(|(t, w)| (format!("rms_norm/{t}/{w}"), src(t, w)))
    .collect()
}
