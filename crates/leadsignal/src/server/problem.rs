//! Every error answer of the HTTP API: one type, rendered as
//! `{"error": "..."}` with its status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// An error answer's body: `{"error": "..."}`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Problem {
    /// What is wrong.
    pub(crate) error: String,
}

/// What a handler answers when it cannot do what was asked: a status and a
/// message (never a secret or raw contact data).
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error answer with `status`.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 503: the outbox or the process cannot serve it now.
    pub(crate) fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(Problem {
                error: self.message,
            }),
        )
            .into_response()
    }
}

/// What every handler returns.
pub(crate) type ApiResult = Result<Response, ApiError>;
