//! rmlx-server: an OpenAI-compatible HTTP API over an [`rmlx_lm::Worker`].
//!
//! The router is a library function ([`router`]) so an app can mount it in its own axum
//! server; `rmlx serve` binds it to a port ([`serve`]). Endpoints: `POST /v1/chat/completions`,
//! `POST /v1/completions` (JSON or SSE streams ending with `data: [DONE]`), `GET /v1/models`,
//! `GET /health`, `GET /metrics` (Prometheus text). Up to the worker's `parallel` requests run
//! at once, batched; the others wait in its bounded queue, and a full queue answers 429. A
//! client that disconnects frees its slot at the next step. A request whose prompt begins as a
//! finished one's did reuses that slot's KV cache (`usage.prompt_tokens_details.cached_tokens`).
//!
//! The `model` field must name the served model's id (as `/v1/models` lists it); any other
//! name is a 404 `model_not_found`, as OpenAI answers, so a client never silently talks to a
//! model it did not ask for.

// No unsafe code here: the unsafe kernels live in rmlx-core, behind safe APIs.
#![forbid(unsafe_code)]

mod error;
mod handlers;
mod logprobs;
mod metrics;
mod reply;
mod request;

pub use error::ApiError;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rmlx_lm::cache::CacheKind;
use rmlx_lm::Worker;
use std::sync::Arc;

/// What the server needs besides the worker.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The id requests name in `model` and `/v1/models` lists.
    pub model_id: String,
    /// Requests must carry `Authorization: Bearer KEY` (all routes but `/health`).
    pub api_key: Option<String>,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// How the KV cache of each request stores keys and values.
    pub kv_cache: CacheKind,
}

impl ServerConfig {
    pub fn new(model_id: impl Into<String>) -> Self {
        ServerConfig {
            model_id: model_id.into(),
            api_key: None,
            max_body_bytes: 4 << 20,
            kv_cache: CacheKind::default(),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub worker: Arc<Worker>,
    pub config: Arc<ServerConfig>,
}

impl AppState {
    pub fn new(worker: Arc<Worker>, config: ServerConfig) -> Self {
        AppState {
            worker,
            config: Arc::new(config),
        }
    }
}

/// The API's routes, authentication and body limit.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(handlers::chat))
        .route("/v1/completions", post(handlers::completions))
        .route("/v1/models", get(handlers::models))
        .route("/metrics", get(metrics::metrics))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_key,
        ));
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

async fn not_found(req: Request) -> ApiError {
    ApiError::invalid(format!(
        "unknown request URL: {} {}",
        req.method(),
        req.uri().path()
    ))
    .with_status(StatusCode::NOT_FOUND)
    .with_code("not_found")
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::invalid(format!(
        "method {} is not allowed on {}",
        req.method(),
        req.uri().path()
    ))
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
    .with_code("method_not_allowed")
}

async fn require_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.config.api_key {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same_secret(g.as_bytes(), key.as_bytes())) {
            return ApiError::invalid("invalid or missing API key (Authorization: Bearer KEY)")
                .with_status(StatusCode::UNAUTHORIZED)
                .with_code("invalid_api_key")
                .into_response();
        }
    }
    next.run(req).await
}

/// Compares without stopping at the first difference (no timing hint of the key's prefix).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
