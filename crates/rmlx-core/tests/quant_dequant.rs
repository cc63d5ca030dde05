//! Reference dequantization against fixtures from independent implementations
//! (scripts/reference/quant_fixtures.py: the `gguf` package, numpy mirrors of transformers'
//! MXFP4 conversion and MLX's affine unpacking). GGUF and MXFP4 must match exactly; affine to
//! f32 rounding (numpy rounds s·q and +b separately, we round once).

use rmlx_core::quant::QuantizedWeight;
use rmlx_core::{Array, DType, GgmlType, QuantFormat};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quant")
}

fn read(name: &str, ext: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{name}.{ext}"))).expect("fixture file")
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn u32s(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn gguf_type(name: &str) -> GgmlType {
    (0..40)
        .filter_map(|id| GgmlType::from_id(id).ok())
        .find(|t| t.name() == name)
        .expect("type")
}

/// A fixture case as a weight; returns (weight, expected, exact).
fn load(line: &str) -> (String, QuantizedWeight, Vec<f32>, bool) {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (name, fmt, n, k) = (
        f[0],
        f[1],
        f[2].parse::<usize>().unwrap(),
        f[3].parse::<usize>().unwrap(),
    );
    let spec: Vec<&str> = fmt.split(':').collect();
    let (w, exact) = match spec[0] {
        "gguf" => {
            let t = gguf_type(spec[1]);
            let b = read(name, "p0");
            let rb = b.len() / n;
            (
                QuantizedWeight::gguf(t, n, k, Array::from_vec(b, &[n, rb]).unwrap()).unwrap(),
                true,
            )
        }
        "mxfp4" => {
            let blocks = Array::from_vec(read(name, "p0"), &[n, k / 32, 16]).unwrap();
            let scales = Array::from_vec(read(name, "p1"), &[n, k / 32]).unwrap();
            (
                QuantizedWeight::new(QuantFormat::Mxfp4, n, k, None, vec![blocks, scales]).unwrap(),
                true,
            )
        }
        "affine" => {
            let (bits, gs): (u8, u16) = (spec[1].parse().unwrap(), spec[2].parse().unwrap());
            let wq =
                Array::from_vec(u32s(&read(name, "p0")), &[n, k * bits as usize / 32]).unwrap();
            let g = k / gs as usize;
            let s = Array::from_vec(f32s(&read(name, "p1")), &[n, g]).unwrap();
            let b = Array::from_vec(f32s(&read(name, "p2")), &[n, g]).unwrap();
            let f = QuantFormat::Affine {
                bits,
                group_size: gs,
            };
            (
                QuantizedWeight::new(f, n, k, None, vec![wq, s, b]).unwrap(),
                false,
            )
        }
        other => panic!("unknown fixture format {other}"),
    };
    (name.to_string(), w, f32s(&read(name, "f32")), exact)
}

#[test]
fn dequantize_matches_independent_references() {
    let cases = std::fs::read_to_string(dir().join("cases.txt")).unwrap();
    let mut seen = 0;
    for line in cases.lines().filter(|l| !l.trim().is_empty()) {
        let (name, w, expected, exact) = load(line);
        let got = w.dequantize().unwrap();
        assert_eq!(got.shape(), &[w.n, w.k], "{name}");
        assert_eq!(got.dtype(), DType::F32);
        let got = got.to_vec::<f32>().unwrap();
        let scale = expected.iter().fold(0f32, |a, v| a.max(v.abs()));
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            let ok = if exact {
                g == e
            } else {
                (g - e).abs() <= 2e-7 * scale.max(1e-30)
            };
            assert!(ok, "{name}: element {i}: got {g}, expected {e}");
        }
        seen += 1;
    }
    assert!(seen >= 18, "expected the fixture cases, found {seen}");
}

#[test]
fn take_rows_gives_the_dequantized_rows() {
    let cases = std::fs::read_to_string(dir().join("cases.txt")).unwrap();
    for line in cases
        .lines()
        .filter(|l| l.contains("gguf:Q4_K") || l.contains("affine:6"))
    {
        let (name, w, expected, _) = load(line);
        let idx = Array::from_vec(vec![2i32, 0, 2], &[3]).unwrap();
        let rows = w.take_rows_as(&idx, DType::F32).unwrap();
        assert_eq!(rows.shape(), &[3, w.k]);
        let rows = rows.to_vec::<f32>().unwrap();
        let all = w.dequantize().unwrap().to_vec::<f32>().unwrap();
        for (o, r) in [2usize, 0, 2].iter().enumerate() {
            assert_eq!(
                &rows[o * w.k..(o + 1) * w.k],
                &all[r * w.k..(r + 1) * w.k],
                "{name}"
            );
        }
        assert!(!expected.is_empty());
        let bad = Array::from_vec(vec![3u32], &[1]).unwrap();
        assert!(
            w.take_rows(&bad).unwrap().eval().is_err(),
            "{name}: out-of-range row"
        );
    }
}
