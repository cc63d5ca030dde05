//! The inner loop of attention over a packed KV cache: one unit (the query rows of one KV
//! group, i.e. its query heads × a tile of query positions) over a range of key slots, taken
//! 8 keys at a time with an online softmax (flash attention).
//!
//! Scores come straight from the codes, in integers. Each query row is rounded once per unit
//! to int8 per key group (q ≈ a_g·q8, a_g = max|q|/127 over the group). With
//! k ≈ s_g·n + m_g per group g of a key row and m′ = m + mid·s, q·k ≈ Σ_g m′_g·Σ_{c∈g} q_c
//! plus Σ_g a_g·s_g·Σ_{c∈g} q8_c·(n_c − mid). Those inner sums are exact i32 dots of the
//! stored codes with q8 (`Lanes::kdots`: `maddubs` on AVX2, no f32 copy of a K row); the mins
//! enter as one product per group with the row's exact sums of q. The only error this adds is
//! q's rounding, |a_g·q8_c − q_c| ≤ a_g/2: a score moves by at most
//! Σ_g (a_g/2)·Σ_{c∈g} |s_g·(n_c − mid)|, about 1/254 of |q|·|k| per group in the worst case
//! and far less on average (the rounding errors are random in sign).
//!
//! Values: Σ_j p_j·(s_j·n_j + m_j) = Σ_j (p_j·s_j)·n_j + Σ_j p_j·m_j, the last term one scalar
//! per row and group, added to the row at the end; a block's V codes are widened to f32 once
//! (less mid, no scale) and shared by the unit's rows. The 8 keys' scales and mins are
//! gathered into lanes by one transpose and widened together.

use crate::primitive::KvQuant;
use half::f16;

/// Keys per block: the lanes of one AVX2 vector.
pub(super) const KB: usize = 8;

/// Packed K/V of one (batch, KV head).
pub(super) struct Source<'a> {
    pub kv: &'a [u8],
    pub vv: &'a [u8],
    pub kbase: usize,
    pub vbase: usize,
    pub kstride: usize,
    pub vstride: usize,
    pub kpos: &'a [i32],
    pub window: Option<usize>,
    pub ks: KvQuant,
    pub vs: KvQuant,
    pub d: usize,
    pub dv: usize,
    /// Slots 0..head come from these exact rows (head × D, head × Dv), as the model made them
    /// (neither centered nor rotated); packed row j − head serves slot j ≥ head.
    pub head: usize,
    pub hk: &'a [f32],
    pub hv: &'a [f32],
}

/// The query rows of a unit, prepared: q (R × D, scaled), per row the bias added to every
/// packed score (q·μ for centered keys), the query position, and per key group the rotated q
/// rounded to int8 (`quantize_query`).
pub(super) struct Rows<'a> {
    pub q: &'a [f32], // exact and not rotated, for the head rows
    pub bias: &'a [f32],
    pub pos: &'a [i32],
    pub q8: &'a [i8],      // R × D
    pub qscale: &'a [f32], // R × (D / key group): a_g, q ≈ a_g·q8
    pub q8sum: &'a [i32],  // R × (D / key group): Σ q8
    pub qsum: &'a [f32],   // R × (D / key group): Σ q
}

/// Rounds a prepared query row to int8 per key group of `group` values (a_g = max|q|/127),
/// and sums q and q8 over each group.
pub(super) fn quantize_query(
    q: &[f32],
    group: usize,
    q8: &mut [i8],
    scale: &mut [f32],
    sum8: &mut [i32],
    qsum: &mut [f32],
) {
    for (g, (x, o)) in q
        .chunks_exact(group)
        .zip(q8.chunks_exact_mut(group))
        .enumerate()
    {
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        // |v·inv| ≤ 127 up to rounding; `as` saturates, so never −128.
        o.iter_mut()
            .zip(x)
            .for_each(|(o, v)| *o = (v * inv).round() as i8);
        scale[g] = amax / 127.0;
        sum8[g] = o.iter().map(|&v| v as i32).sum();
        qsum[g] = x.iter().sum();
    }
}

/// Per-thread block buffers, reused across units and calls; keys in lanes.
#[derive(Default)]
pub(super) struct Blocks {
    kpar: Vec<[f32; KB]>, // (2·D / group): the keys' scales, then their mins + mid · scale
    kdot: Vec<[i32; KB]>, // (D / group): one row's Σ q8·n
    vb: Vec<f32>,         // (KB, Dv): codes less mid
    vpar: Vec<[f32; KB]>, // (2·Dv / group): likewise for the values
    hs: Vec<f32>,         // (head): one row's scores over the exact head
    hacc: Vec<f32>,       // (Dv): one row's value sum over the head
    macc: Vec<[f32; KB]>, // (R, Dv / group): Σ p·min per row and value group, by lane
    lsum: Vec<[f32; KB]>, // (R): Σ p per row, by lane
    zero: Vec<u8>,        // a row of zero codes and parameters, for lanes past the range
}

fn fit<T: Clone + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

/// (scale, min) of group `g` of a packed row of `d` values.
#[inline(always)]
pub(super) fn params(spec: KvQuant, d: usize, row: &[u8], g: usize) -> (f32, f32) {
    let groups = d / spec.group;
    let base = d * spec.bits as usize / 8;
    let at = |i: usize| f16::from_le_bytes([row[base + 2 * i], row[base + 2 * i + 1]]).to_f32();
    (at(g), at(groups + g))
}

