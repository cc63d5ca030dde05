//! Quantized matmul on the CPU, straight from packed weights, each format close to its
//! reference engine. GGUF (llama.cpp's way): activations are quantized to 8 bits once per
//! call (`act`); each weight row is decoded once per tile of x rows, in registers by the fused
//! kernels (`tiles`/`fused`, `avx2`) or into the common (u, s, o) form
//! (`crate::quant::decode`), and reused across the tile with integer dot products (`dot`,
//! `simd`). Hugging Face MXFP4 (transformers computes in float): the same kernels on two
//! 8-bit planes of x, x and its rounding residual (`run_planes`). MLX affine (MLX's way):
//! float activations times codes decoded in registers (`affine`). Work is split over output
//! rows (N) (`tasks`, or rayon for the common form), serially for small problems where
//! spawning costs more than it saves.

mod act;
mod affine;
#[cfg(target_arch = "x86_64")]
mod avx2;
mod dot;
#[cfg(target_arch = "x86_64")]
mod fused;
#[cfg(all(test, target_arch = "x86_64"))]
mod fused_tests;
#[cfg(target_arch = "x86_64")]
mod simd;
#[cfg(target_arch = "x86_64")]
mod stack;
mod tasks;
#[cfg(all(test, target_arch = "x86_64"))]
mod test_data;
#[cfg(target_arch = "x86_64")]
mod tiles;
mod weights;
mod xlanes;

use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::quant::{dequantize_row, QuantFormat, RowRef};
use act::QRows;
use dot::{best_decode, best_dot, best_fused, Decoded};
use rayon::prelude::*;
use weights::{Parts, WeightView};

/// Rows of x per tile: the tile's quantized rows stay in L1/L2 while a weight row is reused.
const TILE_M: usize = 32;
/// Below this many multiply-adds a matmul runs on the calling thread.
const SERIAL_WORK: usize = 1 << 19;

/// Output rows that use one expert: (x row, output row) pairs.
struct Job {
    expert: usize,
    rows: Vec<(usize, usize)>,
}

pub fn quantized_matmul(
    f: QuantFormat,
    n: usize,
    k: usize,
    inputs: &[Arg],
    s: &[usize],
    d: DType,
) -> Result<Data> {
    let parts = Parts::new(f, k, &inputs[1..])?;
    let w = parts.view(n)?;
    let m = x_rows(&inputs[0], k)?;
    let jobs = [Job {
        expert: 0,
        rows: (0..m).map(|r| (r, r)).collect(),
    }];
    run_out(&w, &inputs[0], &jobs, s, d)
}

pub fn gather_qmm(
    f: QuantFormat,
    n: usize,
    k: usize,
    inputs: &[Arg],
    s: &[usize],
    d: DType,
) -> Result<Data> {
    let (idx_arg, wargs) = inputs
        .get(1..)
        .and_then(|i| i.split_last())
        .ok_or_else(|| Error::msg("gather_qmm: internal error: the op gave no inputs"))?;
    let experts = wargs[0].shape[0];
    let parts = Parts::new(f, k, wargs)?;
    let w = parts.view(n)?;
    let m = x_rows(&inputs[0], k)?;
    let idx = indices(idx_arg, experts, "gather_qmm")?;
    let top_k = *idx_arg.shape.last().unwrap_or(&1);
    let shared_x = m != idx.len(); // x (…, K) shared by its top_k experts
    let mut by_expert: Vec<Vec<(usize, usize)>> = vec![Vec::new(); experts];
    for (o, &e) in idx.iter().enumerate() {
        by_expert[e].push((if shared_x { o / top_k } else { o }, o));
    }
    let jobs: Vec<Job> = by_expert
        .into_iter()
        .enumerate()
        .filter(|(_, r)| !r.is_empty())
        .map(|(expert, rows)| Job { expert, rows })
        .collect();
    run_out(&w, &inputs[0], &jobs, s, d)
}

