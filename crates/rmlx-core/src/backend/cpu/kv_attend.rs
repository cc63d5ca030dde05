//! The inner loop of attention over a packed KV cache: one unit (the query rows of one KV
//! group, i.e. its query heads × a tile of query positions) over a range of key slots, taken
//! 8 keys at a time with an online softmax (flash attention).
//!
//! Scores come straight from the codes. With k ≈ s_g·n + m_g per group g of a row,
//! q·k = Σ_c q_c·(s_g·n_c) + Σ_g m_g·(Σ_{c∈g} q_c): a block's K rows are unpacked once (codes
//! times their group's scale, no min) for every query row of the unit, and the mins enter as
//! one product per group with the row's sums of q. The 8 keys' dots are reduced together (one
//! transpose-add), never one horizontal sum per key. Values likewise:
//! Σ_j p_j·(s_j·n_j + m_j) = Σ_j (p_j·s_j)·n_j + Σ_j p_j·m_j, the last term one scalar per row
//! and group, added to the row at the end. So no f32 copy of a K or V row is ever built with
//! its affine map, and each packed row is unpacked once per unit, not once per query.

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
    /// Slots 0..head come from these exact rows (head × D, head × Dv), already centered and
    /// rotated like the packed ones; packed row j − head serves slot j ≥ head.
    pub head: usize,
    pub hk: &'a [f32],
    pub hv: &'a [f32],
}

/// The query rows of a unit, prepared: q (R × D, scaled and rotated), per row the bias added
/// to every score (q·μ for centered keys), the query position, and Σ q over each key group.
pub(super) struct Rows<'a> {
    pub q: &'a [f32],
    pub bias: &'a [f32],
    pub pos: &'a [i32],
    pub qsum: &'a [f32], // R × (D / key group)
}

