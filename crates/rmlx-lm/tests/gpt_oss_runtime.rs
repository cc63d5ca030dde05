//! gpt-oss beyond logits: harmony chat rendering and channel splitting with a tokenizer that
//! carries the harmony special tokens, and clear errors for bad checkpoints and bad inputs.

use rmlx_lm::{harmony, load_model, Engine, GenerateOptions, Logits, Prompt, SamplerConfig};
use serde_json::json;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn harmony_conversation_renders_with_the_template_and_splits_into_channels() {
    let e = Engine::load(fixture("harmony")).unwrap();
    assert!(e.uses_harmony());
    let msgs = vec![
        json!({"role": "system", "content": "Be brief."}),
        json!({"role": "user", "content": "2+2?"}),
    ];
    let text = e.render_chat(&msgs).unwrap();
    assert_eq!(text, "<|start|>system<|message|>Be brief.<|end|><|start|>user<|message|>2+2?<|end|><|start|>assistant");
    let ids = e.encode_prompt(&Prompt::Chat(msgs.clone())).unwrap();
    assert_eq!(
        ids[0],
        e.tokenizer.token_to_id("<|start|>").unwrap(),
        "special tokens are single ids"
    );
    assert_eq!(e.tokenizer.decode(&ids, false).unwrap(), text);

    // What the model would emit: reasoning, then the final answer.
    let out = "<|channel|>analysis<|message|>Add them.<|end|><|start|>assistant<|channel|>final<|message|>4";
    let mut toks = e.tokenizer.encode(out, false).unwrap();
    toks.push(e.tokenizer.token_to_id("<|return|>").unwrap());
    let decoded = e.tokenizer.decode(&toks, false).unwrap();
    assert_eq!(harmony::analysis_text(&decoded), "Add them.");
    assert_eq!(harmony::final_text(&decoded), "4");
    assert!(
        e.tokenizer.is_eos(*toks.last().unwrap()),
        "<|return|> ends generation"
    );

    // A real (random-weight) generation through the engine runs and reports its counts.
    let opts = GenerateOptions {
        max_tokens: Some(6),
        sampler: SamplerConfig::greedy(),
        keep_special: true,
        ..Default::default()
    };
    let mut streamed = String::new();
    let g = e
        .generate(&Prompt::Chat(msgs), &opts, None, &mut |t| {
            streamed.push_str(t)
        })
        .unwrap();
    assert_eq!(g.stats.prompt_tokens, ids.len());
    assert!(g.stats.generated_tokens >= 1 && g.stats.generated_tokens <= 6);
    assert_eq!(streamed, g.text);
}

#[test]
fn chat_session_keeps_history_and_generates_each_turn() {
    let e = Engine::load(fixture("harmony")).unwrap();
    let mut s = rmlx_lm::ChatSession::new(&e, Default::default()).unwrap();
    let opts = GenerateOptions {
        max_tokens: Some(3),
        sampler: SamplerConfig::greedy(),
        keep_special: true,
        ..Default::default()
    };
    let g1 = s.send("hello", &opts, None, &mut |_| {}).unwrap();
    assert_eq!(g1.stats.prefilled_tokens, g1.stats.prompt_tokens);
    let g2 = s.send("again", &opts, None, &mut |_| {}).unwrap();
    assert_eq!(s.messages.len(), 4);
    assert!(g2.stats.prompt_tokens > g1.stats.prompt_tokens);
    // gpt-oss's sliding layers cannot rewind past evicted positions, and the template re-renders
    // the assistant reply differently from how it was generated: this turn starts over.
    assert_eq!(g2.stats.prefilled_tokens, g2.stats.prompt_tokens);
}

/// Runs `a`, rewinds the cache to `keep` positions and runs `b`: the largest difference from
/// the logits of a fresh run of `a[..keep] + b`.
fn rewound_vs_fresh(m: &rmlx_lm::LoadedModel, a: &[u32], keep: usize, b: &[u32]) -> f32 {
    let mut cache = m.model.make_cache();
    m.model
        .forward(a, &mut cache, Logits::Last)
        .unwrap()
        .eval()
        .unwrap();
    assert!(cache.truncate(keep), "rewind {} to {keep}", a.len());
    let got = m
        .model
        .forward(b, &mut cache, Logits::All)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let mut fresh = m.model.make_cache();
    let all: Vec<u32> = a[..keep].iter().chain(b).copied().collect();
    let want = m
        .model
        .forward(&all, &mut fresh, Logits::All)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let want = &want[keep * m.model.info().vocab_size..];
    got.iter()
        .zip(want)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// Rewinding a full cache to a common prefix and feeding new tokens equals a fresh run.
#[test]
fn truncated_cache_equals_a_fresh_run() {
    let m = load_model(fixture("hf/llama")).unwrap();
    let a: Vec<u32> = (0..10).map(|i| 3 + i * 7).collect();
    let err = rewound_vs_fresh(&m, &a, 6, &[9, 8, 7]);
    assert!(err < 1e-4, "max abs diff {err}");
    // A sliding-window model cannot rewind past what its window evicted.
    let g = load_model(fixture("hf/gpt_oss_wide")).unwrap();
    let mut c = g.model.make_cache();
    g.model
        .forward(&a, &mut c, Logits::Last)
        .unwrap()
        .eval()
        .unwrap();
    assert!(!c.truncate(2));
    assert_eq!(c.offset(), 10);
    assert!(
        c.truncate(9),
        "rewinding one position needs nothing evicted"
    );
}

/// A sliding-window cache rewinds while it has not wrapped (as a chat with a context no longer
/// than the window does), and the result equals a fresh run.
#[test]
fn sliding_cache_rewinds_until_it_wraps() {
    let g = load_model(fixture("hf/gpt_oss_wide")).unwrap(); // window 6
    let err = rewound_vs_fresh(&g, &[5, 9, 14, 3, 77], 2, &[8, 1, 40, 2]);
    assert!(err < 1e-4, "max abs diff {err}");
    // Wrapped (9 positions, the slots hold 3..=8): the query at 8 reads 3..=7, all still held.
    let err = rewound_vs_fresh(&g, &[5, 9, 14, 3, 77, 8, 1, 40, 2], 8, &[6, 6]);
    assert!(err < 1e-4, "max abs diff {err}");
}

/// A copy of a fixture with `edit` applied, in a temp dir.
fn edited(name: &str, edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture(name)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, t.path().join(p.file_name().unwrap())).unwrap();
    }
    edit(t.path());
    t
}

