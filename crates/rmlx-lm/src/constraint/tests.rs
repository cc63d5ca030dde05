//! Constraints driven by hand over the byte-level fixture tokenizer (one token per byte, ids
//! 0–255, harmony's control tokens above): what the mask allows, how random logits sampled
//! through it always give text the grammar accepts, and that garbage schemas are errors.

use super::*;
use crate::sample::SamplerConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn tokenizer() -> Tokenizer {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/harmony");
    Tokenizer::from_file(format!("{dir}/tokenizer.json")).expect("fixture tokenizer")
}

fn compile(grammars: &Grammars, tok: &Tokenizer, spec: &ConstraintSpec) -> Result<Constraint> {
    Constraint::compile(grammars.factory(tok)?, spec, tok)
}

/// Samples up to `max` tokens through `c` from seeded random logits (the model is noise: the
/// grammar alone decides what is valid); returns the bytes written while the grammar was open.
fn run(
    c: &mut Constraint,
    tok: &Tokenizer,
    seed: u64,
    temperature: f32,
    max: usize,
) -> Result<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sampler = Sampler::new(SamplerConfig {
        temperature,
        seed: Some(seed),
        ..SamplerConfig::default()
    })
    .unwrap();
    let n = tok.vocab_size();
    let mut out = Vec::new();
    for _ in 0..max {
        if c.is_finished() {
            break;
        }
        let logits: Vec<f32> = (0..n).map(|_| rng.gen_range(-4.0..4.0)).collect();
        let logits = Array::from_slice(&logits, &[n]).unwrap();
        let Some(t) = c.sample(&mut sampler, &logits, n, &[])? else {
            break;
        };
        if tok.is_eos(t) {
            break;
        }
        c.commit(t)?;
        out.extend(tok.token_bytes(t)?);
    }
    Ok(out)
}

#[test]
fn random_logits_through_a_schema_give_valid_json() {
    let tok = tokenizer();
    let grammars = Grammars::default();
    let schema = json!({
        "type": "object",
        "properties": {
            "answer": {"enum": ["yes", "no"]},
            "count": {"type": "integer", "minimum": 0, "maximum": 99},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "maxItems": 2},
            "ok": {"type": "boolean"},
        },
        "required": ["answer", "count", "tags", "ok"],
        "additionalProperties": false,
    });
    let spec = ConstraintSpec::whole(Grammar::JsonSchema(schema.clone()));
    let validator = jsonschema::validator_for(&schema).unwrap();
    for seed in 0..8 {
        let mut c = compile(&grammars, &tok, &spec).unwrap();
        let temperature = if seed % 2 == 0 { 0.0 } else { 1.0 };
        let text = run(&mut c, &tok, seed, temperature, 400).unwrap();
        assert!(c.is_finished(), "seed {seed}: not finished: {text:?}");
        let text = String::from_utf8(text).unwrap();
        let v: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(validator.is_valid(&v), "seed {seed}: {text}");
        assert_eq!(v.as_object().unwrap().len(), 4, "{text}");
    }
}

#[test]
fn json_object_regex_and_lark() {
    let tok = tokenizer();
    let grammars = Grammars::default();
    // Any object: random logits pick any key and value; bounded runs must at least stay a
    // prefix of valid JSON, and a closed one parses as an object.
    let mut c = compile(&grammars, &tok, &ConstraintSpec::whole(Grammar::JsonObject)).unwrap();
    let text = run(&mut c, &tok, 3, 0.0, 300).unwrap();
    assert_eq!(text.first(), Some(&b'{'), "{text:?}");
    if c.is_finished() {
        let v: Json = serde_json::from_slice(&text).unwrap();
        assert!(v.is_object());
    }
    let rx = ConstraintSpec::whole(Grammar::Regex("(cat|dog)-[0-9]{2}".into()));
    for seed in 0..4 {
        let mut c = compile(&grammars, &tok, &rx).unwrap();
        let text = String::from_utf8(run(&mut c, &tok, seed, 1.0, 50).unwrap()).unwrap();
        assert!(c.is_finished(), "{text}");
        let (animal, digits) = text.split_once('-').unwrap();
        assert!(["cat", "dog"].contains(&animal), "{text}");
        assert!(digits.len() == 2 && digits.bytes().all(|b| b.is_ascii_digit()));
    }
    let lark = ConstraintSpec::whole(Grammar::Lark("start: (\"ab\" | \"c\") \"!\"".into()));
    let mut c = compile(&grammars, &tok, &lark).unwrap();
    let text = String::from_utf8(run(&mut c, &tok, 1, 1.0, 10).unwrap()).unwrap();
    assert!(["ab!", "c!"].contains(&text.as_str()), "{text}");
}

