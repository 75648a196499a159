//! `POST /v1/stage-changes`: stage changes pushed by a CRM, answered item
//! by item (accepted, already known, held, ignored, or rejected with field
//! and rule). Raw contact data is hashed here, before anything is stored.

use super::answers::{IngestAnswer, ItemAnswer, ItemError};
use super::auth::{token_ok, unauthorized, Authorized};
use super::problem::{ApiError, ApiResult};
use super::state::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Extension;
use axum::Json;
use leadsignal_core::Violation;
use leadsignal_intake::Checked;
use leadsignal_sources::ingest::{self, IngestFormat, Item};
use leadsignal_store::{Incoming, ItemOutcome};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// `?format=` (documents the parameter; the handler reads it raw so that
/// any query is answered the same way).
#[allow(dead_code)]
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FormatQuery {
    /// `records` (default), `hubspot` or `salesforce`.
    #[param(pattern = "^(records|json|hubspot|salesforce)$")]
    pub(crate) format: Option<String>,
    /// The dataset the stage changes belong to: `default` (`[meta]`'s) or a
    /// `[[datasets]]` name.
    pub(crate) dataset: Option<String>,
}

/// A stage-change record, the file import's JSON shape (ARCHITECTURE.md). Every
/// field may also be given as a JSON number where it is one (`lead_id`,
/// `changed_at` in Unix seconds).
#[allow(dead_code)]
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct StageChangeRecordDoc {
    /// Meta lead ID (15–17 digits; a JSON integer or text).
    pub(crate) lead_id: Option<String>,
    /// CRM record ID.
    pub(crate) crm_id: Option<String>,
    /// CRM stage name (mapped onto the funnel).
    pub(crate) stage: Option<String>,
    /// When the stage changed (RFC 3339, or Unix seconds).
    pub(crate) changed_at: Option<String>,
    /// When the lead was created.
    pub(crate) lead_created_at: Option<String>,
    /// Raw e-mail (hashed on arrival).
    pub(crate) email: Option<String>,
    /// Raw phone number (hashed on arrival).
    pub(crate) phone: Option<String>,
    /// First name.
    pub(crate) first_name: Option<String>,
    /// Last name.
    pub(crate) last_name: Option<String>,
    /// Full name ("Jane Doe", "Doe, Jane"): split into first and last name
    /// where those are absent (never hashed whole).
    pub(crate) full_name: Option<String>,
    /// City, as the CRM holds it.
    pub(crate) city: Option<String>,
    /// State or region.
    pub(crate) state: Option<String>,
    /// ZIP or postal code.
    pub(crate) zip: Option<String>,
    /// Country, as a name or an ISO code.
    pub(crate) country: Option<String>,
    /// Date of birth.
    pub(crate) date_of_birth: Option<String>,
    /// Gender, as the CRM holds it (`f`, `male`, ...).
    pub(crate) gender: Option<String>,
    /// Advertiser's ID for the person.
    pub(crate) external_id: Option<String>,
    /// Click ID, as the browser cookie holds it.
    pub(crate) fbc: Option<String>,
    /// Browser ID.
    pub(crate) fbp: Option<String>,
    /// `["LDU"]` or `[]`.
    pub(crate) data_processing_options: Option<Vec<String>>,
    /// LDU country (0: geolocate).
    pub(crate) data_processing_options_country: Option<String>,
    /// LDU state (0: geolocate).
    pub(crate) data_processing_options_state: Option<String>,
}

fn errors(v: &[Violation]) -> Vec<ItemError> {
    v.iter()
        .map(|v| ItemError {
            field: v.field.map(str::to_string),
            rule: v.code.to_string(),
            message: v.message.clone(),
        })
        .collect()
}

