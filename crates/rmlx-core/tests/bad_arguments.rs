//! The public API with bad arguments: every call returns an error that names the op and
//! what was wrong, never a panic (an app embedding rmlx passes user and model-file values
//! straight through). Data-dependent errors (indices out of range) surface at eval.

use rmlx_core::ops::{sdpa_reference, AttentionMask};
use rmlx_core::primitive::{KvQuant, RopeLayout};
use rmlx_core::quant::{GgmlType, QuantizedWeight};
use rmlx_core::{concat, Array, DType, QuantFormat, Result};

/// `r` is an error whose message contains every one of `want`.
#[track_caller]
fn err<T>(r: Result<T>, want: &[&str]) {
    match r {
        Ok(_) => panic!("expected an error mentioning {want:?}, got Ok"),
        Err(e) => {
            let msg = e.to_string();
            for w in want {
                assert!(msg.contains(w), "error {msg:?} does not mention {w:?}");
            }
        }
    }
}

fn f32s(shape: &[usize]) -> Array {
    let n: usize = shape.iter().product();
    Array::from_vec((0..n).map(|i| i as f32).collect::<Vec<_>>(), shape).unwrap()
}

fn u32s(v: &[u32], shape: &[usize]) -> Array {
    Array::from_slice(v, shape).unwrap()
}

#[test]
fn axes_out_of_range() {
    let x = f32s(&[2, 3]);
    err(x.dim(2), &["dim", "axis 2", "2 dimensions"]);
    err(x.dim(-3), &["dim", "axis -3"]);
    err(Array::scalar(1f32).dim(0), &["dim", "0 dimensions"]);
    assert_eq!(x.dim(-1).unwrap(), 3);
    err(x.swapaxes(0, 5), &["swapaxes", "axis 5"]);
    err(x.slice_axis(7, 0, 1), &["slice_axis", "axis 7"]);
    err(x.expand_dims(4), &["expand_dims", "axis 4"]);
    err(x.squeeze(3), &["squeeze", "axis 3"]);
    err(x.sum(&[2], false), &["axis 2"]);
    err(x.argmax(-5, false), &["axis -5"]);
    err(x.softmax(9), &["axis 9"]);
    err(x.logsumexp(2, true), &["axis 2"]);
    err(x.take(&u32s(&[0], &[1]), 2), &["take", "axis 2"]);
    err(concat(&[x.clone(), x.clone()], 3), &["concat", "axis 3"]);
}

#[test]
fn shape_ops() {
    let x = f32s(&[2, 3]);
    err(x.reshape(&[4, -1]), &["reshape", "[2, 3]"]);
    err(x.reshape(&[-1, -1]), &["reshape", "at most one"]);
    err(x.reshape(&[-2, 3]), &["reshape", "-2"]);
    err(
        x.reshape(&[isize::MAX, isize::MAX]),
        &["reshape", "overflow"],
    );
    err(x.reshape(&[0, -1]), &["reshape"]);
    err(x.transpose(&[0, 0]), &["transpose", "permutation"]);
    err(x.transpose(&[0]), &["transpose", "permutation"]);
    err(x.transpose(&[0, 2]), &["transpose", "permutation"]);
    err(x.slice(&[0], &[1], &[1]), &["slice", "expected 2"]);
    err(x.slice(&[0, 0], &[1, 1], &[1, 0]), &["slice", "step"]);
    err(x.squeeze(0), &["squeeze", "size 2"]);
    err(x.broadcast_to(&[4, 3]), &["broadcast_to"]);
    err(x.broadcast_to(&[3]), &["broadcast_to"]);
    err(concat(&[], 0), &["concat", "at least one"]);
    err(
        concat(&[x.clone(), f32s(&[2, 4])], 0),
        &["concat", "differ"],
    );
    err(concat(&[x.clone(), f32s(&[2, 3, 1])], 0), &["concat"]);
    err(x.add(&f32s(&[4])), &["[2, 3]", "[4]"]);
    err(
        x.slice_update(&f32s(&[2]), &[0, 0]),
        &["slice_update", "rank"],
    );
    err(
        x.slice_update(&f32s(&[2, 2]), &[0, 2]),
        &["slice_update", "does not fit"],
    );
    err(
        x.slice_update(&f32s(&[1, 1]), &[usize::MAX, 0]),
        &["slice_update"],
    );
    err(
        x.take_along_axis(&u32s(&[0, 0], &[2, 1, 1]), 1),
        &["take_along_axis"],
    );
    err(x.take(&f32s(&[1]), 0), &["take", "indices"]);
    err(x.topk_indices(0), &["topk", "found 0"]);
    err(x.topk_indices(4), &["topk", "found 4"]);
    err(Array::scalar(1f32).topk_indices(1), &["topk", "dimension"]);
    err(x.item::<f32>(), &["item", "one element"]);
}