#[test]
fn a_token_the_grammar_refuses_is_an_error() {
    let tok = tokenizer();
    let grammars = Grammars::default();
    let mut c = compile(&grammars, &tok, &ConstraintSpec::whole(Grammar::JsonObject)).unwrap();
    assert!(c.commit(b'x' as u32).is_err());
    let mut c = compile(&grammars, &tok, &ConstraintSpec::whole(Grammar::JsonObject)).unwrap();
    for b in br#"{"a": 1}"# {
        c.commit(*b as u32).unwrap();
    }
    assert!(c.matcher.is_accepting().unwrap());
}

#[test]
fn harmony_scope_opens_at_the_final_channel() {
    let tok = tokenizer();
    let grammars = Grammars::default();
    let spec = ConstraintSpec {
        grammar: Grammar::JsonObject,
        scope: Scope::HarmonyFinal,
    };
    let ids = |s: &str| tok.encode(s, false).unwrap();
    let mut c = compile(&grammars, &tok, &spec).unwrap();
    c.start(&ids("<|start|>user<|message|>hi<|end|><|start|>assistant"));
    assert!(!c.is_open());
    // Reasoning is free text: anything goes, the grammar does not move.
    for t in ids("<|channel|>analysis<|message|>no JSON here<|end|><|start|>assistant") {
        c.commit(t).unwrap();
    }
    assert!(!c.is_open());
    for t in ids("<|channel|>final <|constrain|>json<|message|>") {
        c.commit(t).unwrap();
    }
    assert!(c.is_open());
    assert!(
        c.commit(b'x' as u32).is_err(),
        "the grammar holds once open"
    );

    // A prompt that ends inside the final header's message opens it at once; an earlier
    // turn's final message, closed, does not.
    let mut c = compile(&grammars, &tok, &spec).unwrap();
    c.start(&ids("<|start|>assistant<|channel|>final<|message|>"));
    assert!(c.is_open());
    let mut c = compile(&grammars, &tok, &spec).unwrap();
    c.start(&ids(
        "<|start|>assistant<|channel|>final<|message|>{}<|end|><|start|>assistant",
    ));
    assert!(!c.is_open());
    // A channel named like final but longer is not final.
    let mut c = compile(&grammars, &tok, &spec).unwrap();
    c.start(&ids("<|start|>assistant<|channel|>finally<|message|>"));
    assert!(!c.is_open());
}

#[test]
fn invalid_schemas_and_grammars_are_errors() {
    let tok = tokenizer();
    let grammars = Grammars::default();
    let bad = [
        Grammar::JsonSchema(json!({"type": 5})),
        Grammar::JsonSchema(json!({"type": "nonsense"})),
        Grammar::JsonSchema(json!({"$ref": "#/$defs/missing"})),
        Grammar::JsonSchema(json!({"type": "string", "pattern": "("})),
        Grammar::JsonSchema(json!({"type": "string", "minLength": 5, "maxLength": 2})),
        Grammar::JsonSchema(json!("object")),
        Grammar::JsonSchema(json!(false)),
        Grammar::JsonSchema(json!([1, 2])),
        Grammar::Regex("(".into()),
        Grammar::Lark("start: undefined_rule".into()),
        Grammar::Lark("".into()),
    ];
    for g in bad {
        let e = compile(&grammars, &tok, &ConstraintSpec::whole(g.clone()));
        assert!(e.is_err(), "{g:?} compiled");
        assert!(e.unwrap_err().to_string().starts_with("constraint: "));
    }
}

/// A random JSON value, schema keywords more likely than not, nested up to `depth`.
fn garbage(rng: &mut StdRng, depth: u32) -> Json {
    const KEYS: &[&str] = &[
        "type",
        "properties",
        "items",
        "required",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "$ref",
        "$defs",
        "definitions",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "additionalProperties",
        "prefixItems",
        "minItems",
        "maxItems",
        "multipleOf",
        "exclusiveMinimum",
        "if",
        "then",
        "else",
        "x-guidance",
        "patternProperties",
        "propertyNames",
        "uniqueItems",
        "contains",
        "dependentRequired",
    ];
    const STRINGS: &[&str] = &[
        "object",
        "string",
        "integer",
        "number",
        "boolean",
        "null",
        "array",
        "#",
        "#/$defs/a",
        "#/properties",
        "(",
        "[a-",
        "^.*$",
        "date-time",
        "email",
        "uri",
        "a",
        "",
        "\\",
        "😀",
    ];
    match rng.gen_range(0..10) {
        0 => Json::Null,
        1 => Json::Bool(rng.gen()),
        2 => json!(rng.gen_range(-1_000_000i64..1_000_000)),
        3 => json!(rng.gen_range(-1e12..1e12)),
        4 => json!(STRINGS[rng.gen_range(0..STRINGS.len())]),
        5 | 6 if depth > 0 => {
            let n = rng.gen_range(0..4);
            Json::Array((0..n).map(|_| garbage(rng, depth - 1)).collect())
        }
        _ if depth > 0 => {
            let n = rng.gen_range(0..5);
            let mut o = serde_json::Map::new();
            for _ in 0..n {
                let k = if rng.gen_bool(0.8) {
                    KEYS[rng.gen_range(0..KEYS.len())].to_string()
                } else {
                    STRINGS[rng.gen_range(0..STRINGS.len())].to_string()
                };
                o.insert(k, garbage(rng, depth - 1));
            }
            Json::Object(o)
        }
        _ => json!("leaf"),
    }
}

