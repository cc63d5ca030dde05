//! The endpoints: check the request, queue it on the worker, answer with the whole reply or
//! an SSE stream of chunks.

use crate::error::ApiError;
use crate::logprobs::{attach, Logprobs};
use crate::reply::{finish_of, Accumulator, Delta, Endpoint, Head};
use crate::request::{self, ChatRequest, Common, CompletionRequest};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rmlx_lm::tool_calls::ToolFormat;
use rmlx_lm::{forced_tool_calls, ConstraintSpec, Event, Prompt};
use serde_json::json;
use std::convert::Infallible;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;

pub async fn models(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "object": "list",
        "data": [{
            "id": state.config.model_id,
            "object": "model",
            "created": 0,
            "owned_by": "rmlx",
            "meta": {"context_length": state.worker.engine().model.info().context_length},
        }],
    }))
}

pub async fn chat(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ChatRequest = request::parse(&body_bytes(body)?)?;
    check_model(&state, &req.common)?;
    let prompt = req.prompt()?;
    if state.worker.engine().template.is_none() {
        return Err(ApiError::invalid(
            "this model has no chat template: use /v1/completions",
        ));
    }
    let engine = state.worker.engine();
    let harmony = engine.uses_harmony();
    let offered = req.offered_tools()?;
    let tools = match &offered {
        None => None,
        Some(_) => Some(engine.tool_format().ok_or_else(|| {
            ApiError::invalid(
                "tools: this model's chat template takes no tools (no known tool-call format)",
            )
            .with_param("tools")
        })?),
    };
    let forced = match (req.forced_tools()?, tools, &offered) {
        (Some(forced), Some(format), Some(serde_json::Value::Array(list))) => {
            // Two grammars for one reply: refused rather than one silently dropped.
            if req.common.grammar()?.is_some() {
                return Err(ApiError::invalid(
                    "response_format: cannot be combined with a tool_choice that forces a call \
                     (\"required\" or a named function)",
                )
                .with_param("response_format"));
            }
            let spec = forced_tool_calls(format, list, &forced, &engine.tokenizer)
                .map_err(|e| ApiError::invalid(e.to_string()).with_param("tool_choice"))?;
            Some(spec)
        }
        _ => None,
    };
    run(
        state,
        Endpoint::Chat,
        prompt,
        req.common,
        Shape { harmony, tools },
        forced,
    )
    .await
}

/// How a reply's text is read: harmony channels, and the tool-call format when tools were
/// offered.
#[derive(Clone, Copy)]
struct Shape {
    harmony: bool,
    tools: Option<ToolFormat>,
}

pub async fn completions(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CompletionRequest = request::parse(&body_bytes(body)?)?;
    check_model(&state, &req.common)?;
    let prompt = request::text_prompt(&req.prompt)?;
    run(
        state,
        Endpoint::Completion,
        prompt,
        req.common,
        Shape {
            harmony: false,
            tools: None,
        },
        None,
    )
    .await
}

/// The body, or the reason it could not be read (413 when over the limit).
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        let status = r.status();
        let e = ApiError::invalid(r.body_text()).with_status(status);
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            e.with_code("body_too_large")
        } else {
            e
        }
    })
}

fn check_model(state: &AppState, common: &Common) -> Result<(), ApiError> {
    let asked = match &common.model {
        Some(m) if *m != state.config.model_id => m,
        _ => return Ok(()),
    };
    Err(ApiError::invalid(format!(
        "the model `{asked}` does not exist here; this server serves `{}`",
        state.config.model_id
    ))
    .with_status(StatusCode::NOT_FOUND)
    .with_param("model")
    .with_code("model_not_found"))
}

