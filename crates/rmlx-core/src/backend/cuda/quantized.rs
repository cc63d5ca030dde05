//! Quantized primitives on CUDA: `QuantizedMatmul`, `GatherQmm` and `QuantizedTake`, straight
//! from packed weights (GGUF block formats, Hugging Face MXFP4, MLX affine).
//!
//! One row (decode) of Q4_0, Q4_1, Q8_0 and MXFP4 (GGUF and Hugging Face) runs on 8-bit
//! activations as the CPU backend does (one plane for GGUF, as llama.cpp's MMVQ; two for HF
//! MXFP4): the block quantizes x into shared memory, weights are decoded to int8 in registers
//! and multiplied with dp4a. Other formats and more rows keep float activations: weights
//! dequantized exactly in registers and multiplied with x in f32. Their one-row GEMV has a
//! warp per 4 output features (x loaded once as 16-byte vectors for all 4), up to 8 rows one
//! warp per feature; many rows a tiled kernel
//! that dequantizes each weight K-slice into shared memory once per 64 rows. `GatherQmm` with
//! many (row, expert) pairs first sorts the pairs by expert on the device (no host sync), so a
//! tile of rows shares one expert's weights. Expert or row indices out of range give NaN rows
//! (the CPU reports an error; the GPU cannot without synchronizing).

use super::device::CudaDevice;
use super::elementwise;
use super::launch::{c_type, output, ptr_at, source, Launch};
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::quant::{GgmlType, QuantFormat};
use std::sync::Arc;

const BODY: &str = include_str!("kernels/quantized.cu");

/// Rows of x (or pairs of a gather) up to which the GEMV kernel runs.
const GEMV_ROWS: usize = 8;
/// The tiled kernel's tile (must match `QMM_BM`/`QMM_BN` in quantized.cu).
const TILE_M: usize = 64;
const TILE_N: usize = 64;
/// Warps per GEMV block (`QMV_WARPS`).
const GEMV_WARPS: usize = 8;
/// Output features per warp of the one-row GEMV (`QMV1_NF`).
const ONE_ROW_FEATURES: usize = 4;

/// The `FMT_*` define of a format, or an error for formats without a kernel.
fn format_define(f: QuantFormat) -> Result<String> {
    use GgmlType::*;
    Ok(match f {
        QuantFormat::Gguf(t) => {
            let name = match t {
                Q4_0 => "Q4_0",
                Q4_1 => "Q4_1",
                Q5_0 => "Q5_0",
                Q5_1 => "Q5_1",
                Q8_0 => "Q8_0",
                Q2_K => "Q2_K",
                Q3_K => "Q3_K",
                Q4_K => "Q4_K",
                Q5_K => "Q5_K",
                Q6_K => "Q6_K",
                Q8_K => "Q8_K",
                MXFP4 => "GMXFP4",
                other => {
                    return Err(Error::NotImplemented {
                        op: format!("quantized kernels ({})", other.name()),
                        device: "cuda".into(),
                    })
                }
            };
            format!("#define FMT_{name}\n")
        }
        QuantFormat::Mxfp4 => "#define FMT_MXFP4\n".into(),
        QuantFormat::Affine { bits, .. } => format!("#define FMT_AFFINE\n#define BITS {bits}\n"),
    })
}

/// The module key and source for a format, x/output type `t` and affine scale type `ts`.
fn module(f: QuantFormat, t: DType, ts: DType) -> Result<(String, impl FnOnce() -> String)> {
    let fmt = format_define(f)?;
    // The group size is a kernel argument: one module serves every group size of a bit width.
    let (name, ts) = match f {
        QuantFormat::Affine { bits, .. } => (format!("affine{bits}"), ts),
        _ => (f.to_string(), DType::F32),
    };
    let key = format!("quantized/{name}/{t}/{ts}");
    let src = move || {
        source(&format!(
            "#define T {}\n#define TS {}\n{fmt}{BODY}",
            c_type(t),
            c_type(ts)
        ))
    };
    Ok((key, src))
}

/// A contiguous view of an input (a copy when it is strided).
fn contig(dev: &Arc<CudaDevice>, a: &Arg) -> Result<Arg> {
    Ok(Arg {
        data: elementwise::contiguous(dev, a)?,
        shape: a.shape.clone(),
        dtype: a.dtype,
    })
}

