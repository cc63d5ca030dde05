//! Quantized KV cache kernels: quantize-on-write of new K/V rows, the reference dequantizer, and
//! attention read straight from packed rows (never a dequantized copy of the cache).
//!
//! Row layout (`KvQuant`): `d·bits/8` code bytes, then `d/group` f16 scales, then `d/group` f16
//! mins; value ≈ scale · n + min. 8-bit: byte i is n[i]. 4-bit: in each block of 32 values,
//! byte i holds n[i] in its low nibble and n[i + 16] in its high nibble (GGML's Q4_0 order), so
//! a block unpacks into two contiguous runs of 16 lanes (blocks of 16 when 32 does not divide
//! the head dim).
//!
//! Attention (`quantized_sdpa`) takes the query heads of one KV group together, and in
//! prefill a tile of query positions too, so each packed K and V row is unpacked once per unit
//! of rows; scores and value sums are computed from the codes (`kv_attend.rs`). Decode splits
//! the keys into ranges that run in parallel and merges their partial softmax sums
//! (flash-decoding), so a model with few KV heads still uses every thread.

use super::attention::{rows_of, sinks_f32};
use super::attention_decode::{merge_splits, RowsPtr};
use super::kv_attend::{attend, code, nib_block, params, quantize_query, Blocks, Rows, Source};
use super::{alloc, contiguous, f32_values, finish};
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::primitive::KvQuant;
use half::f16;
use rayon::prelude::*;

/// The rotation's block: the largest power of two dividing `d` (the whole row for 64, 128).
fn block(d: usize) -> usize {
    1 << d.trailing_zeros()
}

/// Fixed ±1 signs of the randomized Hadamard transform (a hash of the index).
#[inline(always)]
fn sign(i: usize) -> f32 {
    if (i as u32).wrapping_mul(0x9E37_79B1).rotate_right(13) & 1 == 1 {
        -1.0
    } else {
        1.0
    }
}

/// In-place unnormalized fast Walsh-Hadamard transform of one block.
#[inline(always)]
fn fwht(x: &mut [f32]) {
    let n = x.len();
    let mut h = 1;
    while h < n {
        for i in (0..n).step_by(2 * h) {
            for j in i..i + h {
                let (a, b) = (x[j], x[j + h]);
                x[j] = a + b;
                x[j + h] = a - b;
            }
        }
        h *= 2;
    }
}

/// x ← R x with R = H·S / √n per block (orthonormal, so ⟨R q, R k⟩ = ⟨q, k⟩).
pub(crate) fn rotate(x: &mut [f32]) {
    let n = block(x.len());
    let norm = 1.0 / (n as f32).sqrt();
    for b in x.chunks_exact_mut(n) {
        b.iter_mut().enumerate().for_each(|(i, v)| *v *= sign(i));
        fwht(b);
        b.iter_mut().for_each(|v| *v *= norm);
    }
}

/// x ← Rᵀ x = S·H x / √n per block (the inverse of `rotate`).
pub(crate) fn unrotate(x: &mut [f32]) {
    let n = block(x.len());
    let norm = 1.0 / (n as f32).sqrt();
    for b in x.chunks_exact_mut(n) {
        fwht(b);
        b.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v *= sign(i) * norm);
    }
}

/// Quantizes one row `x` (d values) into `out` (row_bytes).
pub(crate) fn quantize_row(spec: KvQuant, x: &[f32], out: &mut [u8]) {
    let d = x.len();
    let g = spec.group;
    let groups = d / g;
    let levels = ((1u32 << spec.bits) - 1) as f32;
    let base = d * spec.bits as usize / 8;
    let mut codes = vec![0u8; d];
    for gi in 0..groups {
        let xs = &x[gi * g..(gi + 1) * g];
        let lo = xs.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        // Round the stored parameters first so codes are chosen against what is read back.
        let mn = f16::from_f32(lo);
        let sc = f16::from_f32((hi - lo) / levels);
        let (mnf, scf) = (mn.to_f32(), sc.to_f32());
        let inv = if scf > 0.0 { 1.0 / scf } else { 0.0 };
        for (c, &v) in codes[gi * g..(gi + 1) * g].iter_mut().zip(xs) {
            *c = ((v - mnf) * inv).round().clamp(0.0, levels) as u8;
        }
        out[base + 2 * gi..base + 2 * gi + 2].copy_from_slice(&sc.to_le_bytes());
        let m = base + 2 * (groups + gi);
        out[m..m + 2].copy_from_slice(&mn.to_le_bytes());
    }
    if spec.bits == 8 {
        out[..d].copy_from_slice(&codes);
    } else {
        let nb = nib_block(d);
        for (blk, o) in codes
            .chunks_exact(nb)
            .zip(out[..d / 2].chunks_exact_mut(nb / 2))
        {
            for i in 0..nb / 2 {
                o[i] = blk[i] | (blk[i + nb / 2] << 4);
            }
        }
    }
}

