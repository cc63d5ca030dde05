//! Hugging Face MXFP4 (gpt-oss): per 32 elements, 16 bytes of E2M1 pairs (low nibble = even
//! element) and one E8M0 exponent byte; value = lut · 2^(e − 127).

use super::blocks::{e8m0_half, E2M1_X2};

/// Decodes a row of `u.len()` elements. Codes are 2·lut + 12 (0..=24), so s = 2^(e − 128)
/// and o = −12·s reproduce lut · 2^(e − 127) exactly.
#[inline(always)]
pub fn decode_hf(blocks: &[u8], scales: &[u8], u: &mut [u8], s: &mut [f32], o: &mut [f32]) {
    for (b, ub) in u.chunks_exact_mut(32).enumerate() {
        let bytes = &blocks[b * 16..b * 16 + 16];
        for (j, &q) in bytes.iter().enumerate() {
            ub[2 * j] = (E2M1_X2[(q & 0xF) as usize] + 12) as u8;
            ub[2 * j + 1] = (E2M1_X2[(q >> 4) as usize] + 12) as u8;
        }
        let sv = e8m0_half(scales[b]);
        s[2 * b..2 * b + 2].fill(sv);
        o[2 * b..2 * b + 2].fill(-12.0 * sv);
    }
}
