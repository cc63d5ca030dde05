//! Gather/scatter kernels (concat, slice_update, take, take_along_axis) on every GPU present
//! against the CPU backend: strided inputs, every element size, both index types, and
//! slice_update's in-place (donated) and copying paths.

use rand::{Rng, SeedableRng};
use rmlx_core::concat;
use rmlx_core::testing::{gpus, uniform as random};
use rmlx_core::{Array, DType, Device};

fn indices(shape: &[usize], seed: u64, bound: u32, dtype: DType) -> Array {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<u32> = (0..n).map(|_| rng.gen_range(0..bound)).collect();
    Array::from_slice(&v, shape).unwrap().astype(dtype).unwrap()
}

fn on(a: &Array, d: Device) -> Array {
    a.to_device(d).unwrap()
}

fn same(gpu: &Array, cpu: &Array, what: &str) {
    assert_eq!(gpu.shape(), cpu.shape(), "{what}: shape");
    assert_eq!(gpu.dtype(), cpu.dtype(), "{what}: dtype");
    let g = gpu.to_vec::<f32>().unwrap();
    let c = cpu.to_vec::<f32>().unwrap();
    assert!(g == c, "{what}: values differ");
}

const DTYPES: [DType; 4] = [DType::F32, DType::BF16, DType::U8, DType::I32];

#[test]
fn concat_matches_the_cpu() {
    for d in gpus() {
        for dtype in DTYPES {
            let a = random(&[4, 5, 6], 1, 0.0, 100.0).astype(dtype).unwrap();
            let b = random(&[6, 5, 4], 2, 0.0, 100.0).astype(dtype).unwrap();
            let c = random(&[4, 5, 6], 3, 0.0, 100.0).astype(dtype).unwrap();
            for axis in 0..3isize {
                // b transposed is (4, 5, 6): a strided input. Slice to vary the axis sizes.
                let mut stop = vec![4, 5, 6];
                stop[axis as usize] = 3;
                let parts = |x: &Array, y: &Array, z: &Array| {
                    vec![
                        x.clone(),
                        y.transpose(&[2, 1, 0]).unwrap(),
                        z.slice(&[0, 0, 0], &stop, &[1, 1, 1]).unwrap(),
                    ]
                };
                let cpu = concat(&parts(&a, &b, &c), axis).unwrap();
                let gpu = concat(&parts(&on(&a, d), &on(&b, d), &on(&c, d)), axis).unwrap();
                same(&gpu, &cpu, &format!("concat {dtype} axis {axis}"));
            }
        }
        // An empty part.
        let a = random(&[3, 4], 4, 0.0, 1.0);
        let e = Array::zeros(&[3, 0], DType::F32).unwrap();
        same(
            &concat(&[on(&a, d), on(&e, d), on(&a, d)], 1).unwrap(),
            &concat(&[a.clone(), e.clone(), a.clone()], 1).unwrap(),
            "concat with an empty part",
        );
    }
}

#[test]
fn take_and_take_along_axis_match_the_cpu() {
    for d in gpus() {
        for dtype in DTYPES {
            for it in [DType::U32, DType::I32] {
                let x = random(&[37, 9, 5], 5, 0.0, 100.0).astype(dtype).unwrap();
                // Embedding lookup: axis 0, a 2-D index.
                let idx = indices(&[3, 7], 6, 37, it);
                same(
                    &on(&x, d).take(&on(&idx, d), 0).unwrap(),
                    &x.take(&idx, 0).unwrap(),
                    &format!("take axis 0 {dtype} {it}"),
                );
                // Middle and last axes, a transposed source.
                let xt = x.transpose(&[2, 1, 0]).unwrap(); // (5, 9, 37)
                let xg = on(&x, d).transpose(&[2, 1, 0]).unwrap();
                for (axis, bound) in [(1isize, 9u32), (2, 37)] {
                    let idx = indices(&[11], 7, bound, it);
                    same(
                        &xg.take(&on(&idx, d), axis).unwrap(),
                        &xt.take(&idx, axis).unwrap(),
                        &format!("take axis {axis} {dtype} {it}"),
                    );
                    let mut ishape = vec![5, 9, 37];
                    ishape[axis as usize] = 4;
                    let idx = indices(&ishape, 8, bound, it);
                    same(
                        &xg.take_along_axis(&on(&idx, d), axis).unwrap(),
                        &xt.take_along_axis(&idx, axis).unwrap(),
                        &format!("take_along_axis {axis} {dtype} {it}"),
                    );
                }
                let idx = indices(&[37, 9, 2], 9, 5, it);
                same(
                    &on(&x, d).take_along_axis(&on(&idx, d), 2).unwrap(),
                    &x.take_along_axis(&idx, 2).unwrap(),
                    &format!("take_along_axis last {dtype} {it}"),
                );
            }
        }
        // Gather of the top-k values (the MoE router pattern).
        let x = random(&[6, 64], 10, -1.0, 1.0);
        let k = x.topk_indices(8).unwrap();
        same(
            &on(&x, d)
                .take_along_axis(&on(&x, d).topk_indices(8).unwrap(), 1)
                .unwrap(),
            &x.take_along_axis(&k, 1).unwrap(),
            "take_along_axis of topk",
        );
    }
}