/// The code at the middle of the range: codes are unpacked as n − mid (signed, small) and the
/// group's min as m + mid·scale, so Σ p·(scale·n′) and Σ p·m′ do not cancel each other the way
/// Σ p·scale·n and Σ p·m would (both large, the output small) and f32 sums stay accurate.
#[inline(always)]
fn mid(spec: KvQuant) -> i32 {
    if spec.bits == 8 {
        128
    } else {
        8
    }
}

/// Code c of a packed row of `d` values (unsigned, as stored).
#[inline(always)]
pub(super) fn code(spec: KvQuant, d: usize, row: &[u8], c: usize) -> u8 {
    if spec.bits == 8 {
        return row[c];
    }
    let nb = nib_block(d);
    let (blk, j) = (c / nb, c % nb);
    let b = row[blk * nb / 2 + j % (nb / 2)];
    if j < nb / 2 {
        b & 15
    } else {
        b >> 4
    }
}

/// Values per 4-bit block: 32 (two runs of 16 lanes), or 16 for heads that 32 does not divide.
#[inline(always)]
pub(super) fn nib_block(d: usize) -> usize {
    if d.is_multiple_of(32) {
        32
    } else {
        16
    }
}

/// The SIMD steps of the block loop; `Portable` is the reference, `Avx2` the x86 one.
pub(super) trait Lanes {
    /// out[g][t] = Σ_{c∈g} n_c·q8[c] over the codes n of keys[t] (as stored, unsigned), for
    /// the q8.len() / group groups g.
    fn kdots(spec: KvQuant, keys: &[&[u8]; KB], q8: &[i8], out: &mut [[i32; KB]]);
    /// out[c] = n_c − mid for the codes of a packed row of out.len() values.
    fn unpack(spec: KvQuant, row: &[u8], out: &mut [f32]);
    /// out[i][t] = the f16 at bytes at + 2i.. of rows[t], widened, for i < out.len(): a
    /// block's scales and mins, keys in lanes.
    fn params(rows: &[&[u8]; KB], at: usize, out: &mut [[f32; KB]]);
    /// e[j] = exp(s[j] − m), 0 for s[j] = −∞.
    fn exp_sub(s: &[f32; KB], m: f32) -> [f32; KB];
    /// acc[c] += Σ_j p[j] · vb[j][lo + c] for c < acc.len() (vb is KB × dv).
    fn axpys(p: &[f32; KB], vb: &[f32], dv: usize, lo: usize, acc: &mut [f32]);
}

pub(super) struct Portable;

impl Lanes for Portable {
    #[inline(always)]
    fn kdots(spec: KvQuant, keys: &[&[u8]; KB], q8: &[i8], out: &mut [[i32; KB]]) {
        let (d, g) = (q8.len(), spec.group);
        for (gi, o) in out.iter_mut().enumerate().take(d / g) {
            for (t, row) in keys.iter().enumerate() {
                o[t] = (gi * g..(gi + 1) * g)
                    .map(|c| code(spec, d, row, c) as i32 * q8[c] as i32)
                    .sum();
            }
        }
    }

    #[inline(always)]
    fn unpack(spec: KvQuant, row: &[u8], out: &mut [f32]) {
        let d = out.len();
        for (c, o) in out.iter_mut().enumerate() {
            *o = (code(spec, d, row, c) as i32 - mid(spec)) as f32;
        }
    }

    #[inline(always)]
    fn params(rows: &[&[u8]; KB], at: usize, out: &mut [[f32; KB]]) {
        for (i, o) in out.iter_mut().enumerate() {
            for (t, row) in rows.iter().enumerate() {
                o[t] = f16::from_le_bytes([row[at + 2 * i], row[at + 2 * i + 1]]).to_f32();
            }
        }
    }

    #[inline(always)]
    fn exp_sub(s: &[f32; KB], m: f32) -> [f32; KB] {
        s.map(|x| {
            if x == f32::NEG_INFINITY {
                0.0
            } else {
                (x - m).exp()
            }
        })
    }

    #[inline(always)]
    fn axpys(p: &[f32; KB], vb: &[f32], dv: usize, lo: usize, acc: &mut [f32]) {
        for (j, &pj) in p.iter().enumerate() {
            let row = &vb[j * dv + lo..][..acc.len()];
            acc.iter_mut().zip(row).for_each(|(a, v)| *a += pj * v);
        }
    }
}

/// The AVX2 lanes. Their methods are safe to name but use AVX2, FMA and F16C unchecked:
/// only `attend_avx2` (entered after run-time detection) uses this type, which is private to
/// this module for that reason.
#[cfg(target_arch = "x86_64")]
struct Avx2;

