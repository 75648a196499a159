//! `GET/POST /webhooks/meta`: Meta's Lead Ads webhook. New leads are stored
//! with their creation time and the funnel's first stage as their first
//! event ("every stage, including the initial lead stage").

use super::answers::WebhookAnswer;
use super::problem::{ApiError, ApiResult};
use super::state::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use leadsignal_core::{Origin, StageChange};
use leadsignal_intake::{check_change, Checked};
use leadsignal_sources::webhook::{self, WebhookError};
use leadsignal_store::ItemOutcome;
use std::collections::HashMap;
use std::sync::Arc;

/// Meta's subscription check.
#[utoipa::path(
    get,
    path = "/webhooks/meta",
    params(
        ("hub.mode" = String, Query, description = "subscribe"),
        ("hub.verify_token" = String, Query, description = "[server] webhook_verify_token"),
        ("hub.challenge" = String, Query, description = "echoed back"),
    ),
    responses(
        (status = 200, description = "The challenge, as text", body = String, content_type = "text/plain"),
        (status = 403, description = "Wrong mode or token", body = super::problem::Problem),
    )
)]
pub(crate) async fn verify(
    State(st): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let expected = st.verify_token.as_deref().unwrap_or("");
    match webhook::verify_subscription(
        q.get("hub.mode").map(String::as_str),
        q.get("hub.verify_token").map(String::as_str),
        q.get("hub.challenge").map(String::as_str),
        expected,
    ) {
        Ok(challenge) => Ok((StatusCode::OK, challenge).into_response()),
        Err(e) => Err(ApiError::new(StatusCode::FORBIDDEN, e.to_string())),
    }
}

/// A delivery: signature checked before anything else.
#[utoipa::path(
    post,
    path = "/webhooks/meta",
    request_body(content = String, description = "Meta's webhook payload (object=page, leadgen changes)", content_type = "application/json"),
    params(("X-Hub-Signature-256" = String, Header, description = "sha256=HMAC of the body with the app secret")),
    responses(
        (status = 200, description = "Stored", body = WebhookAnswer),
        (status = 400, description = "Not a webhook payload", body = super::problem::Problem),
        (status = 403, description = "Unsigned or forged", body = super::problem::Problem),
        (status = 503, description = "Not stored; Meta delivers again", body = super::problem::Problem),
    )
)]
pub(crate) async fn deliver(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let Some(secret) = st.app_secret.as_deref() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "no [meta] app_secret configured: webhook deliveries cannot be verified",
        ));
    };
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if let Err(e) = webhook::verify_signature(secret.as_bytes(), &body, sig) {
        st.metrics.webhook("refused");
        tracing::warn!(error = %e, "webhook delivery refused");
        return Err(ApiError::new(StatusCode::FORBIDDEN, e.to_string()));
    }
    let leads = match webhook::parse_leadgen(&body) {
        Ok(l) => l,
        Err(e @ WebhookError::Malformed(_)) => {
            st.metrics.webhook("malformed");
            return Err(ApiError::bad_request(e.to_string()));
        }
        Err(e) => return Err(ApiError::bad_request(e.to_string())),
    };
    let now = crate::clock::unix_now();
    let source = "webhook:meta";
    let hold = st.fetch.as_ref().map(|f| now + f.hold_secs);
    let mut items = Vec::with_capacity(leads.len());
    for (i, l) in leads.iter().enumerate() {
        let origin = Origin::new(source, i as u64 + 1);
        let sc = StageChange {
            lead_id: Some(l.lead_id),
            stage: st.webhook_stage.clone(),
            changed_at: l.created_time.unwrap_or(now),
            lead_created_at: l.created_time,
            origin: origin.clone(),
            ..Default::default()
        };
        let fingerprint = format_args!("leadgen:{}", l.lead_id.get());
        let item = check_change(sc, fingerprint, &st.pc, now, &mut Vec::new()).into_incoming();
        // With `fetch_leads`, held briefly so that the enriched version
        // (below) is what Meta gets.
        items.push(match hold {
            Some(t) => item.not_before(t),
            None => item,
        });
    }
    let outcomes = match st.writer.write(items).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "webhook leads not stored");
            return Err(ApiError::unavailable("not stored; deliver again"));
        }
    };
    let count = |o: ItemOutcome| outcomes.iter().filter(|&&x| x == o).count();
    let answer = WebhookAnswer {
        new_leads: count(ItemOutcome::Accepted) + count(ItemOutcome::Held),
        already_known: count(ItemOutcome::AlreadyKnown),
        rejected: count(ItemOutcome::Rejected),
    };
    st.metrics.webhook("accepted");
    if st.fetch.is_some() {
        let new: Vec<_> = leads
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| matches!(o, ItemOutcome::Accepted | ItemOutcome::Held))
            .map(|(l, _)| l.clone())
            .collect();
        if !new.is_empty() {
            tokio::spawn(enrich(Arc::clone(&st), new, now));
        }
    }
    tracing::info!(
        new = answer.new_leads,
        known = answer.already_known,
        "Lead Ads webhook delivery stored"
    );
    Ok(Json(answer).into_response())
}

