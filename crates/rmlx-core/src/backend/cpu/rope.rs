//! Rotary position embedding on (…, T, D) with per-token positions and precomputed inverse
//! frequencies (plain, YaRN or Llama-3 scaled: the scaling lives in `inv_freq` and `mscale`).

use super::{alloc, contiguous, finish};
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::primitive::RopeLayout;
use rayon::prelude::*;

pub fn rope(
    layout: RopeLayout,
    dims: usize,
    mscale: f32,
    inputs: &[Arg],
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let (x, freqs, pos) = (&inputs[0], &inputs[1], &inputs[2]);
    let nd = shape.len();
    let (t, d) = (shape[nd - 2], shape[nd - 1]);
    let half = dims / 2;
    let inv = contiguous(freqs)?;
    let inv = inv.host_slice::<f32>(half)?;
    let p = contiguous(pos)?;
    let p = p.host_slice::<i32>(t)?;
    // cos/sin table (T, half): computed once, shared by every head.
    let mut cs = vec![(0f32, 0f32); t * half];
    for (ti, &pp) in p.iter().enumerate() {
        for i in 0..half {
            // f64 angle: positions up to 128k times frequencies near 1 lose digits in f32.
            let ang = pp as f64 * inv[i] as f64;
            cs[ti * half + i] = ((ang.cos() as f32) * mscale, (ang.sin() as f32) * mscale);
        }
    }
    let xs = contiguous(x)?;
    let mut out = alloc(shape, out_dtype)?;
    if out_dtype != x.dtype {
        return Err(Error::dtype("rope: output dtype must equal the input's"));
    }
    crate::dispatch_float!(x.dtype, "rope", T => {
        let xv = xs.host_slice::<T>(x.numel())?;
        let o = out.as_mut_slice::<T>()?;
        let min_heads = (1 << 15) / (d * t).max(1);
        o.par_chunks_mut(d * t).zip(xv.par_chunks(d * t)).with_min_len(min_heads.max(1)).for_each(|(o, x)| {
            for ti in 0..t {
                let (o, x) = (&mut o[ti * d..(ti + 1) * d], &x[ti * d..(ti + 1) * d]);
                let c = &cs[ti * half..(ti + 1) * half];
                for (i, &(cos, sin)) in c.iter().enumerate() {
                    let (a, b) = match layout {
                        RopeLayout::HalfSplit => (i, i + half),
                        RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                    };
                    let (x0, x1) = (x[a].to_f32(), x[b].to_f32());
                    o[a] = T::from_f32(x0 * cos - x1 * sin);
                    o[b] = T::from_f32(x0 * sin + x1 * cos);
                }
                o[dims..].copy_from_slice(&x[dims..]);
            }
        });
    });
    Ok(finish(out, shape))
}
