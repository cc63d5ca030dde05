//! Continuous batching in the `Worker`: requests that run together (joining and leaving at
//! different steps, prompts prefilled in chunks beside decoding ones) each get the text they
//! get alone, greedy or seeded; a client that goes away frees its slot without disturbing the
//! others; a new request reuses the longest cached prefix of a free slot (and recomputes when
//! a sliding window has wrapped).

#[path = "support/events.rs"]
mod events;
#[path = "support/tiny_chat.rs"]
mod tiny_chat;

use events::collect;

use rmlx_lm::{
    Engine, Event, GenerateOptions, GenerationStats, Prompt, SamplerConfig, Worker, WorkerOptions,
};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens: Some(max_tokens),
        sampler: SamplerConfig::greedy(),
        ..GenerateOptions::default()
    }
}

fn seeded(max_tokens: usize, seed: u64) -> GenerateOptions {
    GenerateOptions {
        max_tokens: Some(max_tokens),
        sampler: SamplerConfig {
            temperature: 1.0,
            seed: Some(seed),
            ..SamplerConfig::default()
        },
        ..GenerateOptions::default()
    }
}

fn worker(engine: Engine, parallel: usize, step_tokens: usize) -> Worker {
    let opts = WorkerOptions {
        queue: 16,
        parallel,
        step_tokens,
    };
    Worker::spawn_with(engine, opts).unwrap()
}

/// Submits a request whose sink holds the worker thread at its first event until the returned
/// sender is used: what is submitted meanwhile joins the batch at the next step.
fn gated(w: &Worker, prompt: &Prompt, opts: GenerateOptions) -> (Sender<()>, Receiver<Event>) {
    let (started_tx, started) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    let (tx, rx) = mpsc::channel();
    let mut first = true;
    let sink = Box::new(move |e: Event| {
        if first {
            first = false;
            let _ = started_tx.send(());
            let _ = released.recv();
        }
        tx.send(e).is_ok()
    });
    w.submit(prompt, opts, sink).unwrap();
    started.recv().expect("the gated request starts");
    (release, rx)
}

fn alone(e: &Engine, prompt: &Prompt, opts: &GenerateOptions) -> String {
    e.generate(prompt, opts, None, &mut |_| {}).unwrap().text
}

fn text(s: &str) -> Prompt {
    Prompt::Text(s.into())
}

#[test]
fn batched_requests_get_the_text_they_get_alone() {
    let dir = tiny_chat::llama_chat(256);
    let reference = Engine::load(dir.path()).unwrap();
    // 16 tokens a step: the longer prompts are prefilled in chunks beside decoding requests.
    let w = worker(Engine::load(dir.path()).unwrap(), 4, 16);
    let reqs = [
        (text("Hello there"), greedy(20)),
        (
            text("The quick brown fox jumps over the lazy dog"),
            greedy(12),
        ),
        (text("a"), seeded(30, 7)),
        (text("Once upon a time in a land far away"), seeded(25, 7)),
        (text("Once upon a time in a land far away"), seeded(25, 8)),
    ];
    let (release, first) = gated(&w, &reqs[0].0, reqs[0].1.clone());
    let rest: Vec<Receiver<Event>> = reqs[1..]
        .iter()
        .map(|(p, o)| w.submit_channel(p, o.clone()).unwrap())
        .collect();
    release.send(()).unwrap();
    let got: Vec<(String, GenerationStats)> =
        std::iter::once(first).chain(rest).map(collect).collect();
    for ((p, o), (t, s)) in reqs.iter().zip(&got) {
        assert_eq!(*t, alone(&reference, p, o), "{p:?}");
        assert_eq!(Some(s.generated_tokens), o.max_tokens);
    }
    assert_ne!(got[3].0, got[4].0, "another seed draws another text");
    let stats = w.stats();
    assert_eq!((stats.finished, stats.cancelled, stats.failed), (5, 0, 0));
    assert!(
        stats.step_sequences >= stats.steps + 20,
        "requests ran batched: {stats:?}"
    );
    assert_eq!(stats.ttft_count, 5);
    assert_eq!((stats.active, stats.queued), (0, 0));
}

