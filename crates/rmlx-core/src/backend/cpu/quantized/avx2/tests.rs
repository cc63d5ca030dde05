//! The AVX2 kernels against the scalar common-form dot, on fresh random data: every fused
//! kind, K with odd block counts and partial unrolls, every tile width, several rows per
//! call; the runner over jobs; the common-form dot with narrow and wide codes.

use super::super::act::{quantize_row, QRows};
use super::super::dot::{dot_scalar, Decoded};
use super::super::test_data::{ggml, gguf_bytes, mxfp4_bytes, row_ref};
use super::super::{weights::Parts, Job};
use super::*;
use crate::backend::Arg;
use crate::quant::{decode_row, GgmlType, QuantFormat, RowRef};
use crate::{Array, DType};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn skip() -> bool {
    if !has_avx2() {
        eprintln!("skipping: no AVX2/FMA/F16C/BMI2 (or RMLX_QUANT_SCALAR set)");
    }
    !has_avx2()
}

/// (bytes, exponents) of `n` random rows of `kind`.
fn weights(rng: &mut StdRng, kind: u8, n: usize, k: usize) -> (Vec<u8>, Vec<u8>) {
    match ggml(kind) {
        Some(t) => (gguf_bytes(rng, t, n, k), vec![]),
        None => mxfp4_bytes(rng, n, k),
    }
}

/// `m` random activation rows; the last has every |q| = 127 (the largest pair sums).
fn activations(rng: &mut StdRng, m: usize, k: usize) -> QRows {
    let mut xq = QRows::new(m, k);
    let g = k / 16;
    for r in 0..m {
        let x: Vec<f32> = (0..k)
            .map(|_| {
                let v = rng.gen::<f32>() * 2.0 - 1.0;
                if r == m - 1 {
                    v.signum()
                } else {
                    v
                }
            })
            .collect();
        let (q, d, sd) = (
            &mut xq.q[r * k..][..k],
            &mut xq.d[r * g..][..g],
            &mut xq.sd[r * g..][..g],
        );
        quantize_row(&x, q, d, sd);
    }
    xq
}

/// The scalar reference: (out, Σ|w·x|) for every weight row r and activation row c. The
/// second bounds the rounding of any summation order (terms can cancel to a small result).
fn reference(kind: u8, b: &[u8], e: &[u8], n: usize, xq: &QRows) -> Vec<Vec<(f32, f32)>> {
    let (k, m) = (xq.k, xq.q.len() / xq.k);
    (0..n)
        .map(|r| {
            let mut dec = Decoded::new(k);
            decode_row(
                row_ref(kind, b, e, r, k),
                &mut dec.u,
                &mut dec.s,
                &mut dec.o,
            )
            .unwrap();
            (0..m)
                .map(|c| (dot_scalar(&dec, &xq.row(c)), magnitude(&dec, &xq.row(c))))
                .collect()
        })
        .collect()
}

fn magnitude(w: &Decoded, x: &super::super::act::XRow) -> f32 {
    (0..w.u.len())
        .map(|i| {
            let g = i / 16;
            ((w.s[g] * w.u[i] as f32 + w.o[g]) * x.d[g] * x.q[i] as f32).abs()
        })
        .sum()
}

fn host_u8(bytes: &[u8], shape: &[usize]) -> Arg {
    let data = Array::from_slice(bytes, shape).unwrap().data().unwrap();
    Arg {
        data,
        shape: shape.to_vec(),
        dtype: DType::U8,
    }
}

/// Within 1e-4 relative of the reference, or 1e-6 of the terms' magnitude when they cancel.
fn close(got: f32, (want, mag): (f32, f32)) -> bool {
    (got - want).abs() <= 1e-4 * want.abs().max(1.0) + 1e-6 * mag
}

/// Activation row groups of every kernel width (scattered rows, repeats, the ±1 row).
const GROUPS: [&[usize]; 4] = [&[8], &[1, 3], &[5, 0, 8, 2], &[0, 1, 2, 3, 4, 5, 6, 7]];

/// Each group of `GROUPS` against 4 weight rows: out[g][r·C + c].
///
/// # Safety
/// As `tile`: AVX2, FMA, F16C present; 4 rows of `rb` bytes of `KIND` at `w`, `x` packed
/// from `GROUPS` for `KIND`.
unsafe fn tiles_of<const KIND: u8>(w: WRow, rb: usize, x: &XPack) -> Vec<Vec<f32>> {
    let mut out: Vec<Vec<f32>> = GROUPS.iter().map(|g| vec![0f32; 4 * g.len()]).collect();
    tile::<KIND, 1>(w, rb, 4, x.tile(0), &mut out[0], 2 * rb);
    tile::<KIND, 2>(w, rb, 4, x.tile(1), &mut out[1], 2 * rb);
    tile::<KIND, 4>(w, rb, 4, x.tile(2), &mut out[2], 2 * rb);
    tile::<KIND, 8>(w, rb, 4, x.tile(3), &mut out[3], 2 * rb);
    out
}

