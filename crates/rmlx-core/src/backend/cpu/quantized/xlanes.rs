//! Quantized activations laid out for the fused kernels (`fused.rs`): per dpbusd lane (4
//! elements) the block's scale and an offset term, so every per-step operand is one vector
//! load. Rows are padded with zeros to a multiple of 128 elements (one kernel step), so the
//! last step needs no special case on the activation side.

use super::act::QRows;

/// Elements per kernel step (4 blocks of 32).
pub const STEP: usize = 128;

pub struct XLanes {
    /// Padded row length (a multiple of `STEP`).
    pub kp: usize,
    /// (rows, kp)
    pub q: Vec<i8>,
    /// (rows, kp/4): the scale of the block holding each lane.
    pub d: Vec<f32>,
    /// (rows, kp/4): Q4_1: d·Σq of the lane (f32 bits, times the weight's min); others:
    /// −offset·Σq of the lane (i32, the accumulator's start, undoing the weights' code offset).
    pub aux: Vec<u32>,
}

impl XLanes {
    /// `offset`: None for Q4_1 (float mins), else the integer code offset of the weights.
    pub fn new(x: &QRows, rows: usize, offset: Option<i32>) -> Self {
        let k = x.k;
        let kp = k.div_ceil(STEP) * STEP;
        let lanes = kp / 4;
        let mut l = XLanes {
            kp,
            q: vec![0; rows * kp],
            d: vec![0.0; rows * lanes],
            aux: vec![0; rows * lanes],
        };
        for r in 0..rows {
            let xr = x.row(r);
            l.q[r * kp..r * kp + k].copy_from_slice(xr.q);
            for j in 0..k / 4 {
                let d = xr.d[j / 4];
                let s: i32 = xr.q[4 * j..4 * j + 4].iter().map(|&v| v as i32).sum();
                l.d[r * lanes + j] = d;
                l.aux[r * lanes + j] = match offset {
                    None => (d * s as f32).to_bits(),
                    Some(o) => (-o * s) as u32,
                };
            }
        }
        l
    }

    pub fn lanes(&self) -> usize {
        self.kp / 4
    }
}