pub fn quantized_take(
    f: QuantFormat,
    k: usize,
    inputs: &[Arg],
    s: &[usize],
    d: DType,
) -> Result<Data> {
    let (idx_arg, wargs) = inputs
        .split_last()
        .ok_or_else(|| Error::msg("quantized_take: internal error: the op gave no inputs"))?;
    let n = wargs[0].shape[0];
    let parts = Parts::new(f, k, wargs)?;
    let w = parts.view(n)?;
    let idx = indices(idx_arg, n, "quantized_take")?;
    let mut out = vec![0f32; idx.len() * k];
    for (o, &r) in out.chunks_exact_mut(k).zip(&idx) {
        dequantize_row(w.row(0, r), o)?;
    }
    write_out(&out, s, d)
}

/// Indices as usize, each checked against `bound`.
fn indices(arg: &Arg, bound: usize, op: &str) -> Result<Vec<usize>> {
    let data = super::contiguous(arg)?;
    let n = arg.numel();
    let v: Vec<i64> = match arg.dtype {
        DType::U32 => data
            .host_slice::<u32>(n)?
            .iter()
            .map(|&i| i as i64)
            .collect(),
        DType::I32 => data
            .host_slice::<i32>(n)?
            .iter()
            .map(|&i| i as i64)
            .collect(),
        other => {
            return Err(Error::dtype(format!(
                "{op}: expected u32/i32 indices, found {other}"
            )))
        }
    };
    v.into_iter()
        .map(|i| {
            usize::try_from(i)
                .ok()
                .filter(|&i| i < bound)
                .ok_or_else(|| {
                    Error::shape(format!("{op}: expected indices in [0, {bound}), found {i}"))
                })
        })
        .collect()
}

/// The rows of x (…, K): an error unless K divides its element count.
fn x_rows(x: &Arg, k: usize) -> Result<usize> {
    let numel = x.numel();
    if k == 0 || !numel.is_multiple_of(k) {
        return Err(Error::shape(format!(
            "quantized matmul: expected x of shape (…, {k}), found {:?}",
            x.shape
        )));
    }
    Ok(numel / k)
}

/// x (…, K) as quantized rows, `planes` rows per row of x (`act::quantize_planes`): row
/// r·planes + p is plane p of x's row r.
fn quantize_x(x: &Arg, k: usize, planes: usize) -> Result<QRows> {
    let data = super::contiguous(x)?;
    let m = x.numel() / k;
    let mut q = QRows::new(m * planes, k);
    let g = k / crate::quant::GROUP;
    let (kp, gp) = (k * planes, g * planes);
    crate::dispatch_float!(x.dtype, "quantized_matmul", T => {
        let xs = data.host_slice::<T>(m * k)?;
        type Row<'a> = (usize, ((&'a mut [i8], &'a mut [f32]), &'a mut [f32]));
        let one = |xf: &mut Vec<f32>, (r, ((qr, dr), sr)): Row| {
            xf.clear();
            xf.extend(xs[r * k..(r + 1) * k].iter().map(|v| v.to_f32()));
            act::quantize_planes(xf, qr, dr, sr);
        };
        if m < 16 {
            // Decode: a rayon dispatch would cost more than quantizing a few rows.
            let rows = q.q.chunks_mut(kp).zip(q.d.chunks_mut(gp)).zip(q.sd.chunks_mut(gp));
            let mut xf = Vec::with_capacity(k);
            rows.enumerate().for_each(|r| one(&mut xf, r));
        } else {
            let rows = q.q.par_chunks_mut(kp).zip(q.d.par_chunks_mut(gp)).zip(q.sd.par_chunks_mut(gp));
            rows.enumerate().with_min_len(16).for_each_init(|| Vec::with_capacity(k), one);
        }
    });
    Ok(q)
}

/// A raw pointer to the output shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: a plain pointer to f32s; every (output row, n) element is written by exactly one
// task (tasks own disjoint ranges of n), and `run` returns only after all tasks finished.
unsafe impl Send for OutPtr {}
// SAFETY: as for Send: shared only to hand each task its own elements.
unsafe impl Sync for OutPtr {}

