//! Requests against the context: an over-long prompt is refused before anything is computed,
//! generation that fills the context ends with `Length`, a chat runs on past several context
//! lengths by dropping its oldest turns (answering as a fresh session given the turns it kept,
//! computing only what its KV cache does not already hold), and `LoadOptions::context` bounds
//! the KV cache.

#[path = "support/tiny_chat.rs"]
mod tiny_chat;

use rmlx_lm::{
    load_model, load_model_with, ChatSession, Engine, FinishReason, GenerateOptions, LoadOptions,
    Logits, Prompt, SamplerConfig,
};
use serde_json::{json, Value as Json};
use std::path::Path;
use std::time::{Duration, Instant};

fn greedy(max_tokens: Option<usize>) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        sampler: SamplerConfig::greedy(),
        keep_special: true,
        ..Default::default()
    }
}

#[test]
fn overlong_prompt_fails_at_once_naming_both_numbers() {
    let dir = tiny_chat::llama_chat(64);
    let e = Engine::load(dir.path()).unwrap();
    assert_eq!(e.model.info().context_length, 64);
    // One token per byte: 5,000 prompt tokens.
    let prompt = e.encode_prompt(&Prompt::Text("x".repeat(5000))).unwrap();
    assert_eq!(prompt.len(), 5000);
    let mut cache = e.model.make_cache();
    let t = Instant::now();
    let err = e
        .generate_tokens(&mut cache, &prompt, 0, &greedy(Some(8)), None, &mut |_| {})
        .err()
        .expect("an over-long prompt is an error")
        .to_string();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(
        err,
        "generate: 5000 prompt tokens + 8 new tokens exceed the context of 64 tokens"
    );
    assert_eq!(cache.offset(), 0, "nothing was computed");

    // A prompt that fits, with more new tokens asked for than the context leaves: refused too.
    let err = e
        .generate(
            &Prompt::Tokens(vec![7; 60]),
            &greedy(Some(5)),
            None,
            &mut |_| {},
        )
        .err()
        .expect("60 + 5 > 64")
        .to_string();
    assert!(
        err.contains("60 prompt tokens + 5 new tokens") && err.contains("64"),
        "{err}"
    );
    // Without a limit, generation fills the context and ends with `Length`, not an error.
    let g = e
        .generate(
            &Prompt::Tokens(vec![7; 60]),
            &greedy(None),
            None,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(g.stats.generated_tokens, 4);
    assert_eq!(g.stats.finish, FinishReason::Length);
    // A full prompt leaves no room for even one token.
    let err = e
        .generate(
            &Prompt::Tokens(vec![7; 64]),
            &greedy(None),
            None,
            &mut |_| {},
        )
        .err()
        .expect("no room")
        .to_string();
    assert!(err.contains("64 prompt tokens + 1 new token"), "{err}");
}

/// The prompt of `messages` (generation prompt added), as the engine tokenizes it.
fn tokens_of(e: &Engine, messages: &[Json]) -> Vec<u32> {
    e.encode_chat(messages).unwrap()
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Runs `turns` user messages through one session whose context is small, checking after each
/// turn that: the system message and the new turn are kept; the answer equals a fresh
/// generation from exactly the kept history (greedy); and the session computed only the
/// prompt tokens its cache did not hold (`expect_reuse`: the cache can rewind to any prefix;
/// otherwise every prompt is computed whole). gpt-oss: the kept history is well-formed harmony.
/// Returns the length in tokens of the whole conversation (nothing dropped) and the turns
/// the session dropped.
fn long_chat(e: &Engine, turns: usize, max_tokens: usize, expect_reuse: bool) -> (usize, usize) {
    let opts = greedy(Some(max_tokens));
    let ctx = e.model.info().context_length;
    let mut s = ChatSession::new(e, Default::default()).unwrap();
    let system = json!({"role": "system", "content": "Answer briefly."});
    s.messages.push(system.clone());
    let system_tokens = e
        .tokenizer
        .encode(
            &e.template
                .as_ref()
                .unwrap()
                .render(std::slice::from_ref(&system), false)
                .unwrap(),
            false,
        )
        .unwrap();
    let mut everything = s.messages.clone();
    let mut in_cache: Vec<u32> = vec![];
    for i in 0..turns {
        let user = format!("Question {i}: what comes after {}?", i * 7);
        let dropped_before = s.dropped_turns();
        let g = s.send(&user, &opts, None, &mut |_| {}).unwrap();
        let n = s.messages.len();
        everything.extend_from_slice(&s.messages[n - 2..]);
        assert_eq!(s.messages[0], system, "turn {i}: the system message stays");
        assert_eq!(s.messages[n - 2]["content"], json!(user), "turn {i}");
        assert!(g.stats.prompt_tokens + max_tokens <= ctx, "turn {i}");

        // The same answer from a fresh generation given exactly the kept history.
        let kept = &s.messages[..n - 1];
        let prompt = tokens_of(e, kept);
        assert_eq!(g.stats.prompt_tokens, prompt.len(), "turn {i}");
        let fresh = e
            .generate(&Prompt::Chat(kept.to_vec()), &opts, None, &mut |_| {})
            .unwrap();
        assert_eq!(g.tokens, fresh.tokens, "turn {i}: answers differ");
        if e.uses_harmony() {
            // One <|start|> per message and one for the reply, one <|end|> per message: no
            // control token leaked into a kept reply.
            let count = |t: &str| {
                let id = e.tokenizer.token_to_id(t).unwrap();
                prompt.iter().filter(|&&x| x == id).count()
            };
            assert_eq!(count("<|start|>"), kept.len() + 1, "turn {i}");
            assert_eq!(count("<|end|>"), kept.len(), "turn {i}");
            assert_eq!(
                count("<|channel|>"),
                kept.len() / 2 - 1,
                "turn {i}: replies' channels"
            );
        }

        // Only what the cache did not hold was computed.
        let reused = if expect_reuse {
            common_prefix(&in_cache, &prompt).min(prompt.len() - 1)
        } else {
            0
        };
        assert_eq!(
            g.stats.prefilled_tokens,
            prompt.len() - reused,
            "turn {i}: computed prompt tokens"
        );
        if expect_reuse && i > 0 {
            let previous_prompt = in_cache.len() + 1 - max_tokens;
            if s.dropped_turns() == dropped_before {
                // Nothing dropped: the whole previous prompt was a prefix of this one.
                assert!(reused >= previous_prompt, "turn {i}: reused {reused}");
            } else {
                // Turns dropped: the system message still came from the cache.
                assert!(reused >= system_tokens.len(), "turn {i}: reused {reused}");
                assert!(reused < previous_prompt, "turn {i}: reused {reused}");
            }
        }
        eprintln!(
            "turn {i}: prompt {} computed {} generated {} dropped so far {} kept {} messages",
            prompt.len(),
            g.stats.prefilled_tokens,
            g.stats.generated_tokens,
            s.dropped_turns(),
            n
        );
        in_cache = prompt;
        in_cache.extend(&g.tokens[..g.tokens.len() - 1]);
    }
    (tokens_of(e, &everything).len(), s.dropped_turns())
}

/// `long_chat` on `model`, asserting that the conversation ran past `contexts` context lengths
/// and dropped at least `min_dropped` turns.
fn past_several_contexts(model: &Path, turns: usize, expect_reuse: bool, contexts: usize) {
    let e = Engine::load(model).unwrap();
    let ctx = e.model.info().context_length;
    let (seen, dropped) = long_chat(&e, turns, 12, expect_reuse);
    eprintln!("conversation of {seen} tokens, {dropped} turns dropped");
    assert!(seen > contexts * ctx, "the chat went through {seen} tokens");
    assert!(dropped >= turns / 2, "dropped {dropped} turns");
}

#[test]
fn chat_runs_past_several_contexts_reusing_its_cache() {
    past_several_contexts(tiny_chat::llama_chat(160).path(), 16, true, 4);
}

/// gpt-oss: harmony history stays well-formed as turns go, and the sliding-window layers
/// (window 4, always wrapped here) cannot rewind, so each turn computes its whole prompt.
#[test]
fn harmony_chat_runs_past_several_contexts() {
    past_several_contexts(tiny_chat::harmony_chat(200).path(), 12, false, 3);
}

#[test]
fn a_message_too_long_for_any_history_is_refused_and_the_chat_goes_on() {
    let dir = tiny_chat::llama_chat(64);
    let e = Engine::load(dir.path()).unwrap();
    let mut s = ChatSession::new(&e, Default::default()).unwrap();
    let opts = greedy(Some(4));
    s.send("hi", &opts, None, &mut |_| {}).unwrap();
    let before = s.messages.clone();
    let t = Instant::now();
    let err = s
        .send(&"y".repeat(300), &opts, None, &mut |_| {})
        .err()
        .expect("300 bytes cannot fit 64 tokens")
        .to_string();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        err.contains("+ 4 tokens kept for the reply") && err.contains("context of 64 tokens"),
        "{err}"
    );
    assert_eq!(
        s.messages, before,
        "a refused message leaves the history as it was"
    );
    let g = s.send("ok", &opts, None, &mut |_| {}).unwrap();
    assert_eq!(g.stats.generated_tokens, 4);
}

#[test]
fn context_option_bounds_the_kv_cache() {
    let dir = tiny_chat::fixtures().join("hf/llama");
    let full = load_model(&dir).unwrap();
    let with = |context| {
        let opts = LoadOptions {
            context,
            ..Default::default()
        };
        load_model_with(&dir, rmlx_core::default_device(), opts)
    };
    let small = with(Some(40)).unwrap();
    assert_eq!(small.model.info().context_length, 40);
    assert_eq!(small.model.info().max_context_length, 512);
    assert_eq!(full.model.info().context_length, 512);
    let tokens: Vec<u32> = (0..40).map(|i| 3 + i * 5).collect();
    let run = |m: &rmlx_lm::LoadedModel| {
        let mut cache = m.model.make_cache();
        let l = m.model.forward(&tokens, &mut cache, Logits::All).unwrap();
        (l.to_vec::<f32>().unwrap(), cache)
    };
    let (want, full_cache) = run(&full);
    let (got, mut small_cache) = run(&small);
    assert_eq!(got, want, "a smaller context changes no logits");
    // 2 layers × keys and values × 2 kv heads × 16 dims × 4 bytes = 512 bytes a position: the
    // full context's cache grows in steps of 256 positions, the small one stops at 40.
    assert_eq!(small_cache.nbytes(), 40 * 512);
    assert_eq!(full_cache.nbytes(), 256 * 512);
    let err = small
        .model
        .forward(&[1], &mut small_cache, Logits::Last)
        .unwrap_err()
        .to_string();
    assert!(err.contains("context of 40 tokens"), "{err}");

    for bad in [0, 513] {
        let err = with(Some(bad)).err().expect("bad context").to_string();
        assert!(
            err.contains(&format!("found {bad}")) && err.contains("512"),
            "{err}"
        );
    }
}