#[test]
fn avx2_tiles_match_scalar() {
    if skip() {
        return;
    }
    let mut rng = StdRng::seed_from_u64(11);
    for kind in [Q4_0, Q4_1, Q8_0, MXFP4, Q4_K, Q6_K] {
        let ks: &[usize] = if kind == Q4_K || kind == Q6_K {
            &[256, 512, 768, 2304]
        } else {
            &[32, 64, 96, 128, 160, 256, 288, 576, 1056, 2880]
        };
        for &k in ks {
            let (n, m) = (4, 9);
            let (b, e) = weights(&mut rng, kind, n, k);
            let xq = activations(&mut rng, m, k);
            let want = reference(kind, &b, &e, n, &xq);
            let x = XPack::new(&xq, GROUPS, kind);
            let rb = match row_ref(kind, &b, &e, 0, k) {
                RowRef::Gguf(_, bytes) => bytes.len(),
                _ => k / 2,
            };
            let w = WRow {
                p: b.as_ptr(),
                s: e.as_ptr(),
            };
            // SAFETY: features checked; 4 rows of `rb` bytes (k/32 exponents each), x rows < m.
            let got = unsafe {
                match kind {
                    Q4_0 => tiles_of::<Q4_0>(w, rb, &x),
                    Q4_1 => tiles_of::<Q4_1>(w, rb, &x),
                    Q8_0 => tiles_of::<Q8_0>(w, rb, &x),
                    Q4_K => tiles_of::<Q4_K>(w, rb, &x),
                    Q6_K => tiles_of::<Q6_K>(w, rb, &x),
                    _ => tiles_of::<MXFP4>(w, rb, &x),
                }
            };
            for (xr, out) in GROUPS.iter().zip(got) {
                for r in 0..4 {
                    for (c, &xc) in xr.iter().enumerate() {
                        let (g, wv) = (out[r * xr.len() + c], want[r][xc]);
                        assert!(
                            close(g, wv),
                            "kind {kind} k {k} C {} ({r},{xc}): {g} vs {wv:?}",
                            xr.len()
                        );
                    }
                }
            }
        }
    }
}

/// The runner: tasks over chunks of N, tiles of every width, jobs with scattered rows.
#[test]
fn avx2_run_matches_scalar() {
    if skip() {
        return;
    }
    let mut rng = StdRng::seed_from_u64(12);
    for kind in [Q4_1, Q8_0, MXFP4, Q6_K] {
        let (n, k, m) = (37, 512, 75);
        let (b, e) = weights(&mut rng, kind, n, k);
        let xq = activations(&mut rng, m, k);
        let want = reference(kind, &b, &e, n, &xq);
        let (format, args) = match ggml(kind) {
            Some(t) => (QuantFormat::Gguf(t), vec![host_u8(&b, &[n, b.len() / n])]),
            None => (
                QuantFormat::Mxfp4,
                vec![host_u8(&b, &[n, k / 2]), host_u8(&e, &[n, k / 32])],
            ),
        };
        let parts = Parts::new(format, k, &args).unwrap();
        let w = parts.view(n).unwrap();
        // Two jobs: x rows reversed into the first 40 outputs, every third row after.
        let jobs = [
            Job {
                expert: 0,
                rows: (0..40).map(|o| (m - 1 - o, o)).collect(),
            },
            Job {
                expert: 0,
                rows: (40..m).map(|o| ((o * 3) % m, o)).collect(),
            },
        ];
        let out = run(kind, &w, &xq, &jobs, m);
        for job in &jobs {
            for &(xr, or) in &job.rows {
                for r in 0..n {
                    let (g, wv) = (out[or * n + r], want[r][xr]);
                    assert!(close(g, wv), "kind {kind} ({or},{r}): {g} vs {wv:?}");
                }
            }
        }
    }
}

/// Random common-form rows (codes below 128, or any for `wide`) against the scalar dot,
/// including K ≡ 16 (mod 32).
#[test]
fn avx2_common_dot_matches_scalar() {
    if skip() {
        return;
    }
    let mut rng = StdRng::seed_from_u64(13);
    for wide in [false, true] {
        for k in [16, 32, 48, 96, 160, 1056] {
            let mut dec = Decoded::new(k);
            for u in dec.u.iter_mut() {
                *u = if wide {
                    rng.gen()
                } else {
                    rng.gen_range(0..128)
                };
            }
            for (s, o) in dec.s.iter_mut().zip(dec.o.iter_mut()) {
                *s = rng.gen::<f32>() * 0.01;
                *o = (rng.gen::<f32>() - 0.5) * 0.5;
            }
            let xq = activations(&mut rng, 2, k);
            for c in 0..2 {
                let want = (dot_scalar(&dec, &xq.row(c)), magnitude(&dec, &xq.row(c)));
                let got = if wide {
                    dot::dot::<true>(&dec, &xq.row(c))
                } else {
                    dot::dot::<false>(&dec, &xq.row(c))
                };
                assert!(
                    close(got, want),
                    "wide {wide} k {k} row {c}: {got} vs {want:?}"
                );
            }
        }
    }
}

/// Formats said to have narrow codes decode random rows to codes below 128.
#[test]
fn narrow_codes_hold() {
    let mut rng = StdRng::seed_from_u64(14);
    use GgmlType::*;
    let k = 512;
    for t in [
        Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
    ] {
        let b = gguf_bytes(&mut rng, t, 1, k);
        let mut dec = Decoded::new(k);
        decode_row(RowRef::Gguf(t, &b), &mut dec.u, &mut dec.s, &mut dec.o).unwrap();
        let max = *dec.u.iter().max().unwrap();
        assert!(
            !dot::narrow_codes(QuantFormat::Gguf(t)) || max < 128,
            "{t:?}: code {max}"
        );
    }
    let (b, e) = weights(&mut rng, super::MXFP4, 1, k);
    let mut dec = Decoded::new(k);
    decode_row(
        row_ref(super::MXFP4, &b, &e, 0, k),
        &mut dec.u,
        &mut dec.s,
        &mut dec.o,
    )
    .unwrap();
    assert!(dot::narrow_codes(QuantFormat::Mxfp4) && *dec.u.iter().max().unwrap() < 128);
    for bits in [2u8, 3, 4, 5, 6, 8] {
        let f = QuantFormat::Affine {
            bits,
            group_size: 32,
        };
        assert_eq!(dot::narrow_codes(f), bits < 8, "affine {bits}");
    }
}
