use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random_logits(n: usize, seed: u64) -> Vec<f32> {
    let mut r = StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.gen_range(-8.0f32..8.0)).collect()
}

fn cands(l: &[f32]) -> Vec<(u32, f32)> {
    l.iter().enumerate().map(|(i, &x)| (i as u32, x)).collect()
}

fn sorted_ids(c: &[(u32, f32)]) -> Vec<u32> {
    let mut v: Vec<u32> = c.iter().map(|x| x.0).collect();
    v.sort_unstable();
    v
}

/// Naive references: full sort, then the textbook definitions.
fn naive_sorted(l: &[f32]) -> Vec<(u32, f32)> {
    let mut c = cands(l);
    c.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    c
}

fn probs(c: &[(u32, f32)]) -> Vec<f64> {
    let m = c.iter().map(|x| x.1).fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = c.iter().map(|x| ((x.1 - m) as f64).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

#[test]
fn top_k_matches_naive() {
    for (n, k) in [
        (1000, 1),
        (1000, 40),
        (200_000, 40),
        (50, 50),
        (50, 0),
        (10, 100),
    ] {
        let l = random_logits(n, n as u64 + k as u64);
        let mut c = cands(&l);
        top_k(&mut c, k);
        let keep = if k == 0 { n } else { k.min(n) };
        let want: Vec<(u32, f32)> = naive_sorted(&l).into_iter().take(keep).collect();
        assert_eq!(sorted_ids(&c), sorted_ids(&want), "n={n} k={k}");
    }
}

#[test]
fn top_p_matches_naive() {
    for (n, p) in [
        (1000, 0.9f32),
        (100_000, 0.95),
        (5000, 0.5),
        (10, 0.999),
        (300, 1e-6),
    ] {
        let l = random_logits(n, n as u64);
        let mut c = cands(&l);
        top_p(&mut c, p);
        let s = naive_sorted(&l);
        let pr = probs(&s);
        let (mut cum, mut keep) = (0.0, s.len());
        for (i, q) in pr.iter().enumerate() {
            cum += q;
            if cum >= p as f64 {
                keep = i + 1;
                break;
            }
        }
        assert_eq!(sorted_ids(&c), sorted_ids(&s[..keep]), "n={n} p={p}");
    }
}

#[test]
fn min_p_matches_naive() {
    let l = random_logits(10_000, 7);
    for mp in [0.0f32, 0.05, 0.5, 1.0] {
        let mut c = cands(&l);
        min_p(&mut c, mp);
        let s = naive_sorted(&l);
        let pr = probs(&s);
        let want: Vec<(u32, f32)> = s
            .iter()
            .zip(&pr)
            .filter(|(_, &q)| mp == 0.0 || q >= mp as f64 * pr[0] * (1.0 - 1e-6))
            .map(|(x, _)| *x)
            .collect();
        assert_eq!(sorted_ids(&c), sorted_ids(&want), "min_p={mp}");
    }
}

#[test]
fn penalties_match_llama_cpp_formula() {
    let l = vec![2.0f32, -1.0, 0.5, 3.0, -2.0];
    let hist = [0u32, 1, 1, 3, 99];
    let cfg = SamplerConfig {
        repetition_penalty: 1.5,
        presence_penalty: 0.25,
        frequency_penalty: 0.5,
        ..SamplerConfig::default()
    };
    let mut c = cands(&l);
    apply_penalties(&mut c, &hist, &cfg, &mut Default::default());
    let want = [
        2.0 / 1.5 - 0.5 - 0.25,
        -1.5 - 2.0 * 0.5 - 0.25, // -1.0 * 1.5, twice seen
        0.5,
        3.0 / 1.5 - 0.5 - 0.25,
        -2.0,
    ];
    for (got, want) in c.iter().zip(want) {
        assert!((got.1 - want).abs() < 1e-6, "{got:?} vs {want}");
    }
    // Greedy sees the penalized logits: a strong repetition penalty hands token 3's lead to 0.
    let mut g = Sampler::new(SamplerConfig {
        repetition_penalty: 10.0,
        ..SamplerConfig::greedy()
    })
    .unwrap();
    assert_eq!(g.sample(&l, &[]).unwrap(), 3);
    assert_eq!(g.sample(&l, &[3]).unwrap(), 0);
}

#[test]
fn same_seed_same_tokens() {
    let l = random_logits(50_000, 3);
    let cfg = SamplerConfig {
        seed: Some(42),
        top_k: 0,
        top_p: 0.9,
        min_p: 0.0,
        ..Default::default()
    };
    let run = || {
        let mut s = Sampler::new(cfg.clone()).unwrap();
        (0..100)
            .map(|_| s.sample(&l, &[]).unwrap())
            .collect::<Vec<_>>()
    };
    let a = run();
    assert_eq!(a, run());
    assert!(a.iter().any(|&t| t != a[0]), "expected varied draws");
    let mut other = Sampler::new(SamplerConfig {
        seed: Some(43),
        ..cfg
    })
    .unwrap();
    let b: Vec<u32> = (0..100).map(|_| other.sample(&l, &[]).unwrap()).collect();
    assert_ne!(a, b);
}

#[test]
fn draws_follow_the_distribution() {
    // Temperature 2 over 6 tokens: observed counts against softmax(l / 2), chi-square test.
    let l = [1.0f32, 2.0, 0.0, -1.0, 3.0, 1.5];
    let cfg = SamplerConfig {
        temperature: 2.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed: Some(7),
        ..Default::default()
    };
    let mut s = Sampler::new(cfg).unwrap();
    let n = 60_000;
    let mut counts = [0usize; 6];
    for _ in 0..n {
        counts[s.sample(&l, &[]).unwrap() as usize] += 1;
    }
    let scaled: Vec<f32> = l.iter().map(|x| x / 2.0).collect();
    let p = probs(&cands(&scaled));
    let chi2: f64 = (0..6)
        .map(|i| {
            let e = p[i] * n as f64;
            (counts[i] as f64 - e).powi(2) / e
        })
        .sum();
    // 5 degrees of freedom: P(chi2 > 20.5) = 0.001.
    assert!(chi2 < 20.5, "chi2 = {chi2}, counts {counts:?}, p {p:?}");
}

#[test]
fn filters_compose_and_bad_input_is_an_error() {
    // top_k=2 then min_p=0.5 relative to the best leaves only the clear winner.
    let l = [0.0f32, 5.0, 4.0, 1.0];
    let cfg = SamplerConfig {
        top_k: 2,
        min_p: 0.5,
        seed: Some(1),
        ..Default::default()
    };
    let mut s = Sampler::new(cfg).unwrap();
    for _ in 0..50 {
        assert_eq!(s.sample(&l, &[]).unwrap(), 1);
    }
    assert!(s.sample(&[], &[]).is_err());
    assert!(s.sample(&[0.0, f32::NAN], &[]).is_err());
    assert!(Sampler::new(SamplerConfig {
        top_p: 0.0,
        ..Default::default()
    })
    .is_err());
    assert!(Sampler::new(SamplerConfig {
        temperature: -1.0,
        ..Default::default()
    })
    .is_err());
    // Degenerate logits do not panic.
    let mut s = Sampler::new(SamplerConfig {
        seed: Some(1),
        ..Default::default()
    })
    .unwrap();
    assert!(s.sample(&[f32::NEG_INFINITY; 4], &[]).is_ok());
    assert_eq!(s.sample(&[0.0, f32::INFINITY, 1.0], &[]).unwrap(), 1);
}
