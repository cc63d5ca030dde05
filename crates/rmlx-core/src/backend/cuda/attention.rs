//! Scaled dot-product attention on CUDA (`kernels/attention.cu`): positions-based causal and
//! sliding-window masks, GQA, attention sinks, q/k/v in f32, f16 or bf16 with f32 math, the
//! output in q's dtype. Semantics follow `cpu/attention.rs`: q is scaled before the dot products,
//! a query that sees no key (and has no sink) gives zeros. K/V are read in place when their rows
//! are contiguous (any stride along B, H, T: a KV-cache view is not copied). Decode-shaped calls
//! (few rows, many keys) split the keys over blocks and merge the partial softmax sums.

use super::device::CudaDevice;
use super::elementwise;
use super::launch::{c_type, output, ptr_at, source, Launch};
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::{Error, Result};
use std::sync::Arc;

const BODY: &str = include_str!("kernels/attention.cu");
const THREADS: usize = 128;
/// Output dims per thread at most (Dv ≤ 128 · this).
const MAX_DV_PER: usize = 8;

fn key(tq: DType, tk: DType, dv_per: usize) -> String {
    format!("sdpa/{tq}/{tk}/{dv_per}")
}

fn build(tq: DType, tk: DType, dv_per: usize) -> String {
    source(&format!(
        "#define TQ {}\n#define TK {}\n#define DV_PER {dv_per}\n{BODY}",
        c_type(tq),
        c_type(tk)
    ))
}

/// Views in place when rows (the last dim) are contiguous, else a contiguous copy.
fn rows_of(dev: &Arc<CudaDevice>, x: &Arg) -> Result<Arg> {
    let data = if x.data.strides[3] == 1 || x.shape[3] <= 1 {
        x.data.clone()
    } else {
        elementwise::copy_contiguous(dev, x)?
    };
    Ok(Arg {
        data,
        shape: x.shape.clone(),
        dtype: x.dtype,
    })
}

/// The element stride of dim `i` (0 for a size-1 dim: its index is always 0).
fn stride(x: &Arg, i: usize) -> i64 {
    if x.shape[i] == 1 {
        0
    } else {
        x.data.strides[i] as i64
    }
}

fn contiguous_arg(dev: &Arc<CudaDevice>, x: &Arg) -> Result<Arg> {
    Ok(Arg {
        data: elementwise::contiguous(dev, x)?,
        shape: x.shape.clone(),
        dtype: x.dtype,
    })
}