#[test]
fn construction() {
    err(
        Array::from_slice(&[1f32, 2.0], &[3]),
        &["shape [3]", "2 values"],
    );
    // A shape whose element count overflows is not a small array.
    err(
        Array::from_slice::<f32>(&[], &[usize::MAX, 2, 0, 3])
            .and_then(|_| Array::from_slice::<f32>(&[], &[1 << 62, 1 << 62])),
        &["array", "shape"],
    );
    err(Array::zeros(&[usize::MAX, 4], DType::F32), &["host buffer"]);
    err(Array::arange(usize::MAX / 2, DType::F32), &["host buffer"]);
    // A broadcast view is free; computing on it must allocate, and fails cleanly.
    let huge = Array::scalar(1f32)
        .broadcast_to(&[1 << 40, 1 << 40])
        .unwrap();
    err(
        huge.add_scalar(1.0).and_then(|y| y.eval()),
        &["host buffer"],
    );
    err(
        Array::full(&[1 << 40, 1 << 40], 1.0, DType::F16),
        &["host buffer"],
    );
    // A bool tensor holding bytes other than 0/1 (a hostile file) is an error, not a bool.
    let bytes: std::sync::Arc<Vec<u8>> = std::sync::Arc::new(vec![0, 1, 2, 1]);
    let b = Array::from_shared_bytes(bytes.clone(), 0, &[4], DType::Bool).unwrap();
    err(b.to_vec::<u8>(), &["bool", "expected 0 or 1"]);
    err(
        Array::from_shared_bytes(bytes, 2, &[4], DType::Bool),
        &["outside a source of 4 bytes"],
    );
}

#[test]
fn linear_algebra_and_nn() {
    let x = f32s(&[2, 3]);
    err(
        x.matmul(&Array::scalar(1f32)),
        &["matmul", "at least one dimension"],
    );
    err(x.matmul(&f32s(&[4, 2])), &["matmul", "inner"]);
    err(f32s(&[2, 2, 3]).matmul(&f32s(&[3, 3, 2])), &["matmul"]);
    err(x.rms_norm(&f32s(&[2]), 1e-5), &["rms_norm", "[3]"]);
    err(
        Array::scalar(1f32).rms_norm(&f32s(&[1]), 1e-5),
        &["rms_norm"],
    );
    err(
        u32s(&[1, 2, 3], &[3]).rms_norm(&f32s(&[3]), 1e-5),
        &["rms_norm", "u32"],
    );

    let inv = f32s(&[2]);
    let pos = Array::from_slice(&[0i32, 1], &[2]).unwrap();
    let q = f32s(&[1, 2, 2, 4]);
    err(
        f32s(&[4]).rope(RopeLayout::HalfSplit, 4, &inv, 1.0, &pos),
        &["rope", "(…, T, D)"],
    );
    err(
        f32s(&[4]).rope_reference(RopeLayout::HalfSplit, 4, &inv, 1.0, &pos),
        &["axis -2"],
    );
    err(
        q.rope(RopeLayout::HalfSplit, 3, &inv, 1.0, &pos),
        &["rope", "even"],
    );
    err(
        q.rope(RopeLayout::HalfSplit, 8, &inv, 1.0, &pos),
        &["rope", "<= 4"],
    );
    err(
        q.rope(RopeLayout::HalfSplit, 4, &f32s(&[3]), 1.0, &pos),
        &["rope", "inv_freq"],
    );
    err(
        q.rope(RopeLayout::HalfSplit, 4, &inv, 1.0, &f32s(&[2])),
        &["rope", "positions"],
    );

    let mask = AttentionMask::causal(0, 2, None).unwrap();
    let kv = f32s(&[1, 2, 2, 4]);
    err(
        f32s(&[2, 2, 4]).scaled_dot_product_attention(&kv, &kv, 1.0, &mask, None),
        &["sdpa", "4-D"],
    );
    let k3 = f32s(&[1, 3, 2, 4]);
    err(
        q.scaled_dot_product_attention(&k3, &k3, 1.0, &mask, None),
        &["sdpa", "multiple of kv heads"],
    );
    let k0 = f32s(&[1, 0, 2, 4]);
    err(
        q.scaled_dot_product_attention(&k0, &k0, 1.0, &mask, None),
        &["sdpa"],
    );
    let long = AttentionMask::causal(1, 2, None).unwrap();
    err(
        q.scaled_dot_product_attention(&kv, &kv, 1.0, &long, None),
        &["sdpa", "positions"],
    );
    err(
        q.scaled_dot_product_attention(&kv, &kv, 1.0, &mask, Some(&f32s(&[3]))),
        &["sdpa", "sinks"],
    );
    err(
        sdpa_reference(&f32s(&[2]), &kv, &kv, 1.0, &mask, None),
        &["sdpa"],
    );
}