/// Per-thread block buffers, reused across units and calls.
#[derive(Default)]
pub(super) struct Blocks {
    kb: Vec<f32>,    // (KB, D): codes × scale
    kmin: Vec<f32>,  // (D / group, KB): the keys' mins, keys in lanes
    vb: Vec<f32>,    // (KB, Dv): codes
    vsc: Vec<f32>,   // (Dv / group, KB)
    vmn: Vec<f32>,   // (Dv / group, KB)
    macc: Vec<f32>,  // (R, Dv / group): Σ p·min per row and value group
    scale: Vec<f32>, // one row's group scales
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
fn mid(spec: KvQuant) -> f32 {
    if spec.bits == 8 {
        128.0
    } else {
        8.0
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
    /// out[c] = (n_c − mid) · scale[c / group] for the codes of a packed row of out.len()
    /// values (`mid`: 8 or 128, see `mid`).
    fn unpack(spec: KvQuant, row: &[u8], scale: &[f32], out: &mut [f32]);
    /// s[j] = q · kb[j] for the KB rows of kb (KB × q.len()).
    fn dots(q: &[f32], kb: &[f32]) -> [f32; KB];
    /// e[j] = exp(s[j] − m), 0 for s[j] = −∞.
    fn exp_sub(s: &[f32; KB], m: f32) -> [f32; KB];
    /// acc[c] += Σ_j p[j] · vb[j][lo + c] for c < acc.len() (vb is KB × dv).
    fn axpys(p: &[f32; KB], vb: &[f32], dv: usize, lo: usize, acc: &mut [f32]);
}

pub(super) struct Portable;

impl Lanes for Portable {
    #[inline(always)]
    fn unpack(spec: KvQuant, row: &[u8], scale: &[f32], out: &mut [f32]) {
        let d = out.len();
        if spec.bits == 8 {
            for (o, &n) in out.iter_mut().zip(&row[..d]) {
                *o = n as f32 - 128.0;
            }
        } else {
            let nb = nib_block(d);
            for (o, b) in out
                .chunks_exact_mut(nb)
                .zip(row[..d / 2].chunks_exact(nb / 2))
            {
                let (lo, hi) = o.split_at_mut(nb / 2);
                for l in 0..nb / 2 {
                    lo[l] = (b[l] & 15) as f32 - 8.0;
                    hi[l] = (b[l] >> 4) as f32 - 8.0;
                }
            }
        }
        for (o, s) in out.chunks_exact_mut(spec.group).zip(scale) {
            o.iter_mut().for_each(|v| *v *= s);
        }
    }

    #[inline(always)]
    fn dots(q: &[f32], kb: &[f32]) -> [f32; KB] {
        let d = q.len();
        std::array::from_fn(|j| {
            q.iter()
                .zip(&kb[j * d..(j + 1) * d])
                .map(|(a, b)| a * b)
                .sum()
        })
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

#[cfg(target_arch = "x86_64")]
pub(super) struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2 {
    #[inline(always)]
    fn unpack(spec: KvQuant, row: &[u8], scale: &[f32], out: &mut [f32]) {
        use std::arch::x86_64::*;
        let d = out.len();
        assert!(row.len() >= d * spec.bits as usize / 8 && d.is_multiple_of(16));
        let g = spec.group;
        // SAFETY: only called from `attend_avx2` (AVX2 present); reads stay within the row's
        // d·bits/8 code bytes (asserted), writes within out (d values, a multiple of 16).
        unsafe {
            let (r, o) = (row.as_ptr(), out.as_mut_ptr());
            // 8 codes less mid (signed bytes) × the scale of element e's group → out[e..e + 8].
            #[inline(always)]
            unsafe fn put8(o: *mut f32, e: usize, s: f32, bytes: __m128i) {
                let x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
                _mm256_storeu_ps(o.add(e), _mm256_mul_ps(x, _mm256_set1_ps(s)));
            }
            let put = |e: usize, bytes: __m128i| put8(o, e, scale[e / g], bytes);
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
    fn dots(q: &[f32], kb: &[f32]) -> [f32; KB] {
        use std::arch::x86_64::*;
        let d = q.len();
        assert!(kb.len() >= KB * d && d.is_multiple_of(8));
        // SAFETY: AVX2/FMA present (see `unpack`); loads stay within q and kb (asserted).
        unsafe {
            let (qp, kp) = (q.as_ptr(), kb.as_ptr());
            let mut a = [_mm256_setzero_ps(); KB];
            for e in (0..d).step_by(8) {
                let x = _mm256_loadu_ps(qp.add(e));
                for (j, aj) in a.iter_mut().enumerate() {
                    *aj = _mm256_fmadd_ps(x, _mm256_loadu_ps(kp.add(j * d + e)), *aj);
                }
            }
            // Transpose-add: lane j of the result is the sum of a[j]'s lanes.
            let t01 = _mm256_hadd_ps(a[0], a[1]);
            let t23 = _mm256_hadd_ps(a[2], a[3]);
            let t45 = _mm256_hadd_ps(a[4], a[5]);
            let t67 = _mm256_hadd_ps(a[6], a[7]);
            let (u0, u1) = (_mm256_hadd_ps(t01, t23), _mm256_hadd_ps(t45, t67));
            let s = _mm256_add_ps(
                _mm256_permute2f128_ps(u0, u1, 0x20),
                _mm256_permute2f128_ps(u0, u1, 0x31),
            );
            let mut out = [0f32; KB];
            _mm256_storeu_ps(out.as_mut_ptr(), s);
            out
        }
    }

    #[inline(always)]
    fn exp_sub(s: &[f32; KB], m: f32) -> [f32; KB] {
        use std::arch::x86_64::*;
        // SAFETY: AVX2/FMA present (see `unpack`); 8 lanes in, 8 out.
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
        // SAFETY: AVX2/FMA present (see `unpack`); loads within vb's KB rows, stores within
        // acc (asserted).
        unsafe {
            let (vp, ap) = (vb.as_ptr().add(lo), acc.as_mut_ptr());
            let pv: [__m256; KB] = std::array::from_fn(|j| _mm256_set1_ps(p[j]));
            let mut e = 0;
            while e + 32 <= n {
                let mut a = [0, 1, 2, 3].map(|c| _mm256_loadu_ps(ap.add(e + 8 * c)));
                for (j, pj) in pv.iter().enumerate() {
                    for (c, ac) in a.iter_mut().enumerate() {
                        let v = _mm256_loadu_ps(vp.add(j * dv + e + 8 * c));
                        *ac = _mm256_fmadd_ps(*pj, v, *ac);
                    }
                }
                for (c, ac) in a.iter().enumerate() {
                    _mm256_storeu_ps(ap.add(e + 8 * c), *ac);
                }
                e += 32;
            }
            while e < n {
                let mut a = _mm256_loadu_ps(ap.add(e));
                for (j, pj) in pv.iter().enumerate() {
                    a = _mm256_fmadd_ps(*pj, _mm256_loadu_ps(vp.add(j * dv + e)), a);
                }
                _mm256_storeu_ps(ap.add(e), a);
                e += 8;
            }
        }
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
    let fit = |v: &mut Vec<f32>, n: usize| {
        if v.len() < n {
            v.resize(n, 0.0);
        }
    };
    fit(&mut bl.kb, KB * d);
    fit(&mut bl.kmin, gk * KB);
    fit(&mut bl.vb, KB * dv);
    fit(&mut bl.vsc, gv * KB);
    fit(&mut bl.vmn, gv * KB);
    fit(&mut bl.macc, nr * gv);
    bl.macc[..nr * gv].iter_mut().for_each(|x| *x = 0.0);
    let (kd, vd) = (ks.row_bytes(d), vs.row_bytes(dv));
    let visible = |pj: i32, pi: i32| {
        pj >= 0 && pj <= pi && src.window.is_none_or(|w| ((pi - pj) as usize) < w)
    };
    let (pmin_q, pmax_q) = rows
        .pos
        .iter()
        .fold((i32::MAX, i32::MIN), |(a, b), &p| (a.min(p), b.max(p)));
    fit(&mut bl.scale, gk.max(gv));
    let mut j0 = keys.start;
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
        for t in 0..n {
            let j = j0 + t;
            let kr = &mut bl.kb[t * d..(t + 1) * d];
            let vr = &mut bl.vb[t * dv..(t + 1) * dv];
            if j < src.head {
                kr.copy_from_slice(&src.hk[j * d..(j + 1) * d]);
                vr.copy_from_slice(&src.hv[j * dv..(j + 1) * dv]);
                (0..gk).for_each(|g| bl.kmin[g * KB + t] = 0.0);
                (0..gv).for_each(|g| {
                    bl.vsc[g * KB + t] = 1.0;
                    bl.vmn[g * KB + t] = 0.0;
                });
                continue;
            }
            let at = src.kbase + (j - src.head) * src.kstride;
            let row = &src.kv[at..at + kd];
            for g in 0..gk {
                let (sc, mn) = params(ks, d, row, g);
                bl.scale[g] = sc;
                bl.kmin[g * KB + t] = mn + mid(ks) * sc;
            }
            L::unpack(ks, row, &bl.scale[..gk], kr);
            let at = src.vbase + (j - src.head) * src.vstride;
            let row = &src.vv[at..at + vd];
            for g in 0..gv {
                let (sc, mn) = params(vs, dv, row, g);
                bl.vsc[g * KB + t] = sc;
                bl.vmn[g * KB + t] = mn + mid(vs) * sc;
            }
            bl.scale[..gv].iter_mut().for_each(|s| *s = 1.0);
            L::unpack(vs, row, &bl.scale[..gv], vr);
        }
        // Lanes past the range: weight 0 (their rows hold stale but finite values).
        for t in n..KB {
            (0..gv).for_each(|g| {
                bl.vsc[g * KB + t] = 0.0;
                bl.vmn[g * KB + t] = 0.0;
            });
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
            let mut s = L::dots(&rows.q[r * d..(r + 1) * d], &bl.kb);
            let qs = &rows.qsum[r * gk..(r + 1) * gk];
            for (t, st) in s.iter_mut().enumerate() {
                let mut x = *st + rows.bias[r];
                for (g, q) in qs.iter().enumerate() {
                    x += q * bl.kmin[g * KB + t];
                }
                *st = if all || visible(kp[t], pi) {
                    x
                } else {
                    f32::NEG_INFINITY
                };
            }
            let bm = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if bm == f32::NEG_INFINITY {
                continue;
            }
            let pr = &mut part[r * w..(r + 1) * w];
            let macc = &mut bl.macc[r * gv..(r + 1) * gv];
            if bm > pr[0] {
                if pr[0] != f32::NEG_INFINITY {
                    let alpha = (pr[0] - bm).exp();
                    pr[1..].iter_mut().for_each(|x| *x *= alpha);
                    macc.iter_mut().for_each(|x| *x *= alpha);
                }
                pr[0] = bm;
            }
            let p = L::exp_sub(&s, pr[0]);
            pr[1] += p.iter().sum::<f32>();
            let acc = &mut pr[2..];
            for (g, mg) in macc.iter_mut().enumerate() {
                let c: [f32; KB] = std::array::from_fn(|t| p[t] * bl.vsc[g * KB + t]);
                *mg += (0..KB).map(|t| p[t] * bl.vmn[g * KB + t]).sum::<f32>();
                let (lo, hi) = (g * vs.group, (g + 1) * vs.group);
                L::axpys(&c, &bl.vb, dv, lo, &mut acc[lo..hi]);
            }
        }
        j0 += n;
    }
    // Fold the value mins in: Σ_j p_j·m_j per group.
    for r in 0..nr {
        let acc = &mut part[r * w + 2..(r + 1) * w];
        for (g, a) in acc.chunks_exact_mut(vs.group).enumerate() {
            let m = bl.macc[r * gv + g];
            a.iter_mut().for_each(|x| *x += m);
        }
    }
}

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