/// Lane sums of 8 vectors, split by 128-bit half: lane t of the first result is the sum of
/// p[t]'s low half, of the second its high half.
///
/// # Safety
/// AVX2 must be present (no memory is touched).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn half_sums(
    p: [std::arch::x86_64::__m256i; KB],
) -> (std::arch::x86_64::__m256i, std::arch::x86_64::__m256i) {
    use std::arch::x86_64::*;
    let t01 = _mm256_hadd_epi32(p[0], p[1]);
    let t23 = _mm256_hadd_epi32(p[2], p[3]);
    let t45 = _mm256_hadd_epi32(p[4], p[5]);
    let t67 = _mm256_hadd_epi32(p[6], p[7]);
    // Per half: [Σp0, Σp1, Σp2, Σp3] and [Σp4, …, Σp7].
    let (u0, u1) = (_mm256_hadd_epi32(t01, t23), _mm256_hadd_epi32(t45, t67));
    (
        _mm256_permute2x128_si256(u0, u1, 0x20),
        _mm256_permute2x128_si256(u0, u1, 0x31),
    )
}

/// 16 bytes at p.
///
/// # Safety
/// SSE2 (any x86-64) and `p` valid for reading 16 bytes, any alignment.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn x16(p: *const u8) -> std::arch::x86_64::__m128i {
    std::arch::x86_64::_mm_loadu_si128(p as *const _)
}

/// 32 bytes at p, or 16 and zeros.
///
/// # Safety
/// AVX2 present; `p` valid for reading 32 bytes (`two`) or 16, any alignment.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn x32(p: *const u8, two: bool) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    if two {
        _mm256_loadu_si256(p as *const __m256i)
    } else {
        _mm256_set_m128i(_mm_setzero_si128(), x16(p))
    }
}

/// The low and the high nibbles of x's bytes.
///
/// # Safety
/// AVX2 must be present (no memory is touched).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn nibbles(
    x: std::arch::x86_64::__m256i,
) -> (std::arch::x86_64::__m256i, std::arch::x86_64::__m256i) {
    use std::arch::x86_64::*;
    let m4 = _mm256_set1_epi8(15);
    (
        _mm256_and_si256(x, m4),
        _mm256_and_si256(_mm256_srli_epi16(x, 4), m4),
    )
}

