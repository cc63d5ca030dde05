//! MLX affine weights times float activations, as MLX computes them: the activations stay
//! f32 (no 8-bit rounding, which moved logits by ~1% against mlx-lm), and per group of
//! `group_size` elements y += scale·Σ q·x + bias·Σ x. The codes are decoded in registers
//! straight from the packed words and never written out as a dequantized row.
//!
//! `x_rows` converts x once per call and precomputes Σ x per group; `run_into` splits the
//! output rows over tasks like the other kernel families (`tasks.rs`), and each weight row is
//! decoded once per 4, 2 or 1 activation rows. Kernels: AVX2 for 4 and 8 bits (`avx2.rs`),
//! and a portable one (`portable.rs`) for every bit width, also the fallback everywhere.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod portable;
#[cfg(test)]
mod tests;

use super::tasks::{for_each_task, prefetch_bytes};
use super::weights::WeightView;
use super::{Job, OutPtr};
use crate::backend::Arg;
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::quant::{Floats, RowRef};
use half::{bf16, f16};

/// Activation rows per tile (their f32 rows stay in L2 while weight rows stream past).
const XT: usize = 64;
/// Most activation rows per kernel call.
const MAX_C: usize = 4;

/// A scale or bias element as stored: f32, f16 or bf16.
pub trait Scale: Element {
    /// The slice of this type in `f`, if `f` holds this type.
    fn of(f: Floats<'_>) -> Option<&[Self]>;
}

macro_rules! scale {
    ($($t:ty => $v:ident),*) => {$(
        impl Scale for $t {
            fn of(f: Floats<'_>) -> Option<&[$t]> {
                match f {
                    Floats::$v(v) => Some(v),
                    _ => None,
                }
            }
        }
    )*};
}
scale!(f32 => F32, f16 => F16, bf16 => BF16);

/// Activation rows in f32, in the element order the chosen kernel reads.
pub struct FloatRows {
    pub k: usize,
    pub group: usize,
    /// (rows, K), permuted per 16 elements when `Kernel::pairs` says so.
    pub x: Vec<f32>,
    /// (rows, K/group): Σ x over each group (multiplies the group's bias).
    pub sums: Vec<f32>,
}

impl FloatRows {
    pub fn rows(&self) -> usize {
        self.x.len() / self.k.max(1)
    }

    fn row(&self, r: usize) -> (&[f32], &[f32]) {
        let g = self.k / self.group;
        (&self.x[r * self.k..][..self.k], &self.sums[r * g..][..g])
    }
}

/// Which kernel runs a format on this CPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kernel {
    /// AVX2 + FMA, 4 or 8 bits.
    Avx2,
    Portable,
}

impl Kernel {
    pub fn pick(bits: u8) -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if matches!(bits, 4 | 8) && super::avx2::has_avx2() {
            return Kernel::Avx2;
        }
        let _ = bits;
        Kernel::Portable
    }

    /// Whether x is laid out as [even, odd] elements per 16: the order in which the AVX2
    /// kernel unpacks a 4-bit byte's low and high nibbles.
    fn pairs(self, bits: u8) -> bool {
        self == Kernel::Avx2 && bits == 4
    }
}

/// x (…, K) as f32 rows with per-group sums, laid out for `kernel`.
pub fn x_rows(x: &Arg, k: usize, bits: u8, group: usize, kernel: Kernel) -> Result<FloatRows> {
    if k == 0 || group == 0 || !k.is_multiple_of(group) || !group.is_multiple_of(32) {
        return Err(Error::shape(format!(
            "quantized matmul (affine): expected K a multiple of the group size {group} \
             (itself a multiple of 32), found K = {k}"
        )));
    }
    let mut xs = super::super::f32_values(x, "quantized_matmul")?;
    let sums = xs
        .chunks_exact(group)
        .map(|g| g.iter().sum::<f32>())
        .collect();
    if kernel.pairs(bits) {
        for c in xs.chunks_exact_mut(16) {
            let v: [f32; 16] = std::array::from_fn(|i| c[i]);
            for i in 0..8 {
                c[i] = v[2 * i];
                c[8 + i] = v[2 * i + 1];
            }
        }
    }
    Ok(FloatRows {
        k,
        group,
        x: xs,
        sums,
    })
}

/// Activation rows per kernel call for `rem` rows left.
fn width(rem: usize) -> usize {
    match rem {
        1 => 1,
        2 | 3 => 2,
        _ => MAX_C,
    }
}

