//! Log-probabilities of generated tokens: the log-softmax of the model's logits at each step
//! (checked against one teacher-forced pass over prompt + reply, reduced on the host in f64),
//! the same through `Engine::generate` and through the batching worker.

#[path = "support/tiny_chat.rs"]
mod tiny_chat;

use rmlx_lm::{
    Engine, Event, GenerateOptions, Logits, Prompt, SamplerConfig, SubmitError, TokenLogprob,
    Worker, WorkerOptions,
};

fn opts(top: usize, sampler: SamplerConfig) -> GenerateOptions {
    GenerateOptions {
        max_tokens: Some(6),
        sampler,
        logprobs: Some(top),
        ..GenerateOptions::default()
    }
}

/// log-softmax of every row of `logits` (rows × vocab), in f64.
fn log_softmax(logits: &[f32], vocab: usize) -> Vec<Vec<f64>> {
    logits
        .chunks(vocab)
        .map(|row| {
            let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let lse = max
                + row
                    .iter()
                    .map(|&l| (l as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            row.iter().map(|&l| l as f64 - lse).collect()
        })
        .collect()
}

/// Every reported value against the teacher-forced reference.
fn check(engine: &Engine, prompt: &[u32], tokens: &[u32], got: &[TokenLogprob], top: usize) {
    assert_eq!(got.len(), tokens.len(), "one entry per generated token");
    let mut all = prompt.to_vec();
    all.extend(tokens);
    let m = &engine.model;
    let mut cache = m.make_cache();
    let logits = m.forward(&all, &mut cache, Logits::All).unwrap();
    let vocab = m.info().vocab_size;
    let rows = log_softmax(&logits.to_vec::<f32>().unwrap(), vocab);
    for (i, (lp, &id)) in got.iter().zip(tokens).enumerate() {
        let want = &rows[prompt.len() - 1 + i];
        assert_eq!(lp.chosen.id, id);
        assert!(
            (lp.chosen.logprob as f64 - want[id as usize]).abs() < 1e-4,
            "step {i}"
        );
        let mut order: Vec<usize> = (0..vocab).collect();
        order.sort_by(|&a, &b| want[b].total_cmp(&want[a]));
        assert_eq!(lp.top.len(), top);
        for (t, &w) in lp.top.iter().zip(&order) {
            assert_eq!(t.id as usize, w, "step {i}: top ids largest first");
            assert!((t.logprob as f64 - want[w]).abs() < 1e-4, "step {i}");
        }
        let text = engine.tokenizer.decode(&[id], false).unwrap();
        assert_eq!(lp.chosen.text, text);
        assert_eq!(lp.chosen.bytes, engine.tokenizer.token_bytes(id).unwrap());
    }
}

#[test]
fn generated_tokens_report_the_models_log_probabilities() {
    let dir = tiny_chat::llama_chat(128);
    let engine = Engine::load(dir.path()).unwrap();
    let prompt = Prompt::Text("Hello there".into());
    let ids = engine.encode_prompt(&prompt).unwrap();
    // Greedy: the chosen token is the most likely one. Sampled (temperature 1.5, seeded):
    // the values are still the model's, before temperature.
    let hot = SamplerConfig {
        temperature: 1.5,
        seed: Some(3),
        ..SamplerConfig::default()
    };
    for (top, sampler) in [(3, SamplerConfig::greedy()), (0, hot)] {
        let o = opts(top, sampler.clone());
        let g = engine.generate(&prompt, &o, None, &mut |_| {}).unwrap();
        check(&engine, &ids, &g.tokens, &g.logprobs, top);
        if sampler.temperature == 0.0 {
            assert!(g.logprobs.iter().all(|l| l.chosen == l.top[0]));
        }
        // The worker sends the same values, one event per token, before its text.
        let w = Worker::spawn_with(
            Engine::load(dir.path()).unwrap(),
            WorkerOptions {
                parallel: 2,
                ..WorkerOptions::default()
            },
        )
        .unwrap();
        let rx = w.submit_channel(&prompt, o).unwrap();
        let mut events = Vec::new();
        let mut text = String::new();
        loop {
            match rx.recv().unwrap() {
                Event::Logprob(l) => events.push(l),
                Event::Text(t) => {
                    assert!(
                        !events.is_empty(),
                        "a token's logprob comes before its text"
                    );
                    text.push_str(&t);
                }
                Event::Done(_) => break,
                Event::Error(e) => panic!("{e}"),
            }
        }
        assert_eq!(text, g.text);
        assert_eq!(events, g.logprobs);
    }
}

#[test]
fn too_many_alternatives_are_refused() {
    let dir = tiny_chat::llama_chat(64);
    let w = Worker::spawn(Engine::load(dir.path()).unwrap(), 1).unwrap();
    let r = w.submit_channel(
        &Prompt::Text("hi".into()),
        opts(21, SamplerConfig::greedy()),
    );
    match r {
        Err(SubmitError::Invalid(m)) => assert!(m.contains("at most 20"), "{m}"),
        other => panic!("expected Invalid, found {:?}", other.map(|_| ())),
    }
}