/// o += v.
///
/// # Safety
/// AVX2 must be present (`o` is a whole [i32; 8], so the access is in bounds).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn add_to(o: &mut [i32; KB], v: std::arch::x86_64::__m256i) {
    use std::arch::x86_64::*;
    let p = o.as_mut_ptr() as *mut __m256i;
    _mm256_storeu_si256(p, _mm256_add_epi32(_mm256_loadu_si256(p), v));
}

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2 {
    #[inline(always)]
    fn kdots(spec: KvQuant, keys: &[&[u8]; KB], q8: &[i8], out: &mut [[i32; KB]]) {
        use std::arch::x86_64::*;
        let (d, g) = (q8.len(), spec.group);
        // 4-bit rows in blocks of 16 values, or groups splitting a block of 32: the reference.
        if spec.bits == 4 && (nib_block(d) != 32 || !g.is_multiple_of(32)) {
            return Portable::kdots(spec, keys, q8, out);
        }
        let nbytes = d * spec.bits as usize / 8;
        // A group divides D and is a multiple of 16 (`KvQuant::validate`); the loads below
        // take whole 16-value halves, so D's multiple of 16 is checked here, not assumed.
        assert!(
            d.is_multiple_of(16)
                && keys.iter().all(|r| r.len() >= nbytes)
                && out.len() >= d / g.max(1),
            "kv attention: key rows or head dim {d} not as packed"
        );
        out[..d / g].iter_mut().for_each(|o| *o = [0; KB]);
        // SAFETY: only called from `attend_avx2` (AVX2 present). D is a multiple of 16
        // (asserted; of 32 on the 4-bit path, `nib_block`). Each step reads 16 or 32 bytes
        // of a key row below `nbytes` (the second 16 only when `two`, i.e. when they are
        // inside the row's codes; rows hold nbytes, asserted) and of q8 (D values) likewise;
        // `out` is indexed with bounds checks.
        unsafe {
            // (Plain loops, no closures: a closure would not inherit the caller's target
            // features, and its intrinsics would become calls.)
            let qp = q8.as_ptr() as *const u8;
            let ones = _mm256_set1_epi16(1);
            let mut p = [_mm256_setzero_si256(); KB];
            if spec.bits == 4 {
                // 64 values (two blocks of 32) a step: half h of the code bytes is block h,
                // its low nibbles values 0..16 of the block, its high ones 16..32. Products
                // are at most 15·127, a pair of pairs 4·15·127 < 2^15: no i16 saturation.
                for e in (0..d).step_by(64) {
                    let two = e + 64 <= d;
                    let (mut qlo, mut qhi) = (
                        _mm256_set_m128i(_mm_setzero_si128(), x16(qp.add(e))),
                        _mm256_set_m128i(_mm_setzero_si128(), x16(qp.add(e + 16))),
                    );
                    if two {
                        qlo = _mm256_inserti128_si256(qlo, x16(qp.add(e + 32)), 1);
                        qhi = _mm256_inserti128_si256(qhi, x16(qp.add(e + 48)), 1);
                    }
                    for (pt, row) in p.iter_mut().zip(keys) {
                        let (lo, hi) = nibbles(x32(row.as_ptr().add(e / 2), two));
                        let s = _mm256_add_epi16(
                            _mm256_maddubs_epi16(lo, qlo),
                            _mm256_maddubs_epi16(hi, qhi),
                        );
                        *pt = _mm256_madd_epi16(s, ones);
                    }
                    let (a, b) = half_sums(p);
                    add_to(&mut out[e / g], a);
                    if two {
                        add_to(&mut out[(e + 32) / g], b);
                    }
                }
            } else {
                // 32 values a step (half h: values 16h..16h + 16). A code is 16·hi + lo
                // nibble: 255·127 per product would saturate `maddubs`' pairs, 15·127 not.
                let sixteen = _mm256_set1_epi16(16);
                for e in (0..d).step_by(32) {
                    let two = e + 32 <= d;
                    let q = x32(qp.add(e), two);
                    for (pt, row) in p.iter_mut().zip(keys) {
                        let (lo, hi) = nibbles(x32(row.as_ptr().add(e), two));
                        *pt = _mm256_add_epi32(
                            _mm256_madd_epi16(_mm256_maddubs_epi16(lo, q), ones),
                            _mm256_madd_epi16(_mm256_maddubs_epi16(hi, q), sixteen),
                        );
                    }
                    let (a, b) = half_sums(p);
                    add_to(&mut out[e / g], a);
                    if two {
                        add_to(&mut out[(e + 16) / g], b);
                    }
                }
            }
        }
    }

    #[inline(always)]
    fn unpack(spec: KvQuant, row: &[u8], out: &mut [f32]) {
        use std::arch::x86_64::*;
        let d = out.len();
        assert!(row.len() >= d * spec.bits as usize / 8 && d.is_multiple_of(16));
        // SAFETY: AVX2 present (see `kdots`); reads stay within the row's d·bits/8 code bytes
        // (asserted), writes within out (d values, a multiple of 16).
        unsafe {
            let (r, o) = (row.as_ptr(), out.as_mut_ptr());
            // 8 signed bytes (codes less mid) → out[e..e + 8].
            //
            // # Safety
            // AVX2 present; `o` valid for writing 8 f32.
            #[inline(always)]
            unsafe fn put8(o: *mut f32, bytes: __m128i) {
                _mm256_storeu_ps(o, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)));
            }
            let put = |e: usize, bytes: __m128i| put8(o.add(e), bytes);
            if spec.bits == 8 {
                let mid = _mm_set1_epi8(-128);
                for e in (0..d).step_by(8) {
                    put(
                        e,
                        _mm_xor_si128(_mm_loadl_epi64(r.add(e) as *const __m128i), mid),
                    );
                }
            } else if nib_block(d) == 32 {
                let (mask, mid) = (_mm_set1_epi8(15), _mm_set1_epi8(8));
                for e in (0..d).step_by(32) {
                    let b = _mm_loadu_si128(r.add(e / 2) as *const __m128i);
                    let (lo, hi) = (
                        _mm_sub_epi8(_mm_and_si128(b, mask), mid),
                        _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), mask), mid),
                    );
                    put(e, lo);
                    put(e + 8, _mm_srli_si128(lo, 8));
                    put(e + 16, hi);
                    put(e + 24, _mm_srli_si128(hi, 8));
                }
            } else {
                let (mask, mid) = (_mm_set1_epi8(15), _mm_set1_epi8(8));
                for e in (0..d).step_by(16) {
                    let b = _mm_loadl_epi64(r.add(e / 2) as *const __m128i);
                    put(e, _mm_sub_epi8(_mm_and_si128(b, mask), mid));
                    put(
                        e + 8,
                        _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), mask), mid),
                    );
                }
            }
        }
    }

    #[inline(always)]
    fn params(rows: &[&[u8]; KB], at: usize, out: &mut [[f32; KB]]) {
        use std::arch::x86_64::*;
        let n = out.len();
        if !matches!(n, 2 | 4 | 8) {
            return Portable::params(rows, at, out);
        }
        assert!(rows.iter().all(|r| r.len() >= at + 2 * n));
        // SAFETY: F16C present (see `kdots`); each row is read at at..at + 2n (asserted),
        // `out` written at its n entries. The n f16 of the 8 rows are transposed (unpacks of
        // 16-, 32-, 64-bit lanes) so that vector i holds entry i of every row.
        unsafe {
            let p = |t: usize| rows[t].as_ptr().add(at);
            let mut v = [_mm_setzero_si128(); 8];
            match n {
                2 => {
                    // x = [a0 a1 b0 b1 c0 c1 d0 d1] (rows 0..4), y likewise (rows 4..8).
                    let w = |t: usize| (p(t) as *const u32).read_unaligned() as i32;
                    let x = _mm_setr_epi32(w(0), w(1), w(2), w(3));
                    let y = _mm_setr_epi32(w(4), w(5), w(6), w(7));
                    let (t0, t1) = (_mm_unpacklo_epi16(x, y), _mm_unpackhi_epi16(x, y));
                    let (u0, u1) = (_mm_unpacklo_epi16(t0, t1), _mm_unpackhi_epi16(t0, t1));
                    v[0] = _mm_unpacklo_epi16(u0, u1);
                    v[1] = _mm_unpackhi_epi16(u0, u1);
                }
                4 => {
                    let l = |t: usize| _mm_loadl_epi64(p(t) as *const __m128i);
                    let x = |t: usize| _mm_unpacklo_epi64(l(t), l(t + 1));
                    // Per 4 rows: [r·0 of each, r·1 of each] and [r·2, r·3].
                    let quad = |a: __m128i, b: __m128i| {
                        let (t0, t1) = (_mm_unpacklo_epi16(a, b), _mm_unpackhi_epi16(a, b));
                        (_mm_unpacklo_epi16(t0, t1), _mm_unpackhi_epi16(t0, t1))
                    };
                    let (u0, u1) = quad(x(0), x(2));
                    let (w0, w1) = quad(x(4), x(6));
                    v[0] = _mm_unpacklo_epi64(u0, w0);
                    v[1] = _mm_unpackhi_epi64(u0, w0);
                    v[2] = _mm_unpacklo_epi64(u1, w1);
                    v[3] = _mm_unpackhi_epi64(u1, w1);
                }
                _ => {
                    let r: [__m128i; 8] = std::array::from_fn(|t| x16(p(t)));
                    let a: [__m128i; 8] = std::array::from_fn(|i| {
                        let (x, y) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
                        if i % 2 == 0 {
                            _mm_unpacklo_epi16(x, y)
                        } else {
                            _mm_unpackhi_epi16(x, y)
                        }
                    });
                    // a[2k] = rows 2k, 2k+1 entries 0..4 interleaved, a[2k+1] entries 4..8.
                    let b: [__m128i; 8] = std::array::from_fn(|i| {
                        let h = i / 4; // rows 0..4 or 4..8
                        let (x, y) = (a[4 * h + (i % 4) / 2], a[4 * h + 2 + (i % 4) / 2]);
                        if i % 2 == 0 {
                            _mm_unpacklo_epi32(x, y)
                        } else {
                            _mm_unpackhi_epi32(x, y)
                        }
                    });
                    // b[4h + k] = entries 2k, 2k+1 of rows 4h..4h+4.
                    for (i, vi) in v.iter_mut().enumerate() {
                        let (x, y) = (b[i / 2], b[4 + i / 2]);
                        *vi = if i % 2 == 0 {
                            _mm_unpacklo_epi64(x, y)
                        } else {
                            _mm_unpackhi_epi64(x, y)
                        };
                    }
                }
            }
            for (o, vi) in out.iter_mut().zip(&v) {
                _mm256_storeu_ps(o.as_mut_ptr(), _mm256_cvtph_ps(*vi));
            }
        }
    }

    #[inline(always)]
    fn exp_sub(s: &[f32; KB], m: f32) -> [f32; KB] {
        use std::arch::x86_64::*;
        // SAFETY: AVX2/FMA present (see `kdots`); 8 lanes in, 8 out.
        unsafe {
            let x = _mm256_sub_ps(_mm256_loadu_ps(s.as_ptr()), _mm256_set1_ps(m));
            let mut out = [0f32; KB];
            _mm256_storeu_ps(out.as_mut_ptr(), super::simd_avx2::exp8(x));
            out
        }
    }

    #[inline(always)]
    fn axpys(p: &[f32; KB], vb: &[f32], dv: usize, lo: usize, acc: &mut [f32]) {
        use std::arch::x86_64::*;
        let n = acc.len();
        assert!(n.is_multiple_of(8) && lo + n <= dv && vb.len() >= KB * dv);
        // SAFETY: AVX2/FMA present (see `kdots`); loads within vb's KB rows, stores within
        // acc (asserted).
        unsafe {
            let (vp, ap) = (vb.as_ptr().add(lo), acc.as_mut_ptr());
            // acc[e..e + 8N] over the KB rows. Each accumulator takes KB dependent FMAs, so
            // 8 of them keep both FMA pipes busy where 4 would wait on the FMA latency.
            //
            // # Safety
            // AVX2 and FMA present; `ap` valid for reading and writing e..e + 8N, `vp` for
            // reading j·dv + e..j·dv + e + 8N for every j < KB.
            #[inline(always)]
            unsafe fn run<const N: usize>(
                p: &[f32; KB],
                vp: *const f32,
                ap: *mut f32,
                dv: usize,
                e: usize,
            ) {
                let mut a = [_mm256_setzero_ps(); N];
                for (i, ai) in a.iter_mut().enumerate() {
                    *ai = _mm256_loadu_ps(ap.add(e + 8 * i));
                }
                for (j, &pj) in p.iter().enumerate() {
                    let pj = _mm256_set1_ps(pj);
                    for (i, ai) in a.iter_mut().enumerate() {
                        let v = _mm256_loadu_ps(vp.add(j * dv + e + 8 * i));
                        *ai = _mm256_fmadd_ps(pj, v, *ai);
                    }
                }
                for (i, ai) in a.iter().enumerate() {
                    _mm256_storeu_ps(ap.add(e + 8 * i), *ai);
                }
            }
            let mut e = 0;
            while e + 64 <= n {
                run::<8>(p, vp, ap, dv, e);
                e += 64;
            }
            while e + 32 <= n {
                run::<4>(p, vp, ap, dv, e);
                e += 32;
            }
            while e < n {
                run::<1>(p, vp, ap, dv, e);
                e += 8;
            }
        }
    }
}

