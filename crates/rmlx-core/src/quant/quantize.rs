//! Quantizers, for tests and tools: they make packed weights from floats. Not tuned (no
//! error-minimising search); good enough to produce valid inputs in every format.

use super::affine;
use super::blocks::{BlockQ4_0, BlockQ4_1, BlockQ8_0};
use half::f16;

fn f16b(v: f32) -> u16 {
    f16::from_f32(v).to_bits()
}

fn push<B: super::blocks::Block>(out: &mut Vec<u8>, b: B) {
    // SAFETY: `Block` types are plain old data without padding (the trait's contract), so
    // all size_of::<B>() bytes of `b` are initialized.
    let bytes = unsafe {
        std::slice::from_raw_parts(&b as *const B as *const u8, std::mem::size_of::<B>())
    };
    out.extend_from_slice(bytes);
}

/// Q8_0: d = max|x| / 127, q = round(x / d).
pub fn quantize_q8_0(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for blk in x.chunks_exact(32) {
        let amax = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; 32];
        for (q, v) in qs.iter_mut().zip(blk) {
            *q = (v * id).round() as i8;
        }
        push(&mut out, BlockQ8_0 { d: f16b(d), qs });
    }
    out
}

/// Q4_0 as ggml does it: d = (value of largest magnitude) / −8, q = x/d + 8 clamped to 15.
pub fn quantize_q4_0(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for blk in x.chunks_exact(32) {
        let max = blk
            .iter()
            .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let q = |v: f32| ((v * id + 8.5) as u8).min(15);
        let mut qs = [0u8; 16];
        for j in 0..16 {
            qs[j] = q(blk[j]) | (q(blk[j + 16]) << 4);
        }
        push(&mut out, BlockQ4_0 { d: f16b(d), qs });
    }
    out
}

/// Q4_1: d = (max − min) / 15, m = min, q = (x − m)/d rounded.
pub fn quantize_q4_1(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for blk in x.chunks_exact(32) {
        let min = blk.iter().copied().fold(f32::INFINITY, f32::min);
        let max = blk.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let q = |v: f32| (((v - min) * id + 0.5) as u8).min(15);
        let mut qs = [0u8; 16];
        for j in 0..16 {
            qs[j] = q(blk[j]) | (q(blk[j + 16]) << 4);
        }
        push(
            &mut out,
            BlockQ4_1 {
                d: f16b(d),
                m: f16b(min),
                qs,
            },
        );
    }
    out
}

/// MLX affine: per group scale = (max − min) / (2^bits − 1), bias = min. Returns the packed
/// words (rows × K·bits/32), scales and biases (rows × K/group), for a row-major (rows, k) x.
pub fn quantize_affine(
    x: &[f32],
    k: usize,
    bits: u8,
    group: usize,
) -> (Vec<u32>, Vec<f32>, Vec<f32>) {
    let levels = ((1u32 << bits) - 1) as f32;
    let (mut words, mut scales, mut biases) = (Vec::new(), Vec::new(), Vec::new());
    for row in x.chunks_exact(k) {
        let mut q = Vec::with_capacity(k);
        for g in row.chunks_exact(group) {
            let min = g.iter().copied().fold(f32::INFINITY, f32::min);
            let max = g.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let scale = if max > min { (max - min) / levels } else { 1.0 };
            q.extend(
                g.iter()
                    .map(|v| ((v - min) / scale).round().clamp(0.0, levels) as u8),
            );
            scales.push(scale);
            biases.push(min);
        }
        words.extend(affine::pack(bits as usize, &q));
    }
    (words, scales, biases)
}
