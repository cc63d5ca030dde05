//! GGUF block layouts, byte for byte as ggml stores them (`ggml-common.h`). Scales are raw f16
//! bits (`u16`) so the structs are plain old data, readable straight from an mmap'd file.

use std::mem::size_of;

/// Elements in a K-quant super-block.
pub const QK_K: usize = 256;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ4_0 {
    pub d: u16,
    pub qs: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ4_1 {
    pub d: u16,
    pub m: u16,
    pub qs: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ5_0 {
    pub d: u16,
    /// Fifth bit of element j at bit j (little-endian u32, unaligned in the file).
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ5_1 {
    pub d: u16,
    pub m: u16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; 32],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ2K {
    /// Low nibble: scale, high nibble: min, per 16 elements.
    pub scales: [u8; 16],
    pub qs: [u8; 64],
    pub d: u16,
    pub dmin: u16,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ3K {
    pub hmask: [u8; 32],
    pub qs: [u8; 64],
    /// Sixteen 6-bit scales, packed.
    pub scales: [u8; 12],
    pub d: u16,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ4K {
    pub d: u16,
    pub dmin: u16,
    /// Eight 6-bit scales and eight 6-bit mins, packed (`get_scale_min_k4`).
    pub scales: [u8; 12],
    pub qs: [u8; 128],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ5K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; 12],
    pub qh: [u8; 32],
    pub qs: [u8; 128],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ6K {
    pub ql: [u8; 128],
    pub qh: [u8; 64],
    pub scales: [i8; 16],
    pub d: u16,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; 256],
    pub bsums: [i16; 16],
}

/// GGUF MXFP4 (type 39): an E8M0 exponent and 32 E2M1 values, element j in the low nibble of
/// byte j and element j+16 in its high nibble (unlike the Hugging Face layout).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockMxfp4 {
    pub e: u8,
    pub qs: [u8; 16],
}

const _: () = {
    assert!(size_of::<BlockQ4_0>() == 18);
    assert!(size_of::<BlockQ4_1>() == 20);
    assert!(size_of::<BlockQ5_0>() == 22);
    assert!(size_of::<BlockQ5_1>() == 24);
    assert!(size_of::<BlockQ8_0>() == 34);
    assert!(size_of::<BlockQ2K>() == 84);
    assert!(size_of::<BlockQ3K>() == 110);
    assert!(size_of::<BlockQ4K>() == 144);
    assert!(size_of::<BlockQ5K>() == 176);
    assert!(size_of::<BlockQ6K>() == 210);
    assert!(size_of::<BlockQ8K>() == 292);
    assert!(size_of::<BlockMxfp4>() == 17);
};

/// Plain-old-data blocks, read with unaligned copies and written as raw bytes.
///
/// # Safety
/// Implementors must be `repr(C)` structs of integer/float fields and arrays with no padding,
/// so that every bit pattern is a valid value and every byte of a value is initialized.
pub unsafe trait Block: Copy {
    const ELEMS: usize;
}

macro_rules! blocks {
    // SAFETY: the block structs above are repr(C) integer/float arrays whose sizes are
    // asserted at compile time to be their fields' sum (no padding).
    ($($t:ty => $n:expr),*) => { $(unsafe impl Block for $t { const ELEMS: usize = $n; })* };
}
blocks!(BlockQ4_0 => 32, BlockQ4_1 => 32, BlockQ5_0 => 32, BlockQ5_1 => 32, BlockQ8_0 => 32,
    BlockQ2K => QK_K, BlockQ3K => QK_K, BlockQ4K => QK_K, BlockQ5K => QK_K, BlockQ6K => QK_K,
    BlockQ8K => QK_K, BlockMxfp4 => 32);

/// Reads block `i` of a row with an unaligned copy (rows in a GGUF file are only byte aligned).
#[inline(always)]
pub fn read_block<B: Block>(row: &[u8], i: usize) -> B {
    let bytes = &row[i * size_of::<B>()..(i + 1) * size_of::<B>()];
    // SAFETY: `bytes` holds exactly size_of::<B>() bytes and B is plain old data (`Block`'s
    // contract), for which every bit pattern is valid.
    unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const B) }
}

/// f16 bits to f32 (exact).
#[inline(always)]
pub fn f16_bits(b: u16) -> f32 {
    half::f16::from_bits(b).to_f32()
}

/// Q4_K/Q5_K packed 6-bit (scale, min) pair `j` of 8 (ggml's `get_scale_min_k4`).
#[inline(always)]
pub fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q3_K's sixteen 6-bit scales, unpacked and re-centred (−32..31).
pub fn q3k_scales(s: &[u8; 12]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0xF } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = ((low | (high << 4)) as i8) - 32;
    }
    out
}

/// 2^(e − 128): the E8M0 scale halved, paired with E2M1 values doubled to integers.
#[inline(always)]
pub const fn e8m0_half(e: u8) -> f32 {
    match e {
        0 => f32::from_bits(1 << 21),
        1 => f32::from_bits(1 << 22),
        _ => f32::from_bits(((e as u32) - 1) << 23),
    }
}

/// E2M1 code → twice its value, as an integer: LUT [0, .5, 1, 1.5, 2, 3, 4, 6] and negatives.
pub const E2M1_X2: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];
