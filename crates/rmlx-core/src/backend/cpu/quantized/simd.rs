//! AVX-512 (F, BW, VL, VNNI) kernels. Each is `unsafe` with `#[target_feature]` and reached only
//! after runtime detection; the scalar code in `dot.rs` computes the same integer sums.
#![cfg(target_arch = "x86_64")]

use super::act::XRow;
use super::dot::Decoded;
use crate::error::Result;
use crate::quant::RowRef;
use std::arch::x86_64::*;

/// Whether the AVX-512 kernels may run: the CPU has every feature they use and the
/// environment does not force the scalar fallback (`RMLX_QUANT_SCALAR=1`, for tests) or the
/// AVX2 kernels (`RMLX_QUANT_NO_AVX512=1`, to test and time those on an AVX-512 CPU).
pub fn has_avx512_vnni() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let off = |var: &str| std::env::var_os(var).is_some_and(|v| v != "0");
    *OK.get_or_init(|| {
        !off("RMLX_QUANT_SCALAR") && !off("RMLX_QUANT_NO_AVX512") && cpu_has_avx512_vnni()
    })
}

fn cpu_has_avx512_vnni() -> bool {
    is_x86_feature_detected!("bmi2")
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
        && is_x86_feature_detected!("avx512vbmi")
        && is_x86_feature_detected!("f16c")
}

/// The common-form decoders compiled with AVX-512 enabled (they auto-vectorize).
pub fn decode_row(row: RowRef, d: &mut Decoded) -> Result<()> {
    assert!(
        has_avx512_vnni(),
        "decode_row: AVX-512 kernel without AVX-512"
    );
    // SAFETY: the features were detected (asserted; `best_decode` hands this out only then).
    unsafe { decode_row_avx512(row, d) }
}

/// # Safety
/// AVX-512 F/BW/DQ/VL/VBMI and F16C must be present.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,f16c")]
unsafe fn decode_row_avx512(row: RowRef, d: &mut Decoded) -> Result<()> {
    crate::quant::decode_row(row, &mut d.u, &mut d.s, &mut d.o)
}

pub fn dot(w: &Decoded, x: &XRow) -> f32 {
    let (k, g) = (w.u.len(), w.u.len() / 16);
    assert!(
        has_avx512_vnni()
            && k.is_multiple_of(16)
            && x.q.len() == k
            && [w.s.len(), w.o.len(), x.d.len(), x.sd.len()] == [g; 4],
        "quantized dot: rows of different lengths, or no AVX-512"
    );
    // SAFETY: features detected and lengths checked (asserted).
    unsafe { dot_vnni(&w.u, &w.s, &w.o, x.q, x.d, x.sd) }
}

/// 64 elements a step: dpbusd gives 16 lanes of 4 products, lanes 4g..4g+3 belonging to
/// group g of 16, so the 4 group scales are spread over lanes with one permute.
///
/// # Safety
/// AVX-512 F/BW/DQ/VL/VNNI present; k = u.len() a multiple of 16, q of k values, s, o, d and
/// sd of k/16.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
unsafe fn dot_vnni(u: &[u8], s: &[f32], o: &[f32], q: &[i8], d: &[f32], sd: &[f32]) -> f32 {
    let k = u.len();
    let spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    let zero = _mm512_setzero_si512();
    let mut acc = _mm512_setzero_ps();
    let (up, qp, sp, dp) = (u.as_ptr(), q.as_ptr(), s.as_ptr(), d.as_ptr());
    let mut c = 0;
    while c < k {
        let rem = k - c;
        let (w, x, sc) = if rem >= 64 {
            (
                _mm512_loadu_si512(up.add(c) as *const _),
                _mm512_loadu_si512(qp.add(c) as *const _),
                _mm_mul_ps(_mm_loadu_ps(sp.add(c / 16)), _mm_loadu_ps(dp.add(c / 16))),
            )
        } else {
            let bm = (1u64 << rem) - 1;
            let gm = ((1u32 << (rem / 16)) - 1) as u8;
            (
                _mm512_maskz_loadu_epi8(bm, up.add(c) as *const _),
                _mm512_maskz_loadu_epi8(bm, qp.add(c) as *const _),
                _mm_mul_ps(
                    _mm_maskz_loadu_ps(gm, sp.add(c / 16)),
                    _mm_maskz_loadu_ps(gm, dp.add(c / 16)),
                ),
            )
        };
        let isum = _mm512_dpbusd_epi32(zero, w, x);
        let scv = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(sc));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scv, acc);
        c += 64;
    }
    // Offsets: Σ_g o_g · (d_g Σq_g).
    let ng = k / 16;
    let mut g = 0;
    while g < ng {
        let m = if ng - g >= 16 {
            0xFFFF
        } else {
            ((1u32 << (ng - g)) - 1) as u16
        };
        let ov = _mm512_maskz_loadu_ps(m, o.as_ptr().add(g));
        let xv = _mm512_maskz_loadu_ps(m, sd.as_ptr().add(g));
        acc = _mm512_fmadd_ps(ov, xv, acc);
        g += 16;
    }
    _mm512_reduce_add_ps(acc)
}