/// The jobs' rows of x (…, K) against every output feature, as an array of shape `s` and
/// dtype `d`: f32 outputs are written in place, others through an f32 buffer.
fn run_out(w: &WeightView, x: &Arg, jobs: &[Job], s: &[usize], d: DType) -> Result<Data> {
    if d == DType::F32 {
        let mut buf = super::alloc(s, d)?;
        run_x(w, x, jobs, buf.as_mut_slice::<f32>()?)?;
        return Ok(super::finish(buf, s));
    }
    let mut out = vec![0f32; s.iter().product()];
    run_x(w, x, jobs, &mut out)?;
    write_out(&out, s, d)
}

/// Prepares x as the format's kernels take it (float rows for MLX affine, 8-bit rows for the
/// others) and runs the jobs into `out`.
fn run_x(w: &WeightView, x: &Arg, jobs: &[Job], out: &mut [f32]) -> Result<()> {
    if w.n() == 0 || out.is_empty() {
        return Ok(()); // nothing to compute (and no row 0 to read)
    }
    if let QuantFormat::Affine { bits, group_size } = w.format() {
        let kernel = affine::Kernel::pick(bits);
        let xf = affine::x_rows(x, w.k(), bits, group_size as usize, kernel)?;
        check_jobs(w, xf.k, xf.rows(), jobs, out)?;
        return affine::run_into(kernel, w, &xf, jobs, out);
    }
    if w.format() == QuantFormat::Mxfp4 {
        return run_planes(w, x, jobs, out);
    }
    let xq = quantize_x(x, w.k(), 1)?;
    run(w, &xq, jobs, out)
}

/// Hugging Face MXFP4 (gpt-oss, whose reference is transformers in float): x as two 8-bit
/// planes, x ≈ d₁·q₁ + d₂·q₂ with q₂ the rounded residual (`act::quantize_planes`), each
/// plane an activation row of the integer kernels, which decode each weight row once for
/// both; the two results are summed. One plane (llama.cpp's rounding) left 1.16e-2 relative L2
/// against transformers on `gpt_oss_long_rows`; two leave 4.4e-5 (hf_reference.rs). The
/// cost is the integer work on x, doubled: little where weight bytes bound the time (decode),
/// up to 2× for these matmuls where arithmetic does (prefill).
fn run_planes(w: &WeightView, x: &Arg, jobs: &[Job], out: &mut [f32]) -> Result<()> {
    const PLANES: usize = 2;
    if mxfp4_single_plane() {
        let xq = quantize_x(x, w.k(), 1)?;
        return run(w, &xq, jobs, out);
    }
    let xq = quantize_x(x, w.k(), PLANES)?;
    let jobs: Vec<Job> = jobs
        .iter()
        .map(|j| Job {
            expert: j.expert,
            rows: j
                .rows
                .iter()
                .flat_map(|&(xr, or)| (0..PLANES).map(move |p| (xr * PLANES + p, or * PLANES + p)))
                .collect(),
        })
        .collect();
    let n = w.n();
    let mut parts = vec![0f32; out.len() * PLANES];
    run(w, &xq, &jobs, &mut parts)?;
    for (o, p) in out.chunks_exact_mut(n).zip(parts.chunks_exact(n * PLANES)) {
        for (j, v) in o.iter_mut().enumerate() {
            *v = (0..PLANES).map(|i| p[i * n + j]).sum();
        }
    }
    Ok(())
}

/// Whether `RMLX_MXFP4_PLANES=1` asks for one 8-bit plane for Hugging Face MXFP4 too
/// (llama.cpp's rounding): to measure what the second plane costs, not for use.
fn mxfp4_single_plane() -> bool {
    static ONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ONE.get_or_init(|| std::env::var_os("RMLX_MXFP4_PLANES").is_some_and(|v| v == "1"))
}

