//! Runs the AVX2 tiles over jobs, as `tiles.rs` does for AVX-512: output rows (N) are split
//! into chunks, one task per (job, chunk) on the spinning pool; activation rows are taken in
//! tiles of `XT` and each weight row is decoded once per 8, 4, 2 or 1 of them. With a few
//! activation rows (decode) one call covers the whole chunk, a single stream of weight bytes;
//! with many (prefill) rows go 4 at a time so they stay in L1 across the activation rows.
#![cfg(target_arch = "x86_64")]

use super::super::stack::{kind_of, Stack};
use super::super::tasks::{for_each_task, prefetch_bytes};
use super::super::weights::WeightView;
use super::super::{act::QRows, Job, OutPtr};
use super::{tile, XPack, MXFP4, Q4_0, Q4_1, Q4_K, Q6_K, Q8_0};
use crate::quant::QuantFormat;

/// Activation rows per tile.
const XT: usize = 64;
/// Most activation rows per kernel call (accumulators must fit the 16 ymm registers).
const MAX_C: usize = 8;

/// The fused kernel kind for a format, if this CPU runs it.
pub fn kind(format: QuantFormat) -> Option<u8> {
    if !super::has_avx2() {
        return None;
    }
    kind_of(format)
}

/// Computes every job's rows against every output feature; returns (out_rows, N) f32.
#[cfg(test)]
pub fn run(kind: u8, w: &WeightView, xq: &QRows, jobs: &[Job], out_rows: usize) -> Vec<f32> {
    let mut out = vec![0f32; out_rows * w.n()];
    run_into(kind, w, xq, jobs, &mut out);
    out
}

/// Computes every job's rows against every output feature into `out` ((rows, N) f32, every
/// element written).
pub fn run_into(kind: u8, w: &WeightView, xq: &QRows, jobs: &[Job], out: &mut [f32]) {
    match kind {
        Q4_0 => run_kind::<Q4_0>(w, xq, jobs, out),
        Q4_1 => run_kind::<Q4_1>(w, xq, jobs, out),
        Q8_0 => run_kind::<Q8_0>(w, xq, jobs, out),
        Q4_K => run_kind::<Q4_K>(w, xq, jobs, out),
        Q6_K => run_kind::<Q6_K>(w, xq, jobs, out),
        _ => run_kind::<MXFP4>(w, xq, jobs, out),
    }
}

/// Activation rows per kernel call for `rem` rows left: 8, 4, 2 or 1.
fn width(rem: usize) -> usize {
    match rem {
        1 => 1,
        2 | 3 => 2,
        4..=7 => 4,
        _ => MAX_C,
    }
}

fn run_kind<const KIND: u8>(w: &WeightView, xq: &QRows, jobs: &[Job], out: &mut [f32]) {
    let n = w.n();
    // Per job, its tiles of up to XT activation rows, each a range of groups (kernel calls).
    let mut groups: Vec<&[(usize, usize)]> = Vec::new();
    let tiles: Vec<Vec<std::ops::Range<usize>>> = jobs
        .iter()
        .map(|job| {
            job.rows
                .chunks(XT)
                .map(|xt| {
                    let g0 = groups.len();
                    let mut c = 0;
                    while c < xt.len() {
                        let cn = width(xt.len() - c);
                        groups.push(&xt[c..c + cn]);
                        c += cn;
                    }
                    g0..groups.len()
                })
                .collect()
        })
        .collect();
    let rows: Vec<Vec<usize>> = groups
        .iter()
        .map(|g| g.iter().map(|p| p.0).collect())
        .collect();
    let x = XPack::new(xq, rows.iter().map(|r| r.as_slice()), KIND);
    let ptr = OutPtr(out.as_mut_ptr());
    let stack = Stack::new(w);
    let (row, rb) = (|i: usize| stack.row(i), stack.rb);
    let pf = prefetch_bytes();
    let task = |j: usize, n0: usize, n1: usize| {
        let job = &jobs[j];
        let mut buf = vec![0f32; (n1 - n0) * MAX_C];
        for (xt, gs) in job.rows.chunks(XT).zip(&tiles[j]) {
            let step = if xt.len() <= MAX_C { n1 - n0 } else { 4 };
            for r0 in (n0..n1).step_by(step) {
                let nr = step.min(n1 - r0);
                let wr = row(job.expert * n + r0);
                for g in gs.clone() {
                    let pairs = groups[g];
                    let cn = pairs.len();
                    let o = &mut buf[..nr * cn];
                    // SAFETY: `kind` returned this kernel only after feature detection. Rows
                    // r0..r0 + nr < N of expert `job.expert` exist in the parts, `rb` bytes of
                    // K elements each, and x's K is the weight's (`check_jobs`); `x.tile`
                    // checks that group g packs cn rows; `o` holds nr·cn values.
                    unsafe {
                        match cn {
                            1 => tile::<KIND, 1>(wr, rb, nr, x.tile(g), o, pf),
                            2 => tile::<KIND, 2>(wr, rb, nr, x.tile(g), o, pf),
                            4 => tile::<KIND, 4>(wr, rb, nr, x.tile(g), o, pf),
                            _ => tile::<KIND, MAX_C>(wr, rb, nr, x.tile(g), o, pf),
                        }
                    }
                    for r in 0..nr {
                        for (i, &(_, or)) in pairs.iter().enumerate() {
                            // SAFETY: or < out rows and r0 + r < N (`check_jobs`: out holds
                            // them all); this task alone owns columns n0..n1 of its job's rows.
                            unsafe { *{ ptr }.0.add(or * n + r0 + r) = o[r * cn + i] };
                        }
                    }
                }
            }
        }
    };
    for_each_task(jobs, n, rb, &task);
}
