//! Matmul. Decode-shaped products (few rows of x against a row-major weight W, i.e. x·Wᵀ)
//! take a GEMV path that reads W once in its own dtype; everything else goes to the `gemm`
//! crate's blocked f32 kernels, which accept any strides (transposed operands are free).

use super::simd::DotWeight;
use super::{alloc, finish, strided};
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use half::{bf16, f16};

/// At most this many rows of x use the GEMV path with f32 weights (beyond, `gemm`'s blocking
/// pays off).
const GEMV_MAX_M: usize = 4;
/// ... and with 16-bit weights, which `gemm` would first convert to f32 whole (gpt-oss-20b's
/// 1.2 GB head became 2.3 GB per call): a task's weight rows stay in L2 across the x rows.
const GEMV_MAX_M_16BIT: usize = 64;

pub fn matmul(a: &Arg, b: &Arg, shape: &[usize], out_dtype: DType) -> Result<Data> {
    let nd = shape.len();
    let (m, n) = (shape[nd - 2], shape[nd - 1]);
    let k = a.shape[a.shape.len() - 1];
    let batch_shape = &shape[..nd - 2];
    let bstr = |x: &Arg| {
        let xs = &x.shape[..x.shape.len() - 2];
        let st = &x.data.strides[..x.shape.len() - 2];
        strided::offsets(
            batch_shape,
            &strided::broadcast_strides(xs, st, batch_shape),
            x.data.offset,
        )
    };
    let (a_off, b_off) = (bstr(a), bstr(b));
    let sa = &a.data.strides[a.shape.len() - 2..];
    let sb = &b.data.strides[b.shape.len() - 2..];
    let mut out = vec![0f32; shape.iter().product()];
    // b (K, N) with stride 1 along K: rows of W = columns of b are contiguous.
    let w_rows = sb[0] == 1 || k == 1;
    let max_m = if b.dtype.size() == 2 {
        GEMV_MAX_M_16BIT
    } else {
        GEMV_MAX_M
    };
    if m <= max_m && w_rows {
        let ldw = sb[1];
        crate::dispatch_float!(b.dtype, "matmul", W => {
            gemv::<W>(a, b, &a_off, &b_off, sa, ldw, (m, n, k), &mut out)?
        });
    } else {
        let a32 = to_f32(a)?;
        let b32 = to_f32(b)?;
        for (bi, out_b) in out.chunks_mut(m * n).enumerate() {
            // `gemm` reads through raw pointers: each operand's view must lie in its buffer.
            let fits = view_fits(a32.len(), a_off[bi], [(m, sa[0]), (k, sa[1])])
                && view_fits(b32.len(), b_off[bi], [(k, sb[0]), (n, sb[1])]);
            if !fits || out_b.len() != m * n {
                return Err(Error::shape(format!(
                    "matmul: operand views of ({m}, {k}) and ({k}, {n}) exceed their buffers"
                )));
            }
            // SAFETY: both operand views lie inside their f32 buffers (checked above), the
            // output batch is (m, n) row-major and exclusively borrowed.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    out_b.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a32.as_ptr().add(a_off[bi]),
                    sa[1] as isize,
                    sa[0] as isize,
                    b32.as_ptr().add(b_off[bi]),
                    sb[1] as isize,
                    sb[0] as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(rayon::current_num_threads()),
                );
            }
        }
    }
    let mut o = alloc(shape, out_dtype)?;
    crate::dispatch_dtype!(out_dtype, O => {
        for (d, v) in o.as_mut_slice::<O>()?.iter_mut().zip(&out) {
            *d = O::from_f32(*v);
        }
    });
    Ok(finish(o, shape))
}

/// Whether a 2-D view at `off` with (size, stride) per axis stays inside `len` elements
/// (false on overflow); an empty view always fits.
fn view_fits(len: usize, off: usize, dims: [(usize, usize); 2]) -> bool {
    if dims.iter().any(|&(size, _)| size == 0) {
        return true;
    }
    dims.iter()
        .try_fold(off, |end, &(size, stride)| {
            (size - 1)
                .checked_mul(stride)
                .and_then(|d| end.checked_add(d))
        })
        .is_some_and(|last| last < len)
}

/// The whole buffer as f32 (same element positions, so views' offsets/strides still apply).
fn to_f32(x: &Arg) -> Result<std::borrow::Cow<'_, [f32]>> {
    let h = x.data.host()?;
    Ok(match x.dtype {
        DType::F32 => std::borrow::Cow::Borrowed(h.as_slice::<f32>()?),
        DType::BF16 => h.as_slice::<bf16>()?.iter().map(|v| v.to_f32()).collect(),
        DType::F16 => h.as_slice::<f16>()?.iter().map(|v| v.to_f32()).collect(),
        other => {
            crate::dispatch_dtype!(other, T => h.as_slice::<T>()?.iter().map(|v| v.to_f32()).collect())
        }
    })
}

/// The output of `gemv`, shared by its tasks (each writes its own rows).
#[derive(Clone, Copy)]
struct OutRows(*mut f32);
// SAFETY: a plain pointer to f32s; tasks write disjoint ranges and `parallel_for` returns
// only after all of them finished, while the output is still borrowed.
unsafe impl Send for OutRows {}
// SAFETY: as for Send: shared only to hand each task its own ranges.
unsafe impl Sync for OutRows {}

#[allow(clippy::too_many_arguments)]
fn gemv<W: DotWeight>(
    a: &Arg,
    b: &Arg,
    a_off: &[usize],
    b_off: &[usize],
    sa: &[usize],
    ldw: usize,
    (m, n, k): (usize, usize, usize),
    out: &mut [f32],
) -> Result<()> {
    let w = b.data.host()?.as_slice::<W>()?;
    let xa = to_f32(a)?;
    // Rows of x gathered contiguous once.
    let mut xs = vec![0f32; m * k];
    for (bi, out_b) in out.chunks_mut(m * n).enumerate() {
        for r in 0..m {
            for c in 0..k {
                xs[r * k + c] = xa[a_off[bi] + r * sa[0] + c * sa[1]];
            }
        }
        let wb = &w[b_off[bi]..];
        // Tasks of up to 64 weight rows and ~256 KB: enough tasks to balance the threads, few
        // enough that taking one (an atomic) costs nothing against its work, and small enough
        // to stay in L2 while the m rows of x pass over them (K = 14k bf16: 8 rows).
        let rows = ((1usize << 18) / (k * std::mem::size_of::<W>()).max(1)).clamp(4, 64) / 4 * 4;
        assert_eq!(out_b.len(), m * n, "gemv: output of a batch is not (M, N)");
        let out_ptr = OutRows(out_b.as_mut_ptr());
        let task = |t: usize| {
            let r0 = t * rows;
            let r1 = (r0 + rows).min(n);
            for r in 0..m {
                // SAFETY: task t alone writes out_b[r·n + r0 .. r·n + r1]; r < m and
                // r1 ≤ n, so it lies inside out_b (m·n values, asserted).
                let o = unsafe {
                    std::slice::from_raw_parts_mut({ out_ptr }.0.add(r * n + r0), r1 - r0)
                };
                W::dots(&xs[r * k..(r + 1) * k], wb, r0 * ldw, ldw, o);
            }
        };
        super::spin::parallel_for(n.div_ceil(rows), &task);
    }
    Ok(())
}
