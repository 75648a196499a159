//! Bearer authentication, as one layer: `authenticate` runs on every
//! request and marks those carrying `Authorization: Bearer <[server]
//! api_token>` (compared in constant time) as [`Authorized`]; `require`
//! answers 401 on the routes that take nothing else. The two CRM routes
//! that cannot send a header (HubSpot's signed webhooks, Salesforce's
//! outbound messages with the token in the path) take the mark or their own
//! proof.

use super::problem::ApiError;
use super::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The request carried the API token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Authorized;

/// Marks requests with the right bearer token.
pub(crate) async fn authenticate(
    State(st): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if token_ok(&st, given) {
        req.extensions_mut().insert(Authorized);
    }
    next.run(req).await
}

/// Answers 401 unless `authenticate` marked the request.
pub(crate) async fn require(req: Request, next: Next) -> Response {
    if req.extensions().get::<Authorized>().is_none() {
        return unauthorized().into_response();
    }
    next.run(req).await
}

/// The answer to a request without a valid token or proof.
pub(crate) fn unauthorized() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
}

/// `given` is the API token (constant-time comparison; never an empty one).
pub(crate) fn token_ok(st: &AppState, given: &str) -> bool {
    leadsignal_graph::proof::constant_time_eq(given.as_bytes(), st.api_token.as_bytes())
        && !st.api_token.is_empty()
}
