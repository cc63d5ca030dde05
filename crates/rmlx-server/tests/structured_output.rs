//! `response_format` through a real OpenAI client (async-openai): json_schema and json_object
//! replies of the default model (SmolLM2, greedy) parse and validate, whole or streamed, equal
//! the library's constrained generation, and stay the same when batched beside free requests;
//! max_tokens cuts them with finish_reason "length"; invalid schemas are 400s; gpt-oss is
//! constrained in its final channel only.

#[path = "../../rmlx-lm/tests/support/schemas.rs"]
mod schemas;
mod support;

use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    CreateChatCompletionRequest, FinishReason, ResponseFormat, ResponseFormatJsonSchema,
};

use rmlx_lm::{ConstraintSpec, Engine, GenerateOptions, Grammar, Prompt, SamplerConfig};
use schemas::{person_schema, validate};
use serde_json::{json, Value as Json};
use support::{start, start_engine, start_with, tiny_chat, TestServer};
use tokio_stream::StreamExt;

const QUESTION: &str = "Describe a person named Alice, aged 30, who likes chess, as JSON.";

fn schema_format() -> ResponseFormat {
    ResponseFormat::JsonSchema {
        json_schema: ResponseFormatJsonSchema {
            description: None,
            name: "person".into(),
            schema: person_schema(),
            strict: Some(true),
        },
    }
}

fn request(max_tokens: u32, format: Option<ResponseFormat>) -> CreateChatCompletionRequest {
    support::chat_request(QUESTION, max_tokens, |a| {
        if let Some(f) = format {
            a.response_format(f);
        }
    })
}

async fn smollm2_server(parallel: usize) -> TestServer {
    let engine = Engine::load(rmlx_lm::default_model::fetch_default().unwrap()).unwrap();
    let opts = rmlx_lm::WorkerOptions {
        parallel,
        ..Default::default()
    };
    start_engine(engine, tempfile::tempdir().unwrap(), opts, |_| {}).await
}

/// (content, finish reason) of a whole reply.
async fn whole(server: &TestServer, r: CreateChatCompletionRequest) -> (String, FinishReason) {
    let reply = server.client().chat().create(r).await.unwrap();
    let c = &reply.choices[0];
    (
        c.message.content.clone().unwrap_or_default(),
        c.finish_reason.unwrap(),
    )
}

/// (content, finish reason) of a streamed reply, its deltas joined.
async fn streamed(server: &TestServer, r: CreateChatCompletionRequest) -> (String, FinishReason) {
    let mut stream = server.client().chat().create_stream(r).await.unwrap();
    let (mut text, mut finish) = (String::new(), None);
    while let Some(chunk) = stream.next().await {
        for c in chunk.unwrap().choices {
            text.push_str(c.delta.content.as_deref().unwrap_or(""));
            finish = finish.or(c.finish_reason);
        }
    }
    (text, finish.expect("a finish reason"))
}

#[tokio::test]
async fn json_schema_and_json_object_replies_parse_validate_and_match_the_library() {
    let server = smollm2_server(1).await;
    let schema = person_schema();
    let (content, finish) = whole(&server, request(300, Some(schema_format()))).await;
    assert_eq!(
        finish,
        FinishReason::Stop,
        "the grammar ended it: {content:?}"
    );
    validate(&schema, &content);
    assert_eq!(
        streamed(&server, request(300, Some(schema_format()))).await,
        (content.clone(), FinishReason::Stop)
    );
    // The library's constrained generation, with the same grammar over the whole reply.
    let engine = Engine::load(rmlx_lm::default_model::fetch_default().unwrap()).unwrap();
    let opts = GenerateOptions {
        max_tokens: Some(300),
        sampler: SamplerConfig::greedy(),
        constraint: Some(ConstraintSpec::whole(Grammar::JsonSchema(schema))),
        ..GenerateOptions::default()
    };
    let prompt = Prompt::Chat(vec![json!({"role": "user", "content": QUESTION})]);
    let lib = engine.generate(&prompt, &opts, None, &mut |_| {}).unwrap();
    assert_eq!(lib.text, content);

    let object = Some(ResponseFormat::JsonObject);
    let (content, finish) = whole(&server, request(300, object.clone())).await;
    assert_eq!(finish, FinishReason::Stop, "{content:?}");
    let v: Json = serde_json::from_str(&content).unwrap_or_else(|e| panic!("{e}: {content}"));
    assert!(v.is_object());
    assert_eq!(
        streamed(&server, request(300, object)).await,
        (content, FinishReason::Stop)
    );

    // "text" is no constraint: the same reply as no response_format (SmolLM2 fences its JSON
    // in Markdown, which does not parse).
    let free = whole(&server, request(300, None)).await;
    assert_eq!(
        whole(&server, request(300, Some(ResponseFormat::Text))).await,
        free
    );
    assert!(
        serde_json::from_str::<Json>(&free.0).is_err(),
        "{:?}",
        free.0
    );
}