/// Checks every index the jobs name: the SIMD kernels read weight rows, activation rows and
/// output rows through raw pointers, so each must exist (and K agree) before they run.
fn check_jobs(w: &WeightView, k: usize, x_rows: usize, jobs: &[Job], out: &[f32]) -> Result<()> {
    const OP: &str = "quantized matmul";
    if k != w.k() || k == 0 || !k.is_multiple_of(crate::quant::GROUP) {
        return Err(Error::shape(format!(
            "{OP}: expected activations of K = {} (a multiple of {}), found K = {}",
            w.k(),
            crate::quant::GROUP,
            k
        )));
    }
    let max =
        |f: fn(&(usize, usize)) -> usize| jobs.iter().flat_map(|j| j.rows.iter().map(f)).max();
    if let Some(r) = max(|r| r.0).filter(|&r| r >= x_rows) {
        return Err(Error::shape(format!(
            "{OP}: x row {r} named, x has {x_rows} rows"
        )));
    }
    let out_rows = max(|r| r.1 + 1).unwrap_or(0);
    if out_rows.checked_mul(w.n()).is_none_or(|e| e > out.len()) {
        return Err(Error::shape(format!(
            "{OP}: output smaller than its {out_rows} rows of N = {}",
            w.n()
        )));
    }
    let experts = jobs.iter().map(|j| j.expert + 1).max().unwrap_or(0);
    if experts.checked_mul(w.n()).is_none_or(|r| r > w.rows()) {
        return Err(Error::shape(format!(
            "{OP}: expected {experts} expert(s) of N = {} weight rows, the parts hold {} rows",
            w.n(),
            w.rows()
        )));
    }
    Ok(())
}

/// Computes every job's rows against every output feature into `out` ((rows, N) f32).
fn run(w: &WeightView, xq: &QRows, jobs: &[Job], out: &mut [f32]) -> Result<()> {
    check_jobs(w, xq.k, xq.q.len() / xq.k.max(1), jobs, out)?;
    #[cfg(target_arch = "x86_64")]
    if let Some(kind) = tiles::kind(w.format()) {
        tiles::run_into(kind, w, xq, jobs, out);
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(kind) = avx2::kind(w.format()) {
        avx2::run_into(kind, w, xq, jobs, out);
        return Ok(());
    }
    let n = w.n();
    let k = xq.k;
    let ptr = OutPtr(out.as_mut_ptr());
    let total_rows: usize = jobs.iter().map(|j| j.rows.len()).sum();
    let threads = rayon::current_num_threads();
    let serial = threads == 1 || n * k * total_rows < SERIAL_WORK;
    // Enough chunks per job to balance, each large enough to amortize its scheduling.
    let chunk = if serial {
        n
    } else {
        n.div_ceil(4 * threads).max(16)
    };
    let tasks: Vec<(usize, usize)> = (0..jobs.len())
        .flat_map(|j| (0..n).step_by(chunk).map(move |n0| (j, n0)))
        .collect();
    let fused = best_fused(w.format());
    let task = |&(j, n0): &(usize, usize)| -> Result<()> {
        let job = &jobs[j];
        let (dot, decode) = (best_dot(w.format()), best_decode());
        let mut dec = Decoded::new(k);
        for tile in job.rows.chunks(TILE_M) {
            for r in n0..(n0 + chunk).min(n) {
                let row = w.row(job.expert, r);
                let bytes = match (fused, row) {
                    (Some(_), RowRef::Gguf(_, b)) => b,
                    _ => {
                        decode(row, &mut dec)?;
                        &[]
                    }
                };
                for &(xr, or) in tile {
                    let v = match fused {
                        Some(f) => f(bytes, &xq.row(xr)),
                        None => dot(&dec, &xq.row(xr)),
                    };
                    // SAFETY: or < out rows and r < N (`check_jobs`); this task alone owns
                    // columns n0..n0 + chunk of its job's rows.
                    unsafe { *{ ptr }.0.add(or * n + r) = v };
                }
            }
        }
        Ok(())
    };
    if serial {
        tasks.iter().try_for_each(task)?;
    } else {
        tasks.par_iter().try_for_each(task)?;
    }
    Ok(())
}

fn write_out(out: &[f32], s: &[usize], d: DType) -> Result<Data> {
    let mut buf = super::alloc(s, d)?;
    crate::dispatch_float!(d, "quantized_matmul", T => {
        for (o, v) in buf.as_mut_slice::<T>()?.iter_mut().zip(out) {
            *o = T::from_f32(*v);
        }
    });
    Ok(super::finish(buf, s))
}
