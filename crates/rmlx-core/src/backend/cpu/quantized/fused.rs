//! Fused AVX-512 VNNI kernels for Q4_0, Q4_1, Q8_0 and Hugging Face MXFP4: weight codes are
//! decoded in registers straight from the packed rows, 4 blocks (128 elements) a step, and
//! multiplied with 8-bit activations laid out to match (`xlanes.rs`). A tile is 4 weight
//! rows × C activation rows: each weight step is decoded once and used C times; accumulators
//! stay in vectors and are reduced once per (row, x row).
//!
//! Per step and weight row: masked loads of the step's bytes (never past the row's end).
//! Q4: one `vpermt2b` gathers the 4 blocks' 16 code bytes, low and high nibbles become the
//! two halves. MXFP4: the 64 bytes are already the 4 blocks; each nibble maps through the
//! E2M1 table (2·lut + 12) with `vpermb`. Q8_0: two `vpermt2b` gather block pairs, the sign
//! bit flipped (q + 128). Scales are handled compactly, 4 per step: f16 gathered with one
//! `vpermw` and converted with F16C (E8M0 applied with `vscalefps`), multiplied by the
//! activation scales, then spread over lanes with one `vpermps`. Integer code offsets (8,
//! 128, 12) are undone by starting the dpbusd chain from −offset·Σx of the lane; Q4_1's
//! float mins (min_b · d_x·Σq_b) are added into 4 spare lanes of the accumulator.
#![cfg(target_arch = "x86_64")]

use super::xlanes::{Layout, XLanes, STEP};
use std::arch::x86_64::*;

pub use super::stack::{WRow, MXFP4, Q4_0, Q4_1, Q4_K, Q6_K, Q8_0};

/// Bytes of one step (4 blocks) in `p`.
const fn step_bytes(kind: u8) -> usize {
    match kind {
        Q4_0 => 72,
        Q4_1 => 80,
        Q8_0 => 136,
        Q4_K => 72,  // half a 144-byte super-block
        Q6_K => 105, // half a 210-byte super-block
        _ => 64,
    }
}

/// The activation layout and integer code offset of a kind (Q4_1: 0, its mins are floats).
pub const fn x_layout(kind: u8) -> (Layout, i32) {
    match kind {
        Q4_0 => (Layout::Split, 8),
        Q4_1 => (Layout::Split, 0),
        Q8_0 => (Layout::Natural, 128),
        Q4_K => (Layout::Split32, 0),
        Q6_K => (Layout::Natural, 32),
        _ => (Layout::Pairs, 12),
    }
}

/// Index vectors of one kind.
#[repr(C, align(64))]
struct Tables {
    /// Code-byte gathers (Q4: [0]; Q8_0: the two block pairs).
    code: [[u8; 64]; 2],
    /// u16 index of [d0..d3, m0..m3] in the step's bytes.
    scale: [u16; 32],
}

const fn tables(kind: u8) -> Tables {
    let bb = step_bytes(kind) / 4;
    let mut t = Tables {
        code: [[0; 64]; 2],
        scale: [0; 32],
    };
    let mut i = 0;
    while i < 64 {
        let mut p = 0;
        while p < 2 {
            t.code[p][i] = match kind {
                Q4_0 => ((i / 16) * bb + 2 + i % 16) as u8,
                Q4_1 => ((i / 16) * bb + 4 + i % 16) as u8,
                _ => ((2 * p + i / 32) * bb + 2 + i % 32 - 64 * p) as u8,
            };
            p += 1;
        }
        i += 1;
    }
    let mut b = 0;
    while b < 4 {
        t.scale[b] = (b * bb / 2) as u16;
        t.scale[4 + b] = (b * bb / 2 + 1) as u16;
        b += 1;
    }
    t
}

static T4_0: Tables = tables(Q4_0);
static T4_1: Tables = tables(Q4_1);
static T8_0: Tables = tables(Q8_0);

