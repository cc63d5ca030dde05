//! Fused AVX-512 VNNI kernels for Q4_0, Q4_1, Q8_0 and Hugging Face MXFP4: weight codes are
//! decoded in registers straight from the packed rows, 4 blocks (128 elements) a step, and
//! multiplied with 8-bit activations (`xlanes.rs`). A tile is 4 weight rows × C activation
//! rows: each weight step is decoded once and used C times, each activation step loaded once
//! and used 4 times; accumulators stay in vectors and are reduced once per (row, x row).
//!
//! Per step and weight row: masked loads of the step's bytes (never past the row's end);
//! `vpermt2b` gathers each pair of blocks' code bytes into one register, nibbles split with a
//! variable shift (Q4) or the sign bit flipped (Q8_0: q + 128); MXFP4 nibbles are spread with
//! `vpermb` + `vpmultishiftqb` and mapped through the E2M1 table (2·lut + 12) with `vpermb`.
//! Block scales (f16) are gathered with `vpermt2w` into lane order and converted with F16C;
//! E8M0 exponents are applied with `vscalefps`. Integer code offsets (8, 128, 12) are undone
//! by starting each dpbusd from −offset·Σx of the lane; Q4_1's float mins multiply d·Σx.
#![cfg(target_arch = "x86_64")]

use super::xlanes::{XLanes, STEP};
use std::arch::x86_64::*;

pub const Q4_0: u8 = 0;
pub const Q4_1: u8 = 1;
pub const Q8_0: u8 = 2;
pub const MXFP4: u8 = 3;

/// One weight row: GGUF bytes in `p` (`s` unused), or MXFP4 blocks in `p` and exponents in `s`.
#[derive(Clone, Copy)]
pub struct WRow {
    pub p: *const u8,
    pub s: *const u8,
}

/// Bytes of one step (4 blocks) in `p`.
const fn step_bytes(kind: u8) -> usize {
    match kind {
        Q4_0 => 72,
        Q4_1 => 80,
        Q8_0 => 136,
        _ => 64,
    }
}

/// The integer offset of the codes (None: Q4_1's float min).
pub const fn code_offset(kind: u8) -> Option<i32> {
    match kind {
        Q4_0 => Some(8),
        Q4_1 => None,
        Q8_0 => Some(128),
        _ => Some(12),
    }
}

/// Index vectors of one kind (built once per tile call from these tables).
struct Tables {
    /// Code-byte gathers for the step's two block pairs.
    code: [[u8; 64]; 2],
    /// Q4: per u16 lane the nibble shift (0: low, 4: high); MXFP4: multishift controls.
    shift: [u8; 64],
    /// u16 index of each f32 lane's scale (`scale`) and Q4_1 min (`min`) in the step's bytes;
    /// MXFP4: byte index of the exponent (for lane 4j: block of lane j).
    scale: [u16; 32],
    min: [u16; 32],
    ex: [[u8; 64]; 2],
}

const fn tables(kind: u8) -> Tables {
    let bb = step_bytes(kind) / 4;
    let mut t = Tables {
        code: [[0; 64]; 2],
        shift: [0; 64],
        scale: [0; 32],
        min: [0; 32],
        ex: [[0; 64]; 2],
    };
    let mut i = 0;
    while i < 64 {
        let mut p = 0;
        while p < 2 {
            let block = 2 * p + i / 32;
            t.code[p][i] = match kind {
                Q4_0 => (block * bb + 2 + i % 16) as u8,
                Q4_1 => (block * bb + 4 + i % 16) as u8,
                Q8_0 => (block * bb + 2 + i % 32 - 64 * p) as u8,
                _ => ((p * 4 + i / 16) * 8 + i % 8) as u8,
            };
            // Exponent byte of f32 lane i/4 (only every 4th byte is kept).
            t.ex[p][i] = (2 * p + i / 32) as u8;
            p += 1;
        }
        t.shift[i] = if kind == MXFP4 {
            (((i / 8) % 2) * 32 + (i % 8) * 4) as u8
        } else if i % 32 < 16 || i % 2 == 1 {
            // u16 shift counts: the high byte of each count is 0.
            0
        } else {
            4
        };
        i += 1;
    }
    let mut l = 0;
    while l < 32 {
        t.scale[l] = ((l / 8) * bb / 2) as u16;
        t.min[l] = ((l / 8) * bb / 2 + 1) as u16;
        l += 1;
    }
    t
}

static T4_0: Tables = tables(Q4_0);
static T4_1: Tables = tables(Q4_1);
static T8_0: Tables = tables(Q8_0);
static TMX: Tables = tables(MXFP4);

/// E2M1 codes as 2·lut + 12, repeated 4 times (vpermb reads 6 index bits).
static MX_LUT: [u8; 64] = {
    let l = [12u8, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0];
    let mut t = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        t[i] = l[i % 16];
        i += 1;
    }
    t
};

#[inline(always)]
unsafe fn ld(p: *const u8) -> __m512i {
    _mm512_loadu_si512(p as *const _)
}

/// Loads up to 64 bytes at `p`, `avail` of them valid (the rest zero, never read).
#[inline(always)]
unsafe fn load_upto(p: *const u8, avail: usize) -> __m512i {
    let n = avail.min(64) as u32;
    _mm512_maskz_loadu_epi8(_bzhi_u64(u64::MAX, n), p as *const _)
}