/// The exact head slots `keys` (all < src.head) of each row, before any packed slot: the
/// running max, Σ p (in lane 0 of `lsum`) and the value sum, summed unrotated and rotated
/// once (R Σ p·v = Σ p·R v). Scores take the unrotated q and the rows as they are:
/// q·k = q·(k − μ) + q·μ, so neither centering nor rotating a head row is needed.
fn attend_head(
    src: &Source,
    rows: &Rows,
    keys: std::ops::Range<usize>,
    hs: &mut Vec<f32>,
    hacc: &mut Vec<f32>,
    lsum: &mut [[f32; KB]],
    part: &mut [f32],
) {
    let (d, dv) = (src.d, src.dv);
    fit(hs, keys.len());
    fit(hacc, dv);
    let w = dv + 2;
    let visible = |pj: i32, pi: i32| {
        pj >= 0 && pj <= pi && src.window.is_none_or(|w| ((pi - pj) as usize) < w)
    };
    for (r, pr) in part.chunks_exact_mut(w).take(rows.bias.len()).enumerate() {
        let (q, pi) = (&rows.q[r * d..(r + 1) * d], rows.pos[r]);
        for (s, j) in hs.iter_mut().zip(keys.clone()) {
            *s = if visible(src.kpos[j], pi) {
                // 8 partial sums, so the dot vectorizes (d is a multiple of 16).
                let k = &src.hk[j * d..(j + 1) * d];
                let mut a = [0f32; 8];
                for (x, y) in q.chunks_exact(8).zip(k.chunks_exact(8)) {
                    (0..8).for_each(|i| a[i] += x[i] * y[i]);
                }
                a.iter().sum()
            } else {
                f32::NEG_INFINITY
            };
        }
        let hs = &hs[..keys.len()];
        let m = hs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if m == f32::NEG_INFINITY {
            continue;
        }
        let hacc = &mut hacc[..dv];
        hacc.iter_mut().for_each(|x| *x = 0.0);
        let mut l = 0.0;
        for (&s, j) in hs.iter().zip(keys.clone()) {
            let p = (s - m).exp();
            l += p;
            let v = &src.hv[j * dv..(j + 1) * dv];
            hacc.iter_mut().zip(v).for_each(|(a, v)| *a += p * v);
        }
        if src.vs.rotate {
            super::attention_quantized::rotate(hacc);
        }
        pr[0] = m;
        lsum[r][0] = l;
        pr[2..].copy_from_slice(hacc);
    }
}