fn float(dtype: DType, what: &str) -> Result<()> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(Error::dtype(format!(
            "cuda: sdpa: expected a float {what}, found {dtype}"
        )))
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn sdpa(
    dev: &Arc<CudaDevice>,
    scale: f32,
    window: Option<usize>,
    has_sinks: bool,
    inputs: &[Arg],
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
    float(q.dtype, "q")?;
    float(k.dtype, "k")?;
    if v.dtype != k.dtype {
        return Err(Error::dtype(format!(
            "sdpa: expected k and v of one dtype, found {} and {}",
            k.dtype, v.dtype
        )));
    }
    if out_dtype != q.dtype {
        return Err(Error::dtype(format!(
            "cuda: sdpa: expected the output in q's dtype {}, found {out_dtype}",
            q.dtype
        )));
    }
    let (b, hq, tq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3]);
    let (hkv, tk, dv) = (k.shape[1], k.shape[2], v.shape[3]);
    if hkv == 0 || hq % hkv != 0 {
        return Err(Error::shape(format!(
            "sdpa: expected query heads ({hq}) to be a multiple of kv heads ({hkv})"
        )));
    }
    let dv_per = dv.div_ceil(THREADS).max(1);
    if dv_per > MAX_DV_PER {
        return Err(Error::shape(format!(
            "cuda: sdpa: value head dims above {} are not supported, found {dv}",
            THREADS * MAX_DV_PER
        )));
    }
    let int = |x: usize, what: &str| {
        i32::try_from(x).map_err(|_| Error::shape(format!("cuda: sdpa: {what} ({x}) exceeds i32")))
    };
    let (data, out) = output(dev, shape, out_dtype)?;
    if b == 0 || hq == 0 || tq == 0 || dv == 0 {
        return Ok(data);
    }
    if b > 65535 || hq > 65535 {
        return Err(Error::shape(format!(
            "cuda: sdpa: batch ({b}) and heads ({hq}) must be at most 65535"
        )));
    }
    let qc = contiguous_arg(dev, q)?;
    let (kr, vr) = (rows_of(dev, k)?, rows_of(dev, v)?);
    let qp = contiguous_arg(dev, &inputs[3])?;
    let kp = contiguous_arg(dev, &inputs[4])?;
    if qp.dtype != DType::I32 || kp.dtype != DType::I32 {
        return Err(Error::dtype("sdpa: expected i32 positions"));
    }
    let sinks = if has_sinks {
        let s = &inputs[5];
        if s.numel() < hq {
            return Err(Error::shape(format!(
                "sdpa: expected {hq} sinks, found {}",
                s.numel()
            )));
        }
        // Loaded models keep their sinks in f32 (no per-step conversion kernel).
        let data = if s.dtype == DType::F32 {
            elementwise::contiguous(dev, s)?
        } else {
            elementwise::astype(dev, s, &s.shape, DType::F32)?
        };
        Some(Arg {
            data,
            shape: s.shape.clone(),
            dtype: DType::F32,
        })
    } else {
        None
    };
    // Empty K/V (Tk = 0) are never read; their pointers may be anything valid.
    let kptr = if tk == 0 { 0 } else { ptr_at(&kr, dev)? };
    let vptr = if tk == 0 { 0 } else { ptr_at(&vr, dev)? };
    let kpptr = if tk == 0 { 0 } else { ptr_at(&kp, dev)? };
    let sptr = match &sinks {
        Some(s) => ptr_at(s, dev)?,
        None => 0,
    };
    let f = dev.function(
        &key(q.dtype, k.dtype, dv_per),
        || build(q.dtype, k.dtype, dv_per),
        "sdpa_rows",
    )?;
    // Few rows over many keys (decode): split the keys over more blocks and merge their
    // partial softmax sums (flash-decoding), so a few heads still fill the GPU.
    let rows = b * hq * tq;
    let splits = if rows < 256 && tk >= 256 {
        tk.div_ceil(128).min(512usize.div_ceil(rows)).clamp(1, 64)
    } else {
        1
    };
    let part = if splits > 1 {
        Some(dev.alloc(rows * splits * (dv + 2) * 4)?)
    } else {
        None
    };
    let part_ptr = part.as_ref().map_or(0, |p| p.ptr());
    let grid_x = u32::try_from(tq * splits)
        .map_err(|_| Error::shape(format!("cuda: sdpa: too many query rows ({tq})")))?;
    // q row, then the accumulators of the extra key groups (dv ≤ THREADS/2: THREADS/dv groups).
    let groups = if dv <= THREADS / 2 { THREADS / dv } else { 1 };
    let shared = ((d + (groups - 1) * dv) * 4) as u32;
    // Keys read as 16-byte vectors when every row starts on a 16-byte boundary.
    let vec_k = tk > 0
        && d % 8 == 0
        && kptr % 16 == 0
        && [0, 1, 2].iter().all(|&i| stride(&kr, i) % 8 == 0);
    if shared > 48 * 1024 {
        return Err(Error::shape(format!(
            "cuda: sdpa: head dim {d} is too large"
        )));
    }
    let mut launch = Launch::new(f, "sdpa_rows");
    launch
        .arg(ptr_at(&qc, dev)?)
        .arg(kptr)
        .arg(vptr)
        .arg(ptr_at(&qp, dev)?)
        .arg(kpptr)
        .arg(sptr)
        .arg(out)
        .arg(stride(&kr, 0))
        .arg(stride(&kr, 1))
        .arg(stride(&kr, 2))
        .arg(stride(&vr, 0))
        .arg(stride(&vr, 1))
        .arg(stride(&vr, 2))
        .arg(int(hq, "q heads")?)
        .arg(int(hkv, "kv heads")?)
        .arg(int(tq, "Tq")?)
        .arg(int(tk, "Tk")?)
        .arg(int(d, "D")?)
        .arg(int(dv, "Dv")?)
        .arg(scale)
        .arg(window.map_or(-1i64, |w| w.min(i64::MAX as usize) as i64))
        .arg(splits as i32)
        .arg(part_ptr)
        .arg(vec_k as i32);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); q, positions
    // and sinks are contiguous copies; k and v are read through the strides of their
    // row-contiguous views (kr, vr) for b·hkv heads of tk rows of d / dv; `out` is a fresh (b,
    // hq, tq, dv) buffer and `part` (when splits > 1) holds the per-split partials; shared
    // memory holds d f32 (≤ 48 KiB, checked).
    unsafe {
        launch.run(
            dev,
            (grid_x, hq as u32, b as u32),
            (THREADS as u32, 1, 1),
            shared,
        )?
    };
    if splits > 1 {
        let f = dev.function(
            &key(q.dtype, k.dtype, dv_per),
            || build(q.dtype, k.dtype, dv_per),
            "sdpa_combine",
        )?;
        let mut launch = Launch::new(f, "sdpa_combine");
        launch
            .arg(part_ptr)
            .arg(sptr)
            .arg(out)
            .arg(int(hq, "q heads")?)
            .arg(int(tq, "Tq")?)
            .arg(int(dv, "Dv")?)
            .arg(splits as i32);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); `part`
        // holds the splits' partials written by sdpa_rows before it on this stream, `out` the
        // (rows, dv) output.
        unsafe { launch.run(dev, (rows as u32, 1, 1), (THREADS as u32, 1, 1), 0)? };
    }
    // Temporaries (contiguous copies, f32 sinks) are freed stream-ordered after the kernel.
    drop((qc, kr, vr, qp, kp, sinks, part));
    Ok(data)
}

/// One source per kernel module this family can build, for the NVRTC compile test.
pub(crate) fn sources() -> Vec<(String, String)> {
    use DType::*;
    let mut out = Vec::new();
    for (tq, tk) in [(F32, F32), (BF16, BF16), (F16, F16), (F32, BF16)] {
        for dv_per in [1, 2] {
            out.push((key(tq, tk, dv_per), build(tq, tk, dv_per)));
        }
    }
    out
}
