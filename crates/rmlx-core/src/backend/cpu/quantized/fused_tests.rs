//! The fused tiles against the scalar common-form dot, on fresh random data: every kind,
//! K with and without a partial last step, every tile width.

use super::act::QRows;
use super::dot::{dot_scalar, Decoded};
use super::fused::{self, WRow, MXFP4, Q4_0, Q4_1, Q4_K, Q6_K, Q8_0};
use super::test_data::{ggml, gguf_bytes, mxfp4_bytes, row_ref};
use super::xlanes::XLanes;
use crate::quant::quantize::{quantize_q4_0, quantize_q4_1, quantize_q8_0};
use crate::quant::{decode_row, RowRef};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// (row bytes of a row, exponents of a row) for `n` random rows of `kind`.
fn weights(rng: &mut StdRng, kind: u8, n: usize, k: usize) -> (Vec<u8>, Vec<u8>) {
    let w: Vec<f32> = (0..n * k).map(|_| rng.gen::<f32>() * 2.0 - 1.0).collect();
    match kind {
        Q4_0 => (quantize_q4_0(&w), vec![]),
        Q4_1 => (quantize_q4_1(&w), vec![]),
        Q8_0 => (quantize_q8_0(&w), vec![]),
        Q4_K | Q6_K => (gguf_bytes(rng, ggml(kind).expect("k-quant"), n, k), vec![]),
        _ => mxfp4_bytes(rng, n, k),
    }
}

