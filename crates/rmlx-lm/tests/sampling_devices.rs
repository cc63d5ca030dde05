//! The sampler chain reduced on the device where the logits live (`Sampler::sample_array`)
//! draws exactly the tokens the host chain (`Sampler::sample`) draws from the whole row, on
//! every device present, for greedy, penalized, top-k/top-p/min-p and full-vocabulary configs.

use rand::{Rng, SeedableRng};
use rmlx_core::{Array, Device};
use rmlx_lm::{Sampler, SamplerConfig};

fn configs() -> Vec<SamplerConfig> {
    let base = SamplerConfig {
        seed: Some(7),
        ..SamplerConfig::default()
    };
    vec![
        SamplerConfig::greedy(),
        SamplerConfig {
            repetition_penalty: 1.3,
            presence_penalty: 0.5,
            ..SamplerConfig::greedy()
        },
        base.clone(),
        SamplerConfig {
            top_p: 1.0,
            min_p: 0.0,
            top_k: 5,
            ..base.clone()
        },
        SamplerConfig {
            repetition_penalty: 0.7, // < 1 raises seen tokens' logits
            frequency_penalty: -0.4,
            ..base.clone()
        },
        SamplerConfig {
            top_k: 0, // the whole row comes back
            ..base
        },
    ]
}

#[test]
fn device_reduced_sampling_draws_what_the_host_chain_draws() {
    for device in rmlx_core::testing::devices() {
        for (ci, cfg) in configs().into_iter().enumerate() {
            let mut host = Sampler::new(cfg.clone()).unwrap();
            let mut dev = Sampler::new(cfg.clone()).unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(ci as u64);
            let (n, vocab) = (1000, 990); // a padded row: ids past `vocab` are never drawn
            let mut history: Vec<u32> = (0..30).map(|_| rng.gen_range(0..n as u32)).collect();
            for step in 0..40 {
                let logits: Vec<f32> = (0..n).map(|_| rng.gen_range(-6.0f32..6.0)).collect();
                let want = host.sample(&logits[..vocab], &history).unwrap();
                let a = Array::from_slice(&logits, &[1, n])
                    .unwrap()
                    .to_device(device)
                    .unwrap();
                let got = dev.sample_array(&a, vocab, &history).unwrap();
                assert_eq!(got, want, "{device} config {ci} step {step}");
                history.push(got);
            }
        }
    }
}

#[test]
fn a_nan_logit_is_an_error_on_every_device() {
    for device in rmlx_core::testing::devices() {
        let mut v = vec![0.5f32; 64];
        v[40] = f32::NAN;
        let a = Array::from_slice(&v, &[64])
            .unwrap()
            .to_device(device)
            .unwrap();
        for cfg in [SamplerConfig::greedy(), SamplerConfig::default()] {
            let e = Sampler::new(cfg)
                .unwrap()
                .sample_array(&a, 64, &[])
                .unwrap_err();
            assert!(e.to_string().contains("NaN"), "{device}: {e}");
        }
    }
    let _ = Device::Cpu;
}
