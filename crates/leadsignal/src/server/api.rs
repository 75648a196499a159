//! Read-only endpoints: one lead, the outbox status, health and readiness.

use super::problem::{ApiError, ApiResult};
use super::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use leadsignal_core::LeadId;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One lead: stage history and delivery state (hashed data only).
#[utoipa::path(
    get,
    path = "/v1/leads/{lead_id}",
    params(("lead_id" = String, Path, pattern = "^[1-9][0-9]{14,16}$", description = "Meta lead ID (15–17 digits)")),
    responses(
        (status = 200, description = "The lead", body = Object),
        (status = 400, description = "Not a lead ID", body = super::problem::Problem),
        (status = 401, description = "Missing or wrong bearer token", body = super::problem::Problem),
        (status = 404, description = "Unknown lead", body = super::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn lead(
    State(st): State<Arc<AppState>>,
    Path(lead_id): Path<String>,
) -> ApiResult {
    let id = LeadId::parse(&lead_id).map_err(|e| ApiError::bad_request(format!("lead_id: {e}")))?;
    let dataset = st.pc.dataset_id.clone();
    match st.read(move |s| s.lead(&dataset, id.get())).await {
        Ok(Some(l)) => Ok(Json(l).into_response()),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such lead in this dataset",
        )),
        Err(e) => Err(ApiError::unavailable(e)),
    }
}

/// The figures of `leadsignal status`, with the upload-cadence warnings.
#[utoipa::path(
    get,
    path = "/v1/status",
    responses(
        (status = 200, description = "Outbox status", body = Object),
        (status = 401, description = "Missing or wrong bearer token", body = super::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn status(State(st): State<Arc<AppState>>) -> ApiResult {
    match st.read(|s| s.status(crate::clock::unix_now())).await {
        Ok(s) => Ok(Json(s).into_response()),
        Err(e) => Err(ApiError::unavailable(e)),
    }
}

/// The process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// The store is reachable and delivery is not paused.
#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "Store unreachable, delivery paused, or shutting down", body = super::problem::Problem),
    )
)]
pub(crate) async fn readyz(State(st): State<Arc<AppState>>) -> ApiResult {
    if st.stopping.load(Ordering::Relaxed) {
        return Err(ApiError::unavailable("shutting down"));
    }
    let dataset = st.pc.dataset_id.clone();
    match st.read(move |s| s.paused(&dataset)).await {
        Ok(None) => Ok((StatusCode::OK, "ready").into_response()),
        Ok(Some(p)) => Err(ApiError::unavailable(format!(
            "delivery to dataset {} is paused: {}",
            p.dataset_id, p.reason
        ))),
        Err(e) => Err(ApiError::unavailable(format!("store unreachable: {e}"))),
    }
}
