//! Activation rows packed for the kernels, a group of C rows (one kernel call) at a time:
//! block b of row c at `q[(b·C + c)·32]`, its scale at `d[b·C + c]`, so that one pointer and
//! constant offsets reach all C rows (C row pointers would not fit the 16 registers). d·Σq
//! per 32 (`sdb`: the offsets of Q4_0, Q4_1, MXFP4's +12 and Q4_K) and per 16 (`sd`, Q6_K)
//! stay row after row for the vectorized offset passes, as do the block scales (`dr`). For
//! the 4-bit kinds the codes follow the kernel's nibble order (`pairs.rs`): in each run of 8
//! blocks, slot b (b mod 8 < 4) holds the low-nibble elements of blocks b and b+4 (Q4:
//! elements 0..16, MXFP4: the even ones) and slot b+4 their high-nibble elements; a block past
//! the runs holds its low-nibble elements then its high ones. Packing copies x once per
//! matmul; the kernels read it N times.
#![cfg(target_arch = "x86_64")]

use super::super::act::QRows;
use super::{MXFP4, Q4_0, Q4_1};
use std::marker::PhantomData;

pub struct XPack {
    nb: usize,
    /// Rows before each group (its offset in units of one packed row), in group order.
    start: Vec<usize>,
    q: Vec<i8>,
    d: Vec<f32>,
    dr: Vec<f32>,
    sdb: Vec<f32>,
    sd: Vec<f32>,
}

/// C packed activation rows (C ∈ {1, 2, 4, 8}), as one kernel call reads them: pointers
/// into an `XPack` (borrowed for `'a`, so a tile never outlives its data) at a group that
/// `XPack::tile` checked to hold C rows of `nb` blocks.
#[derive(Clone, Copy)]
pub struct XTile<'a, const C: usize> {
    q: *const i8,
    d: *const f32,
    dr: *const f32,
    sdb: *const f32,
    sd: *const f32,
    nb: usize,
    _pack: PhantomData<&'a XPack>,
}

impl XPack {
    /// Packs groups of rows of `x` (K a multiple of 32), each group 1, 2, 4 or 8 rows, for the
    /// kernels of `kind` (the 4-bit kinds take their own code order).
    pub fn new<'a>(x: &QRows, groups: impl IntoIterator<Item = &'a [usize]>, kind: u8) -> Self {
        let (k, g16) = (x.k, x.k / 16);
        let nb = k / 32;
        let mut p = XPack {
            nb,
            start: Vec::new(),
            q: Vec::new(),
            d: Vec::new(),
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
                    let q = &mut p.q;
                    if !matches!(kind, Q4_0 | Q4_1 | MXFP4) {
                        q.extend_from_slice(blk(b));
                    } else if b >= nb / 8 * 8 {
                        // A lone block past the runs of 8.
                        nibble_part(q, blk(b), kind, false);
                        nibble_part(q, blk(b), kind, true);
                    } else if b % 8 < 4 {
                        // The low-nibble elements of the pair (b, b+4) of a run of 8.
                        nibble_part(q, blk(b), kind, false);
                        nibble_part(q, blk(b + 4), kind, false);
                    } else {
                        nibble_part(q, blk(b - 4), kind, true);
                        nibble_part(q, blk(b), kind, true);
                    }
                    p.d.push(x.d[r * g16 + 2 * b]);
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

    /// Group `g`, packed C rows wide (panics if the group is not C rows: a caller bug).
    pub fn tile<const C: usize>(&self, g: usize) -> XTile<'_, C> {
        let s = self.start[g];
        let nb = self.nb;
        let next = self
            .start
            .get(g + 1)
            .copied()
            .unwrap_or(self.d.len() / nb.max(1));
        // Rows s..s + C exist in every array: q holds 32·nb codes a row, d/dr/sdb nb values,
        // sd 2·nb (all pushed together per row in `new`).
        assert!(
            next == s + C
                && (s + C) * nb <= self.d.len()
                && (s + C) * nb * 32 <= self.q.len()
                && (s + C) * nb <= self.dr.len()
                && (s + C) * nb <= self.sdb.len()
                && (s + C) * nb * 2 <= self.sd.len(),
            "xpack: group {g} is not {C} rows"
        );
        XTile {
            q: self.q[s * nb * 32..].as_ptr(),
            d: self.d[s * nb..].as_ptr(),
            dr: self.dr[s * nb..].as_ptr(),
            sdb: self.sdb[s * nb..].as_ptr(),
            sd: self.sd[s * 2 * nb..].as_ptr(),
            nb,
            _pack: PhantomData,
        }
    }
}

/// The 16 elements of a block of 32 under its low (`high` false) or high nibbles: Q4 puts
/// elements 0..16 in the low nibbles, MXFP4 the even elements.
fn nibble_part(q: &mut Vec<i8>, block: &[i8], kind: u8, high: bool) {
    if kind == MXFP4 {
        q.extend(block[high as usize..].iter().step_by(2));
    } else {
        q.extend_from_slice(&block[16 * high as usize..][..16]);
    }
}

/// The accessors return pointers into the tile's rows without bounds checks (they run once
/// per block in the kernels' inner loops).
///
/// # Safety (all accessors)
/// `c < C` and `b < nb` (`g < 2·nb` for `sd`). The pointer is then inside the packed data
/// (`XPack::tile` checked that C rows exist) and valid for the reads its doc names: 32 bytes
/// for `q`, one f32 for `d`, the nb − b values b.. for `dr`/`sdb` and 2·nb − g for `sd`.
impl<const C: usize> XTile<'_, C> {
    /// Blocks of 32 per row.
    pub fn nb(&self) -> usize {
        self.nb
    }
    /// Codes of block `b` of row `c` (32 bytes).
    ///
    /// # Safety
    /// See the impl: c < C, b < nb.
    #[inline(always)]
    pub unsafe fn q(&self, c: usize, b: usize) -> *const i8 {
        self.q.add((b * C + c) * 32)
    }
    /// The scale of block `b` of row `c`.
    ///
    /// # Safety
    /// See the impl: c < C, b < nb.
    #[inline(always)]
    pub unsafe fn d(&self, c: usize, b: usize) -> *const f32 {
        self.d.add(b * C + c)
    }
    /// The scales of blocks b.. of row `c`.
    ///
    /// # Safety
    /// See the impl: c < C, b < nb; nb − b values follow.
    #[inline(always)]
    pub unsafe fn dr(&self, c: usize, b: usize) -> *const f32 {
        self.dr.add(c * self.nb + b)
    }
    /// d·Σq of blocks b.. of row `c`.
    ///
    /// # Safety
    /// See the impl: c < C, b < nb; nb − b values follow.
    #[inline(always)]
    pub unsafe fn sdb(&self, c: usize, b: usize) -> *const f32 {
        self.sdb.add(c * self.nb + b)
    }
    /// d·Σq of groups of 16 g.. of row `c`.
    ///
    /// # Safety
    /// See the impl: c < C, g < 2·nb; 2·nb − g values follow.
    #[inline(always)]
    pub unsafe fn sd(&self, c: usize, g: usize) -> *const f32 {
        self.sd.add(c * 2 * self.nb + g)
    }
}
