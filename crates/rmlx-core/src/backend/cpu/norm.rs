//! RMSNorm over the last axis: y = x · rsqrt(mean(x²) + eps) · w, accumulated in f32.

use super::{alloc, contiguous, finish};
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::{DType, Element};
use crate::error::Result;
use rayon::prelude::*;

pub fn rms_norm(eps: f32, x: &Arg, w: &Arg, shape: &[usize], out_dtype: DType) -> Result<Data> {
    let d = *shape.last().unwrap_or(&1);
    let xs = contiguous(x)?;
    let ws = contiguous(w)?;
    let mut out = alloc(shape, out_dtype)?;
    crate::dispatch_float!(x.dtype, "rms_norm", T => {
        crate::dispatch_float!(w.dtype, "rms_norm", W => {
            let xv = xs.host_slice::<T>(x.numel())?;
            let wv = ws.host_slice::<W>(d)?;
            let o = out.as_mut_slice::<T>()?;
            let rows_per_task = (16384 / d.max(1)).max(1);
            o.par_chunks_mut(d * rows_per_task).zip(xv.par_chunks(d * rows_per_task)).for_each(|(o, x)| {
                for (o, x) in o.chunks_mut(d).zip(x.chunks(d)) {
                    let ss: f32 = x.iter().map(|v| { let f = v.to_f32(); f * f }).sum();
                    let r = 1.0 / (ss / d as f32 + eps).sqrt();
                    for ((o, x), w) in o.iter_mut().zip(x).zip(wv) {
                        *o = T::from_f32(x.to_f32() * r * w.to_f32());
                    }
                }
            });
        })
    });
    Ok(finish(out, shape))
}
