//! GEMV/GEMM throughput of the quantized kernels through the public API, in GB/s of packed
//! weight bytes streamed per call (the decode-time roofline metric):
//!
//! `cargo bench -p rmlx-core --bench quantized_matmul [-- SECTION...]`
//!
//! Sections (all by default; an argument runs those whose name contains it):
//! - `throughput`: one weight per shape, hot in cache, GEMV to prefill-sized GEMM;
//! - `stream`: decode GEMVs over more weight bytes than the caches hold (one weight after
//!   another, as a model reads them), MXFP4 at gpt-oss-20b's expert shapes;
//! - `decode_token`: the 121 GEMVs of a SmolLM2-135M decode token as the model runs them
//!   (fused qkv and gate/up), each matrix in its own memory;
//! - `smollm2_unfused`: the 211 unfused GEMVs of the same token.
//!
//! `QB_FILTER=substring` narrows `throughput`/`stream` to matching shapes. On an AVX-512 CPU,
//! `RMLX_QUANT_NO_AVX512=1` runs the AVX2 kernels instead (what most desktops run), and
//! `RMLX_QUANT_SCALAR=1` the portable ones. Timings on a shared or busy machine are void.

use rand::{rngs::StdRng, Rng, SeedableRng};
use rmlx_core::quant::quantize::{quantize_affine, quantize_q4_1, quantize_q8_0};
use rmlx_core::quant::QuantizedWeight;
use rmlx_core::{Array, GgmlType, QuantFormat};
use std::time::Instant;

fn weight(rng: &mut StdRng, f: QuantFormat, n: usize, k: usize) -> (QuantizedWeight, usize) {
    let x: Vec<f32> = (0..n * k).map(|_| rng.gen::<f32>() - 0.5).collect();
    let parts = match f {
        QuantFormat::Gguf(t) => {
            let b = match t {
                GgmlType::Q4_1 => quantize_q4_1(&x),
                GgmlType::Q8_0 => quantize_q8_0(&x),
                // random blocks, every f16 scale field set to a small finite value
                _ => {
                    let offs: &[usize] = if t == GgmlType::Q6_K { &[208] } else { &[0, 2] };
                    let mut b: Vec<u8> = (0..n * t.row_bytes(k).unwrap())
                        .map(|_| rng.gen())
                        .collect();
                    for blk in b.chunks_exact_mut(t.type_size()) {
                        for &o in offs {
                            blk[o..o + 2].copy_from_slice(
                                &half::f16::from_f32(0.01).to_bits().to_le_bytes(),
                            );
                        }
                    }
                    b
                }
            };
            vec![Array::from_vec(b, &[n, t.row_bytes(k).unwrap()]).unwrap()]
        }
        QuantFormat::Affine { bits, group_size } => {
            let (w, s, b) = quantize_affine(&x, k, bits, group_size as usize);
            let g = k / group_size as usize;
            let h = |v: Vec<f32>| v.into_iter().map(half::bf16::from_f32).collect::<Vec<_>>();
            vec![
                Array::from_vec(w, &[n, k * bits as usize / 32]).unwrap(),
                Array::from_vec(h(s), &[n, g]).unwrap(),
                Array::from_vec(h(b), &[n, g]).unwrap(),
            ]
        }
        QuantFormat::Mxfp4 => vec![
            Array::from_vec(
                (0..n * k / 2).map(|_| rng.gen::<u8>()).collect(),
                &[n, k / 32, 16],
            )
            .unwrap(),
            Array::from_vec(vec![127u8; n * k / 32], &[n, k / 32]).unwrap(),
        ],
    };
    let bytes = parts.iter().map(|p| p.nbytes()).sum();
    (QuantizedWeight::new(f, n, k, None, parts).unwrap(), bytes)
}

fn bench(name: &str, f: QuantFormat, n: usize, k: usize, m: usize) {
    // QB_FILTER=substring runs only the matching benches (for profiling one of them).
    if std::env::var("QB_FILTER").is_ok_and(|p| !name.contains(&p)) {
        return;
    }
    let mut rng = StdRng::seed_from_u64(1);
    let (w, bytes) = weight(&mut rng, f, n, k);
    let x: Vec<f32> = (0..m * k).map(|_| rng.gen::<f32>() - 0.5).collect();
    let x = Array::from_slice(&x, &[m, k]).unwrap();
    let iters = (2_000_000_000 / (bytes * m.max(8) / 8).max(1)).clamp(20, 20000);
    let cpu0 = cpu_seconds();
    let mut times = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        w.quantized_matmul(&x).unwrap().eval().unwrap();
        times.push(t.elapsed().as_secs_f64());
    }
    let cpu = (cpu_seconds() - cpu0) / iters as f64;
    times.sort_by(f64::total_cmp);
    let t = times[times.len() / 2];
    println!(
        "{name:<28} {n:>6}x{k:<5} M={m:<4} wall {:>8.1} us {:>6.1} GB/s {:>6.1} GFLOP/s | cpu {:>8.1} us",
        t * 1e6,
        bytes as f64 / t / 1e9,
        2.0 * (m * n * k) as f64 / t / 1e9,
        cpu * 1e6,
    );
}