fn load_err(dir: &Path) -> String {
    match load_model(dir) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn config_sizes_disagreeing_with_tensors_are_named() {
    let d = edited("hf/gpt_oss_wide", |d| {
        edit_config(d, |v| v["intermediate_size"] = json!(64))
    });
    let e = load_err(d.path());
    assert!(
        e.contains("gate_up_proj") && e.contains("expected shape"),
        "{e}"
    );
    let d = edited("hf/gpt_oss_wide", |d| {
        edit_config(d, |v| v["num_local_experts"] = json!(7))
    });
    let e = load_err(d.path());
    assert!(e.contains("expected shape"), "{e}");
    let d = edited("hf/gpt_oss_wide", |d| {
        edit_config(d, |v| v["num_experts_per_tok"] = json!(9))
    });
    let e = load_err(d.path());
    assert!(e.contains("experts_per_token"), "{e}");
}

#[test]
fn missing_tensor_is_named() {
    let d = edited("hf/gpt_oss_wide", |d| {
        // Rename a tensor in the safetensors header (same length keeps offsets valid).
        let p = d.join("model.safetensors");
        let mut b = std::fs::read(&p).unwrap();
        let from = b"model.layers.1.self_attn.sinks";
        let to = b"model.layers.1.self_attn.sinkz";
        let i = b.windows(from.len()).position(|w| w == from).unwrap();
        b[i..i + from.len()].copy_from_slice(to);
        std::fs::write(p, b).unwrap();
    });
    let e = load_err(d.path());
    assert!(
        e.contains("missing tensor") && e.contains("model.layers.1.self_attn.sinks"),
        "{e}"
    );
}

#[test]
fn unknown_architecture_is_named() {
    let d = edited("hf/gpt_oss_wide", |d| {
        edit_config(d, |v| v["model_type"] = json!("mamba9"))
    });
    let e = load_err(d.path());
    assert!(
        e.contains("unknown architecture") && e.contains("mamba9"),
        "{e}"
    );
}

#[test]
fn bad_tokens_and_overlong_prompts_are_errors() {
    let m = load_model(fixture("hf/gpt_oss_wide")).unwrap();
    let mut cache = m.model.make_cache();
    let e = m
        .model
        .forward(&[1, 256, 2], &mut cache, Logits::All)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("token id 256") && e.contains("vocabulary"),
        "{e}"
    );
    let ctx = m.model.info().context_length;
    let long = vec![1u32; ctx + 1];
    let e = m
        .model
        .forward(&long, &mut cache, Logits::Last)
        .unwrap_err()
        .to_string();
    assert!(e.contains("exceed") && e.contains("context"), "{e}");
}

/// Pipelined greedy decode (the next step encoded from the token still on the device before
/// the token is read; what `generate` does on a GPU) gives the plain loop's tokens, text and
/// cache — also when a stop string ends generation while a step has already been run ahead
/// (that step is dropped from the cache again).
#[test]
fn pipelined_generation_equals_the_plain_loop() {
    let e = Engine::load(fixture("harmony")).unwrap();
    let prompt = e
        .encode_prompt(&Prompt::Text("The answer is".into()))
        .unwrap();
    let run = |opts: &GenerateOptions, pipeline: bool| {
        let mut cache = e.model.make_cache_of(opts.kv_cache).unwrap();
        let mut streamed = String::new();
        let g = e
            .generate_tokens_with(
                &mut cache,
                &prompt,
                0,
                opts,
                None,
                &mut |t| streamed.push_str(t),
                Some(pipeline),
            )
            .unwrap();
        assert_eq!(streamed, g.text);
        (g.tokens, g.text, g.stats.finish, cache.offset())
    };
    let opts = GenerateOptions {
        max_tokens: Some(24),
        sampler: SamplerConfig::greedy(),
        keep_special: true,
        ..Default::default()
    };
    let plain = run(&opts, false);
    assert_eq!(run(&opts, true), plain, "max_tokens");
    // The cache holds the prompt and every generated token but the last.
    assert_eq!(plain.3, prompt.len() + plain.0.len() - 1);
    // A stop string from the middle of that text ends both loops at the same token.
    let chars: Vec<char> = plain.1.chars().collect();
    if chars.len() >= 6 {
        let stop: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
        let opts = GenerateOptions {
            stop: vec![stop.clone()],
            ..opts
        };
        let plain = run(&opts, false);
        assert_eq!(plain.2, rmlx_lm::FinishReason::Stop, "stop {stop:?}");
        assert_eq!(run(&opts, true), plain, "stop string {stop:?}");
    } else {
        panic!("the random model produced only {:?}", plain.1);
    }
}
