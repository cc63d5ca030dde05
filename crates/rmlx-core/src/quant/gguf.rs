//! GGUF block formats decoded to the common (u, s, o) form, one super-block at a time.
//! The formulas are ggml's `dequantize_row_*` rewritten as value = s·u + o per 16 elements.

use super::blocks::*;
use super::GgmlType;
use crate::error::{Error, Result};

pub fn supported(t: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        t,
        Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K | MXFP4
    )
}

/// Decodes one row; `u.len()` elements, `s`/`o` one entry per 16. Inlined so the SIMD
/// backend can compile it with its target features (see `simd::decode_row`).
#[inline(always)]
pub fn decode(t: GgmlType, row: &[u8], u: &mut [u8], s: &mut [f32], o: &mut [f32]) -> Result<()> {
    use GgmlType::*;
    let nb = u.len() / t.block_size();
    let per = t.block_size();
    let g = per / 16;
    if row.len() < nb * t.type_size() {
        return Err(Error::format(format!(
            "{}: expected a row of {} bytes, found {}",
            t.name(),
            nb * t.type_size(),
            row.len()
        )));
    }
    for i in 0..nb {
        let (u, s, o) = (
            &mut u[i * per..][..per],
            &mut s[i * g..][..g],
            &mut o[i * g..][..g],
        );
        match t {
            Q4_0 => q4_0(read_block(row, i), u, s, o),
            Q4_1 => q4_1(read_block(row, i), u, s, o),
            Q5_0 => q5_0(read_block(row, i), u, s, o),
            Q5_1 => q5_1(read_block(row, i), u, s, o),
            Q8_0 => q8_0(read_block(row, i), u, s, o),
            Q2_K => q2_k(read_block(row, i), u, s, o),
            Q3_K => q3_k(read_block(row, i), u, s, o),
            Q4_K => q4_k(read_block(row, i), u, s, o),
            Q5_K => q5_k(read_block(row, i), u, s, o),
            Q6_K => q6_k(read_block(row, i), u, s, o),
            Q8_K => q8_k(read_block(row, i), u, s, o),
            MXFP4 => mxfp4(read_block(row, i), u, s, o),
            other => {
                return Err(Error::NotImplemented {
                    op: format!("dequantize ({})", other.name()),
                    device: "any device".into(),
                })
            }
        }
    }
    Ok(())
}

/// Low nibbles are elements 0..16, high nibbles 16..32 (Q4_0, Q4_1, Q5_*, GGUF MXFP4).
#[inline(always)]
fn nibbles(qs: &[u8; 16], u: &mut [u8]) {
    for j in 0..16 {
        u[j] = qs[j] & 0xF;
        u[j + 16] = qs[j] >> 4;
    }
}

#[inline(always)]
fn fill(s: &mut [f32], o: &mut [f32], sv: f32, ov: f32) {
    s.fill(sv);
    o.fill(ov);
}

#[inline(always)]
fn q4_0(b: BlockQ4_0, u: &mut [u8], s: &mut [f32], o: &mut [f32]) {
    nibbles(&b.qs, u);
    let d = f16_bits(b.d);
    fill(s, o, d, -8.0 * d);
}

#[inline(always)]
fn q4_1(b: BlockQ4_1, u: &mut [u8], s: &mut [f32], o: &mut [f32]) {
    nibbles(&b.qs, u);
    fill(s, o, f16_bits(b.d), f16_bits(b.m));
}

#[inline(always)]
fn fifth_bits(qh: [u8; 4], u: &mut [u8]) {
    let qh = u32::from_le_bytes(qh);
    for (j, v) in u.iter_mut().enumerate() {
        *v |= (((qh >> j) & 1) << 4) as u8;
    }
}

#[inline(always)]
fn q5_0(b: BlockQ5_0, u: &mut [u8], s: &mut [f32], o: &mut [f32]) {
    nibbles(&b.qs, u);
    fifth_bits(b.qh, u);
    let d = f16_bits(b.d);
    fill(s, o, d, -16.0 * d);
}

#[inline(always)]
fn q5_1(b: BlockQ5_1, u: &mut [u8], s: &mut [f32], o: &mut [f32]) {
    nibbles(&b.qs, u);
    fifth_bits(b.qh, u);
    fill(s, o, f16_bits(b.d), f16_bits(b.m));
}

#[inline(always)]
fn q8_0(b: BlockQ8_0, u: &mut [u8], s: &mut [f32], o: &mut [f32]) {
    for (v, q) in u.iter_mut().zip(b.qs) {
        *v = (q as u8) ^ 0x80; // q + 128
    }
    let d = f16_bits(b.d);
    fill(s, o, d, -128.0 * d);
}