/// A contiguous view starting on a 16-byte boundary: kernels read weight codes in 32-bit words
/// and x in 16-byte vectors, so a view starting mid-word is copied to a fresh (aligned) buffer.
fn aligned(dev: &Arc<CudaDevice>, a: &Arg) -> Result<Arg> {
    let c = contig(dev, a)?;
    if ptr_at(&c, dev)? % 16 != 0 {
        return Ok(Arg {
            data: elementwise::copy_contiguous(dev, &c)?,
            ..c
        });
    }
    Ok(c)
}

/// The weight's parts, contiguous, with their device addresses (0 for parts a format lacks),
/// the affine group size (0 otherwise) and the affine scales' dtype.
struct Parts {
    _keep: Vec<Arg>,
    ptrs: [u64; 3],
    gs: i64,
    ts: DType,
}

impl Parts {
    fn new(dev: &Arc<CudaDevice>, f: QuantFormat, args: &[Arg]) -> Result<Self> {
        let keep = args
            .iter()
            .map(|a| aligned(dev, a))
            .collect::<Result<Vec<_>>>()?;
        let mut ptrs = [0u64; 3];
        for (p, a) in ptrs.iter_mut().zip(&keep) {
            *p = ptr_at(a, dev)?;
        }
        let (gs, ts) = match f {
            QuantFormat::Affine { group_size, .. } => (group_size as i64, keep[1].dtype),
            _ => (0, DType::F32),
        };
        Ok(Parts {
            _keep: keep,
            ptrs,
            gs,
            ts,
        })
    }
}

fn check_float(op: &str, d: DType) -> Result<()> {
    if !d.is_float() {
        return Err(Error::dtype(format!(
            "{op}: expected a float dtype, found {d}"
        )));
    }
    Ok(())
}