/// Stage changes as JSON records (one object or an array), or a CRM's own
/// webhook shape with `?format=hubspot|salesforce`.
#[utoipa::path(
    post,
    path = "/v1/stage-changes",
    params(FormatQuery),
    request_body(content = Vec<StageChangeRecordDoc>, description = "An array of stage-change records (or one record), a HubSpot webhook delivery (`?format=hubspot`) or a Salesforce outbound message (`?format=salesforce`, XML)", content_type = "application/json"),
    responses(
        (status = 200, description = "Every item answered", body = IngestAnswer),
        (status = 400, description = "Malformed body or unknown format", body = super::problem::Problem),
        (status = 401, description = "Missing or wrong bearer token", body = super::problem::Problem),
        (status = 404, description = "Unknown dataset (`?dataset=`)", body = super::problem::Problem),
        (status = 413, description = "Body too large"),
        (status = 503, description = "The outbox cannot be written", body = super::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn stage_changes(
    State(st): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let format =
        IngestFormat::parse(q.get("format").map_or("", String::as_str)).ok_or_else(|| {
            ApiError::bad_request("unknown format: use records, hubspot or salesforce")
        })?;
    let Some(target) = st.target(q.get("dataset").map(String::as_str)) else {
        // Dataset names are for authenticated callers only (the route
        // takes nothing else).
        let known: Vec<&str> = st.targets.iter().map(|t| t.0.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("unknown dataset: use one of {}", known.join(", ")),
        ));
    };
    receive(st, target, format, body).await
}

/// One HubSpot webhook event (the fields read).
#[allow(dead_code)]
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HubspotEventDoc {
    /// `contact.propertyChange` for stage changes.
    pub(crate) subscription_type: Option<String>,
    /// The contact's record ID (`crm_id`).
    pub(crate) object_id: Option<i64>,
    /// The property that changed (`server.hubspot_stage_property`).
    pub(crate) property_name: Option<String>,
    /// Its new value (the CRM stage).
    pub(crate) property_value: Option<String>,
    /// When, in milliseconds.
    pub(crate) occurred_at: Option<i64>,
}

/// A HubSpot webhook delivery: the bearer token, or HubSpot's v3 signature
/// when `server.hubspot_client_secret` is set (HubSpot cannot send a bearer
/// token).
#[utoipa::path(
    post,
    path = "/v1/stage-changes/hubspot",
    request_body(content = Vec<HubspotEventDoc>, content_type = "application/json"),
    params(
        ("X-HubSpot-Signature-v3" = Option<String>, Header, description = "base64 HMAC-SHA256 of method, URI, body and timestamp with the app's client secret"),
        ("X-HubSpot-Request-Timestamp" = Option<String>, Header, description = "milliseconds; at most 5 minutes away"),
    ),
    responses(
        (status = 200, description = "Every event answered (other properties: ignored)", body = IngestAnswer),
        (status = 400, description = "Malformed body", body = super::problem::Problem),
        (status = 401, description = "No valid bearer token or signature", body = super::problem::Problem),
        (status = 413, description = "Body too large"),
        (status = 503, description = "The outbox cannot be written", body = super::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn hubspot(
    State(st): State<Arc<AppState>>,
    bearer: Option<Extension<Authorized>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    if bearer.is_none() && !hubspot_signed(&st, &uri, &headers, &body) {
        return Err(unauthorized());
    }
    receive(st, 0, IngestFormat::Hubspot, body).await
}

/// A Salesforce outbound message (SOAP), answered with Salesforce's Ack.
#[utoipa::path(
    post,
    path = "/v1/stage-changes/salesforce",
    request_body(content = String, content_type = "text/xml"),
    responses(
        (status = 200, description = "Stored: Salesforce's acknowledgement", body = String, content_type = "text/xml"),
        (status = 400, description = "Not an outbound message", body = super::problem::Problem),
        (status = 401, description = "Missing or wrong bearer token", body = super::problem::Problem),
        (status = 413, description = "Body too large"),
        (status = 503, description = "Not stored; Salesforce delivers again", body = super::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn salesforce(State(st): State<Arc<AppState>>, body: Bytes) -> ApiResult {
    receive(st, 0, IngestFormat::Salesforce, body).await
}

/// A Salesforce outbound message with the API token as the last path
/// segment (outbound messages cannot carry headers).
#[utoipa::path(
    post,
    path = "/v1/stage-changes/salesforce/{token}",
    params(("token" = String, Path, description = "[server] api_token")),
    request_body(content = String, content_type = "text/xml"),
    responses(
        (status = 200, description = "Stored: Salesforce's acknowledgement", body = String, content_type = "text/xml"),
        (status = 400, description = "Not an outbound message", body = super::problem::Problem),
        (status = 401, description = "Wrong token", body = super::problem::Problem),
        (status = 413, description = "Body too large"),
        (status = 503, description = "Not stored; Salesforce delivers again", body = super::problem::Problem),
    )
)]
pub(crate) async fn salesforce_with_token(
    State(st): State<Arc<AppState>>,
    bearer: Option<Extension<Authorized>>,
    axum::extract::Path(token): axum::extract::Path<String>,
    body: Bytes,
) -> ApiResult {
    if bearer.is_none() && !token_ok(&st, &token) {
        return Err(unauthorized());
    }
    receive(st, 0, IngestFormat::Salesforce, body).await
}

/// Whether a HubSpot request carries a valid v3 signature.
fn hubspot_signed(st: &AppState, uri: &axum::http::Uri, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(secret) = st.hubspot_secret.as_deref() else {
        return false;
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // The URI as HubSpot called it: the public URL when configured (behind
    // a proxy), otherwise this server's Host.
    let base = match &st.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => format!("http://{}", header("host").unwrap_or("")),
    };
    let path = uri.path_and_query().map_or("", |p| p.as_str());
    let now_ms = crate::clock::unix_now() * 1000;
    match ingest::verify_hubspot_v3(
        secret.as_bytes(),
        "POST",
        &format!("{base}{path}"),
        body,
        header("x-hubspot-request-timestamp"),
        header("x-hubspot-signature-v3"),
        now_ms,
    ) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "HubSpot request signature refused");
            false
        }
    }
}