/// GGUF types with a fused kernel: codes decoded in registers, no intermediate row.
pub const Q4_0: u8 = 0;
pub const Q4_1: u8 = 1;
pub const Q8_0: u8 = 2;

/// Bytes per block of a fused kind.
const fn block_bytes(kind: u8) -> usize {
    match kind {
        Q4_0 => 18,
        Q4_1 => 20,
        _ => 34,
    }
}

/// Unsigned codes of two 32-element blocks (element order), as one register.
///
/// # Safety
/// AVX-512 F/BW present (the caller's features); `a` and `b` each a readable block of `KIND`.
#[inline(always)]
unsafe fn codes2<const KIND: u8>(a: *const u8, b: *const u8) -> __m512i {
    if KIND == Q8_0 {
        // Signed q as q + 128: the 128·Σx it adds is removed through the offset −128·d.
        let v = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256(a.add(2) as *const _)),
            _mm256_loadu_si256(b.add(2) as *const _),
            1,
        );
        return _mm512_xor_si512(v, _mm512_set1_epi8(-128));
    }
    let off = if KIND == Q4_1 { 4 } else { 2 };
    let qs = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(a.add(off) as *const _)),
        _mm_loadu_si128(b.add(off) as *const _),
        1,
    );
    let m = _mm256_set1_epi8(0x0F);
    let lo = _mm256_and_si256(qs, m);
    let hi = _mm256_and_si256(_mm256_srli_epi16(qs, 4), m);
    // [lo_a, lo_b, hi_a, hi_b] → [lo_a, hi_a, lo_b, hi_b]: each block's 32 elements in order.
    let v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    _mm512_shuffle_i64x2(v, v, 0b11_01_10_00)
}

/// f16 bits to f32 with F16C.
///
/// # Safety
/// F16C present; `p` valid for reading 2 bytes (any alignment).
#[inline(always)]
unsafe fn h2f(p: *const u8) -> f32 {
    let bits = (p as *const u16).read_unaligned();
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// (scale, offset) of a block: value = scale·code + offset.
///
/// # Safety
/// F16C present; `p` a readable block of `KIND`.
#[inline(always)]
unsafe fn scale_offset<const KIND: u8>(p: *const u8) -> (f32, f32) {
    let d = h2f(p);
    match KIND {
        Q4_0 => (d, -8.0 * d),
        Q4_1 => (d, h2f(p.add(2))),
        _ => (d, -128.0 * d),
    }
}

/// Dot of one GGUF Q4_0/Q4_1/Q8_0 row with a quantized activation row, two blocks a step.
pub fn dot_fused<const KIND: u8>(row: &[u8], x: &XRow) -> f32 {
    assert!(
        has_avx512_vnni()
            && row.len() * 32 >= x.q.len() * block_bytes(KIND)
            && x.q.len().is_multiple_of(32),
        "dot_fused: row shorter than x, or no AVX-512"
    );
    // SAFETY: the features were detected (`has_avx512_vnni` includes F16C); the row holds
    // x.q.len() / 32 blocks (asserted); x.d and x.sd are indexed with bounds checks.
    unsafe { dot_fused_impl::<KIND>(row.as_ptr(), x) }
}

/// # Safety
/// AVX-512 F/BW/DQ/VL/VNNI and F16C present; `row` holds x.q.len() / 32 blocks of `KIND`.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c")]
unsafe fn dot_fused_impl<const KIND: u8>(row: *const u8, x: &XRow) -> f32 {
    let bb = block_bytes(KIND);
    let nb = x.q.len() / 32;
    let zero = _mm512_setzero_si512();
    let mut acc = _mm512_setzero_ps();
    let mut off = 0f32;
    let mut b = 0;
    while b < nb {
        let pa = row.add(b * bb);
        let pair = b + 1 < nb;
        let pb = if pair { pa.add(bb) } else { pa };
        let mut w = codes2::<KIND>(pa, pb);
        let xv = if pair {
            _mm512_loadu_si512(x.q.as_ptr().add(b * 32) as *const _)
        } else {
            w = _mm512_maskz_mov_epi8(0xFFFF_FFFF, w);
            _mm512_maskz_loadu_epi8(0xFFFF_FFFF, x.q.as_ptr().add(b * 32) as *const _)
        };
        let isum = _mm512_dpbusd_epi32(zero, w, xv);
        let (sa, oa) = scale_offset::<KIND>(pa);
        let (sb, ob) = if pair {
            scale_offset::<KIND>(pb)
        } else {
            (0.0, 0.0)
        };
        let (da, db) = (x.d[2 * b], if pair { x.d[2 * b + 2] } else { 0.0 });
        let scv = _mm512_insertf32x8(_mm512_set1_ps(sa * da), _mm256_set1_ps(sb * db), 1);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scv, acc);
        off += oa * (x.sd[2 * b] + x.sd[2 * b + 1]);
        if pair {
            off += ob * (x.sd[2 * b + 2] + x.sd[2 * b + 3]);
        }
        b += 2;
    }
    _mm512_reduce_add_ps(acc) + off
}
