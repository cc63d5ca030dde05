//! Activation rows packed for the kernels, a group of C rows (one kernel call) at a time:
//! block b of row c at `q[(b·C + c)·32]`, its scale at `d[b·C + c]`, so that one pointer and
//! constant offsets reach all C rows (C row pointers would not fit the 16 registers). d·Σq
//! per 32 (`sdb`, Q4_0/Q4_1/Q4_K offsets) and per 16 (`sd`, Q6_K) stay row after row for the
//! vectorized offset passes, as do the block scales (`dr`, MXFP4's vectorized scale pass).
//! For MXFP4 the codes follow the kernel's nibble order (`mxfp4.rs`): in each run of 8 blocks,
//! slot b (b mod 8 < 4) holds the even elements of blocks b and b+4 and slot b+4 their odd
//! ones; a block past the runs holds its even elements then its odd ones. Packing copies x once per matmul;
//! the kernels read it N times.
#![cfg(target_arch = "x86_64")]

use super::super::act::QRows;
use super::{MXFP4, Q4_0};

pub struct XPack {
    nb: usize,
    /// Rows before each group (its offset in units of one packed row), in group order.
    start: Vec<usize>,
    q: Vec<i8>,
    d: Vec<f32>,
    /// Per block and row [d, f·(d·Σq)]: scale and offset factor side by side (GEMV path).
    dm: Vec<f32>,
    dr: Vec<f32>,
    sdb: Vec<f32>,
    sd: Vec<f32>,
}

/// C packed activation rows (C ∈ {1, 2, 4, 8}), as one kernel call reads them.
#[derive(Clone, Copy)]
pub struct XTile<const C: usize> {
    q: *const i8,
    d: *const f32,
    dm: *const f32,
    dr: *const f32,
    sdb: *const f32,
    sd: *const f32,
    nb: usize,
}

impl XPack {
    /// Packs groups of rows of `x` (K a multiple of 32), each group 1, 2, 4 or 8 rows, for the
    /// kernels of `kind`: Q4_0 gets −8·d·Σq in `dm` (its offset is −8 × the block scale, the
    /// others' the second f16 of a block), MXFP4 the even/odd code order.
    pub fn new<'a>(x: &QRows, groups: impl IntoIterator<Item = &'a [usize]>, kind: u8) -> Self {
        let (k, g16) = (x.k, x.k / 16);
        let nb = k / 32;
        let f = if kind == Q4_0 { -8.0 } else { 1.0 };
        let mut p = XPack {
            nb,
            start: Vec::new(),
            q: Vec::new(),
            d: Vec::new(),
            dm: Vec::new(),
            dr: Vec::new(),
            sdb: Vec::new(),
            sd: Vec::new(),
        };
        for rows in groups {
            let c = rows.len();
            debug_assert!(matches!(c, 1 | 2 | 4 | 8));
            p.start.push(p.d.len() / nb.max(1));
            for b in 0..nb {
                for &r in rows {
                    let blk = |b: usize| &x.q[r * k + 32 * b..][..32];
                    let (even, odd) = (
                        |b| blk(b).iter().step_by(2),
                        |b| blk(b)[1..].iter().step_by(2),
                    );
                    if kind != MXFP4 {
                        p.q.extend_from_slice(blk(b));
                    } else if b >= nb / 8 * 8 {
                        // A lone block past the runs of 8.
                        p.q.extend(even(b).chain(odd(b)));
                    } else if b % 8 < 4 {
                        // The even elements of the pair (b, b+4) of a run of 8.
                        p.q.extend(even(b).chain(even(b + 4)));
                    } else {
                        p.q.extend(odd(b - 4).chain(odd(b)));
                    }
                    p.d.push(x.d[r * g16 + 2 * b]);
                    let sdb = x.sd[r * g16 + 2 * b] + x.sd[r * g16 + 2 * b + 1];
                    p.dm.extend([x.d[r * g16 + 2 * b], f * sdb]);
                }
            }
            for &r in rows {
                let sd = &x.sd[r * g16..][..g16];
                p.sdb.extend(sd.chunks_exact(2).map(|h| h[0] + h[1]));
                p.dr.extend(x.d[r * g16..][..g16].iter().step_by(2));
                p.sd.extend_from_slice(sd);
            }
        }
        p
    }

    /// Group `g`, packed C rows wide.
    pub fn tile<const C: usize>(&self, g: usize) -> XTile<C> {
        let s = self.start[g];
        let nb = self.nb;
        assert!(
            (s + C) * nb <= self.d.len(),
            "xpack: group {g} is not {C} rows"
        );
        XTile {
            q: self.q[s * nb * 32..].as_ptr(),
            d: self.d[s * nb..].as_ptr(),
            dm: self.dm[s * nb * 2..].as_ptr(),
            dr: self.dr[s * nb..].as_ptr(),
            sdb: self.sdb[s * nb..].as_ptr(),
            sd: self.sd[s * 2 * nb..].as_ptr(),
            nb,
        }
    }
}

impl<const C: usize> XTile<C> {
    /// Blocks of 32 per row.
    pub fn nb(&self) -> usize {
        self.nb
    }
    /// Codes of block `b` of row `c` (32 bytes).
    #[inline(always)]
    pub unsafe fn q(&self, c: usize, b: usize) -> *const i8 {
        self.q.add((b * C + c) * 32)
    }
    /// The scale of block `b` of row `c`.
    #[inline(always)]
    pub unsafe fn d(&self, c: usize, b: usize) -> *const f32 {
        self.d.add(b * C + c)
    }
    /// [d, f·d·Σq] of block `b` of row `c`.
    #[inline(always)]
    pub unsafe fn dm(&self, c: usize, b: usize) -> *const f32 {
        self.dm.add((b * C + c) * 2)
    }
    /// The scales of blocks b.. of row `c`.
    #[inline(always)]
    pub unsafe fn dr(&self, c: usize, b: usize) -> *const f32 {
        self.dr.add(c * self.nb + b)
    }
    /// d·Σq of blocks b.. of row `c`.
    #[inline(always)]
    pub unsafe fn sdb(&self, c: usize, b: usize) -> *const f32 {
        self.sdb.add(c * self.nb + b)
    }
    /// d·Σq of groups of 16 g.. of row `c`.
    #[inline(always)]
    pub unsafe fn sd(&self, c: usize, g: usize) -> *const f32 {
        self.sd.add(c * 2 * self.nb + g)
    }
}