/// Attention of a unit's rows over key slots `keys`, unnormalized: `part` gets per row the
/// running max, the sum of exp and the exp-weighted value sum ([m, l, acc(Dv)], rotated basis).
#[inline(always)]
pub(super) fn attend_unit<L: Lanes>(
    src: &Source,
    rows: &Rows,
    keys: std::ops::Range<usize>,
    bl: &mut Blocks,
    part: &mut [f32],
) {
    let (d, dv, ks, vs) = (src.d, src.dv, src.ks, src.vs);
    let (gk, gv) = (d / ks.group, dv / vs.group);
    let nr = rows.bias.len();
    let w = dv + 2;
    for p in part.chunks_exact_mut(w).take(nr) {
        p[0] = f32::NEG_INFINITY;
        p[1..].iter_mut().for_each(|x| *x = 0.0);
    }
    let (kd, vd) = (ks.row_bytes(d), vs.row_bytes(dv));
    let (kcodes, vcodes) = (d * ks.bits as usize / 8, dv * vs.bits as usize / 8);
    fit(&mut bl.kpar, 2 * gk);
    fit(&mut bl.kdot, gk);
    fit(&mut bl.vb, KB * dv);
    fit(&mut bl.vpar, 2 * gv);
    fit(&mut bl.macc, nr * gv);
    fit(&mut bl.lsum, nr);
    fit(&mut bl.zero, kd.max(vd));
    let Blocks {
        kpar,
        kdot,
        vb,
        vpar,
        hs,
        hacc,
        macc,
        lsum,
        zero,
    } = bl;
    macc[..nr * gv].iter_mut().for_each(|x| *x = [0.0; KB]);
    lsum[..nr].iter_mut().for_each(|x| *x = [0.0; KB]);
    let (kmid, vmid) = (mid(ks), mid(vs));
    let visible = |pj: i32, pi: i32| {
        pj >= 0 && pj <= pi && src.window.is_none_or(|w| ((pi - pj) as usize) < w)
    };
    let (pmin_q, pmax_q) = rows
        .pos
        .iter()
        .fold((i32::MAX, i32::MIN), |(a, b), &p| (a.min(p), b.max(p)));
    if keys.start < src.head {
        attend_head(
            src,
            rows,
            keys.start..keys.end.min(src.head),
            hs,
            hacc,
            lsum,
            part,
        );
    }
    let mut j0 = keys.start.max(src.head);
    while j0 < keys.end {
        let n = KB.min(keys.end - j0);
        // Lanes past the range get position −1 (never visible).
        let kp: [i32; KB] = std::array::from_fn(|t| if t < n { src.kpos[j0 + t] } else { -1 });
        let valid = kp.iter().filter(|&&p| p >= 0);
        let (pmin, pmax) = valid.fold((i32::MAX, i32::MIN), |(a, b), &p| (a.min(p), b.max(p)));
        // Skip blocks no row sees (future keys of a prefill tile, keys outside every window).
        if pmax < 0
            || pmin > pmax_q
            || src
                .window
                .is_some_and(|w| pmin_q as i64 - pmax as i64 >= w as i64)
        {
            j0 += n;
            continue;
        }
        let full = n == KB && kp.iter().all(|&p| p >= 0);
        // Lanes past the range read zero codes with zero scales and mins (weight 0).
        let mut krows: [&[u8]; KB] = [&zero[..kd]; KB];
        let mut vrows: [&[u8]; KB] = [&zero[..vd]; KB];
        for t in 0..n {
            let j = j0 + t - src.head;
            let at = src.kbase + j * src.kstride;
            krows[t] = &src.kv[at..at + kd];
            let at = src.vbase + j * src.vstride;
            vrows[t] = &src.vv[at..at + vd];
            L::unpack(vs, vrows[t], &mut vb[t * dv..(t + 1) * dv]);
        }
        L::params(&krows, kcodes, &mut kpar[..2 * gk]);
        L::params(&vrows, vcodes, &mut vpar[..2 * gv]);
        let (ksc, kmin) = kpar[..2 * gk].split_at_mut(gk);
        for (m, sc) in kmin.iter_mut().zip(ksc.iter()) {
            (0..KB).for_each(|t| m[t] += kmid as f32 * sc[t]);
        }
        let (vsc, vmn) = vpar[..2 * gv].split_at_mut(gv);
        for (m, sc) in vmn.iter_mut().zip(vsc.iter()) {
            (0..KB).for_each(|t| m[t] += vmid as f32 * sc[t]);
        }
        for r in 0..nr {
            let pi = rows.pos[r];
            if pmin > pi
                || src
                    .window
                    .is_some_and(|w| pi as i64 - pmax as i64 >= w as i64)
            {
                continue; // this row sees none of the block
            }
            let all = full && pmax <= pi && src.window.is_none_or(|w| ((pi - pmin) as usize) < w);
            L::kdots(ks, &krows, &rows.q8[r * d..(r + 1) * d], &mut kdot[..gk]);
            let mut s = [rows.bias[r]; KB];
            let gr = r * gk..(r + 1) * gk;
            for ((((kd, sc), mn), (&a, &z8)), &qm) in kdot
                .iter()
                .zip(ksc.iter())
                .zip(kmin.iter())
                .zip(rows.qscale[gr.clone()].iter().zip(&rows.q8sum[gr.clone()]))
                .zip(&rows.qsum[gr])
            {
                let z = kmid * z8;
                for t in 0..KB {
                    // Σ q8·(n − mid) is exact in i32 and in f32 (|·| ≤ 128·127·group < 2^24).
                    s[t] += (kd[t] - z) as f32 * (a * sc[t]) + qm * mn[t];
                }
            }
            if !all {
                for (t, st) in s.iter_mut().enumerate() {
                    if !visible(kp[t], pi) {
                        *st = f32::NEG_INFINITY;
                    }
                }
            }
            let pr = &mut part[r * w..(r + 1) * w];
            let lr = &mut lsum[r];
            let mr = &mut macc[r * gv..(r + 1) * gv];
            // The running max moves rarely once a few blocks are in: test all lanes at once
            // (no branch per lane), find the new max only then.
            if s.iter().fold(false, |a, &x| a | (x > pr[0])) {
                let bm = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if pr[0] != f32::NEG_INFINITY {
                    let alpha = (pr[0] - bm).exp();
                    pr[2..].iter_mut().for_each(|x| *x *= alpha);
                    lr.iter_mut().for_each(|x| *x *= alpha);
                    mr.iter_mut().flatten().for_each(|x| *x *= alpha);
                }
                pr[0] = bm;
            }
            if pr[0] == f32::NEG_INFINITY {
                continue; // nothing visible yet
            }
            let p = L::exp_sub(&s, pr[0]);
            for t in 0..KB {
                lr[t] += p[t];
            }
            let acc = &mut pr[2..];
            for (g, ((mg, sc), mn)) in mr.iter_mut().zip(vsc.iter()).zip(vmn.iter()).enumerate() {
                let mut c = [0f32; KB];
                for t in 0..KB {
                    c[t] = p[t] * sc[t];
                    mg[t] += p[t] * mn[t];
                }
                let (lo, hi) = (g * vs.group, (g + 1) * vs.group);
                L::axpys(&c, vb, dv, lo, &mut acc[lo..hi]);
            }
        }
        j0 += n;
    }
    // Reduce the lanes: the sum of exp, and the value mins Σ_j p_j·m_j per group folded in.
    for r in 0..nr {
        let pr = &mut part[r * w..(r + 1) * w];
        pr[1] = lsum[r].iter().sum();
        for (g, a) in pr[2..].chunks_exact_mut(vs.group).enumerate() {
            let m: f32 = macc[r * gv + g].iter().sum();
            a.iter_mut().for_each(|x| *x += m);
        }
    }
}