#[inline(always)]
fn q8_k(b: BlockQ8K, u: &mut [u8], s: &mut [f32], o: &mut [f32]) {
    for (v, q) in u.iter_mut().zip(b.qs) {
        *v = (q as u8) ^ 0x80;
    }
    fill(s, o, b.d, -128.0 * b.d);
}

#[inline(always)]
fn q2_k(b: BlockQ2K, u: &mut [u8], s: &mut [f32], o: &mut [f32]) {
    let (d, dmin) = (f16_bits(b.d), f16_bits(b.dmin));
    // 128 elements per half; within it, shift j selects 32 elements from 32 bytes.
    for half in 0..2 {
        for j in 0..4 {
            for l in 0..32 {
                u[half * 128 + j * 32 + l] = (b.qs[half * 32 + l] >> (2 * j)) & 3;
            }
        }
    }
    for (g, sc) in b.scales.iter().enumerate() {
        s[g] = d * (sc & 0xF) as f32;
        o[g] = -(dmin * (sc >> 4) as f32);
    }
}

#[inline(always)]
fn q3_k(b: BlockQ3K, u: &mut [u8], s: &mut [f32], o: &mut [f32]) {
    let d = f16_bits(b.d);
    for half in 0..2 {
        for j in 0..4 {
            let m = 1u8 << (half * 4 + j);
            for l in 0..32 {
                let low = (b.qs[half * 32 + l] >> (2 * j)) & 3;
                let high = if b.hmask[l] & m != 0 { 4 } else { 0 };
                u[half * 128 + j * 32 + l] = low + high; // value (q − 4)
            }
        }
    }
    for (g, sc) in q3k_scales(&b.scales).iter().enumerate() {
        s[g] = d * *sc as f32;
        o[g] = -4.0 * s[g];
    }
}

#[inline(always)]
fn q4_k(b: BlockQ4K, u: &mut [u8], s: &mut [f32], o: &mut [f32]) {
    let (d, dmin) = (f16_bits(b.d), f16_bits(b.dmin));
    for c in 0..4 {
        for l in 0..32 {
            u[c * 64 + l] = b.qs[c * 32 + l] & 0xF;
            u[c * 64 + 32 + l] = b.qs[c * 32 + l] >> 4;
        }
    }
    k4_scales(d, dmin, &b.scales, s, o);
}

#[inline(always)]
fn q5_k(b: BlockQ5K, u: &mut [u8], s: &mut [f32], o: &mut [f32]) {
    let (d, dmin) = (f16_bits(b.d), f16_bits(b.dmin));
    for c in 0..4 {
        for l in 0..32 {
            let h = b.qh[l] >> (2 * c);
            u[c * 64 + l] = (b.qs[c * 32 + l] & 0xF) | ((h & 1) << 4);
            u[c * 64 + 32 + l] = (b.qs[c * 32 + l] >> 4) | (((h >> 1) & 1) << 4);
        }
    }
    k4_scales(d, dmin, &b.scales, s, o);
}

/// Eight (scale, min) pairs, one per 32 elements: two common-form groups each.
#[inline(always)]
fn k4_scales(d: f32, dmin: f32, packed: &[u8; 12], s: &mut [f32], o: &mut [f32]) {
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, packed);
        let (sv, ov) = (d * sc as f32, -(dmin * m as f32));
        s[2 * j..2 * j + 2].fill(sv);
        o[2 * j..2 * j + 2].fill(ov);
    }
}

#[inline(always)]
fn q6_k(b: BlockQ6K, u: &mut [u8], s: &mut [f32], o: &mut [f32]) {
    let d = f16_bits(b.d);
    for half in 0..2 {
        let (ql, qh) = (&b.ql[half * 64..], &b.qh[half * 32..]);
        let u = &mut u[half * 128..];
        for l in 0..32 {
            u[l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
            u[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
            u[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            u[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
    }
    for (g, sc) in b.scales.iter().enumerate() {
        s[g] = d * *sc as f32;
        o[g] = -32.0 * s[g];
    }
}

#[inline(always)]
fn mxfp4(b: BlockMxfp4, u: &mut [u8], s: &mut [f32], o: &mut [f32]) {
    for j in 0..16 {
        u[j] = (E2M1_X2[(b.qs[j] & 0xF) as usize] + 12) as u8;
        u[j + 16] = (E2M1_X2[(b.qs[j] >> 4) as usize] + 12) as u8;
    }
    let sv = e8m0_half(b.e);
    fill(s, o, sv, -12.0 * sv);
}