pub(crate) fn quantized_matmul(
    dev: &Arc<CudaDevice>,
    f: QuantFormat,
    n: usize,
    k: usize,
    inputs: &[Arg],
    s: &[usize],
    d: DType,
) -> Result<Data> {
    check_float("quantized_matmul", d)?;
    let x = aligned(dev, &inputs[0])?;
    let parts = Parts::new(dev, f, &inputs[1..])?;
    let m = x.numel() / k;
    let (data, out) = output(dev, s, d)?;
    let (key, src) = module(f, d, parts.ts)?;
    let [p0, p1, p2] = parts.ptrs;
    if m == 1 {
        one_row_gemv(dev, f, (&key, src), &x, &parts, out, None, n, k, 1)?;
    } else if m <= GEMV_ROWS {
        let func = dev.function(&key, src, "qmv")?;
        let mut launch = Launch::new(func, "qmv");
        launch
            .arg(ptr_at(&x, dev)?)
            .arg(p0)
            .arg(p1)
            .arg(p2)
            .arg(out)
            .arg(0u64)
            .arg(n as i64)
            .arg(k as i64)
            .arg(parts.gs)
            .arg(m as i64)
            .arg(0i32)
            .arg(1i64)
            .arg(0i32)
            .arg(1i64);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x (m rows
        // of k, contiguous), the weight parts p0..p2 (validated against n, k and the format at
        // load) and `out` (a fresh (m, n) buffer) cover every index the kernel computes from
        // n, k and m; no gather (null indices).
        unsafe {
            launch.run(
                dev,
                (n.div_ceil(GEMV_WARPS) as u32, (m > 0) as u32, 1),
                (32 * GEMV_WARPS as u32, 1, 1),
                0,
            )?
        };
    } else {
        let func = dev.function(&key, src, "qmm")?;
        let mut launch = Launch::new(func, "qmm");
        launch
            .arg(ptr_at(&x, dev)?)
            .arg(p0)
            .arg(p1)
            .arg(p2)
            .arg(out)
            .arg(0u64)
            .arg(n as i64)
            .arg(k as i64)
            .arg(parts.gs)
            .arg(m as i64)
            .arg(1i64)
            .arg(0i32)
            .arg(1i64);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x (m rows
        // of k, contiguous), the weight parts p0..p2 (validated against n, k and the format at
        // load) and `out` (a fresh (m, n) buffer) cover every index the tiled kernel computes
        // from n, k and m; no gather (null scratch, one expert).
        unsafe { launch.run(dev, tile_grid(n, m.div_ceil(TILE_M))?, (256, 1, 1), 0)? };
    }
    Ok(data)
}

/// How a gather's output rows find their expert and x row.
struct Gather {
    idx: u64,
    top_k: usize,
    shared_x: i32,
    experts: usize,
}

/// The 8-bit planes x is quantized into by the `qmv1_q8_*` kernels (llama.cpp's MMVQ idea:
/// integer dot products on codes decoded to int8), for the formats that have them: one plane
/// for GGUF (as llama.cpp and the CPU backend), two for Hugging Face MXFP4 (x and its rounding
/// residual, as the CPU: transformers computes in float). `RMLX_CUDA_Q8=0` turns them off.
fn q8_planes(f: QuantFormat) -> Option<usize> {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*ENABLED.get_or_init(|| std::env::var("RMLX_CUDA_Q8").map_or(true, |v| v != "0")) {
        return None;
    }
    use GgmlType::*;
    match f {
        QuantFormat::Mxfp4 => Some(2),
        QuantFormat::Gguf(Q4_0 | Q4_1 | Q8_0 | MXFP4) => Some(1),
        _ => None,
    }
}

/// Shared memory of the q8 kernels: the planes' codes, their per-32 scales and d·Σq.
fn q8_shared_bytes(planes: usize, k: usize) -> usize {
    planes * k + (planes + 1) * (k / 32) * 4
}

/// The shared memory a block may take without opting in (every CUDA GPU has 48 KiB).
const STATIC_SHARED: usize = 48 * 1024;

/// Below this many warps (rows × features / 4) the q8 GEMV gives each warp one feature: small
/// layers (SmolLM2's 576 features) otherwise leave most SMs idle and the GEMV latency-bound.
const Q8_ONE_FEATURE_BELOW: usize = 2048;

/// One x row per output row (`rows` of them): the `qmv1_q8_*` kernels where the format has
/// them, else `qmv1` (a warp per 4 features, weights decoded to f32).
#[allow(clippy::too_many_arguments)]
fn one_row_gemv(
    dev: &Arc<CudaDevice>,
    f: QuantFormat,
    (key, src): (&str, impl FnOnce() -> String),
    x: &Arg,
    parts: &Parts,
    out: u64,
    gather: Option<Gather>,
    n: usize,
    k: usize,
    rows: usize,
) -> Result<()> {
    let [p0, p1, p2] = parts.ptrs;
    let g = gather.unwrap_or(Gather {
        idx: 0,
        top_k: 1,
        shared_x: 0,
        experts: 1,
    });
    if let Some(planes) = q8_planes(f) {
        let shared = q8_shared_bytes(planes, k);
        if shared <= STATIC_SHARED && k.is_multiple_of(32) {
            let one = rows * n.div_ceil(4) < Q8_ONE_FEATURE_BELOW;
            let (entry, features, warps) = if one {
                ("qmv1_q8_f1", 1, 4)
            } else {
                ("qmv1_q8_f4", 4, GEMV_WARPS)
            };
            let func = dev.function(key, src, entry)?;
            let mut launch = Launch::new(func, entry);
            launch
                .arg(ptr_at(x, dev)?)
                .arg(p0)
                .arg(p1)
                .arg(out)
                .arg(g.idx)
                .arg(n as i64)
                .arg(k as i64)
                .arg((g.idx != 0) as i32)
                .arg(g.top_k as i64)
                .arg(g.shared_x)
                .arg(g.experts as i64);
            // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x
            // (`rows` rows of k, contiguous), the weight parts p0, p1 (validated against n,
            // k and the format at load; K a multiple of 32), `out` (a fresh buffer of
            // rows·n) and, when gathering, `g.idx` (rows·top_k expert ids, checked against
            // `experts` in the kernel) cover every index the kernel computes; the dynamic
            // shared memory is the `q8_shared_bytes` it carves up, within 48 KiB.
            unsafe {
                launch.run(
                    dev,
                    (n.div_ceil(warps * features) as u32, rows as u32, 1),
                    (32 * warps as u32, 1, 1),
                    shared as u32,
                )?
            };
            return Ok(());
        }
    }
    let func = dev.function(key, src, "qmv1")?;
    let mut launch = Launch::new(func, "qmv1");
    launch
        .arg(ptr_at(x, dev)?)
        .arg(p0)
        .arg(p1)
        .arg(p2)
        .arg(out)
        .arg(g.idx)
        .arg(n as i64)
        .arg(k as i64)
        .arg(parts.gs)
        .arg((g.idx != 0) as i32)
        .arg(g.top_k as i64)
        .arg(g.shared_x)
        .arg(g.experts as i64);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x (`rows` rows
    // of k, contiguous), the weight parts p0..p2 (validated against n, k and the format at
    // load), `out` (a fresh buffer of rows·n) and, when gathering, `g.idx` (rows·top_k expert
    // ids, checked against `experts` in the kernel) cover every index the kernel computes.
    unsafe {
        launch.run(
            dev,
            (
                n.div_ceil(GEMV_WARPS * ONE_ROW_FEATURES) as u32,
                rows as u32,
                1,
            ),
            (32 * GEMV_WARPS as u32, 1, 1),
            0,
        )?
    };
    Ok(())
}

fn tile_grid(n: usize, tiles_m: usize) -> Result<(u32, u32, u32)> {
    if tiles_m > 65535 {
        return Err(Error::shape(format!(
            "cuda quantized matmul: {tiles_m} row tiles exceed the grid's 65535"
        )));
    }
    Ok((n.div_ceil(TILE_N) as u32, tiles_m as u32, 1))
}

pub(crate) fn gather_qmm(
    dev: &Arc<CudaDevice>,
    f: QuantFormat,
    n: usize,
    k: usize,
    inputs: &[Arg],
    s: &[usize],
    d: DType,
) -> Result<Data> {
    check_float("gather_qmm", d)?;
    let (idx_arg, wargs) = inputs
        .get(1..)
        .and_then(|i| i.split_last())
        .ok_or_else(|| Error::msg("gather_qmm: internal error: the op gave no inputs"))?;
    if idx_arg.dtype != DType::U32 {
        return Err(Error::dtype(format!(
            "gather_qmm: expected u32 indices, found {}",
            idx_arg.dtype
        )));
    }
    let experts = wargs[0].shape[0];
    let x = aligned(dev, &inputs[0])?;
    let idx = contig(dev, idx_arg)?;
    let parts = Parts::new(dev, f, wargs)?;
    let pairs = idx.numel();
    let top_k = *idx.shape.last().unwrap_or(&1);
    let shared_x = (x.numel() / k != pairs) as i32; // x (…, K) shared by its top_k experts
    let (data, out) = output(dev, s, d)?;
    if pairs == 0 {
        return Ok(data);
    }
    let (key, src) = module(f, d, parts.ts)?;
    let [p0, p1, p2] = parts.ptrs;
    let idx_ptr = ptr_at(&idx, dev)?;
    if pairs <= GEMV_ROWS {
        let gather = Gather {
            idx: idx_ptr,
            top_k,
            shared_x,
            experts,
        };
        one_row_gemv(
            dev,
            f,
            (&key, src),
            &x,
            &parts,
            out,
            Some(gather),
            n,
            k,
            pairs,
        )?;
        return Ok(data);
    }
    // Sort the pairs by expert, then one tile of ≤ 64 pairs of one expert per block row.
    let scratch_words = 4 * experts + 2 + pairs;
    let scratch = dev.alloc(scratch_words * 4)?;
    let sort = dev.function(&key, src, "moe_sort")?;
    let mut launch = Launch::new(sort, "moe_sort");
    launch
        .arg(idx_ptr)
        .arg(scratch.ptr())
        .arg(out)
        .arg(pairs as i64)
        .arg(experts as i64)
        .arg(n as i64);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); `idx` holds
    // `pairs` u32 expert ids (out-of-range ids are skipped by the kernel), `scratch` the
    // 4·experts + 2 + pairs words the sort uses; one block.
    unsafe { launch.run(dev, (1, 1, 1), (512, 1, 1), 0)? };
    let (key, src) = module(f, d, parts.ts)?;
    let func = dev.function(&key, src, "qmm")?;
    let mut launch = Launch::new(func, "qmm");
    launch
        .arg(ptr_at(&x, dev)?)
        .arg(p0)
        .arg(p1)
        .arg(p2)
        .arg(out)
        .arg(scratch.ptr())
        .arg(n as i64)
        .arg(k as i64)
        .arg(parts.gs)
        .arg(pairs as i64)
        .arg(top_k as i64)
        .arg(shared_x)
        .arg(experts as i64);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x, the weight
    // parts p0..p2 (validated at load), `out` and the sort scratch (sized for `experts` and
    // `pairs`) cover every index the tiled kernel computes from n, k and the row count; expert
    // ids are checked against `experts` in the kernel.
    unsafe {
        launch.run(
            dev,
            tile_grid(n, pairs.div_ceil(TILE_M) + experts)?,
            (256, 1, 1),
            0,
        )?
    };
    // Dropping `scratch` now is safe: its next user is queued behind these kernels.
    drop(scratch);
    Ok(data)
}

pub(crate) fn quantized_take(
    dev: &Arc<CudaDevice>,
    f: QuantFormat,
    k: usize,
    inputs: &[Arg],
    s: &[usize],
    d: DType,
) -> Result<Data> {
    check_float("quantized_take", d)?;
    let (idx_arg, wargs) = inputs
        .split_last()
        .ok_or_else(|| Error::msg("quantized_take: internal error: the op gave no inputs"))?;
    let entry = match idx_arg.dtype {
        DType::U32 => "qtake_u32",
        DType::I32 => "qtake_i32",
        other => {
            return Err(Error::dtype(format!(
                "quantized_take: expected u32/i32 indices, found {other}"
            )))
        }
    };
    let rows = wargs[0].shape[0];
    let idx = contig(dev, idx_arg)?;
    let parts = Parts::new(dev, f, wargs)?;
    let count = idx.numel();
    let (data, out) = output(dev, s, d)?;
    let (key, src) = module(f, d, parts.ts)?;
    let func = dev.function(&key, src, entry)?;
    let [p0, p1, p2] = parts.ptrs;
    let mut launch = Launch::new(func, entry);
    launch
        .arg(p0)
        .arg(p1)
        .arg(p2)
        .arg(ptr_at(&idx, dev)?)
        .arg(out)
        .arg(count as i64)
        .arg(rows as i64)
        .arg(k as i64)
        .arg(parts.gs);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); the weight
    // parts (validated at load), `idx` (count ids, each checked against `rows` in the kernel)
    // and `out` (a fresh count × k buffer).
    unsafe { launch.run_1d(dev, count * (k / 8))? };
    Ok(data)
}

/// One source per kernel module this family can build, for the NVRTC compile test: every
/// format in f32, the common ones in bf16/f16, affine with each scale dtype.
pub(crate) fn sources() -> Vec<(String, String)> {
    use DType::{BF16, F16, F32};
    use GgmlType::{MXFP4, Q2_K, Q3_K, Q4_0, Q4_1, Q4_K, Q5_0, Q5_1, Q5_K, Q6_K, Q8_0, Q8_K};
    let mut out = Vec::new();
    let mut add = |f: QuantFormat, t: DType, ts: DType| {
        let (key, src) = module(f, t, ts).expect("every listed format has a kernel");
        out.push((key, src()));
    };
    let gguf = [
        Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, MXFP4,
    ];
    for t in gguf {
        add(QuantFormat::Gguf(t), F32, F32);
    }
    add(QuantFormat::Mxfp4, F32, F32);
    for t in [BF16, F16] {
        add(QuantFormat::Mxfp4, t, F32);
        add(QuantFormat::Gguf(Q4_1), t, F32);
        add(QuantFormat::Gguf(Q8_0), t, F32);
        add(QuantFormat::Gguf(Q4_K), t, F32);
        add(QuantFormat::Gguf(Q6_K), t, F32);
    }
    for bits in [2u8, 3, 4, 5, 6, 8] {
        let f = QuantFormat::Affine {
            bits,
            group_size: 64,
        };
        add(f, F32, F32);
    }
    for (t, ts) in [(BF16, BF16), (F16, F16), (BF16, F32), (F32, F16)] {
        let f = QuantFormat::Affine {
            bits: 4,
            group_size: 64,
        };
        add(f, t, ts);
    }
    out
}
