//! Quantized activations laid out for the fused kernels (`fused.rs`). Each step of 128
//! elements (4 blocks of 32) is two 64-byte halves in the order the kernel decodes the
//! weights, so no weight byte is shuffled twice:
//! - `Split` (Q4_0, Q4_1): half h holds elements h·16..h·16+16 of each block (the low and
//!   high nibbles of the block's 16 bytes);
//! - `Split32` (Q4_K): half h holds blocks h and 2+h (low and high nibbles of 32 bytes);
//! - `Pairs` (MXFP4): half h holds the even (h = 0) or odd (h = 1) elements of each block;
//! - `Natural` (Q8_0): half h holds blocks 2h and 2h+1.
//!
//! Rows are padded with zeros to whole steps.

use super::act::QRows;

/// Elements per kernel step (4 blocks of 32).
pub const STEP: usize = 128;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Split,
    Split32,
    Pairs,
    Natural,
}

pub struct XLanes {
    /// Padded row length (a multiple of `STEP`).
    pub kp: usize,
    /// (rows, kp), permuted per step as the layout says.
    pub q: Vec<i8>,
    /// (rows, kp/16): per step [d_b for 4 blocks, d_b·Σq_b for 4 blocks].
    pub xc: Vec<f32>,
    /// −offset·Σq per dpbusd lane, the accumulator's start (undoes the weights' code offset):
    /// `Split`/`Pairs`: (rows, kp/8), lane l of both halves; `Natural`: (rows, kp/4).
    pub aux: Vec<i32>,
}

/// Source element (within the step) of position `p` (0..64) of half `h`.
fn source(layout: Layout, h: usize, p: usize) -> usize {
    match layout {
        Layout::Split => (p / 16) * 32 + h * 16 + p % 16,
        Layout::Split32 => ((p / 32) * 2 + h) * 32 + p % 32,
        Layout::Pairs => (p / 16) * 32 + 2 * (p % 16) + h,
        Layout::Natural => h * 64 + p,
    }
}

impl XLanes {
    pub fn new(x: &QRows, rows: usize, layout: Layout, offset: i32) -> Self {
        let k = x.k;
        let kp = k.div_ceil(STEP) * STEP;
        let steps = kp / STEP;
        let al = if layout == Layout::Natural { 32 } else { 16 };
        let mut l = XLanes {
            kp,
            q: vec![0; rows * kp],
            xc: vec![0.0; rows * steps * 8],
            aux: vec![0; rows * steps * al],
        };
        let mut tmp = vec![0i8; kp];
        for r in 0..rows {
            let xr = x.row(r);
            tmp[..k].copy_from_slice(xr.q);
            for s in 0..steps {
                let src = &tmp[s * STEP..][..STEP];
                let dst = &mut l.q[r * kp + s * STEP..][..STEP];
                for h in 0..2 {
                    for p in 0..64 {
                        dst[h * 64 + p] = src[source(layout, h, p)];
                    }
                }
                let aux = &mut l.aux[(r * steps + s) * al..][..al];
                for (i, v) in dst.chunks_exact(4).enumerate() {
                    let sum: i32 = v.iter().map(|&q| q as i32).sum();
                    aux[i % al] -= offset * sum;
                }
                let xc = &mut l.xc[(r * steps + s) * 8..][..8];
                for b in 0..4 {
                    let e = s * STEP + b * 32;
                    if e < k {
                        let sum: i32 = src[b * 32..b * 32 + 32].iter().map(|&q| q as i32).sum();
                        xc[b] = xr.d[e / 16];
                        xc[4 + b] = xr.d[e / 16] * sum as f32;
                    }
                }
            }
        }
        l
    }
}
