//! MLX affine quantization: per group of `group` elements a scale and a bias, value = scale·q +
//! bias, q packed as a little-endian bit stream (element i at bits [i·bits, (i+1)·bits) of the
//! row, which is how MLX packs 2/4/8 bits into u32 words and 3/5/6 bits into byte triples).

use super::decode::{Floats, GROUP};

#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn decode(
    bits: u8,
    group: usize,
    w: &[u8],
    scales: Floats,
    biases: Floats,
    u: &mut [u8],
    s: &mut [f32],
    o: &mut [f32],
) {
    unpack(bits, w, u);
    let per = group / GROUP;
    for (g, (sv, ov)) in s.iter_mut().zip(o.iter_mut()).enumerate() {
        *sv = scales.get(g / per);
        *ov = biases.get(g / per);
    }
}

/// The codes of `u.len()` elements from the start of the bit stream `w` (a row, or a group:
/// every group starts on a byte, as groups hold a multiple of 8 elements).
#[inline(always)]
pub fn unpack(bits: u8, w: &[u8], u: &mut [u8]) {
    match bits {
        8 => u.copy_from_slice(&w[..u.len()]),
        4 => {
            for (pair, &b) in u.chunks_exact_mut(2).zip(w) {
                pair[0] = b & 0xF;
                pair[1] = b >> 4;
            }
        }
        _ => unpack_bits(bits as usize, w, u),
    }
}

/// Generic little-endian bit-stream unpacking (2, 3, 5, 6 bits).
#[inline(always)]
fn unpack_bits(bits: usize, w: &[u8], u: &mut [u8]) {
    let mask = (1u32 << bits) - 1;
    for (i, v) in u.iter_mut().enumerate() {
        let bit = i * bits;
        let byte = bit / 8;
        let lo = w[byte] as u32 | (w.get(byte + 1).copied().unwrap_or(0) as u32) << 8;
        *v = ((lo >> (bit % 8)) & mask) as u8;
    }
}

/// Packs codes (each < 2^bits) into u32 words as MLX does (the inverse of `unpack_bits`).
pub fn pack(bits: usize, q: &[u8]) -> Vec<u32> {
    let mut words = vec![0u32; (q.len() * bits).div_ceil(32)];
    for (i, &v) in q.iter().enumerate() {
        let bit = i * bits;
        let x = (v as u64) << (bit % 32);
        words[bit / 32] |= x as u32;
        if bit % 32 + bits > 32 {
            words[bit / 32 + 1] |= (x >> 32) as u32;
        }
    }
    words
}