/// The Arc behind an evaluated array's buffer, as an address (equal iff the same buffer).
fn buffer_id(a: &Array) -> usize {
    std::sync::Arc::as_ptr(&a.data().unwrap().buffer) as *const u8 as usize
}

#[test]
fn slice_update_in_place_when_donated_and_copies_otherwise() {
    for d in gpus() {
        for dtype in [DType::F32, DType::BF16, DType::U8] {
            let upd = random(&[1, 2, 3, 4], 11, 0.0, 50.0).astype(dtype).unwrap();
            let upd2 = random(&[1, 3, 3, 4], 12, 0.0, 50.0).astype(dtype).unwrap();
            let zeros = Array::zeros(&[1, 3, 8, 4], dtype).unwrap();
            // A KV-cache append: the first update may copy (`zeros` is still held), the second
            // must reuse the buffer once nothing else holds it.
            let cache = on(&zeros, d)
                .slice_update(&on(&upd, d), &[0, 1, 5, 0])
                .unwrap();
            cache.eval().unwrap();
            let id = buffer_id(&cache);
            let cache2 = cache.slice_update(&on(&upd2, d), &[0, 0, 2, 0]).unwrap();
            drop(cache);
            cache2.eval().unwrap();
            let cpu = zeros
                .slice_update(&upd, &[0, 1, 5, 0])
                .unwrap()
                .slice_update(&upd2, &[0, 0, 2, 0])
                .unwrap();
            same(&cache2, &cpu, &format!("donated slice_update {dtype}"));
            assert_eq!(
                buffer_id(&cache2),
                id,
                "slice_update {dtype} on {d} was not in place"
            );

            // Not donated: the original stays as it was.
            let base = on(
                &random(&[1, 3, 8, 4], 13, 0.0, 50.0).astype(dtype).unwrap(),
                d,
            );
            base.eval().unwrap();
            let before = base.to_vec::<f32>().unwrap();
            let upd_t = on(&upd, d).transpose(&[0, 1, 2, 3]).unwrap();
            let out = base.slice_update(&upd_t, &[0, 0, 0, 0]).unwrap();
            out.eval().unwrap();
            assert_eq!(
                base.to_vec::<f32>().unwrap(),
                before,
                "{dtype}: dst changed"
            );
            let cpu = Array::from_slice(&before, &[1, 3, 8, 4])
                .unwrap()
                .astype(dtype)
                .unwrap()
                .slice_update(&upd, &[0, 0, 0, 0])
                .unwrap();
            same(&out, &cpu, &format!("copying slice_update {dtype}"));
            // A strided source and a strided destination view.
            let src = on(
                &random(&[4, 3, 1, 1], 14, 0.0, 50.0).astype(dtype).unwrap(),
                d,
            )
            .transpose(&[3, 1, 2, 0])
            .unwrap();
            let dst = base
                .slice(&[0, 0, 0, 0], &[1, 3, 8, 4], &[1, 1, 2, 1])
                .unwrap();
            let cpu_src = src.to_device(Device::Cpu).unwrap();
            let cpu_dst = dst.to_device(Device::Cpu).unwrap();
            same(
                &dst.slice_update(&src, &[0, 0, 3, 0]).unwrap(),
                &cpu_dst.slice_update(&cpu_src, &[0, 0, 3, 0]).unwrap(),
                &format!("strided slice_update {dtype}"),
            );
        }
    }
}