#[tokio::test]
async fn constrained_and_free_requests_batched_get_their_own_replies() {
    let server = smollm2_server(4).await;
    let formats = [
        Some(schema_format()),
        None,
        Some(ResponseFormat::JsonObject),
        None,
        Some(schema_format()),
        Some(ResponseFormat::Text),
    ];
    let mut alone = Vec::new();
    for (i, f) in formats.iter().enumerate() {
        let r = request(if f.is_some() { 300 } else { 40 }, f.clone());
        alone.push(if i % 2 == 0 {
            whole(&server, r).await
        } else {
            streamed(&server, r).await
        });
    }
    let tasks: Vec<_> = formats
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let r = request(if f.is_some() { 300 } else { 40 }, f.clone());
            let client = server.client();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    let reply = client.chat().create(r).await.unwrap();
                    let c = &reply.choices[0];
                    (
                        c.message.content.clone().unwrap_or_default(),
                        c.finish_reason.unwrap(),
                    )
                } else {
                    let mut s = client.chat().create_stream(r).await.unwrap();
                    let (mut text, mut finish) = (String::new(), None);
                    while let Some(chunk) = s.next().await {
                        for c in chunk.unwrap().choices {
                            text.push_str(c.delta.content.as_deref().unwrap_or(""));
                            finish = finish.or(c.finish_reason);
                        }
                    }
                    (text, finish.unwrap())
                }
            })
        })
        .collect();
    let mut together = Vec::new();
    for t in tasks {
        together.push(t.await.unwrap());
    }
    assert_eq!(together, alone);
    validate(&person_schema(), &together[0].0);
    validate(&person_schema(), &together[4].0);
    assert!(serde_json::from_str::<Json>(&together[2].0)
        .unwrap()
        .is_object());
    // (Free replies of 40 tokens end at max_tokens, as they do alone.)
    assert_eq!(together[1].1, FinishReason::Length);
    // Some step ran several of them at once.
    let stats = server.worker.stats();
    assert!(stats.step_sequences > stats.steps, "{stats:?}");
}

#[tokio::test]
async fn max_tokens_cuts_a_constrained_reply_with_finish_length() {
    let server = smollm2_server(1).await;
    let (full, _) = whole(&server, request(300, Some(schema_format()))).await;
    let (cut, finish) = whole(&server, request(6, Some(schema_format()))).await;
    // OpenAI: with finish_reason "length" the JSON may be incomplete.
    assert_eq!(finish, FinishReason::Length);
    assert!(
        full.starts_with(&cut) && cut.len() < full.len(),
        "{cut:?} vs {full:?}"
    );
    assert!(serde_json::from_str::<Json>(&cut).is_err());
    assert_eq!(
        streamed(&server, request(6, Some(schema_format()))).await,
        (cut, FinishReason::Length)
    );
}

/// POSTs `body` to `path`; (status, JSON answer).
async fn post(server: &TestServer, path: &str, body: &Json) -> (u16, Json) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", server.base))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} ({e}): {text}"));
    (status, v)
}