/// Stores what an authorized request carries for dataset `target` (an
/// index of `AppState::targets`) and answers item by item.
async fn receive(st: Arc<AppState>, target: usize, format: IngestFormat, body: Bytes) -> ApiResult {
    if st.stopping.load(Ordering::Relaxed) {
        return Err(ApiError::unavailable("shutting down"));
    }
    // A stable source name: the same bad item sent again is quarantined once.
    let source = match format {
        IngestFormat::Records => "http",
        IngestFormat::Hubspot => "http:hubspot",
        IngestFormat::Salesforce => "http:salesforce",
    };
    let items = ingest::parse(&body, format, &st.ingest, source)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let now = crate::clock::unix_now();
    let pc = Arc::clone(&st.targets[target].1);
    let items = with_known_lead_ids(&st, &pc.dataset_id, items).await;
    // Prepare (hash) every item; keep what each becomes for the answer.
    let mut answers: Vec<ItemAnswer> = Vec::with_capacity(items.len());
    let mut stored: Vec<Incoming> = Vec::with_capacity(items.len());
    let mut stored_at: Vec<usize> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let n = i as u64 + 1;
        let row = match item {
            Item::Ignored { reason, .. } => {
                answers.push(ItemAnswer {
                    item: n,
                    status: "ignored".into(),
                    event_name: None,
                    event_id: None,
                    errors: vec![ItemError {
                        field: None,
                        rule: "ingest.not_a_stage_change".into(),
                        message: reason,
                    }],
                });
                continue;
            }
            Item::Row(row) => *row,
        };
        let checked = leadsignal_intake::check(row, &pc, now).0;
        let answer = match &checked {
            Checked::Event { prepared, .. } => ItemAnswer {
                item: n,
                status: String::new(),
                event_name: Some(prepared.event.event_name.to_string()),
                event_id: Some(prepared.event.event_id.as_str().to_string()),
                errors: Vec::new(),
            },
            Checked::Rejected { violations, .. } => ItemAnswer {
                item: n,
                status: String::new(),
                event_name: None,
                event_id: None,
                errors: errors(violations),
            },
        };
        let incoming = checked.into_incoming();
        stored_at.push(answers.len());
        answers.push(answer);
        stored.push(incoming);
    }
    let outcomes = st.writer.write_to(target, stored).await.map_err(|e| {
        tracing::error!(error = %e, "stage changes not stored");
        ApiError::unavailable("the outbox cannot be written; nothing was stored, send again")
    })?;
    for (at, outcome) in stored_at.into_iter().zip(outcomes) {
        answers[at].status = match outcome {
            ItemOutcome::Accepted => "accepted",
            ItemOutcome::AlreadyKnown => "already_known",
            ItemOutcome::Held => "held",
            ItemOutcome::Expired => "expired",
            ItemOutcome::Skipped => "skipped",
            ItemOutcome::Rejected => "rejected",
        }
        .into();
    }
    let count = |s: &str| answers.iter().filter(|a| a.status == s).count();
    let answer = IngestAnswer {
        received: answers.len(),
        accepted: count("accepted"),
        already_known: count("already_known"),
        held: count("held"),
        expired: count("expired"),
        skipped: count("skipped"),
        ignored: count("ignored"),
        rejected: count("rejected"),
        items: answers,
    };
    st.metrics.ingested(&answer);
    if format == IngestFormat::Salesforce {
        // Salesforce wants its acknowledgement, or it delivers again.
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
            ingest::SALESFORCE_ACK,
        )
            .into_response());
    }
    Ok(Json(answer).into_response())
}

/// Items that name their lead by CRM record ID only (HubSpot and Salesforce
/// webhooks) get the Meta lead ID the outbox knows for that record, if any.
async fn with_known_lead_ids(st: &Arc<AppState>, dataset: &str, mut items: Vec<Item>) -> Vec<Item> {
    let wanted: Vec<(usize, String)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| match item {
            Item::Row(row) => match &row.record {
                Ok(r) if r.lead_id.is_none() => {
                    r.crm_id.as_ref().and_then(|c| c.text()).map(|c| (i, c))
                }
                _ => None,
            },
            Item::Ignored { .. } => None,
        })
        .collect();
    if wanted.is_empty() {
        return items;
    }
    let dataset = dataset.to_string();
    let found = st
        .read(move |s| {
            wanted
                .into_iter()
                .map(|(i, crm)| Ok((i, s.lead_id_of(&dataset, &crm)?)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
    match found {
        Ok(found) => {
            for (i, lead_id) in found {
                if let (Some(id), Item::Row(row)) = (lead_id, &mut items[i]) {
                    if let Ok(r) = &mut row.record {
                        r.lead_id = Some(leadsignal_core::Scalar::Int(id.into()));
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "lead IDs of CRM records not looked up"),
    }
    items
}
