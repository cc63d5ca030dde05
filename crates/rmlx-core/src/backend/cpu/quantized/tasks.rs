//! The split of a quantized matmul into tasks over output rows (N), shared by every kernel
//! family (fused GGUF/MXFP4, AVX2, MLX affine with float activations), and the software
//! prefetch distance they use.

use super::Job;

/// Weight bytes × activation rows below which a call runs serially (tunable with
/// `RMLX_QMM_SERIAL_BYTES` for measurements).
fn serial_bytes() -> usize {
    static V: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        std::env::var("RMLX_QMM_SERIAL_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1 << 16)
    })
}

/// Software prefetch distance in bytes, a multiple of 64, 0 = off (tunable with
/// `RMLX_QMM_PREFETCH_BYTES`). Measured on the 2-core box under load: 3 KB ahead gives ~15%
/// on gpt-oss expert GEMVs.
pub fn prefetch_bytes() -> usize {
    static V: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        std::env::var("RMLX_QMM_PREFETCH_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3072)
            / 64
            * 64
    })
}

/// Runs `task(j, n0, n1)` over every job j and chunk [n0, n1) of its N output rows on the
/// spinning pool, or all on the calling thread when the work (weight bytes × activation rows)
/// is too small to pay for a hand-off. Chunks shrink as the call's rows run out (guided
/// scheduling: each a quarter per thread of the rows left over all jobs, multiples of 4 rows,
/// at least 16, never across a job's end): the first are long streams of weight bytes, the
/// last small enough that no thread waits long for the others at the end of the call.
pub fn for_each_task(
    jobs: &[Job],
    n: usize,
    rb: usize,
    task: &(dyn Fn(usize, usize, usize) + Sync),
) {
    let max_rows = jobs.iter().map(|j| j.rows.len()).max().unwrap_or(0);
    let threads = crate::backend::cpu::spin::threads();
    let serial = threads == 1 || jobs.len() * n * rb * max_rows < serial_bytes();
    let mut tasks: Vec<(usize, usize, usize)> = Vec::new();
    let mut left = jobs.len() * n;
    for j in 0..jobs.len() {
        let mut n0 = 0;
        while n0 < n {
            let chunk = if serial {
                n
            } else {
                (left.div_ceil(4 * threads).div_ceil(4) * 4).max(16)
            };
            let n1 = (n0 + chunk).min(n);
            tasks.push((j, n0, n1));
            left -= n1 - n0;
            n0 = n1;
        }
    }
    let run = |i: usize| {
        let (j, n0, n1) = tasks[i];
        task(j, n0, n1);
    };
    if serial {
        (0..tasks.len()).for_each(run);
    } else {
        crate::backend::cpu::spin::parallel_for(tasks.len(), &run);
    }
}