#[repr(C, align(64))]
struct Consts {
    /// E2M1 codes as 2·lut + 12, repeated 4 times (vpermb reads 6 index bits).
    mx_lut: [u8; 64],
    /// f32 lane → compact scale: 4 lanes a block (Split/Pairs), 8 lanes a block (Natural).
    spread4: [u32; 16],
    spread8: [[u32; 16]; 2],
    /// Q4_K: lanes of the low (sub-blocks 0, 2) and high (1, 3) nibble halves.
    spread_k: [[u32; 16]; 2],
    /// Q4_K: byte gathers of the packed 6-bit scales (`q4k_scales`).
    k_a: [u8; 16],
    k_b: [u8; 16],
    /// Q6_K: lanes of sub-blocks (16 elements) 0..4 and 4..8; u16 shifts bringing the two
    /// high bits of each code to bits 4, 5.
    spread6: [[u32; 16]; 2],
    q6_shl: [u16; 32],
    q6_shr: [u16; 32],
}

static K: Consts = {
    let l = [12u8, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0];
    let mut c = Consts {
        mx_lut: [0; 64],
        spread4: [0; 16],
        spread8: [[0; 16]; 2],
        spread_k: [[0; 16]; 2],
        spread6: [[0; 16]; 2],
        q6_shl: [0; 32],
        q6_shr: [0; 32],
        k_a: [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 12, 13, 14, 15],
        k_b: [
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 4, 5, 6, 7, 8, 9, 10, 11,
        ],
    };
    let mut i = 0;
    while i < 64 {
        c.mx_lut[i] = l[i % 16];
        i += 1;
    }
    let mut j = 0;
    while j < 16 {
        c.spread4[j] = (j / 4) as u32;
        c.spread8[0][j] = (j / 8) as u32;
        c.spread8[1][j] = (2 + j / 8) as u32;
        c.spread_k[0][j] = (2 * (j / 8)) as u32;
        c.spread_k[1][j] = (2 * (j / 8) + 1) as u32;
        c.spread6[0][j] = (j / 4) as u32;
        c.spread6[1][j] = (4 + j / 4) as u32;
        j += 1;
    }
    let mut w = 0;
    while w < 32 {
        c.q6_shl[w] = if w < 16 { 4 } else { 2 };
        c.q6_shr[w] = if w < 16 { 0 } else { 2 };
        w += 1;
    }
    c
};

/// 64 bytes at `p`.
///
/// # Safety
/// AVX-512F present; `p` valid for reading 64 bytes (any alignment).
#[inline(always)]
unsafe fn ld<T>(p: *const T) -> __m512i {
    _mm512_loadu_si512(p as *const _)
}

/// Loads up to 64 bytes at `p`, `avail` of them valid (the rest zero, never read).
///
/// # Safety
/// AVX-512BW and BMI2 present; `p` valid for reading min(avail, 64) bytes (a masked load
/// does not touch the others, so `p` may point anywhere when avail = 0).
#[inline(always)]
unsafe fn load_upto(p: *const u8, avail: usize) -> __m512i {
    let n = avail.min(64) as u32;
    _mm512_maskz_loadu_epi8(_bzhi_u64(u64::MAX, n), p as *const _)
}

/// One decoded step of one weight row: codes of the two halves (u8) and the compact scales:
/// [d0..d3, m0..m3] (GGUF) or [e0−128..e3−128, 0…] (MXFP4).
struct Step {
    c: [__m512i; 2],
    s: __m256,
}

