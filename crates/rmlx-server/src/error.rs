//! OpenAI-style errors: `{"error": {"message", "type", "param", "code"}}` with an HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmlx_lm::SubmitError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code: None,
        }
    }

    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn server(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            ..ApiError::invalid(message)
        }
    }

    /// A request the worker refused: the prompt (`param`: `messages` or `prompt`) too long,
    /// bad settings, a grammar llguidance refuses (`grammar`: the field it came from,
    /// `response_format` or, for a forced tool call, `tools`), or no room in the queue.
    pub fn from_submit(e: SubmitError, param: &'static str, grammar: &'static str) -> Self {
        let message = e.to_string();
        match e {
            SubmitError::TooLong(_) => ApiError::invalid(message)
                .with_param(param)
                .with_code("context_length_exceeded"),
            SubmitError::Invalid(_) => ApiError::invalid(message),
            SubmitError::Constraint(m) => {
                ApiError::invalid(format!("{grammar}: invalid schema or grammar: {m}"))
                    .with_param(grammar)
            }
            SubmitError::QueueFull => ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "server_overloaded",
                ..ApiError::invalid(message)
            }
            .with_code("queue_full"),
            SubmitError::Stopped => {
                ApiError::server(message).with_status(StatusCode::SERVICE_UNAVAILABLE)
            }
        }
    }

    /// The JSON object (also sent as a stream's last chunk when a request fails mid-stream).
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