#[test]
fn quantized() {
    // Parts that do not match the format and shape.
    let w = Array::zeros(&[4, 18], DType::U8).unwrap();
    let q4_0 =
        |n, k, parts| QuantizedWeight::new(QuantFormat::Gguf(GgmlType::Q4_0), n, k, None, parts);
    err(
        q4_0(4, 33, vec![w.clone()]),
        &["quantized weight", "Q4_0", "found 33"],
    );
    err(q4_0(5, 32, vec![w.clone()]), &["quantized weight", "shape"]);
    err(q4_0(4, 32, vec![]), &["quantized weight", "parts"]);
    let qw = QuantizedWeight::gguf(GgmlType::Q4_0, 4, 32, w).unwrap();
    err(qw.quantized_matmul(&f32s(&[2, 31])), &["quantized_matmul"]);
    err(
        qw.quantized_matmul(&Array::scalar(1f32)),
        &["quantized_matmul"],
    );
    err(
        qw.gather_qmm(&f32s(&[1, 32]), &u32s(&[0], &[1, 1])),
        &["gather_qmm"],
    );
    // Expert and row indices past the end: errors at eval.
    let ew = Array::zeros(&[3, 4, 18], DType::U8).unwrap();
    let experts =
        QuantizedWeight::new(QuantFormat::Gguf(GgmlType::Q4_0), 4, 32, Some(3), vec![ew]).unwrap();
    let y = experts
        .gather_qmm(&f32s(&[1, 32]), &u32s(&[1, 3], &[1, 2]))
        .unwrap();
    err(y.to_vec::<f32>(), &["gather_qmm", "[0, 3)", "found 3"]);
    let rows = qw.take_rows(&u32s(&[4], &[1])).unwrap();
    err(rows.to_vec::<f32>(), &["quantized_take", "found 4"]);

    // Packed KV specs that do not fit the head dim.
    let x = f32s(&[1, 1, 2, 64]);
    let spec = |bits, group| KvQuant {
        bits,
        group,
        rotate: false,
    };
    err(x.quantize_kv(spec(3, 32)), &["kv quant"]);
    err(x.quantize_kv(spec(4, 24)), &["kv quant", "group"]);
    err(x.quantize_kv(spec(4, 0)), &["kv quant", "group"]);
    err(f32s(&[1, 1, 2, 40]).quantize_kv(spec(8, 32)), &["kv quant"]);
}

#[test]
fn indices_out_of_range_fail_at_eval() {
    let x = f32s(&[3, 2]);
    let bad = x.take(&u32s(&[0, 3], &[2]), 0).unwrap();
    err(bad.to_vec::<f32>(), &["take"]);
    let neg = x
        .take(&Array::from_slice(&[-1i32], &[1]).unwrap(), 0)
        .unwrap();
    err(neg.to_vec::<f32>(), &["take"]);
    let along = x
        .take_along_axis(&u32s(&[0, 2, 1, 0, 0, 1], &[3, 2]), 1)
        .unwrap();
    err(along.to_vec::<f32>(), &["take_along_axis"]);
}