/// Step `g` of the row at `w`.
///
/// # Safety
/// The features enabled here present; `w` a row of `rb` bytes of `KIND` (MXFP4: rb/16
/// exponents at `w.s`) and g < rb.div_ceil(step_bytes(KIND)).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,bmi2,f16c")]
unsafe fn decode_step<const KIND: u8>(w: WRow, rb: usize, g: usize, pf: usize) -> Step {
    let off = g * step_bytes(KIND);
    let rem = rb - off;
    let p = w.p.add(off);
    // The same step `pf` bytes ahead (rows are contiguous): the hardware prefetcher alone
    // leaves a large GEMV latency-bound at about half the bandwidth.
    let ahead = p.wrapping_add(pf);
    let mut line = if pf == 0 { step_bytes(KIND) } else { 0 };
    while line < step_bytes(KIND) {
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
        line += 64;
    }
    if KIND == MXFP4 && pf > 0 && g.is_multiple_of(16) {
        _mm_prefetch::<_MM_HINT_T0>(w.s.wrapping_add(4 * g + pf / 16) as *const i8);
    }
    if KIND == Q4_K {
        return q4k_step(w.p.add(g / 2 * 144), g % 2);
    }
    if KIND == Q6_K {
        return q6k_step(w.p.add(g / 2 * 210), g % 2);
    }
    if KIND == MXFP4 {
        let z = load_upto(p, rem);
        let nb = (rem / 16).min(4) as u32;
        let e = _mm_maskz_loadu_epi8(_bzhi_u32(0xF, nb) as u16, w.s.add(4 * g) as *const _);
        let lut = ld(K.mx_lut.as_ptr());
        let e = _mm256_cvtepi32_ps(_mm256_sub_epi32(
            _mm256_cvtepu8_epi32(e),
            _mm256_set1_epi32(128),
        ));
        return Step {
            c: [
                _mm512_permutexvar_epi8(z, lut),
                _mm512_permutexvar_epi8(_mm512_srli_epi16(z, 4), lut),
            ],
            s: e,
        };
    }
    let t = match KIND {
        Q4_0 => &T4_0,
        Q4_1 => &T4_1,
        _ => &T8_0,
    };
    // Past the row's end (a short last step) the masked loads read nothing: their pointers
    // are formed with wrapping arithmetic, never dereferenced there.
    let z0 = load_upto(p, rem);
    let z1 = load_upto(p.wrapping_add(64), rem.saturating_sub(64));
    let h = _mm512_permutex2var_epi16(z0, ld(t.scale.as_ptr()), z1);
    let s = _mm256_cvtph_ps(_mm512_castsi512_si128(h));
    let c = if KIND == Q8_0 {
        let z2 = load_upto(p.wrapping_add(128), rem.saturating_sub(128));
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
        let v = _mm512_permutex2var_epi8(z0, ld(t.code[0].as_ptr()), z1);
        let lo = _mm512_set1_epi8(0x0F);
        [
            _mm512_and_si512(v, lo),
            _mm512_and_si512(_mm512_srli_epi16(v, 4), lo),
        ]
    };
    Step { c, s }
}

/// Half `h` of a Q4_K super-block (d, dmin: f16; 12 bytes of 6-bit scales and mins for 8
/// sub-blocks of 32; 128 bytes of nibbles, bytes 32j..32j+32 holding sub-blocks 2j (low) and
/// 2j+1 (high)). Codes: [sub-blocks 4h, 4h+2] and [4h+1, 4h+3]; scales: d·sc and −dmin·m of
/// sub-blocks 4h..4h+4.
///
/// # Safety
/// The features enabled here present; `sb` a readable 144-byte super-block, h < 2.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,f16c")]
unsafe fn q4k_step(sb: *const u8, h: usize) -> Step {
    let z = ld(sb.add(16 + 64 * h));
    let lo = _mm512_set1_epi8(0x0F);
    let c = [
        _mm512_and_si512(z, lo),
        _mm512_and_si512(_mm512_srli_epi16(z, 4), lo),
    ];
    // Bytes [sc0..3, m0..3, sc4..7, m4..7] (ggml's get_scale_min_k4, 16 at once).
    let q = _mm_loadu_si128(sb as *const _);
    let a = _mm_shuffle_epi8(q, _mm_loadu_si128(K.k_a.as_ptr() as *const _));
    let b = _mm_shuffle_epi8(q, _mm_loadu_si128(K.k_b.as_ptr() as *const _));
    let lo4 = _mm_set1_epi8(0x0F);
    let top = _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30));
    let sc_hi = _mm_or_si128(_mm_and_si128(a, lo4), top);
    let m_hi = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(a, 4), lo4), top);
    let v = _mm_mask_blend_epi8(0xF000, sc_hi, m_hi);
    let v = _mm_mask_blend_epi8(0x00FF, v, _mm_and_si128(a, _mm_set1_epi8(63)));
    let v = if h == 0 { v } else { _mm_srli_si128(v, 8) };
    let v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
    // [d ×4, −dmin ×4]
    let dd = _mm_cvtph_ps(q);
    let dd = _mm256_permutevar8x32_ps(
        _mm256_castps128_ps256(dd),
        _mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0),
    );
    let dd = _mm256_mul_ps(dd, _mm256_set_ps(-1., -1., -1., -1., 1., 1., 1., 1.));
    Step {
        c,
        s: _mm256_mul_ps(v, dd),
    }
}

