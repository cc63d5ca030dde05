//! Runs the fused kernels (`fused.rs`) over jobs: output rows (N) are split into chunks, one
//! task per (job, chunk); inside a task, activation rows are taken in tiles of `XT` (kept in
//! L2) and each group of 4 weight rows is multiplied against them 4, 2 or 1 rows at a time.
//! Small problems run on the calling thread: a rayon dispatch costs more than they take.
#![cfg(target_arch = "x86_64")]

use super::act::QRows;
use super::fused;
use super::stack::{kind_of, Stack, WRow};
use super::stack::{MXFP4, Q4_0, Q4_1, Q4_K, Q6_K, Q8_0};
use super::tasks::{for_each_task, prefetch_bytes};
use super::weights::WeightView;
use super::xlanes::XLanes;
use super::{Job, OutPtr};
use crate::quant::QuantFormat;

/// Activation rows per tile.
const XT: usize = 64;

/// The fused kernel kind for a format, if this CPU runs it.
pub fn kind(format: QuantFormat) -> Option<u8> {
    if !super::simd::has_avx512_vnni() {
        return None;
    }
    kind_of(format)
}

/// Computes every job's rows against every output feature into `out` ((rows, N) f32, every
/// element written).
pub fn run_into(kind: u8, w: &WeightView, xq: &QRows, jobs: &[Job], out: &mut [f32]) {
    let rows = xq.q.len() / xq.k.max(1);
    let (layout, offset) = fused::x_layout(kind);
    let x = XLanes::new(xq, rows, layout, offset);
    match kind {
        Q4_0 => run_kind::<Q4_0>(w, &x, jobs, out),
        Q4_1 => run_kind::<Q4_1>(w, &x, jobs, out),
        Q8_0 => run_kind::<Q8_0>(w, &x, jobs, out),
        Q4_K => run_kind::<Q4_K>(w, &x, jobs, out),
        Q6_K => run_kind::<Q6_K>(w, &x, jobs, out),
        _ => run_kind::<MXFP4>(w, &x, jobs, out),
    }
}

fn run_kind<const KIND: u8>(w: &WeightView, x: &XLanes, jobs: &[Job], out: &mut [f32]) {
    let n = w.n();
    let ptr = OutPtr(out.as_mut_ptr());
    let stack = Stack::new(w);
    let (row, rb) = (|i: usize| stack.row(i), stack.rb);
    let pf = prefetch_bytes();
    let task = |j: usize, n0: usize, n1: usize| {
        let job = &jobs[j];
        for xt in job.rows.chunks(XT) {
            for r0 in (n0..n1).step_by(4) {
                let wr: [WRow; 4] =
                    std::array::from_fn(|i| row(job.expert * n + (r0 + i).min(n1 - 1)));
                let mut c = 0;
                while c < xt.len() {
                    // Widest tile first: each weight step is decoded once per tile, so 8
                    // activation rows (a batched decode step) decode it once, not twice.
                    let cn = match xt.len() - c {
                        1 => 1,
                        2 | 3 => 2,
                        4..=7 => 4,
                        _ => 8,
                    };
                    let pairs = &xt[c..c + cn];
                    let mut res = [[0f32; 8]; 4];
                    // SAFETY: `kind` returned this kernel only after feature detection. The 4
                    // weight rows are rows < (expert + 1)·N of the stack, `rb` bytes each, which
                    // the parts hold; the x rows are < x's rows and x's K is the weight's
                    // (`check_jobs` verified all three before any task ran); `x` was laid
                    // out for KIND (`run_into`).
                    unsafe {
                        match cn {
                            1 => tile::<KIND, 1>(&wr, rb, x, pairs, &mut res, pf),
                            2 => tile::<KIND, 2>(&wr, rb, x, pairs, &mut res, pf),
                            4 => tile::<KIND, 4>(&wr, rb, x, pairs, &mut res, pf),
                            _ => tile::<KIND, 8>(&wr, rb, x, pairs, &mut res, pf),
                        }
                    }
                    for (r, rr) in res.iter().enumerate().take((n1 - r0).min(4)) {
                        for (&(_, or), &v) in pairs.iter().zip(rr) {
                            // SAFETY: or < out rows and r0 + r < N (`check_jobs`: out holds
                            // them all); this task alone owns columns n0..n1 of its job's rows.
                            unsafe { *{ ptr }.0.add(or * n + r0 + r) = v };
                        }
                    }
                    c += cn;
                }
            }
        }
    };
    for_each_task(jobs, n, rb, &task);
}

/// One tile of 4 weight rows × C activation rows (the x rows of `pairs`) into `res[..][..C]`.
///
/// # Safety
/// As `fused::tile`'s: the CPU runs KIND's kernel, the rows exist, `x` is laid out for KIND;
/// `pairs` holds at least C rows.
#[inline(always)]
unsafe fn tile<const KIND: u8, const C: usize>(
    wr: &[WRow; 4],
    rb: usize,
    x: &XLanes,
    pairs: &[(usize, usize)],
    res: &mut [[f32; 8]; 4],
    pf: usize,
) {
    let xr: [usize; C] = std::array::from_fn(|i| pairs[i].0);
    let mut o = [[0f32; C]; 4];
    fused::tile::<KIND, C>(wr, rb, x, &xr, &mut o, pf);
    for (r, o) in res.iter_mut().zip(&o) {
        r[..C].copy_from_slice(o);
    }
}