#[test]
fn random_garbage_schemas_give_errors_not_panics() {
    let tok = tokenizer();
    let grammars = Grammars::default();
    let mut rng = StdRng::seed_from_u64(12);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..400 {
        let schema = garbage(&mut rng, 4);
        match compile(
            &grammars,
            &tok,
            &ConstraintSpec::whole(Grammar::JsonSchema(schema)),
        ) {
            Ok(mut c) => {
                ok += 1;
                // What compiles also runs: a few masked steps, errors allowed, no panic.
                let _ = run(&mut c, &tok, 1, 1.0, 8);
            }
            Err(e) => {
                refused += 1;
                assert!(e.to_string().starts_with("constraint: "), "{e}");
            }
        }
    }
    // Both outcomes occur, so the generator does reach the compiler's error paths.
    assert!(ok > 0 && refused > 0, "{ok} compiled, {refused} refused");
    for _ in 0..100 {
        let junk: String = (0..rng.gen_range(0..40))
            .map(|_| char::from(rng.gen_range(b' '..=b'~')))
            .collect();
        let _ = compile(
            &grammars,
            &tok,
            &ConstraintSpec::whole(Grammar::Regex(junk.clone())),
        );
        let _ = compile(&grammars, &tok, &ConstraintSpec::whole(Grammar::Lark(junk)));
    }
}

fn offered_tools() -> Vec<Json> {
    vec![
        json!({"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
            "required": ["city"], "additionalProperties": false}}}),
        json!({"type": "function", "function": {"name": "time"}}),
    ]
}

/// Random logits through a forced tool choice, in each format: the text always parses into
/// calls (one for a named choice) to allowed tools, with arguments valid for their schema.
#[test]
fn forced_tool_calls_parse_and_validate_in_every_format() {
    use crate::tool_calls::ToolFormat;
    let tok = tokenizer();
    let grammars = Grammars::default();
    let tools = offered_tools();
    let schema_of = |name: &str| match name {
        "get_weather" => tools[0]["function"]["parameters"].clone(),
        _ => json!({"type": "object"}),
    };
    let choices = [
        ForcedTools::Required { parallel: false },
        ForcedTools::Required { parallel: true },
        ForcedTools::Function("time".into()),
        ForcedTools::Function("get_weather".into()),
    ];
    for format in [ToolFormat::Hermes, ToolFormat::Llama3, ToolFormat::Harmony] {
        for forced in &choices {
            let spec = forced_tool_calls(format, &tools, forced, &tok).unwrap();
            for seed in 0..4 {
                let mut c = compile(&grammars, &tok, &spec).unwrap();
                let temperature = if seed % 2 == 0 { 0.0 } else { 1.0 };
                let text = run(&mut c, &tok, seed, temperature, 4000).unwrap();
                let text = String::from_utf8(text).unwrap();
                // Parallel calls may end (EOS) or go on after each call: the text must end
                // at the end of one.
                let ended = match forced {
                    ForcedTools::Required { parallel: true } => text.ends_with(['>', '}']),
                    _ => c.is_finished(),
                };
                assert!(ended, "{format:?} {forced:?} {seed}: {text:?}");
                let (_, calls) = format.parse(&text);
                assert!(!calls.is_empty(), "{format:?} {forced:?}: {text:?}");
                if !matches!(forced, ForcedTools::Required { parallel: true }) {
                    assert_eq!(calls.len(), 1, "{format:?} {forced:?}: {text:?}");
                }
                for call in calls {
                    if let ForcedTools::Function(n) = forced {
                        assert_eq!(&call.name, n, "{text:?}");
                    }
                    let args: Json = serde_json::from_str(&call.arguments)
                        .unwrap_or_else(|e| panic!("{e}: {text:?}"));
                    let v = jsonschema::validator_for(&schema_of(&call.name)).unwrap();
                    assert!(v.is_valid(&args), "{format:?} {forced:?}: {text:?}");
                }
            }
        }
    }
    // A named function that is not offered, and a bad schema, are errors.
    let e = forced_tool_calls(
        ToolFormat::Hermes,
        &tools,
        &ForcedTools::Function("nope".into()),
        &tok,
    )
    .unwrap_err();
    assert!(e.to_string().contains("not in tools"), "{e}");
    let bad = vec![json!({"type": "function", "function": {"name": "f",
        "parameters": {"type": "object", "properties": {"x": {"type": "nonsense"}}}}})];
    let spec = forced_tool_calls(
        ToolFormat::Hermes,
        &bad,
        &ForcedTools::Required { parallel: false },
        &tok,
    )
    .unwrap();
    assert!(compile(&grammars, &tok, &spec).is_err());
}
