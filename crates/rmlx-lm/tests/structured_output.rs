//! Structured output end to end: greedy generations of the default model (SmolLM2) under a JSON
//! schema always parse and validate, end on their own (the grammar forces EOS), stop at
//! max_tokens with a prefix of the same JSON, and a constrained request batched with free ones
//! changes none of them; gpt-oss (the tiny harmony fixture) is constrained in its final
//! channel only.

#[path = "support/events.rs"]
mod events;
#[path = "support/schemas.rs"]
mod schemas;
#[path = "support/tiny_chat.rs"]
mod tiny_chat;

use events::collect;
use rmlx_lm::constraint::Scope;
use rmlx_lm::{
    ConstraintSpec, Engine, FinishReason, GenerateOptions, Grammar, Prompt, SamplerConfig, Worker,
    WorkerOptions,
};
use schemas::{person_schema, validate};
use serde_json::{json, Value as Json};

fn prompt() -> Prompt {
    Prompt::Chat(vec![json!({
        "role": "user",
        "content": "Describe a person named Alice, aged 30, who likes chess, as JSON."
    })])
}

fn opts(max_tokens: usize, grammar: Option<Grammar>) -> GenerateOptions {
    GenerateOptions {
        max_tokens: Some(max_tokens),
        sampler: SamplerConfig::greedy(),
        constraint: grammar.map(ConstraintSpec::whole),
        ..GenerateOptions::default()
    }
}

fn smollm2() -> Engine {
    Engine::load(rmlx_lm::default_model::fetch_default().unwrap()).unwrap()
}