/// One step of one weight row, decoded: codes of the two block pairs (u8), per-lane scales,
/// and (Q4_1) per-lane mins; for MXFP4 `s` holds exponents − 128 as floats.
struct Step {
    c: [__m512i; 2],
    s: [__m512; 2],
    m: [__m512; 2],
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,bmi2,f16c")]
unsafe fn decode_step<const KIND: u8>(t: &Tables, w: WRow, rb: usize, g: usize) -> Step {
    let sb = step_bytes(KIND);
    let off = g * sb;
    let rem = rb - off;
    let p = w.p.add(off);
    let zero = _mm512_setzero_ps();
    if KIND == MXFP4 {
        let z = load_upto(p, rem);
        let nbrem = (rem / 16).min(4) as u32;
        let e = _mm512_castsi128_si512(_mm_maskz_loadu_epi8(
            _bzhi_u32(0xF, nbrem) as u16,
            w.s.add(4 * g) as *const _,
        ));
        let lut = ld(MX_LUT.as_ptr());
        let ctrl = ld(t.shift.as_ptr());
        let code = |i: usize| {
            let spread = _mm512_permutexvar_epi8(ld(t.code[i].as_ptr()), z);
            _mm512_permutexvar_epi8(_mm512_multishift_epi64_epi8(ctrl, spread), lut)
        };
        let ex = |i: usize| {
            let v = _mm512_maskz_permutexvar_epi8(0x1111_1111_1111_1111, ld(t.ex[i].as_ptr()), e);
            _mm512_cvtepi32_ps(_mm512_sub_epi32(v, _mm512_set1_epi32(128)))
        };
        return Step {
            c: [code(0), code(1)],
            s: [ex(0), ex(1)],
            m: [zero; 2],
        };
    }
    let z0 = load_upto(p, rem);
    let z1 = load_upto(p.add(64), rem.saturating_sub(64));
    let f16x = |h: __m512i| {
        [
            _mm512_cvtph_ps(_mm512_castsi512_si256(h)),
            _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)),
        ]
    };
    let s = f16x(_mm512_permutex2var_epi16(
        z0,
        _mm512_loadu_si512(t.scale.as_ptr() as *const _),
        z1,
    ));
    let m = if KIND == Q4_1 {
        f16x(_mm512_permutex2var_epi16(
            z0,
            _mm512_loadu_si512(t.min.as_ptr() as *const _),
            z1,
        ))
    } else {
        [zero; 2]
    };
    let c = if KIND == Q8_0 {
        let z2 = load_upto(p.add(128), rem.saturating_sub(128));
        let flip = _mm512_set1_epi8(-128);
        [
            _mm512_xor_si512(
                _mm512_permutex2var_epi8(z0, ld(t.code[0].as_ptr()), z1),
                flip,
            ),
            _mm512_xor_si512(
                _mm512_permutex2var_epi8(z1, ld(t.code[1].as_ptr()), z2),
                flip,
            ),
        ]
    } else {
        let sh = ld(t.shift.as_ptr());
        let lo = _mm512_set1_epi8(0x0F);
        let nib = |i: usize| {
            let b = _mm512_permutex2var_epi8(z0, ld(t.code[i].as_ptr()), z1);
            _mm512_and_si512(_mm512_srlv_epi16(b, sh), lo)
        };
        [nib(0), nib(1)]
    };
    Step { c, s, m }
}

/// out[r][c] = Σ_k w_r[k] · x_{xr[c]}[k] for 4 weight rows and C activation rows.
///
/// # Safety
/// AVX-512 F/BW/DQ/VL/VNNI/VBMI, BMI2 and F16C must be present; every `w[r]` must point to a
/// row of `rb` bytes (MXFP4: `rb` = K/2 block bytes and K/32 exponents at `s`) with
/// K ≤ `x.kp`, and every `xr[c]` must be a row of `x`.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512vbmi,bmi2,f16c")]
pub unsafe fn tile<const KIND: u8, const C: usize>(
    w: &[WRow; 4],
    rb: usize,
    x: &XLanes,
    xr: &[usize; C],
    out: &mut [[f32; C]; 4],
) {
    let t = match KIND {
        Q4_0 => &T4_0,
        Q4_1 => &T4_1,
        Q8_0 => &T8_0,
        _ => &TMX,
    };
    let lanes = x.lanes();
    let steps = rb.div_ceil(step_bytes(KIND));
    let mut acc = [[_mm512_setzero_ps(); C]; 4];
    for g in 0..steps {
        for r in 0..4 {
            let st = decode_step::<KIND>(t, w[r], rb, g);
            for c in 0..C {
                let q = x.q.as_ptr().add(xr[c] * x.kp + g * STEP);
                let d = x.d.as_ptr().add(xr[c] * lanes + g * 32);
                let a = x.aux.as_ptr().add(xr[c] * lanes + g * 32);
                for h in 0..2 {
                    let xq = ld(q.add(64 * h) as *const u8);
                    let xd = _mm512_loadu_ps(d.add(16 * h));
                    let xa = _mm512_loadu_si512(a.add(16 * h) as *const _);
                    let (src, sc) = match KIND {
                        Q4_1 => (_mm512_setzero_si512(), _mm512_mul_ps(st.s[h], xd)),
                        MXFP4 => (xa, _mm512_scalef_ps(xd, st.s[h])),
                        _ => (xa, _mm512_mul_ps(st.s[h], xd)),
                    };
                    let isum = _mm512_dpbusd_epi32(src, st.c[h], xq);
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), sc, acc[r][c]);
                    if KIND == Q4_1 {
                        acc[r][c] = _mm512_fmadd_ps(st.m[h], _mm512_castsi512_ps(xa), acc[r][c]);
                    }
                }
            }
        }
    }
    for r in 0..4 {
        for c in 0..C {
            out[r][c] = _mm512_reduce_add_ps(acc[r][c]);
        }
    }
}