/// Dequantizes one packed row into `out` (d values).
pub(crate) fn dequantize_row(spec: KvQuant, row: &[u8], out: &mut [f32]) {
    let d = out.len();
    for gi in 0..d / spec.group {
        let (s, m) = params(spec, d, row, gi);
        let g = gi * spec.group..(gi + 1) * spec.group;
        for (o, i) in out[g.clone()].iter_mut().zip(g) {
            *o = s * code(spec, d, row, i) as f32 + m;
        }
    }
}

pub fn quantize_kv(spec: KvQuant, x: &Arg, shape: &[usize]) -> Result<Data> {
    let d = *x.shape.last().unwrap_or(&0);
    let rb = spec.row_bytes(d);
    let xd = contiguous(x)?;
    let mut out = alloc(shape, DType::U8)?;
    crate::dispatch_float!(x.dtype, "quantize_kv", T => {
        let xv = xd.host_slice::<T>(x.numel())?;
        let o = out.as_mut_slice::<u8>()?;
        o.par_chunks_mut(rb).zip(xv.par_chunks(d)).for_each_init(
            || vec![0f32; d],
            |row, (orow, xr)| {
                for (r, v) in row.iter_mut().zip(xr) {
                    *r = v.to_f32();
                }
                if spec.rotate {
                    rotate(row);
                }
                quantize_row(spec, row, orow);
            },
        );
    });
    Ok(finish(out, shape))
}

pub fn dequantize_kv(
    spec: KvQuant,
    dim: usize,
    x: &Arg,
    center: Option<&Arg>,
    shape: &[usize],
) -> Result<Data> {
    let rb = spec.row_bytes(dim);
    let xd = contiguous(x)?;
    let xv = xd.host_slice::<u8>(x.numel())?;
    let cd = center.map(contiguous).transpose()?;
    let cv = match (&cd, center) {
        (Some(d), Some(c)) => Some(d.host_slice::<f32>(c.numel())?),
        _ => None,
    };
    let t = shape[shape.len() - 2];
    let mut out = alloc(shape, DType::F32)?;
    let o = out.as_mut_slice::<f32>()?;
    o.par_chunks_mut(dim)
        .zip(xv.par_chunks(rb))
        .enumerate()
        .for_each(|(r, (orow, xr))| {
            dequantize_row(spec, xr, orow);
            if spec.rotate {
                unrotate(orow);
            }
            if let Some(c) = cv {
                // Row r of (B, H, T) belongs to center row r / T of (B, H, 1).
                let cr = &c[(r / t) * dim..(r / t + 1) * dim];
                orow.iter_mut().zip(cr).for_each(|(o, c)| *o += c);
            }
        });
    Ok(finish(out, shape))
}

/// q · c (the bias of centered keys).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Most query heads per KV head a unit handles at once (GQA ratio).
const MAX_GROUP: usize = 64;