#[tokio::test]
async fn invalid_response_formats_are_400s() {
    let server = start(256, 4, |_| {}).await;
    // Through the client: a schema llguidance refuses.
    let bad = ResponseFormat::JsonSchema {
        json_schema: ResponseFormatJsonSchema {
            description: None,
            name: "bad".into(),
            schema: json!({"type": 5}),
            strict: None,
        },
    };
    match server.client().chat().create(request(8, Some(bad))).await {
        Err(OpenAIError::ApiError(e)) => {
            assert_eq!(e.status_code.as_u16(), 400);
            assert_eq!(e.api_error.param.as_deref(), Some("response_format"));
            assert_eq!(e.api_error.r#type.as_deref(), Some("invalid_request_error"));
            assert!(e.api_error.message.contains("constraint"), "{e}");
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    let formats = [
        json!("json"),
        json!({"type": "xml"}),
        json!({"type": "json_schema"}),
        json!({"type": "json_schema", "json_schema": {"name": "x"}}),
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": "object"}}),
        json!({"type": "json_schema", "json_schema": {"schema": {"type": "string", "pattern": "("}}}),
        json!({"type": "json_schema", "json_schema": {"schema": {"$ref": "#/nowhere"}}}),
        json!({"type": "json_schema", "json_schema": {"schema": {"enum": []}}}),
        json!({"type": "json_schema", "json_schema": {"schema": {"type": "integer",
            "minimum": 5, "maximum": 1}}}),
    ];
    for (path, base) in [
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}),
        ),
        ("/v1/completions", json!({"prompt": "hi", "max_tokens": 8})),
    ] {
        for f in &formats {
            let mut body = base.clone();
            body["response_format"] = f.clone();
            let (status, v) = post(&server, path, &body).await;
            assert_eq!(status, 400, "{path} {f}: {v}");
            assert_eq!(v["error"]["param"], "response_format", "{v}");
            assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        }
    }
    // The server is fine afterwards, and nothing was queued for the refused requests.
    let (status, _) = post(
        &server,
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                "response_format": {"type": "json_object"}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(server.worker.stats().failed, 0);
}

#[tokio::test]
async fn completions_take_a_response_format_over_the_whole_text() {
    let server = smollm2_server(1).await;
    let body = json!({
        "prompt": "Alice is 30 and likes chess. Her profile as JSON:",
        "max_tokens": 300,
        "temperature": 0,
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "person", "schema": person_schema()}},
    });
    let (status, v) = post(&server, "/v1/completions", &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    validate(&person_schema(), v["choices"][0]["text"].as_str().unwrap());
}

#[tokio::test]
async fn gpt_oss_is_constrained_in_its_final_channel_only() {
    let server = start_with(tiny_chat::harmony_chat(512), 4, |_| {}).await;
    let schema = json!({"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}},
        "required": ["answer"], "additionalProperties": false});
    let chat = |format: Option<Json>| {
        let mut b = json!({"messages": [{"role": "user", "content": "yes?"}],
                           "max_tokens": 60, "temperature": 0});
        if let Some(f) = format {
            b["response_format"] = f;
        }
        b
    };
    let format = json!({"type": "json_schema", "json_schema": {"name": "a", "schema": schema}});
    // The random model never opens a final channel within these tokens: its reply (all
    // analysis or header-less text) is free, the same with or without the format.
    let (s1, free) = post(&server, "/v1/chat/completions", &chat(None)).await;
    let (s2, constrained) = post(&server, "/v1/chat/completions", &chat(Some(format))).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(
        constrained["choices"][0]["message"],
        free["choices"][0]["message"]
    );

    // A completion whose prompt opens the final channel is constrained from its first token
    // (the whole completion is, for /v1/completions). The random model fills every whitespace
    // run the grammar allows (16 bytes, a token each): 200 tokens leave room for all of them.
    let body = json!({
        "prompt": "<|start|>user<|message|>yes?<|end|><|start|>assistant<|channel|>final<|message|>",
        "max_tokens": 200, "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    });
    let (status, v) = post(&server, "/v1/completions", &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    validate(&schema, v["choices"][0]["text"].as_str().unwrap());
}
