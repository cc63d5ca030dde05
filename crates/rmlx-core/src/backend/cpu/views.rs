//! The CPU's half of views: the strides come from `backend::common::views`; `copy_contiguous`
//! materializes any view.

use super::{alloc, finish, strided};
use crate::array::Data;
use crate::backend::common::views as common;
use crate::backend::Arg;
use crate::error::Result;

pub fn reshape(x: &Arg, out_shape: &[usize]) -> Result<Data> {
    match common::reshape(x, out_shape) {
        Some(d) => Ok(d),
        None => Ok(common::reshape_contiguous(copy_contiguous(x)?, out_shape)),
    }
}

/// A row-major copy of a strided view.
pub fn copy_contiguous(x: &Arg) -> Result<Data> {
    let mut out = alloc(&x.shape, x.dtype)?;
    if let Some(&step) = x.data.strides.last().filter(|&&s| s != 1) {
        // Strided rows (e.g. gpt-oss's interleaved gate/up halves): a typed strided loop per
        // row, not a byte copy per element.
        let inner = *x.shape.last().expect("strides match the shape");
        let nd = x.shape.len();
        crate::dispatch_dtype!(x.dtype, T => {
            let src = x.data.host()?.as_slice::<T>()?;
            let mut rows = out.as_mut_slice::<T>()?.chunks_exact_mut(inner.max(1));
            strided::for_each_offset(&x.shape[..nd - 1], &x.data.strides[..nd - 1], x.data.offset, |o| {
                if let Some(d) = rows.next() {
                    for (j, v) in d.iter_mut().enumerate() {
                        *v = src[o + j * step];
                    }
                }
            });
        });
        return Ok(finish(out, &x.shape));
    }
    let size = x.dtype.size();
    let src = x.data.host()?.bytes();
    let dst = out.bytes_mut().expect("owned");
    let inner = *x.shape.last().unwrap_or(&1);
    let inner_contig = x.data.strides.last().is_none_or(|&s| s == 1);
    if inner_contig && !x.shape.is_empty() && inner > 0 {
        // Copy whole rows.
        let outer: Vec<usize> = x.shape[..x.shape.len() - 1].to_vec();
        let ostr = &x.data.strides[..x.shape.len() - 1];
        let row = inner * size;
        let mut i = 0;
        strided::for_each_offset(&outer, ostr, x.data.offset, |o| {
            dst[i * row..(i + 1) * row].copy_from_slice(&src[o * size..o * size + row]);
            i += 1;
        });
    } else {
        let mut i = 0;
        strided::for_each_offset(&x.shape, &x.data.strides, x.data.offset, |o| {
            dst[i * size..(i + 1) * size].copy_from_slice(&src[o * size..(o + 1) * size]);
            i += 1;
        });
    }
    Ok(finish(out, &x.shape))
}