/// Fetches each lead's form answers and replaces its still-pending first
/// event with one that carries them (hashed here). On any failure the event
/// goes out as it is once the hold ends: nothing waits forever.
async fn enrich(st: Arc<AppState>, leads: Vec<webhook::Leadgen>, now: i64) {
    let Some(f) = st.fetch.as_ref() else { return };
    let mut items = Vec::new();
    for l in leads {
        let lead = match f
            .client
            .get_lead(
                l.lead_id,
                &["created_time", "field_data"],
                &f.creds,
                crate::clock::unix_now(),
            )
            .await
        {
            Ok(lead) => lead,
            Err(e) => {
                tracing::warn!(lead_id = l.lead_id.get(), error = %f.creds.redact(&e.to_string()), "lead answers not fetched; its first event goes out without them");
                continue;
            }
        };
        let created = l.created_time.or(lead.created_time);
        let sc = StageChange {
            lead_id: Some(l.lead_id),
            stage: st.webhook_stage.clone(),
            changed_at: created.unwrap_or(now),
            lead_created_at: created,
            contact: contact(&lead.field_data),
            origin: Origin::new("webhook:meta", 0),
            ..Default::default()
        };
        match check_change(sc, "", &st.pc, now, &mut Vec::new()) {
            Checked::Rejected { violations, .. } => {
                tracing::warn!(lead_id = l.lead_id.get(), rules = ?violations.iter().map(|v| v.code).collect::<Vec<_>>(), "fetched lead answers not usable")
            }
            event => items.push(event.into_incoming()),
        }
    }
    if items.is_empty() {
        return;
    }
    match st.writer.refresh(items).await {
        Ok(n) => tracing::info!(
            enriched = n,
            "webhook leads enriched with their form answers"
        ),
        Err(e) => tracing::error!(error = %e, "enriched leads not stored"),
    }
}

/// Contact data from a lead form's answers (Meta's standard question keys).
fn contact(fields: &[leadsignal_graph::client::FieldData]) -> leadsignal_core::Contact {
    let mut c = leadsignal_core::Contact::default();
    let mut full_name = None;
    for f in fields {
        let Some(v) = f.values.first().filter(|v| !v.trim().is_empty()).cloned() else {
            continue;
        };
        let slot = match f.name.as_str() {
            "email" => &mut c.email,
            "phone_number" | "phone" => &mut c.phone,
            "first_name" => &mut c.first_name,
            "last_name" => &mut c.last_name,
            "city" => &mut c.city,
            "state" | "province" => &mut c.state,
            "zip_code" | "post_code" | "zip" => &mut c.zip,
            "country" => &mut c.country,
            "date_of_birth" => &mut c.date_of_birth,
            "gender" => &mut c.gender,
            "full_name" => {
                full_name = Some(v);
                continue;
            }
            _ => continue,
        };
        *slot = Some(v);
    }
    // "Dr. Jane Q. Doe": first and last name, titles off.
    if let Some(name) = full_name {
        let (first, last) = leadsignal_core::split_full_name(&name);
        if c.first_name.is_none() {
            c.first_name = first.map(str::to_string);
        }
        if c.last_name.is_none() {
            c.last_name = last.map(str::to_string);
        }
    }
    c
}