/// Half `n` of a Q6_K super-block (ql[128] low nibbles, qh[64] high bit pairs, 16 i8
/// sub-block scales, d f16): elements 128n + l, l < 32, are ql[64n+l] low | qh[32n+l] bits 0-1,
/// then +32: ql[64n+32+l] low | bits 2-3, +64: ql[64n+l] high | bits 4-5, +96: bits 6-7.
/// Codes (0..64, offset 32) in natural order; scales d·sc of the step's 8 sub-blocks of 16.
///
/// # Safety
/// The features enabled here present; `sb` a readable 210-byte super-block, n < 2.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,f16c")]
unsafe fn q6k_step(sb: *const u8, n: usize) -> Step {
    let z = ld(sb.add(64 * n));
    let qh = _mm256_loadu_si256(sb.add(128 + 32 * n) as *const _);
    let h = _mm512_inserti64x4(_mm512_castsi256_si512(qh), qh, 1);
    let (lo, hb) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x30));
    let c = [
        _mm512_or_si512(
            _mm512_and_si512(z, lo),
            _mm512_and_si512(_mm512_sllv_epi16(h, ld(K.q6_shl.as_ptr())), hb),
        ),
        _mm512_or_si512(
            _mm512_and_si512(_mm512_srli_epi16(z, 4), lo),
            _mm512_and_si512(_mm512_srlv_epi16(h, ld(K.q6_shr.as_ptr())), hb),
        ),
    ];
    let sc = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
        sb.add(192 + 8 * n) as *const _
    )));
    let d = _mm_cvtph_ps(_mm_cvtsi32_si128(
        (sb.add(208) as *const u16).read_unaligned() as i32,
    ));
    Step {
        c,
        s: _mm256_mul_ps(sc, _mm256_broadcastss_ps(d)),
    }
}

