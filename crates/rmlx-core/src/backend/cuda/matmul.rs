//! Matmul on CUDA through cuBLAS: (…, M, K) @ (…, K, N) with broadcast batch dims, f32 / f16 /
//! bf16 with f32 accumulation (`CUBLAS_COMPUTE_32F`, no TF32, so f32 agrees with the CPU), the
//! output in the output dtype. Row-major C = A·B is computed column-major as Cᵀ = Bᵀ·Aᵀ; either
//! operand may be a transposed view (a weight passed as `w.transpose`), read in place.
//! Decode-sized products with a weight (`x · w.transpose`, up to 8 rows) go to our own GEMV
//! kernel, which reads W once in its stored dtype and multiplies in f32, exact like the CPU.
//! For cuBLAS, operands of another float dtype than the output are converted to it first (as the
//! CPU computes in f32).

use super::device::CudaDevice;
use super::elementwise;
use super::launch::{c_type, output, ptr_at, source, Launch};
use crate::array::Data;
use crate::backend::common::broadcast_strides;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::{Error, Result};
use cudarc::cublas::{result as blas, sys as bsys};
use std::sync::Arc;

/// How cuBLAS reads one operand: its data, whether it is stored transposed (column-major
/// in row-major terms), its leading dimension and its stride between batches.
struct Operand {
    arg: Arg,
    col_major: bool,
    ld: usize,
    batch_stride: usize,
}

/// `(col_major, ld)` of a rows×cols matrix with strides (s0, s1), if cuBLAS can read it.
fn mat_layout(rows: usize, cols: usize, s0: usize, s1: usize) -> Option<(bool, usize)> {
    if s1 == 1 || cols == 1 {
        let ld = if rows == 1 { cols } else { s0 };
        if ld >= cols.max(1) {
            return Some((false, ld));
        }
    }
    if s0 == 1 || rows == 1 {
        let ld = if cols == 1 { rows } else { s1 };
        if ld >= rows.max(1) {
            return Some((true, ld));
        }
    }
    None
}

/// The one stride between consecutive batches (flattened row-major over `batch`), if the
/// broadcast strides `st` admit one.
fn single_stride(batch: &[usize], st: &[usize]) -> Option<usize> {
    let Some(last) = (0..batch.len()).rev().find(|&i| batch[i] != 1) else {
        return Some(0);
    };
    let s = st[last];
    let mut inner = 1usize;
    for i in (0..batch.len()).rev() {
        if batch[i] != 1 && st[i] != s * inner {
            return None;
        }
        inner *= batch[i];
    }
    Some(s)
}

/// `x` (rows×cols matrices over its own batch dims) as cuBLAS will read it for output batch
/// dims `batch`: in place when possible, else converted / made contiguous / broadcast first.
fn operand(dev: &Arc<CudaDevice>, x: &Arg, batch: &[usize], dtype: DType) -> Result<Operand> {
    let nd = x.shape.len();
    let (rows, cols) = (x.shape[nd - 2], x.shape[nd - 1]);
    let view = |data: Data, shape: &[usize]| Arg {
        data,
        shape: shape.to_vec(),
        dtype,
    };
    let mut arg = if x.dtype != dtype {
        view(elementwise::astype(dev, x, &x.shape, dtype)?, &x.shape)
    } else {
        view(x.data.clone(), &x.shape)
    };
    for attempt in 0..3 {
        let st = &arg.data.strides;
        let nd = arg.shape.len();
        let bst = broadcast_strides(&arg.shape[..nd - 2], &st[..nd - 2], batch);
        if let (Some((col_major, ld)), Some(batch_stride)) = (
            mat_layout(rows, cols, st[nd - 2], st[nd - 1]),
            single_stride(batch, &bst),
        ) {
            return Ok(Operand {
                arg,
                col_major,
                ld,
                batch_stride,
            });
        }
        arg = match attempt {
            // Strided matrices or batches: a row-major copy.
            0 => {
                let shape = arg.shape.clone();
                view(elementwise::copy_contiguous(dev, &arg)?, &shape)
            }
            // Batch dims broadcast in ways one stride cannot say: materialize the broadcast.
            _ => {
                let mut shape = batch.to_vec();
                shape.extend([rows, cols]);
                let b = view(
                    crate::backend::common::views::broadcast_to(&arg, &shape),
                    &shape,
                );
                view(elementwise::copy_contiguous(dev, &b)?, &shape)
            }
        };
    }
    Err(Error::msg(
        "cuda: matmul: cannot lay out an operand for cuBLAS",
    ))
}

