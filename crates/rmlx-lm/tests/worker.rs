//! `Worker`: requests through the engine thread give what `Engine::generate` gives; a sink that
//! stops listening cancels its request; bad requests are refused before they queue.

#[path = "support/events.rs"]
mod events;
#[path = "support/tiny_chat.rs"]
mod tiny_chat;

use events::collect;

use rmlx_lm::{Engine, GenerateOptions, Prompt, SamplerConfig, SubmitError, Worker};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens: Some(max_tokens),
        sampler: SamplerConfig::greedy(),
        ..GenerateOptions::default()
    }
}

#[test]
fn worker_output_equals_generate_and_cancels_when_nobody_listens() {
    let dir = tiny_chat::llama_chat(128);
    let reference = Engine::load(dir.path()).unwrap();
    let worker = Worker::spawn(Engine::load(dir.path()).unwrap(), 4).unwrap();
    let prompt = Prompt::Text("Hello there".into());
    let want = reference
        .generate(&prompt, &greedy(20), None, &mut |_| {})
        .unwrap();

    // A sink that stops listening after its first piece of text.
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    worker
        .submit(
            &prompt,
            greedy(100),
            Box::new(move |_| {
                s.fetch_add(1, Ordering::SeqCst);
                false
            }),
        )
        .unwrap();
    // Requests run in order: once the next one is done, the cancelled one has ended.
    let (text, stats) = collect(worker.submit_channel(&prompt, greedy(20)).unwrap());
    assert_eq!(text, want.text);
    assert_eq!(stats.generated_tokens, 20);
    assert_eq!(stats.prompt_tokens, want.stats.prompt_tokens);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "a cancelled request sends nothing after the refusal (no more text, no Done)"
    );
    let stats = worker.stats();
    assert_eq!((stats.cancelled, stats.finished, stats.failed), (1, 1, 0));
    // The cancelled one stopped at its next token, far from its 100.
    assert!(stats.generated_tokens < 20 + 10, "{stats:?}");
}

#[test]
fn bad_requests_are_refused_before_they_queue() {
    let dir = tiny_chat::llama_chat(32);
    let worker = Worker::spawn(Engine::load(dir.path()).unwrap(), 0).unwrap();
    let long = Prompt::Text("x".repeat(40));
    match worker.submit_channel(&long, greedy(1)) {
        Err(SubmitError::TooLong(m)) => assert!(m.contains("exceed the context of 32"), "{m}"),
        other => panic!("expected TooLong, found {:?}", other.map(|_| ())),
    }
    let short = Prompt::Text("hi".into());
    let mut bad_sampler = greedy(1);
    bad_sampler.sampler.top_p = 0.0;
    for opts in [greedy(0), bad_sampler] {
        assert!(matches!(
            worker.submit_channel(&short, opts),
            Err(SubmitError::Invalid(_))
        ));
    }
    // Ids past the model's vocabulary (256) would fail the whole batched step: refused here.
    match worker.submit_channel(&Prompt::Tokens(vec![1, 256]), greedy(1)) {
        Err(SubmitError::Invalid(m)) => assert!(m.contains("token id 256"), "{m}"),
        other => panic!("expected Invalid, found {:?}", other.map(|_| ())),
    }
}