/// Queues the request; answers with the whole reply or a stream. `forced`: the grammar of a
/// forced tool call (chat).
async fn run(
    state: AppState,
    endpoint: Endpoint,
    prompt: Prompt,
    common: Common,
    shape: Shape,
    forced: Option<ConstraintSpec>,
) -> Result<Response, ApiError> {
    let chat = endpoint == Endpoint::Chat;
    let prompt_param = if chat { "messages" } else { "prompt" };
    let grammar_param = if forced.is_some() {
        "tools"
    } else {
        "response_format"
    };
    let mut opts = common.options(chat, shape.harmony, state.config.kv_cache)?;
    // A chat reply of gpt-oss is constrained in its final channel only (its reasoning is free);
    // a completion's prompt is the client's own text, so the whole completion is. A forced
    // tool call (never combined with a response_format) covers the whole reply.
    opts.constraint = match forced {
        Some(spec) => Some(spec),
        None => common.grammar()?.map(|g| match endpoint {
            Endpoint::Chat => ConstraintSpec::for_chat(state.worker.engine(), g),
            Endpoint::Completion => ConstraintSpec::whole(g),
        }),
    };
    let logprobs = Logprobs::new(endpoint, opts.logprobs.is_some());
    let (tx, rx) = unbounded_channel();
    // The worker asks before every step whether the client is gone (`rx` dropped), so a
    // request frees its slot even before it has text to send.
    let probe = tx.clone();
    // Tokenizing and the context check happen here, on this task (milliseconds); the model
    // runs on the worker thread.
    state
        .worker
        .submit_probed(
            &prompt,
            opts,
            Box::new(move |e| tx.send(e).is_ok()),
            Some(Box::new(move || probe.is_closed())),
        )
        .map_err(|e| ApiError::from_submit(e, prompt_param, grammar_param))?;
    let head = Head::new(endpoint, &state.config.model_id);
    let out = Output {
        head,
        shape,
        logprobs,
    };
    if common.stream {
        Ok(stream(out, rx, common.include_usage()))
    } else {
        whole(out, rx).await
    }
}

/// How a request's events become its answer.
struct Output {
    head: Head,
    shape: Shape,
    logprobs: Logprobs,
}

async fn whole(out: Output, mut rx: UnboundedReceiver<Event>) -> Result<Response, ApiError> {
    let Output {
        head,
        shape,
        mut logprobs,
    } = out;
    let mut acc = Accumulator::new(shape.harmony, shape.tools);
    while let Some(e) = rx.recv().await {
        match e {
            Event::Text(t) => {
                acc.push(&t);
            }
            Event::Logprob(l) => logprobs.push(l),
            Event::Done(stats) => {
                let (_, reply) = acc.finish();
                let body = attach(head.response(&reply, &stats), logprobs.take());
                return Ok(Json(body).into_response());
            }
            Event::Error(m) => return Err(ApiError::server(m)),
        }
    }
    Err(ApiError::server(
        "the engine worker ended the request without a result",
    ))
}

/// SSE chunks: (chat) a role chunk, text chunks (each with the log-probabilities of the
/// tokens gathered since the last one, when asked for), a chunk with the finish reason, the
/// usage chunk on request, `[DONE]`. A failure mid-stream sends an error object and ends.
fn stream(out: Output, mut rx: UnboundedReceiver<Event>, usage: bool) -> Response {
    let (tx, chunks) = unbounded_channel::<String>();
    tokio::spawn(async move {
        let Output {
            head,
            shape,
            mut logprobs,
        } = out;
        let send = |v: serde_json::Value| tx.send(v.to_string()).is_ok();
        if head.endpoint == Endpoint::Chat && !send(head.chunk(Delta::Role, None, usage)) {
            return;
        }
        let mut acc = Accumulator::new(shape.harmony, shape.tools);
        // Reasoning, then content; the pending log-probabilities ride on the first chunk.
        let send_text = |(r, c): (String, String), lp: &mut Logprobs| {
            let mut part = |d: Delta| send(attach(head.chunk(d, None, usage), lp.take()));
            (r.is_empty() || part(Delta::Reasoning(r))) && (c.is_empty() || part(Delta::Content(c)))
        };
        loop {
            // A closed stream (client gone) returns, dropping `rx`: that cancels the request,
            // even while it has nothing to send.
            let e = tokio::select! {
                e = rx.recv() => e,
                _ = tx.closed() => return,
            };
            let Some(e) = e else {
                break;
            };
            match e {
                Event::Text(t) => {
                    if !send_text(acc.push(&t), &mut logprobs) {
                        return;
                    }
                }
                Event::Logprob(l) => logprobs.push(l),
                Event::Done(stats) => {
                    let (rest, reply) = acc.finish();
                    let calls = !reply.tool_calls.is_empty();
                    let end = head.chunk(Delta::None, Some(finish_of(&reply, stats.finish)), usage);
                    let _ = send_text(rest, &mut logprobs)
                        && (!calls
                            || send(head.chunk(Delta::ToolCalls(&reply.tool_calls), None, usage)))
                        && send(attach(end, logprobs.take()))
                        && (!usage || send(head.usage_chunk(&stats)))
                        && tx.send("[DONE]".into()).is_ok();
                    return;
                }
                Event::Error(m) => {
                    let _ = send(ApiError::server(m).body());
                    return;
                }
            }
        }
    });
    let events = UnboundedReceiverStream::new(chunks)
        .map(|data| Ok::<_, Infallible>(SseEvent::default().data(data)));
    Sse::new(events).into_response()
}
