//! What the fused x86 kernels (AVX-512 `fused.rs`/`tiles.rs`, AVX2 `avx2/`) share: the kernel
//! kinds, raw rows of a weight stack, and the split of a call into tasks over output rows.
#![cfg(target_arch = "x86_64")]

use super::weights::WeightView;
use crate::quant::{GgmlType as G, QuantFormat, RowRef};

/// Fused kernel kinds.
pub const Q4_0: u8 = 0;
pub const Q4_1: u8 = 1;
pub const Q8_0: u8 = 2;
pub const MXFP4: u8 = 3;
pub const Q4_K: u8 = 4;
pub const Q6_K: u8 = 5;

/// The kernel kind of a format, if it has one.
pub fn kind_of(format: QuantFormat) -> Option<u8> {
    match format {
        QuantFormat::Gguf(G::Q4_0) => Some(Q4_0),
        QuantFormat::Gguf(G::Q4_1) => Some(Q4_1),
        QuantFormat::Gguf(G::Q8_0) => Some(Q8_0),
        QuantFormat::Gguf(G::Q4_K) => Some(Q4_K),
        QuantFormat::Gguf(G::Q6_K) => Some(Q6_K),
        QuantFormat::Mxfp4 => Some(MXFP4),
        _ => None,
    }
}

/// One weight row: GGUF bytes in `p` (`s` unused), or MXFP4 blocks in `p` and exponents in `s`.
#[derive(Clone, Copy)]
pub struct WRow {
    pub p: *const u8,
    pub s: *const u8,
}

impl WRow {
    /// The row `p` bytes (exponents `s` bytes) further on.
    pub fn offset(self, p: usize, s: usize) -> WRow {
        WRow {
            p: self.p.wrapping_add(p),
            s: self.s.wrapping_add(s),
        }
    }
}

// SAFETY: a WRow points into weight bytes that are only read (never written while shared),
// and the tasks using it finish before `run_into` returns, while the weights are borrowed.
unsafe impl Send for WRow {}
// SAFETY: as for Send: shared read-only pointers.
unsafe impl Sync for WRow {}

/// The rows of a weight stack (experts × N rows, contiguous): row i starts i·`rb` bytes
/// (MXFP4 exponents i·rb/16) past row 0.
#[derive(Clone, Copy)]
pub struct Stack {
    w0: WRow,
    /// Bytes per row.
    pub rb: usize,
    se: usize,
}

impl Stack {
    pub fn new(w: &WeightView) -> Stack {
        let (w0, rb) = match w.row(0, 0) {
            RowRef::Gguf(_, b) => (
                WRow {
                    p: b.as_ptr(),
                    s: std::ptr::null(),
                },
                b.len(),
            ),
            RowRef::Mxfp4 { blocks, scales } => (
                WRow {
                    p: blocks.as_ptr(),
                    s: scales.as_ptr(),
                },
                blocks.len(),
            ),
            RowRef::Affine { .. } => unreachable!("no fused affine kernel"),
        };
        let se = if w.format() == QuantFormat::Mxfp4 {
            rb / 16
        } else {
            0
        };
        Stack { w0, rb, se }
    }

    pub fn row(&self, i: usize) -> WRow {
        self.w0.offset(i * self.rb, i * self.se)
    }
}