#[allow(clippy::too_many_arguments)]
pub fn quantized_sdpa(
    scale: f32,
    window: Option<usize>,
    has_sinks: bool,
    k_centered: bool,
    head: usize,
    ks: KvQuant,
    vs: KvQuant,
    inputs: &[Arg],
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
    let (b, hq, tq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3]);
    let (hkv, tk, dv) = (k.shape[1], k.shape[2] + head, shape[3]);
    let group = hq / hkv;
    if group > MAX_GROUP {
        return Err(Error::shape(format!(
            "quantized_sdpa: expected at most {MAX_GROUP} query heads per KV head, found {group}"
        )));
    }
    let qp = contiguous(&inputs[3])?;
    let qpos = qp.host_slice::<i32>(tq)?;
    let kp = contiguous(&inputs[4])?;
    let kpos = kp.host_slice::<i32>(tk)?;
    let sinks = sinks_f32(inputs, has_sinks, hq)?;
    let (kd, vd) = (rows_of(k)?, rows_of(v)?);
    let qd = contiguous(q)?;
    // Keys stored relative to a center μ: q·k = q·(k − μ) + q·μ, the last term one bias per
    // query row (exact, sinks included).
    let extra = 5 + has_sinks as usize;
    let center_data = k_centered.then(|| contiguous(&inputs[extra])).transpose()?;
    let centers = match &center_data {
        Some(c) => Some(c.host_slice::<f32>(inputs[extra].numel())?),
        None => None,
    };
    // The exact head rows, read as they are: their scores take the unrotated q, their values
    // are summed unrotated and rotated once per unit (`kv_attend::attend_head`).
    let (ha, hb) = (
        inputs.get(extra + k_centered as usize),
        inputs.get(extra + k_centered as usize + 1),
    );
    let (hk, hv) = match (head, ha, hb) {
        // Caches keep these rows in f16: a few dozen per KV head, widened once per call.
        (1.., Some(a), Some(b)) => (
            f32_values(a, "quantized_sdpa head")?,
            f32_values(b, "quantized_sdpa head")?,
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let kv = kd.host()?.as_slice::<u8>()?;
    let vv = vd.host()?.as_slice::<u8>()?;
    let (kst, vst) = (&kd.strides, &vd.strides);
    // Work units: (batch, KV head, tile of query positions, key split). Prefill takes query
    // positions in tiles so each packed row is unpacked once per tile, not once per query;
    // decode splits the keys so a few KV heads still spread over every thread
    // (flash-decoding).
    let tile = (MAX_ROWS / group).clamp(1, tq);
    let tiles = tq.div_ceil(tile);
    let threads = super::spin::threads();
    let splits = if tq == 1 {
        (2 * threads)
            .div_ceil(b * hkv)
            .clamp(1, tk.div_ceil(256).max(1))
    } else {
        1
    };
    let per_split = tk.div_ceil(splits);
    let nr = tile * group; // rows of a full unit
    let unit_len = nr * (dv + 2);
    let units = b * hkv * tiles * splits;
    let mut parts = vec![0f32; units * unit_len];
    let (gk, gvk) = (d / ks.group, ks.group);
    let mut out = alloc(shape, out_dtype)?;
    crate::dispatch_float!(q.dtype, "quantized_sdpa", Q => {
        let qv = qd.host_slice::<Q>(q.numel())?;
        // Unit u = ((bi·hkv + hk)·tiles + t)·splits + sp; its row r = ii·group + hh is head
        // hk·group + hh at query position t·tile + ii.
        let unit = |sc: &mut UnitScratch, u: usize, part: &mut [f32]| {
            let (sp, t, hk_i, bi) = (u % splits, (u / splits) % tiles, (u / (splits * tiles)) % hkv, u / (splits * tiles * hkv));
            let (i0, i1) = (t * tile, ((t + 1) * tile).min(tq));
            let nr = (i1 - i0) * group;
            sc.fit(nr, d, gk);
            for r in 0..nr {
                let (i, hh) = (i0 + r / group, r % group);
                let row = (bi * hq + hk_i * group + hh) * tq + i;
                let qu = &mut sc.q[r * d..(r + 1) * d];
                for (x, y) in qu.iter_mut().zip(&qv[row * d..(row + 1) * d]) {
                    *x = y.to_f32() * scale;
                }
                sc.bias[r] = centers.as_ref().map_or(0.0, |c| dot(qu, &c[(bi * hkv + hk_i) * d..][..d]));
                let qr = &mut sc.qr[..d];
                qr.copy_from_slice(qu);
                if ks.rotate {
                    rotate(qr);
                }
                let gr = r * gk..(r + 1) * gk;
                quantize_query(qr, gvk, &mut sc.q8[r * d..(r + 1) * d], &mut sc.qscale[gr.clone()], &mut sc.q8sum[gr.clone()], &mut sc.qsum[gr]);
                sc.pos[r] = qpos[i];
            }
            let src = Source {
                kv,
                vv,
                kbase: kd.offset + bi * kst[0] + hk_i * kst[1],
                vbase: vd.offset + bi * vst[0] + hk_i * vst[1],
                kstride: kst[2],
                vstride: vst[2],
                kpos,
                window,
                ks,
                vs,
                d,
                dv,
                head,
                hk: if head > 0 { &hk[(bi * hkv + hk_i) * head * d..][..head * d] } else { &[] },
                hv: if head > 0 { &hv[(bi * hkv + hk_i) * head * dv..][..head * dv] } else { &[] },
            };
            let rows = Rows {
                q: &sc.q[..nr * d],
                bias: &sc.bias[..nr],
                pos: &sc.pos[..nr],
                q8: &sc.q8[..nr * d],
                qscale: &sc.qscale[..nr * gk],
                q8sum: &sc.q8sum[..nr * gk],
                qsum: &sc.qsum[..nr * gk],
            };
            let lo = (sp * per_split).min(tk);
            attend(&src, &rows, lo..(lo + per_split).min(tk), &mut sc.blocks, part);
        };
        let run = |u: usize, part: &mut [f32]| {
            SCRATCH.with(|c| match c.try_borrow_mut() {
                Ok(mut sc) => unit(&mut sc, u, part),
                Err(_) => unit(&mut UnitScratch::default(), u, part),
            })
        };
        if tq == 1 {
            let ptr = RowsPtr(parts.as_mut_ptr());
            super::spin::parallel_for(units, &|u| {
                // SAFETY: u < units and `parts` holds units·unit_len values, so the slice is
                // inside it; unit u alone owns parts[u·unit_len..(u+1)·unit_len].
                let part = unsafe { std::slice::from_raw_parts_mut({ ptr }.0.add(u * unit_len), unit_len) };
                run(u, part);
            });
        } else {
            parts.par_chunks_mut(unit_len).enumerate().for_each(|(u, part)| run(u, part));
        }
        // Merge the splits of each row with the sink, normalize, un-rotate, write out.
        let o = out.as_mut_slice::<Q>()?;
        let mut acc = vec![0f32; dv];
        for bi in 0..b {
            for hk_i in 0..hkv {
                for i in 0..tq {
                    let (t, ii) = (i / tile, i % tile);
                    for hh in 0..group {
                        let h = hk_i * group + hh;
                        let at = |sp: usize| (((bi * hkv + hk_i) * tiles + t) * splits + sp) * unit_len + (ii * group + hh) * (dv + 2);
                        let row = (bi * hq + h) * tq + i;
                        let orow = &mut o[row * dv..(row + 1) * dv];
                        let parts_of = (0..splits).map(|sp| &parts[at(sp)..at(sp) + dv + 2]);
                        if !merge_splits(parts_of, sinks.as_ref().map(|s| s[h]), &mut acc) {
                            // No visible key and no sink: define the output as zeros.
                            orow.iter_mut().for_each(|x| *x = Q::from_f32(0.0));
                            continue;
                        }
                        if vs.rotate {
                            unrotate(&mut acc);
                        }
                        for (x, a) in orow.iter_mut().zip(&acc) {
                            *x = Q::from_f32(*a);
                        }
                    }
                }
            }
        }
    });
    Ok(finish(out, shape))
}

/// Query rows of a prefill unit: its tile of positions × the group's heads.
const MAX_ROWS: usize = 64;

/// Per-thread scratch of a unit: its prepared query rows and the block buffers.
#[derive(Default)]
struct UnitScratch {
    q: Vec<f32>,  // scaled, not rotated
    qr: Vec<f32>, // one row rotated
    bias: Vec<f32>,
    pos: Vec<i32>,
    q8: Vec<i8>,
    qscale: Vec<f32>,
    q8sum: Vec<i32>,
    qsum: Vec<f32>,
    blocks: Blocks,
}

impl UnitScratch {
    fn fit(&mut self, nr: usize, d: usize, gk: usize) {
        if self.bias.len() < nr {
            self.bias.resize(nr, 0.0);
            self.pos.resize(nr, 0);
        }
        if self.q.len() < nr * d {
            self.q.resize(nr * d, 0.0);
            self.q8.resize(nr * d, 0);
        }
        if self.qr.len() < d {
            self.qr.resize(d, 0.0);
        }
        if self.qsum.len() < nr * gk {
            self.qsum.resize(nr * gk, 0.0);
            self.qscale.resize(nr * gk, 0.0);
            self.q8sum.resize(nr * gk, 0);
        }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<UnitScratch> = std::cell::RefCell::default();
}