/// out[r][c] = Σ_k w_r[k] · x_{xr[c]}[k] for 4 weight rows and C activation rows.
///
/// # Safety
/// AVX-512 F/BW/DQ/VL/VNNI/VBMI, BMI2 and F16C must be present; every `w[r]` must point to a
/// row of `rb` bytes (MXFP4: `rb` = K/2 block bytes and K/32 exponents at `s`) with
/// K ≤ `x.kp`, `x` laid out for `KIND` (`x_layout`), and every `xr[c]` a row of `x`.
/// `pf`: prefetch distance in bytes (MXFP4: of the blocks; exponents go pf/16 ahead).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512vbmi,bmi2,f16c")]
pub unsafe fn tile<const KIND: u8, const C: usize>(
    w: &[WRow; 4],
    rb: usize,
    x: &XLanes,
    xr: &[usize; C],
    out: &mut [[f32; C]; 4],
    pf: usize,
) {
    let steps = x.kp / STEP;
    let al = if KIND == Q8_0 || KIND == Q6_K { 32 } else { 16 };
    let sp4 = ld(K.spread4.as_ptr());
    let sp8 = [ld(K.spread8[0].as_ptr()), ld(K.spread8[1].as_ptr())];
    let spk = [ld(K.spread_k[0].as_ptr()), ld(K.spread_k[1].as_ptr())];
    let sp6 = [ld(K.spread6[0].as_ptr()), ld(K.spread6[1].as_ptr())];
    // `acc`: row r's accumulators, one per activation row.
    let body = |acc: &mut [__m512; C], r: usize, g: usize| {
        let st = decode_step::<KIND>(w[r], rb, g, pf);
        {
            for c in 0..C {
                let q = x.q.as_ptr().add(xr[c] * x.kp + g * STEP);
                let xc = x.xc.as_ptr().add((xr[c] * steps + g) * 8);
                let a = x.aux.as_ptr().add((xr[c] * steps + g) * al);
                let (xq0, xq1) = (ld(q), ld(q.add(64)));
                let a0 = if KIND == Q4_1 || KIND == Q4_K {
                    _mm512_setzero_si512()
                } else {
                    ld(a)
                };
                if KIND == Q4_K {
                    // Lanes 4..8: −dmin·m_b · d_x·Σq_b, added where they lie.
                    let p = _mm512_castps256_ps512(_mm256_mul_ps(st.s, _mm256_loadu_ps(xc)));
                    acc[c] = _mm512_mask_add_ps(acc[c], 0x00F0, acc[c], p);
                    for h in 0..2 {
                        let isum = _mm512_dpbusd_epi32(a0, st.c[h], [xq0, xq1][h]);
                        let sc = _mm512_permutexvar_ps(spk[h], p);
                        acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), sc, acc[c]);
                    }
                    continue;
                }
                if KIND == Q6_K {
                    // Sub-blocks of 16: activation scales per 32 duplicated.
                    let xd = _mm256_permutevar8x32_ps(
                        _mm256_loadu_ps(xc),
                        _mm256_set_epi32(3, 3, 2, 2, 1, 1, 0, 0),
                    );
                    let p = _mm512_castps256_ps512(_mm256_mul_ps(st.s, xd));
                    for h in 0..2 {
                        let ah = if h == 0 { a0 } else { ld(a.add(16)) };
                        let isum = _mm512_dpbusd_epi32(ah, st.c[h], [xq0, xq1][h]);
                        let sc = _mm512_permutexvar_ps(sp6[h], p);
                        acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), sc, acc[c]);
                    }
                    continue;
                }
                if KIND == Q8_0 {
                    let p = _mm256_mul_ps(st.s, _mm256_loadu_ps(xc));
                    let p = _mm512_castps256_ps512(p);
                    for h in 0..2 {
                        let ah = if h == 0 { a0 } else { ld(a.add(16)) };
                        let isum = _mm512_dpbusd_epi32(ah, st.c[h], [xq0, xq1][h]);
                        let sc = _mm512_permutexvar_ps(sp8[h], p);
                        acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), sc, acc[c]);
                    }
                    continue;
                }
                let p = if KIND == MXFP4 {
                    _mm256_scalef_ps(_mm256_loadu_ps(xc), st.s)
                } else {
                    _mm256_mul_ps(st.s, _mm256_loadu_ps(xc))
                };
                let p = _mm512_castps256_ps512(p);
                if KIND == Q4_1 {
                    // Lanes 4..8 of p are min_b · d_x·Σq_b: added where they lie (the lanes
                    // are summed at the end anyway).
                    acc[c] = _mm512_mask_add_ps(acc[c], 0x00F0, acc[c], p);
                }
                let isum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a0, st.c[0], xq0), st.c[1], xq1);
                let sc = _mm512_permutexvar_ps(sp4, p);
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), sc, acc[c]);
            }
        }
    };
    // One row after the other: memory is read as one sequential stream, ~24 GB/s on one core
    // where 4 interleaved row streams reach ~14. Each step is still decoded once for all C
    // activation rows, whose steps stay in L1.
    // A row's accumulators are reduced as soon as it is done, so only C are live at a time
    // (C = 8 fits the 32 vector registers).
    for (r, o) in out.iter_mut().enumerate() {
        let mut acc = [_mm512_setzero_ps(); C];
        for g in 0..rb.div_ceil(step_bytes(KIND)) {
            body(&mut acc, r, g);
        }
        for (o, a) in o.iter_mut().zip(acc) {
            *o = _mm512_reduce_add_ps(a);
        }
    }
}