#[test]
fn a_client_that_leaves_frees_its_slot_and_the_others_go_on() {
    let dir = tiny_chat::llama_chat(256);
    let reference = Engine::load(dir.path()).unwrap();
    let w = worker(Engine::load(dir.path()).unwrap(), 2, 512);
    let (p, o) = (text("Hello there"), greedy(30));
    let (release, first) = gated(&w, &p, o.clone());
    // Beside it: a request whose sink stops listening after its first text.
    w.submit(&text("Bye"), greedy(100), Box::new(|_| false))
        .unwrap();
    release.send(()).unwrap();
    assert_eq!(collect(first).0, alone(&reference, &p, &o));
    // A waiting request whose probe says its client left: it runs nothing at all.
    let (release, first) = gated(&w, &p, o.clone());
    let left = Arc::new(AtomicBool::new(false));
    let (tx, never) = mpsc::channel();
    let l = left.clone();
    w.submit_probed(
        &text("Tell me a long story"),
        greedy(100),
        Box::new(move |e| tx.send(e).is_ok()),
        Some(Box::new(move || l.load(Ordering::SeqCst))),
    )
    .unwrap();
    left.store(true, Ordering::SeqCst);
    release.send(()).unwrap();
    assert_eq!(collect(first).0, alone(&reference, &p, &o));
    // Slots free: the next request runs, and the one that left sent nothing.
    let (_, s) = collect(w.submit_channel(&p, greedy(3)).unwrap());
    assert_eq!(s.generated_tokens, 3);
    assert!(
        never.try_recv().is_err(),
        "nothing is sent to a client that left"
    );
    let stats = w.stats();
    assert_eq!((stats.finished, stats.cancelled, stats.failed), (3, 2, 0));
    // The refusing one stopped at its first token; the probed one never ran.
    assert_eq!(stats.generated_tokens, 30 + 30 + 3 + 1, "{stats:?}");
}

#[test]
fn a_new_request_reuses_the_longest_cached_prefix() {
    let dir = tiny_chat::llama_chat(256);
    let reference = Engine::load(dir.path()).unwrap();
    let w = worker(Engine::load(dir.path()).unwrap(), 2, 512);
    let run = |p: &Prompt| collect(w.submit_channel(p, greedy(5)).unwrap());
    let p1 = "The capital of France is";
    let n1 = reference.encode_prompt(&text(p1)).unwrap().len();
    let (_, s) = run(&text(p1));
    assert_eq!(s.prefilled_tokens, s.prompt_tokens, "nothing cached yet");
    // Another prompt goes to the other (unused) slot and leaves the first one's cache alone.
    run(&text("Completely different"));
    // The same prompt again: all of it but the last token (whose logits start the reply).
    let (t, s) = run(&text(p1));
    assert_eq!(s.prompt_tokens - s.prefilled_tokens, n1 - 1);
    assert_eq!(t, alone(&reference, &text(p1), &greedy(5)));
    // A longer prompt that starts with it: at least the shared prompt is reused.
    let p3 = format!("{p1} Paris. And the capital of Spain is");
    let (t, s) = run(&text(&p3));
    let cached = s.prompt_tokens - s.prefilled_tokens;
    assert!(cached >= n1 && cached < s.prompt_tokens, "{s:?}");
    assert_eq!(t, alone(&reference, &text(&p3), &greedy(5)));
    let stats = w.stats();
    assert_eq!(stats.cached_prompt_tokens, (n1 - 1 + cached) as u64);
}

#[test]
fn gpt_oss_batches_and_recomputes_after_its_window_wrapped() {
    let dir = tiny_chat::harmony_chat(256);
    let reference = Engine::load(dir.path()).unwrap();
    let w = worker(Engine::load(dir.path()).unwrap(), 3, 8);
    let chat = |s: &str| Prompt::Chat(vec![json!({"role": "user", "content": s})]);
    let opts = GenerateOptions {
        keep_special: true,
        ..greedy(6)
    };
    let prompts = [chat("hello"), chat("what is two and two"), chat("hi")];
    let (release, first) = gated(&w, &prompts[0], opts.clone());
    let rest: Vec<_> = prompts[1..]
        .iter()
        .map(|p| w.submit_channel(p, opts.clone()).unwrap())
        .collect();
    release.send(()).unwrap();
    for (p, rx) in prompts.iter().zip(std::iter::once(first).chain(rest)) {
        assert_eq!(collect(rx).0, alone(&reference, p, &opts), "{p:?}");
    }
    // The sliding layers (window 4) no longer hold what the prompt's end would attend to: the
    // same prompt again is computed whole, and still gives the same text.
    let (t, s) = collect(w.submit_channel(&prompts[1], opts.clone()).unwrap());
    assert_eq!(s.prefilled_tokens, s.prompt_tokens);
    assert_eq!(t, alone(&reference, &prompts[1], &opts));
}

#[test]
fn bad_worker_options_are_errors() {
    let dir = tiny_chat::llama_chat(64);
    for (parallel, step_tokens) in [(0, 16), (2, 0)] {
        let opts = WorkerOptions {
            queue: 1,
            parallel,
            step_tokens,
        };
        let Err(e) = Worker::spawn_with(Engine::load(dir.path()).unwrap(), opts) else {
            panic!("{parallel} parallel, {step_tokens} tokens a step: expected an error");
        };
        let e = e.to_string();
        assert!(e.contains("at least 1 parallel request"), "{e}");
    }
}