/// `attend_unit` with the AVX2 lanes, compiled with the features they use.
///
/// # Safety
/// AVX2, FMA and F16C must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_avx2(
    src: &Source,
    rows: &Rows,
    keys: std::ops::Range<usize>,
    bl: &mut Blocks,
    part: &mut [f32],
) {
    attend_unit::<Avx2>(src, rows, keys, bl, part)
}

/// `attend_unit` with the widest SIMD this CPU has.
pub(super) fn attend(
    src: &Source,
    rows: &Rows,
    keys: std::ops::Range<usize>,
    bl: &mut Blocks,
    part: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if super::simd_avx2::has_avx2() {
        // SAFETY: AVX2, FMA and F16C were detected at run time.
        return unsafe { attend_avx2(src, rows, keys, bl, part) };
    }
    attend_unit::<Portable>(src, rows, keys, bl, part)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// The AVX2 instance against `Portable` (what non-x86 machines run) on the same packed
    /// rows and prepared queries: both take the same integer dots, so they agree to f32
    /// rounding. Layouts: 4-bit in blocks of 32 (groups 32/64, a 32-value tail, 8 params a
    /// row), blocks of 16, 8-bit; an exact head, empty slots, a window, rows that see nothing.
    #[test]
    fn avx2_matches_portable() {
        #[cfg(target_arch = "x86_64")]
        {
            if !super::super::simd_avx2::has_avx2() {
                eprintln!("skipping: no AVX2/FMA/F16C");
                return;
            }
            let q = |bits, group| KvQuant {
                bits,
                group,
                rotate: false,
            };
            let mut rng = StdRng::seed_from_u64(5);
            for (d, ks, vs, nr, head, window) in [
                (64, q(4, 32), q(4, 64), 3, 5, None),
                (64, q(8, 32), q(8, 32), 9, 0, Some(40)),
                (96, q(4, 32), q(4, 32), 2, 3, None),
                (128, q(4, 32), q(8, 32), 4, 0, None),
                (48, q(4, 16), q(4, 48), 3, 2, Some(7)),
                (64, q(8, 64), q(4, 16), 12, 0, None),
            ] {
                let tk = 203;
                let mut rnd = |n: usize| -> Vec<f32> {
                    (0..n).map(|_| rng.gen_range(-2.0f32..2.0)).collect()
                };
                let pack = |spec: KvQuant, x: &[f32]| -> Vec<u8> {
                    let rb = spec.row_bytes(d);
                    let mut out = vec![0u8; (tk - head) * rb];
                    for (o, r) in out.chunks_exact_mut(rb).zip(x.chunks_exact(d)) {
                        super::super::attention_quantized::quantize_row(spec, r, o);
                    }
                    out
                };
                let (kx, vx) = (rnd((tk - head) * d), rnd((tk - head) * d));
                let (kv, vv) = (pack(ks, &kx), pack(vs, &vx));
                let (hk, hv) = (rnd(head * d), rnd(head * d));
                // Every 7th slot empty; the last query row sees only the first 10 slots.
                let kpos: Vec<i32> = (0..tk as i32)
                    .map(|j| if j % 7 == 3 { -1 } else { j })
                    .collect();
                let pos: Vec<i32> = (0..nr as i32)
                    .map(|r| {
                        if r + 1 == nr as i32 {
                            9
                        } else {
                            tk as i32 - 1 - r
                        }
                    })
                    .collect();
                let qf = rnd(nr * d);
                let gk = d / ks.group;
                let (mut q8, mut qs, mut s8, mut qsum) = (
                    vec![0i8; nr * d],
                    vec![0.0; nr * gk],
                    vec![0; nr * gk],
                    vec![0.0; nr * gk],
                );
                for r in 0..nr {
                    let g = r * gk..(r + 1) * gk;
                    quantize_query(
                        &qf[r * d..(r + 1) * d],
                        ks.group,
                        &mut q8[r * d..(r + 1) * d],
                        &mut qs[g.clone()],
                        &mut s8[g.clone()],
                        &mut qsum[g],
                    );
                }
                let bias = rnd(nr);
                let src = Source {
                    kv: &kv,
                    vv: &vv,
                    kbase: 0,
                    vbase: 0,
                    kstride: ks.row_bytes(d),
                    vstride: vs.row_bytes(d),
                    kpos: &kpos,
                    window,
                    ks,
                    vs,
                    d,
                    dv: d,
                    head,
                    hk: &hk,
                    hv: &hv,
                };
                let rows = Rows {
                    q: &qf,
                    bias: &bias,
                    pos: &pos,
                    q8: &q8,
                    qscale: &qs,
                    q8sum: &s8,
                    qsum: &qsum,
                };
                let run = |avx2: bool| {
                    let mut part = vec![0f32; nr * (d + 2)];
                    let mut bl = Blocks::default();
                    for keys in [0..tk / 2, tk / 2..tk] {
                        let mut p = vec![0f32; nr * (d + 2)];
                        if avx2 {
                            // SAFETY: AVX2, FMA and F16C were detected above.
                            unsafe { attend_avx2(&src, &rows, keys, &mut bl, &mut p) };
                        } else {
                            attend_unit::<Portable>(&src, &rows, keys, &mut bl, &mut p);
                        }
                        part.extend_from_slice(&p);
                    }
                    part
                };
                let (got, want) = (run(true), run(false));
                let what = format!("d{d} {ks:?} {vs:?} rows {nr} head {head} {window:?}");
                for (a, b) in got.iter().zip(&want) {
                    let ok = a == b || (a - b).abs() <= 1e-5 * (1.0 + b.abs());
                    assert!(ok, "{what}: {a} vs {b}");
                }
            }
        }
    }
}