#[test]
fn smollm2_schema_output_parses_validates_and_ends() {
    let engine = smollm2();
    let schema = person_schema();
    let g = engine
        .generate(
            &prompt(),
            &opts(300, Some(Grammar::JsonSchema(schema.clone()))),
            None,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(g.stats.finish, FinishReason::Eos, "{:?}", g.text);
    let v = validate(&schema, &g.text);
    assert_eq!(v["age"], 30, "{}", g.text);

    // Any JSON object: the model closes it by itself.
    let g = engine
        .generate(
            &prompt(),
            &opts(300, Some(Grammar::JsonObject)),
            None,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(g.stats.finish, FinishReason::Eos, "{:?}", g.text);
    let v: Json = serde_json::from_str(&g.text).unwrap_or_else(|e| panic!("{e}: {}", g.text));
    assert!(v.is_object(), "{}", g.text);

    // Free text from the same prompt does not parse (SmolLM2 fences its JSON in a Markdown
    // code block): the grammar made the difference.
    let free = engine
        .generate(&prompt(), &opts(300, None), None, &mut |_| {})
        .unwrap();
    assert_eq!(free.stats.finish, FinishReason::Eos);
    assert!(
        serde_json::from_str::<Json>(&free.text).is_err(),
        "{:?}",
        free.text
    );
}

#[test]
fn smollm2_max_tokens_cuts_the_json_with_finish_length() {
    let engine = smollm2();
    let grammar = Some(Grammar::JsonSchema(person_schema()));
    let whole = engine
        .generate(&prompt(), &opts(300, grammar.clone()), None, &mut |_| {})
        .unwrap();
    let cut = engine
        .generate(&prompt(), &opts(5, grammar), None, &mut |_| {})
        .unwrap();
    // As OpenAI documents: the content stops where the tokens ran out (finish_reason
    // "length") and may not parse.
    assert_eq!(cut.stats.finish, FinishReason::Length);
    assert_eq!(cut.stats.generated_tokens, 5);
    assert!(
        whole.text.starts_with(&cut.text),
        "{:?} {:?}",
        whole.text,
        cut.text
    );
    assert!(serde_json::from_str::<Json>(&cut.text).is_err());
}

#[test]
fn smollm2_batch_of_constrained_and_free_requests() {
    let schema = person_schema();
    let worker = Worker::spawn_with(
        smollm2(),
        WorkerOptions {
            parallel: 4,
            ..WorkerOptions::default()
        },
    )
    .unwrap();
    let requests = [
        opts(300, Some(Grammar::JsonSchema(schema.clone()))),
        opts(40, None),
        opts(300, Some(Grammar::JsonObject)),
        opts(40, None),
    ];
    let alone: Vec<_> = requests
        .iter()
        .map(|o| collect(worker.submit_channel(&prompt(), o.clone()).unwrap()))
        .collect();
    let rxs: Vec<_> = requests
        .iter()
        .map(|o| worker.submit_channel(&prompt(), o.clone()).unwrap())
        .collect();
    let together: Vec<_> = rxs.into_iter().map(collect).collect();
    for (i, ((a, sa), (b, sb))) in alone.iter().zip(&together).enumerate() {
        assert_eq!(a, b, "request {i}: alone vs batched");
        assert_eq!(sa.finish, sb.finish, "request {i}");
    }
    validate(&schema, &together[0].0);
    assert!(serde_json::from_str::<Json>(&together[2].0)
        .unwrap()
        .is_object());
    // The free requests ran to max_tokens as they do alone (no neighbour's grammar ended them).
    assert_eq!(together[1].1.finish, FinishReason::Length);
    assert!(worker.stats().step_sequences > worker.stats().steps);
}

#[test]
fn an_invalid_schema_is_refused_before_anything_runs() {
    let dir = tiny_chat::llama_chat(256);
    let worker = Worker::spawn(Engine::load(dir.path()).unwrap(), 4).unwrap();
    let bad = opts(
        10,
        Some(Grammar::JsonSchema(json!({"type": "no such type"}))),
    );
    match worker.submit_channel(&Prompt::Text("hi".into()), bad) {
        Err(rmlx_lm::SubmitError::Constraint(m)) => assert!(m.contains("constraint"), "{m}"),
        other => panic!("expected a constraint error, got {:?}", other.map(|_| ())),
    }
    assert_eq!(worker.stats().failed, 0, "nothing was queued");
}

/// The tiny llama's vocabulary (256 byte tokens) has no EOS: the complete grammar itself ends
/// the generation.
#[test]
fn a_model_without_eos_still_ends_when_the_grammar_does() {
    let dir = tiny_chat::llama_chat(512);
    let engine = Engine::load(dir.path()).unwrap();
    let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"], "additionalProperties": false});
    let g = engine
        .generate(
            &Prompt::Text("answer: ".into()),
            &opts(200, Some(Grammar::JsonSchema(schema.clone()))),
            None,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(g.stats.finish, FinishReason::Eos, "{:?}", g.text);
    validate(&schema, &g.text);
}

fn harmony_opts(scope: Scope, grammar: Option<Grammar>) -> GenerateOptions {
    GenerateOptions {
        max_tokens: Some(120),
        sampler: SamplerConfig::greedy(),
        keep_special: true,
        constraint: grammar.map(|grammar| ConstraintSpec { grammar, scope }),
        ..GenerateOptions::default()
    }
}

#[test]
fn gpt_oss_final_channel_is_constrained_and_reasoning_is_free() {
    let dir = tiny_chat::harmony_chat(512);
    let engine = Engine::load(dir.path()).unwrap();
    assert!(engine.uses_harmony());
    let schema = json!({"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}},
        "required": ["answer"], "additionalProperties": false});
    let grammar = Grammar::JsonSchema(schema.clone());
    assert_eq!(
        ConstraintSpec::for_chat(&engine, grammar.clone()).scope,
        Scope::HarmonyFinal
    );

    let run = |prompt: &Prompt, scope: Scope, grammar: Option<Grammar>| {
        let opts = harmony_opts(scope, grammar);
        engine.generate(prompt, &opts, None, &mut |_| {}).unwrap()
    };
    // A prompt that opens the final channel: the random model answers in valid JSON, and the
    // complete object ends the generation (nothing may follow it but an end token).
    let opened = Prompt::Text(
        "<|start|>user<|message|>yes?<|end|><|start|>assistant<|channel|>final<|message|>".into(),
    );
    let g = run(&opened, Scope::HarmonyFinal, Some(grammar.clone()));
    assert_eq!(g.stats.finish, FinishReason::Eos, "{:?}", g.text);
    validate(&schema, &g.text);
    assert!(g.text.ends_with('}'), "{:?}", g.text);

    // A chat prompt: the model starts in whatever channel it likes. Until a final header
    // appears the grammar does not act, so the text equals the free text up to there.
    let chat = Prompt::Chat(vec![json!({"role": "user", "content": "yes?"})]);
    let free = run(&chat, Scope::HarmonyFinal, None).text;
    let constrained = run(&chat, Scope::HarmonyFinal, Some(grammar.clone())).text;
    // (The same grammar over the whole reply does act from the first token.)
    validate(&schema, &run(&chat, Scope::Whole, Some(grammar)).text);
    match final_content_start(&free) {
        None => assert_eq!(constrained, free),
        Some(at) => {
            assert_eq!(constrained[..at], free[..at]);
            validate(&schema, &rmlx_lm::harmony::final_text(&constrained));
        }
    }
}

/// Byte offset where a final message's content begins in harmony text, if one does.
fn final_content_start(text: &str) -> Option<usize> {
    let header = text.find("<|channel|>final")?;
    let m = text[header..].find("<|message|>")?;
    Some(header + m + "<|message|>".len())
}