/// User+system CPU seconds of this process (/proc, 10 ms ticks): on a loaded machine, CPU
/// time per call is what the kernel would take uncontended, summed over its threads.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// gpt-oss decode MoE: x (1, K), 4 of `e` MXFP4 experts (N, K); GB/s of the 4 experts read.
fn bench_gather(name: &str, e: usize, n: usize, k: usize) {
    if std::env::var("QB_FILTER").is_ok_and(|p| !name.contains(&p)) {
        return;
    }
    let mut rng = StdRng::seed_from_u64(2);
    let blocks: Vec<u8> = (0..e * n * k / 2).map(|_| rng.gen()).collect();
    let scales: Vec<u8> = (0..e * n * k / 32)
        .map(|_| rng.gen_range(120..130))
        .collect();
    let parts = vec![
        Array::from_vec(blocks, &[e, n, k / 32, 16]).unwrap(),
        Array::from_vec(scales, &[e, n, k / 32]).unwrap(),
    ];
    let w = QuantizedWeight::new(QuantFormat::Mxfp4, n, k, Some(e), parts).unwrap();
    let x: Vec<f32> = (0..k).map(|_| rng.gen::<f32>() - 0.5).collect();
    let x = Array::from_slice(&x, &[1, k]).unwrap();
    let bytes = 4 * (n * k / 2 + n * k / 32);
    let mut times = Vec::new();
    for it in 0..200u32 {
        // A different set of experts each call, as in decode (no cache reuse across calls).
        let sel: Vec<u32> = (0..4).map(|j| (it * 4 + j) % e as u32).collect();
        let idx = Array::from_slice(&sel, &[1, 4]).unwrap();
        let t = Instant::now();
        w.gather_qmm(&x, &idx).unwrap().eval().unwrap();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let t = times[times.len() / 2];
    println!(
        "{name:<28} {e}x{n}x{k} top4 wall {:>8.1} us {:>6.1} GB/s",
        t * 1e6,
        bytes as f64 / t / 1e9
    );
}

/// Random GGUF blocks with every f16 scale field (at `offs` in each block) small and finite.
fn random_blocks(rng: &mut StdRng, t: GgmlType, n: usize, k: usize, offs: &[usize]) -> Array {
    let rb = t.row_bytes(k).unwrap();
    let mut b: Vec<u8> = (0..n * rb).map(|_| rng.gen()).collect();
    for blk in b.chunks_exact_mut(t.type_size()) {
        for &o in offs {
            let d = half::f16::from_f32(rng.gen::<f32>() * 0.01);
            blk[o..o + 2].copy_from_slice(&d.to_bits().to_le_bytes());
        }
    }
    Array::from_vec(b, &[n, rb]).unwrap()
}

/// Every matmul of one SmolLM2-135M decode step (30 layers of Q4_1 and the Q8_0 tied head,
/// ~98 MB, each weight in its own memory as in the model), in order: `shapes` per layer.
fn smollm2_decode_matmuls(label: &str, shapes: &[(usize, usize)]) {
    let mut rng = StdRng::seed_from_u64(3);
    let (h, f) = (576, 1536);
    let q41 = |rng: &mut StdRng, n, k| {
        let w = random_blocks(rng, GgmlType::Q4_1, n, k, &[0, 2]);
        QuantizedWeight::gguf(GgmlType::Q4_1, n, k, w).unwrap()
    };
    let mut ws = Vec::new();
    for _ in 0..30 {
        for &(n, k) in shapes {
            ws.push(q41(&mut rng, n, k));
        }
    }
    let head = random_blocks(&mut rng, GgmlType::Q8_0, 49152, h, &[0]);
    let head = QuantizedWeight::gguf(GgmlType::Q8_0, 49152, h, head).unwrap();
    let xs: Vec<Array> = [h, f]
        .iter()
        .map(|&k| {
            let v: Vec<f32> = (0..k).map(|_| rng.gen::<f32>() - 0.5).collect();
            Array::from_slice(&v, &[1, k]).unwrap()
        })
        .collect();
    let mut times = Vec::new();
    let cpu0 = cpu_seconds();
    for _ in 0..30 {
        let t = Instant::now();
        for w in &ws {
            let x = if w.k == h { &xs[0] } else { &xs[1] };
            w.quantized_matmul(x).unwrap().eval().unwrap();
        }
        head.quantized_matmul(&xs[0]).unwrap().eval().unwrap();
        times.push(t.elapsed().as_secs_f64());
    }
    let cpu = (cpu_seconds() - cpu0) / 30.0;
    times.sort_by(f64::total_cmp);
    let t = times[times.len() / 2];
    let bytes: usize = ws.iter().chain([&head]).map(|w| w.parts[0].nbytes()).sum();
    println!(
        "SmolLM2-135M decode matmuls ({label}, {} GEMVs, {:.0} MB): {:.2} ms median, {:.2} ms \
         best ({:.0} tok/s ceiling from matmuls alone) | cpu {:.2} ms per token",
        ws.len() + 1,
        bytes as f64 / 1e6,
        t * 1e3,
        times[0] * 1e3,
        1.0 / t,
        cpu * 1e3
    );
}

fn throughput() {
    bench(
        "tiny Q4_1 overhead (64x64)",
        QuantFormat::Gguf(GgmlType::Q4_1),
        64,
        64,
        1,
    );
    bench_gather("mxfp4 gate_up gather", 8, 5760, 2880);
    bench_gather("mxfp4 down gather", 8, 2880, 2880);
    let q41 = QuantFormat::Gguf(GgmlType::Q4_1);
    let q80 = QuantFormat::Gguf(GgmlType::Q8_0);
    let a4 = QuantFormat::Affine {
        bits: 4,
        group_size: 64,
    };
    bench("Q4_1 attn (576x576)", q41, 576, 576, 1);
    bench("Q4_1 ffn up (1536x576)", q41, 1536, 576, 1);
    bench("Q4_1 ffn down (576x1536)", q41, 576, 1536, 1);
    bench("Q8_0 head (49152x576)", q80, 49152, 576, 1);
    bench("Q8_0 L2 (1536x576)", q80, 1536, 576, 1);
    bench("Q4_1 big (49152x576)", q41, 49152, 576, 1);
    bench("Q4_1 M=4 (1536x576)", q41, 1536, 576, 4);
    bench("Q4_1 prefill (1536x576)", q41, 1536, 576, 512);
    bench("affine4 g64 (2880x2880)", a4, 2880, 2880, 1);
    let q4k = QuantFormat::Gguf(GgmlType::Q4_K);
    let q6k = QuantFormat::Gguf(GgmlType::Q6_K);
    bench("Q4_K (1536x2048)", q4k, 1536, 2048, 1);
    bench("Q6_K (1536x2048)", q6k, 1536, 2048, 1);
    bench("mxfp4 (2880x2880)", QuantFormat::Mxfp4, 2880, 2880, 1);
    bench(
        "affine8 g64 (1536x2048)",
        QuantFormat::Affine {
            bits: 8,
            group_size: 64,
        },
        1536,
        2048,
        1,
    );
    bench("Q4_1 prefill (1536x576)", q41, 1536, 576, 128);
    bench("Q4_K prefill (1536x2048)", q4k, 1536, 2048, 128);
    bench("Q8_0 prefill (1536x576)", q80, 1536, 576, 128);
}

/// Decode GEMVs over more bytes than the last-level cache holds: `count` weights of one shape,
/// each in its own memory, multiplied one after the other (a model's weights stream the same
/// way); GB/s of the fastest pass.
fn stream() {
    let mut rng = StdRng::seed_from_u64(16);
    let q41 = QuantFormat::Gguf(GgmlType::Q4_1);
    let q80 = QuantFormat::Gguf(GgmlType::Q8_0);
    for (name, f, n, k) in [
        ("stream Q4_1 gate_up", q41, 3072, 576),
        ("stream Q4_1 down", q41, 576, 1536),
        ("stream Q4_1 o", q41, 576, 576),
        ("stream Q4_1 qkv", q41, 960, 576),
        ("stream Q8_0 gate_up", q80, 3072, 576),
        ("stream Q8_0 head", q80, 49152, 576),
        ("stream mxfp4 gate_up", QuantFormat::Mxfp4, 5760, 2880),
        ("stream mxfp4 down", QuantFormat::Mxfp4, 2880, 2880),
    ] {
        if std::env::var("QB_FILTER").is_ok_and(|p| !name.contains(&p)) {
            continue;
        }
        let (one, bytes) = weight(&mut rng, f, n, k);
        let count = (96 << 20) / bytes + 1;
        let mut ws = vec![one];
        ws.extend((1..count).map(|_| weight(&mut rng, f, n, k).0));
        let x: Vec<f32> = (0..k).map(|_| rng.gen::<f32>() - 0.5).collect();
        let x = Array::from_slice(&x, &[1, k]).unwrap();
        let mut best = f64::INFINITY;
        for _ in 0..10 {
            let t = Instant::now();
            for w in &ws {
                w.quantized_matmul(&x).unwrap().eval().unwrap();
            }
            best = best.min(t.elapsed().as_secs_f64() / count as f64);
        }
        println!(
            "{name:<28} {n:>6}x{k:<5} x{count:<4} {:>8.1} us {:>6.1} GB/s",
            best * 1e6,
            bytes as f64 / best / 1e9
        );
    }
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| name.contains(w.as_str()));
    println!("threads: {}", rayon::current_num_threads());
    if run("throughput") {
        throughput();
    }
    if run("stream") {
        stream();
    }
    let (h, f) = (576, 1536);
    if run("decode_token") {
        smollm2_decode_matmuls(
            "fused qkv, gate/up",
            &[(960, h), (h, h), (2 * f, h), (h, f)],
        );
    }
    if run("smollm2_unfused") {
        let unfused = [(h, h), (192, h), (192, h), (h, h), (f, h), (f, h), (h, f)];
        smollm2_decode_matmuls("unfused", &unfused);
    }
}