fn cuda_type(dtype: DType) -> Result<bsys::cudaDataType> {
    Ok(match dtype {
        DType::F32 => bsys::cudaDataType::CUDA_R_32F,
        DType::F16 => bsys::cudaDataType::CUDA_R_16F,
        DType::BF16 => bsys::cudaDataType::CUDA_R_16BF,
        other => {
            return Err(Error::dtype(format!(
                "cuda: matmul: expected a float output dtype, found {other}"
            )))
        }
    })
}

fn int(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| Error::shape(format!("cuda: matmul: {what} ({v}) exceeds cuBLAS's i32")))
}

pub(crate) fn matmul(
    dev: &Arc<CudaDevice>,
    a: &Arg,
    b: &Arg,
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let nd = shape.len();
    let (m, n) = (shape[nd - 2], shape[nd - 1]);
    let k = a.shape[a.shape.len() - 1];
    let batch = &shape[..nd - 2];
    let count: usize = batch.iter().product();
    let ty = cuda_type(out_dtype)?;
    let (data, out) = output(dev, shape, out_dtype)?;
    if m == 0 || n == 0 || count == 0 {
        return Ok(data);
    }
    if k == 0 {
        // An empty sum: zeros.
        let bytes = m * n * count * out_dtype.size();
        // SAFETY: `out` is a fresh buffer of exactly `bytes` bytes, written on the stream.
        unsafe { cudarc::driver::result::memset_d8_async(out, 0, bytes, dev.cu_stream()) }
            .map_err(|e| dev.error("matmul: zero fill", e))?;
        dev.graph_note(super::graph::TAG_MEMSET);
        return Ok(data);
    }
    if let Some(r) = gemv(dev, a, b, (m, n, k), count, out, out_dtype) {
        return r.map(|()| data);
    }
    // cuBLAS wants one dtype for A and B: both in the output dtype (a 16-bit weight beside f32
    // activations is widened, exact like the CPU; rounding the activations to 16 bits instead
    // moved gpt-oss logits by up to 0.18 relative on the tiny fixtures).
    let ab_dtype = out_dtype;
    let oa = operand(dev, a, batch, ab_dtype)?;
    let ob = operand(dev, b, batch, ab_dtype)?;
    let ab_ty = cuda_type(ab_dtype)?;
    let handle = dev.blas()?;
    let pa = ptr_at(&oa.arg, dev)?;
    let pb = ptr_at(&ob.arg, dev)?;
    use bsys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
    let op = |col_major: bool| if col_major { CUBLAS_OP_T } else { CUBLAS_OP_N };
    let (alpha, beta) = (1.0f32, 0.0f32);
    let (mi, ni, ki) = (int(m, "M")?, int(n, "N")?, int(k, "K")?);
    let (lda, ldb) = (int(ob.ld, "ld")?, int(oa.ld, "ld")?);
    let h = handle.0.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: the handle is bound to this device's stream (context current via `dev`); A′ = b
    // and B′ = a are live device views that the (op, ld, batch stride) triples describe within
    // their buffers; C is a fresh contiguous (count, M, N) buffer of the output dtype; alpha
    // and beta are host f32 scalars, as COMPUTE_32F wants.
    let r = unsafe {
        if count == 1 {
            blas::gemm_ex(
                *h,
                op(ob.col_major),
                op(oa.col_major),
                ni,
                mi,
                ki,
                &alpha as *const f32 as *const _,
                pb as *const _,
                ab_ty,
                lda,
                pa as *const _,
                ab_ty,
                ldb,
                &beta as *const f32 as *const _,
                out as *mut _,
                ty,
                ni,
                bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                bsys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        } else {
            blas::gemm_strided_batched_ex(
                *h,
                op(ob.col_major),
                op(oa.col_major),
                ni,
                mi,
                ki,
                &alpha as *const f32 as *const _,
                pb as *const _,
                ab_ty,
                lda,
                ob.batch_stride as i64,
                pa as *const _,
                ab_ty,
                ldb,
                oa.batch_stride as i64,
                &beta as *const f32 as *const _,
                out as *mut _,
                ty,
                ni,
                (m * n) as i64,
                int(count, "batch count")?,
                bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                bsys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
    };
    r.map_err(|e| dev.error("matmul (cuBLAS)", format!("{e:?}")))?;
    // cuBLAS picks its kernels by shape: the shape is the captured call's topology tag.
    dev.graph_note(
        [
            m,
            n,
            k,
            count,
            ob.col_major as usize,
            oa.col_major as usize,
            ab_dtype as usize,
        ]
        .iter()
        .fold(0x626c_6173_u64, |h, &v| {
            (h.rotate_left(7) ^ v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        }),
    );
    // The operands' temporaries (if any) are freed stream-ordered after the gemm.
    drop((oa, ob));
    Ok(data)
}

const GEMV_BODY: &str = include_str!("kernels/gemv.cu");
/// Rows of x the GEMV kernel takes (decode); more go to cuBLAS.
const GEMV_MAX_M: usize = 8;
const GEMV_WARPS: usize = 4;
/// The one-row GEMV with a warp per `GEMV1_COLS` columns (`gemv1`) takes N from here: enough
/// warps to fill the GPU without splitting K.
const GEMV1_MIN_N: usize = 2048;
const GEMV1_COLS: usize = 2;
const GEMV1_WARPS: usize = 8;

/// y = x · Wᵀ for a few rows of x and a weight passed as `w.transpose` (W row-major), read
/// once in its stored dtype and multiplied in f32 (what decode does with every dense weight:
/// converting W, or rounding x to W's type for cuBLAS, would cost a pass over W or precision).
/// `None` when the shapes are not that case.
fn gemv(
    dev: &Arc<CudaDevice>,
    a: &Arg,
    b: &Arg,
    (m, n, k): (usize, usize, usize),
    count: usize,
    out: u64,
    out_dtype: DType,
) -> Option<Result<()>> {
    let (na, nb) = (a.shape.len(), b.shape.len());
    let (sa, sb) = (&a.data.strides, &b.data.strides);
    let x_rows = sa[na - 1] == 1 || k == 1;
    let w_rows = sb[nb - 2] == 1 || k == 1; // b (K, N) with unit stride along K: W is (N, K)
    let floats = a.dtype.is_float() && b.dtype.is_float() && out_dtype.is_float();
    if count != 1 || m > GEMV_MAX_M || !x_rows || !w_rows || !floats {
        return None;
    }
    let ldx = if m == 1 { k } else { sa[na - 2] };
    let ldw = if n == 1 { k } else { sb[nb - 1] };
    Some((|| {
        let px = ptr_at(a, dev)?;
        let pw = ptr_at(b, dev)?;
        let lanes = 16 / b.dtype.size();
        let vec = k % lanes == 0 && ldw % lanes == 0 && pw % 16 == 0;
        let xvec = a.dtype == DType::F32 && (m == 1 || ldx % 4 == 0) && px % 16 == 0;
        let key = format!("gemv/{}/{}/{out_dtype}", a.dtype, b.dtype);
        let build = || {
            source(&format!(
                "#define TX {}\n#define TW {}\n#define TO {}\n{GEMV_BODY}",
                c_type(a.dtype),
                c_type(b.dtype),
                c_type(out_dtype)
            ))
        };
        if m == 1 && vec && n >= GEMV1_MIN_N {
            // Many columns: a warp per GEMV1_COLS of them, each over the whole of K.
            let f = dev.function(&key, build, "gemv1")?;
            let mut launch = Launch::new(f, "gemv1");
            launch
                .arg(px)
                .arg(pw)
                .arg(ldw as i64)
                .arg(out)
                .arg(n as i64)
                .arg(k as i64)
                .arg(xvec as i32);
            // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x at
            // `px` (one row of k) and W at `pw` (n rows of k, leading dimension ldw, 16-byte
            // aligned when `vec`) are the operands' views, `out` a fresh buffer of n; each
            // warp covers its GEMV1_COLS columns below n.
            return unsafe {
                launch.run(
                    dev,
                    (n.div_ceil(GEMV1_WARPS * GEMV1_COLS) as u32, 1, 1),
                    ((32 * GEMV1_WARPS) as u32, 1, 1),
                    0,
                )
            };
        }
        let f = dev.function(&key, build, "gemv")?;
        // One block per output column (its warps split K).
        let blocks = n;
        if blocks > i32::MAX as usize {
            return Err(Error::shape(format!("cuda: gemv: N = {n} is too large")));
        }
        let mut launch = Launch::new(f, "gemv");
        launch
            .arg(px)
            .arg(ldx as i64)
            .arg(pw)
            .arg(ldw as i64)
            .arg(out)
            .arg(m as i32)
            .arg(n as i64)
            .arg(k as i64)
            .arg(vec as i32)
            .arg(xvec as i32);
        // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); x at `px`
        // (m rows of k, leading dimension ldx) and W at `pw` (n rows of k, leading dimension
        // ldw) are the operands' views, `out` a fresh (m, n) buffer; one block per output
        // column.
        unsafe {
            launch.run(
                dev,
                (blocks as u32, 1, 1),
                ((32 * GEMV_WARPS) as u32, 1, 1),
                0,
            )
        }
    })())
}

/// The GEMV modules, for the NVRTC compile test.
pub(crate) fn gemv_sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for w in [DType::F32, DType::BF16, DType::F16] {
        for x in [DType::F32, DType::BF16] {
            out.push((
                format!("gemv/{x}/{w}/f32"),
                source(&format!(
                    "#define TX {}\n#define TW {}\n#define TO float\n{GEMV_BODY}",
                    c_type(x),
                    c_type(w)
                )),
            ));
        }
    }
    out
}