#[test]
fn fused_tiles_match_scalar() {
    if !super::simd::has_avx512_vnni() {
        eprintln!("skipping: no AVX-512 VNNI (or RMLX_QUANT_SCALAR set)");
        return;
    }
    let mut rng = StdRng::seed_from_u64(7);
    for kind in [Q4_0, Q4_1, Q8_0, MXFP4, Q4_K, Q6_K] {
        let ks: &[usize] = if kind == Q4_K || kind == Q6_K {
            &[256, 512, 768]
        } else {
            &[32, 64, 96, 128, 160, 576, 1056]
        };
        for &k in ks {
            let (n, m) = (4, 5);
            let (b, e) = weights(&mut rng, kind, n, k);
            let x: Vec<f32> = (0..m * k).map(|_| rng.gen::<f32>() * 2.0 - 1.0).collect();
            let mut xq = QRows::new(m, k);
            for r in 0..m {
                let g = k / 16;
                super::act::quantize_row(
                    &x[r * k..][..k],
                    &mut xq.q[r * k..][..k],
                    &mut xq.d[r * g..][..g],
                    &mut xq.sd[r * g..][..g],
                );
            }
            let mut want = [[0f32; 5]; 4];
            let mut rb = 0;
            let mut wr = [WRow {
                p: std::ptr::null(),
                s: std::ptr::null(),
            }; 4];
            for (r, wrow) in wr.iter_mut().enumerate() {
                let row = row_ref(kind, &b, &e, r, k);
                let mut dec = Decoded::new(k);
                decode_row(row, &mut dec.u, &mut dec.s, &mut dec.o).unwrap();
                for (c, wv) in want[r].iter_mut().enumerate() {
                    *wv = dot_scalar(&dec, &xq.row(c));
                }
                (*wrow, rb) = match row {
                    RowRef::Gguf(_, bytes) => (
                        WRow {
                            p: bytes.as_ptr(),
                            s: std::ptr::null(),
                        },
                        bytes.len(),
                    ),
                    RowRef::Mxfp4 { blocks, scales } => (
                        WRow {
                            p: blocks.as_ptr(),
                            s: scales.as_ptr(),
                        },
                        blocks.len(),
                    ),
                    _ => unreachable!(),
                };
            }
            let (layout, offset) = fused::x_layout(kind);
            let xl = XLanes::new(&xq, m, layout, offset);
            let check = |r: usize, c: usize, got: f32| {
                let w = want[r][c];
                let tol = 1e-4 * w.abs().max(1.0);
                assert!(
                    (got - w).abs() < tol,
                    "kind {kind} k {k} ({r},{c}): {got} vs {w}"
                );
            };
            // SAFETY: features checked above; rows are `rb` bytes, x rows < m.
            unsafe {
                let mut o1 = [[0f32; 1]; 4];
                let mut o2 = [[0f32; 2]; 4];
                let mut o4 = [[0f32; 4]; 4];
                let mut o8 = [[0f32; 8]; 4];
                let x8 = [4, 0, 1, 2, 3, 4, 1, 0];
                match kind {
                    Q4_0 => {
                        fused::tile::<Q4_0, 1>(&wr, rb, &xl, &[4], &mut o1, 4 * rb);
                        fused::tile::<Q4_0, 2>(&wr, rb, &xl, &[1, 3], &mut o2, 4 * rb);
                        fused::tile::<Q4_0, 4>(&wr, rb, &xl, &[0, 1, 2, 3], &mut o4, 4 * rb);
                        fused::tile::<Q4_0, 8>(&wr, rb, &xl, &x8, &mut o8, 4 * rb);
                    }
                    Q4_1 => {
                        fused::tile::<Q4_1, 1>(&wr, rb, &xl, &[4], &mut o1, 4 * rb);
                        fused::tile::<Q4_1, 2>(&wr, rb, &xl, &[1, 3], &mut o2, 4 * rb);
                        fused::tile::<Q4_1, 4>(&wr, rb, &xl, &[0, 1, 2, 3], &mut o4, 4 * rb);
                        fused::tile::<Q4_1, 8>(&wr, rb, &xl, &x8, &mut o8, 4 * rb);
                    }
                    Q8_0 => {
                        fused::tile::<Q8_0, 1>(&wr, rb, &xl, &[4], &mut o1, 4 * rb);
                        fused::tile::<Q8_0, 2>(&wr, rb, &xl, &[1, 3], &mut o2, 4 * rb);
                        fused::tile::<Q8_0, 4>(&wr, rb, &xl, &[0, 1, 2, 3], &mut o4, 4 * rb);
                        fused::tile::<Q8_0, 8>(&wr, rb, &xl, &x8, &mut o8, 4 * rb);
                    }
                    Q4_K => {
                        fused::tile::<Q4_K, 1>(&wr, rb, &xl, &[4], &mut o1, 4 * rb);
                        fused::tile::<Q4_K, 2>(&wr, rb, &xl, &[1, 3], &mut o2, 4 * rb);
                        fused::tile::<Q4_K, 4>(&wr, rb, &xl, &[0, 1, 2, 3], &mut o4, 4 * rb);
                        fused::tile::<Q4_K, 8>(&wr, rb, &xl, &x8, &mut o8, 4 * rb);
                    }
                    Q6_K => {
                        fused::tile::<Q6_K, 1>(&wr, rb, &xl, &[4], &mut o1, 4 * rb);
                        fused::tile::<Q6_K, 2>(&wr, rb, &xl, &[1, 3], &mut o2, 4 * rb);
                        fused::tile::<Q6_K, 4>(&wr, rb, &xl, &[0, 1, 2, 3], &mut o4, 4 * rb);
                        fused::tile::<Q6_K, 8>(&wr, rb, &xl, &x8, &mut o8, 4 * rb);
                    }
                    _ => {
                        fused::tile::<MXFP4, 1>(&wr, rb, &xl, &[4], &mut o1, 4 * rb);
                        fused::tile::<MXFP4, 2>(&wr, rb, &xl, &[1, 3], &mut o2, 4 * rb);
                        fused::tile::<MXFP4, 4>(&wr, rb, &xl, &[0, 1, 2, 3], &mut o4, 4 * rb);
                        fused::tile::<MXFP4, 8>(&wr, rb, &xl, &x8, &mut o8, 4 * rb);
                    }
                }
                for r in 0..4 {
                    check(r, 4, o1[r][0]);
                    check(r, 1, o2[r][0]);
                    check(r, 3, o2[r][1]);
                    for (c, &v) in o4[r].iter().enumerate() {
                        check(r, c, v);
                    }
                    for (&c, &v) in x8.iter().zip(&o8[r]) {
                        check(r, c, v);
                    }
                }
            }
        }
    }
}