/// Computes every job's rows against every output feature into `out` ((rows, N) f32, every
/// element written). The caller checked the jobs' indices against x, W and `out`
/// (`check_jobs`) and that x has W's K and group size (`x_rows`).
pub fn run_into(
    kernel: Kernel,
    w: &WeightView,
    x: &FloatRows,
    jobs: &[Job],
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "quantized matmul (affine)";
    if w.n() == 0 || jobs.iter().all(|j| j.rows.is_empty()) {
        return Ok(());
    }
    let RowRef::Affine { scales, biases, .. } = w.row(0, 0) else {
        return Err(Error::msg(format!(
            "{OP}: internal error: a {} weight",
            w.format()
        )));
    };
    // Every row's scales and biases are slices of the same two parts: one dtype for the call.
    match (scales, biases) {
        (Floats::F32(_), Floats::F32(_)) => run_typed::<f32>(kernel, w, x, jobs, out),
        (Floats::F16(_), Floats::F16(_)) => run_typed::<f16>(kernel, w, x, jobs, out),
        (Floats::BF16(_), Floats::BF16(_)) => run_typed::<bf16>(kernel, w, x, jobs, out),
        _ => {
            return Err(Error::dtype(format!(
                "{OP}: expected scales and biases of one dtype"
            )))
        }
    }
    Ok(())
}

/// Row r of expert e, its scales and biases as `S` (the type `run_into` found in the parts).
fn typed_row<'a, S: Scale>(w: &WeightView<'a>, e: usize, r: usize) -> AffineRow<'a, S> {
    let RowRef::Affine {
        bits,
        group,
        w,
        scales,
        biases,
    } = w.row(e, r)
    else {
        unreachable!("run_into checked the format")
    };
    let (Some(scales), Some(biases)) = (S::of(scales), S::of(biases)) else {
        unreachable!("run_into checked the parts' dtype")
    };
    AffineRow {
        bits,
        group,
        w,
        scales,
        biases,
    }
}

/// One kernel call's (x row, output row) pairs and their x rows (values, Σx per group).
type Call<'a> = (&'a [(usize, usize)], Vec<(&'a [f32], &'a [f32])>);

fn run_typed<S: Scale>(
    kernel: Kernel,
    w: &WeightView,
    x: &FloatRows,
    jobs: &[Job],
    out: &mut [f32],
) {
    let n = w.n();
    let ptr = OutPtr(out.as_mut_ptr());
    let pf = prefetch_bytes();
    let rb = typed_row::<S>(w, 0, 0).w.len();
    let task = |j: usize, n0: usize, n1: usize| {
        let job = &jobs[j];
        let mut res = [0f32; MAX_C];
        for xt in job.rows.chunks(XT) {
            // The tile's kernel calls: up to MAX_C (x row, output row) pairs and their x rows.
            let mut calls: Vec<Call> = Vec::new();
            let mut c = 0;
            while c < xt.len() {
                let pairs = &xt[c..c + width(xt.len() - c)];
                calls.push((pairs, pairs.iter().map(|p| x.row(p.0)).collect()));
                c += pairs.len();
            }
            for r in n0..n1 {
                let row = typed_row::<S>(w, job.expert, r);
                for (pairs, xr) in &calls {
                    let res = &mut res[..pairs.len()];
                    dispatch(kernel, &row, xr, res, pf);
                    for (&(_, or), &v) in pairs.iter().zip(res.iter()) {
                        // SAFETY: or < out rows and r < N (`check_jobs`: out holds them
                        // all); this task alone owns columns n0..n1 of its job's rows.
                        unsafe { *{ ptr }.0.add(or * n + r) = v };
                    }
                }
            }
        }
    };
    for_each_task(jobs, n, rb, &task);
}

/// One affine weight row with its group scales and biases.
pub struct AffineRow<'a, S> {
    pub bits: u8,
    pub group: usize,
    pub w: &'a [u8],
    pub scales: &'a [S],
    pub biases: &'a [S],
}

fn dispatch<S: Scale>(
    kernel: Kernel,
    row: &AffineRow<S>,
    xr: &[(&[f32], &[f32])],
    res: &mut [f32],
    pf: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Avx2 {
        return avx2::row_dot(row, xr, res, pf);
    }
    let _ = (kernel, pf);
    portable::row_dot(row, xr, res)
}
