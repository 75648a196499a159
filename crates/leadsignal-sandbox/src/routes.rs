//! The sandbox's HTTP handlers.

use super::validate::{check_events, invalid};
use super::{ms, now, oauth, trace_id, Accepted, RequestRecord, Shared, State};
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use leadsignal_graph::proof::{appsecret_proof, appsecret_proof_timed, constant_time_eq};
use leadsignal_graph::GraphError;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn router(state: Shared) -> Router {
    Router::new()
        .route("/sandbox/events", get(list_events))
        .route("/sandbox/stats", get(stats))
        .route("/{version}/{id}/events", post(events))
        .route("/{version}/{id}", get(lead))
        .with_state(state)
}

/// Graph's error answer: the envelope, a trace ID, JSON.
fn error_response(status: StatusCode, mut e: GraphError, usage: Option<Value>) -> Response {
    let trace = trace_id();
    e.fbtrace_id = Some(trace.clone());
    let mut r = (status, axum::Json(json!({ "error": e }))).into_response();
    decorate(&mut r, &trace, usage);
    r
}

fn decorate(r: &mut Response, trace: &str, usage: Option<Value>) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(trace) {
        h.insert("x-fb-trace-id", v);
    }
    if let Some(u) = usage {
        if let Ok(v) = HeaderValue::from_str(&u.to_string()) {
            h.insert("x-business-use-case-usage", v);
        }
    }
}

fn usage(dataset: &str, percent: u64, regain_minutes: u64) -> Value {
    json!({ dataset: [{
        "type": "ads_management", "call_count": percent, "total_cputime": percent / 4,
        "total_time": percent / 3, "estimated_time_to_regain_access": regain_minutes,
        "ads_api_access_tier": "standard_access"
    }]})
}

/// The request's parameters, whatever form they came in: a JSON object, or
/// form fields whose non-string values are JSON-encoded (Meta's SDKs).
fn params(
    headers: &HeaderMap,
    body: &[u8],
    query: HashMap<String, String>,
) -> Result<HashMap<String, Value>, GraphError> {
    let mut out: HashMap<String, Value> = query
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if body.is_empty() {
        return Ok(out);
    }
    if content_type.starts_with("application/json") {
        let v: Value = serde_json::from_slice(body)
            .map_err(|_| invalid(None, "Invalid JSON", "The request body is not valid JSON."))?;
        let Value::Object(o) = v else {
            return Err(invalid(
                None,
                "Invalid JSON",
                "The request body must be a JSON object.",
            ));
        };
        out.extend(o);
    } else {
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| {
            invalid(
                None,
                "Invalid Form",
                "The request body is not form-encoded.",
            )
        })?;
        for (k, v) in fields {
            out.insert(k, Value::String(v));
        }
    }
    Ok(out)
}

/// `data` as an array of event objects: JSON array, or a string holding one,
/// whose elements may themselves be JSON-encoded strings (Python SDK).
fn data(p: &mut HashMap<String, Value>) -> Result<Vec<Value>, GraphError> {
    let missing = || {
        invalid(
            None,
            "Missing Data",
            "(#100) The parameter data is required",
        )
    };
    let v = p.remove("data").ok_or_else(missing)?;
    let array = match v {
        Value::Array(a) => a,
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Array(a)) => a,
            _ => {
                return Err(invalid(
                    None,
                    "Invalid Data",
                    "data must be a JSON array of events",
                ))
            }
        },
        _ => return Err(missing()),
    };
    Ok(array
        .into_iter()
        .map(|e| match e {
            Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
            e => e,
        })
        .collect())
}

fn token(headers: &HeaderMap, p: &HashMap<String, Value>) -> Option<String> {
    if let Some(t) = p.get("access_token").and_then(Value::as_str) {
        return Some(t.to_string());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    auth.strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("OAuth "))
        .map(str::to_string)
}

/// Token, object and proof checks; `Ok` with the dataset's app secret state.
fn authorize(
    s: &State,
    object_dataset: Option<&str>,
    headers: &HeaderMap,
    p: &HashMap<String, Value>,
    now: i64,
) -> Result<(), (StatusCode, GraphError)> {
    let Some(token) = token(headers, p) else {
        return Err((
            StatusCode::BAD_REQUEST,
            oauth(
                104,
                None,
                "An access token is required to request this resource.",
            ),
        ));
    };
    let current = |d: &super::SandboxDataset| -> Option<String> {
        match s.tokens.get(&d.id) {
            Some(t) => t.clone(),
            None => Some(d.access_token.clone()),
        }
    };
    let revoked = s.cfg.faults.revoke_at.is_some_and(|t| now >= t);
    let owner = s
        .cfg
        .datasets
        .iter()
        .find(|d| current(d).is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes())));
    let was_issued = s
        .cfg
        .datasets
        .iter()
        .any(|d| constant_time_eq(d.access_token.as_bytes(), token.as_bytes()))
        || s.tokens.values().flatten().any(|t| t == &token);
    let Some(owner) = owner.filter(|_| !revoked) else {
        return Err(if was_issued {
            (
                StatusCode::BAD_REQUEST,
                oauth(
                    190,
                    Some(460),
                    "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.",
                ),
            )
        } else {
            (
                StatusCode::UNAUTHORIZED,
                oauth(
                    190,
                    None,
                    "Invalid OAuth access token - Cannot parse access token",
                ),
            )
        });
    };
    if let Some(dataset) = object_dataset {
        if owner.id != dataset {
            let mut e = oauth(
                100,
                Some(33),
                &format!("Unsupported post request. Object with ID '{dataset}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."),
            );
            e.kind = "GraphMethodException".into();
            return Err((StatusCode::BAD_REQUEST, e));
        }
    }
    if let Some(secret) = &owner.app_secret {
        let method = |m: &str| {
            let mut e = oauth(100, None, m);
            e.kind = "GraphMethodException".into();
            (StatusCode::BAD_REQUEST, e)
        };
        let Some(proof) = p.get("appsecret_proof").and_then(Value::as_str) else {
            return Err(method(
                "API calls from the server require an appsecret_proof argument",
            ));
        };
        let time = p.get("appsecret_time").and_then(|v| match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        });
        let expected = match time {
            Some(t) if (now - t).abs() > 300 => {
                return Err(method(
                    "The appsecret_time is too old; appsecret_proof expires after 5 minutes",
                ));
            }
            Some(t) => appsecret_proof_timed(secret, &token, t),
            None => appsecret_proof(secret, &token),
        };
        if !constant_time_eq(expected.as_bytes(), proof.as_bytes()) {
            return Err(method(
                "Invalid appsecret_proof provided in the API argument",
            ));
        }
    }
    Ok(())
}

fn record(
    s: &mut State,
    object_id: &str,
    events: usize,
    status: StatusCode,
    e: Option<&GraphError>,
    test: bool,
) {
    let status = status.as_u16();
    s.requests.push(RequestRecord {
        at_ms: s.started.elapsed().as_millis() as u64,
        object_id: object_id.to_string(),
        events,
        status,
        code: e.map(|e| e.code),
        subcode: e.and_then(|e| e.error_subcode),
        test,
    });
    s.stats.requests += 1;
    *s.stats.by_status.entry(status).or_default() += 1;
}

/// `POST /{version}/{dataset}/events`, answered `latency_ms` after the
/// request arrived (the sandbox's own work included, as Meta's is in the
/// time it takes to answer).
async fn events(
    state: AxState<Shared>,
    path: Path<(String, String)>,
    query: Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = state.lock().expect("sandbox state").cfg.faults.latency_ms;
    let answer_at = tokio::time::Instant::now() + ms(latency);
    let answer = events_answer(state, path, query, headers, body).await;
    tokio::time::sleep_until(answer_at).await;
    answer
}

async fn events_answer(
    AxState(state): AxState<Shared>,
    Path((_version, dataset)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let faults = state.lock().expect("sandbox state").cfg.faults.clone();
    let now = now();
    let fail = |status: StatusCode, e: GraphError, n: usize, test: bool, usage: Option<Value>| {
        let mut s = state.lock().expect("sandbox state");
        record(&mut s, &dataset, n, status, Some(&e), test);
        drop(s);
        error_response(status, e, usage)
    };
    let mut p = match params(&headers, &body, query) {
        Ok(p) => p,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e, 0, false, None),
    };
    let test_code = p
        .get("test_event_code")
        .and_then(Value::as_str)
        .map(str::to_string);
    let test = test_code.is_some();
    let auth = {
        let s = state.lock().expect("sandbox state");
        authorize(&s, Some(&dataset), &headers, &p, now)
    };
    if let Err((status, e)) = auth {
        return fail(status, e, 0, test, None);
    }
    if faults
        .rate_limit_windows
        .iter()
        .any(|&(a, b)| now >= a && now < b)
        && (faults.rate_limited_datasets.is_empty()
            || faults.rate_limited_datasets.contains(&dataset))
    {
        let mut e = oauth(17, None, "User request limit reached");
        e.is_transient = Some(true);
        let u = usage(&dataset, 100, faults.regain_minutes);
        return fail(StatusCode::BAD_REQUEST, e, 0, test, Some(u));
    }
    if faults.timeout_rate > 0.0 && fastrand::f64() < faults.timeout_rate {
        tokio::time::sleep(ms(faults.hang_ms.max(1))).await;
        let mut e = oauth(
            2,
            None,
            "An unexpected error has occurred. Please retry your request later.",
        );
        e.is_transient = Some(true);
        return fail(StatusCode::GATEWAY_TIMEOUT, e, 0, test, None);
    }
    if faults.error_rate > 0.0 && fastrand::f64() < faults.error_rate {
        let mut e = oauth(2, None, "Service temporarily unavailable");
        e.kind = "FacebookApiException".into();
        e.is_transient = Some(true);
        return fail(StatusCode::INTERNAL_SERVER_ERROR, e, 0, test, None);
    }
    let data = match data(&mut p) {
        Ok(d) => d,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e, 0, test, None),
    };
    let n = data.len();
    let checked = match check_events(&data, now) {
        Ok(c) => c,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e, n, test, None),
    };
    let deleted = {
        let s = state.lock().expect("sandbox state");
        checked
            .iter()
            .position(|c| c.lead_id.is_some_and(|l| s.cfg.deleted_leads.contains(&l)))
    };
    if let Some(i) = deleted {
        let e = invalid(
            Some(2_804_036),
            "Invalid Lead ID",
            format!("data[{i}]: The lead ID is invalid or was deleted."),
        );
        return fail(StatusCode::BAD_REQUEST, e, n, test, None);
    }
    let trace = trace_id();
    {
        let mut s = state.lock().expect("sandbox state");
        record(&mut s, &dataset, n, StatusCode::OK, None, test);
        let keep = s.cfg.keep_full;
        let (shared_dataset, shared_trace): (Arc<str>, Arc<str>) =
            (dataset.as_str().into(), trace.as_str().into());
        let shared_code: Option<Arc<str>> = test_code.as_deref().map(Into::into);
        for (c, full) in checked.into_iter().zip(data) {
            s.stats.events_accepted += 1;
            let event_id: Option<Arc<str>> = c.event_id.as_deref().map(Into::into);
            if test {
                s.stats.test_events_accepted += 1;
            } else if let Some(id) = &event_id {
                let count = s.seen.entry(Arc::clone(id)).or_insert(0);
                *count += 1;
                match *count {
                    1 => s.stats.distinct_event_ids += 1,
                    2 => s.stats.duplicate_event_ids += 1,
                    _ => {}
                }
            }
            let event_name = match s.names.get(&c.event_name) {
                Some(n) => Arc::clone(n),
                None => {
                    let n: Arc<str> = c.event_name.as_str().into();
                    s.names.insert(c.event_name, Arc::clone(&n));
                    n
                }
            };
            s.accepted.push(Accepted {
                dataset_id: Arc::clone(&shared_dataset),
                event_id,
                event_name,
                event_time: c.event_time,
                lead_id: c.lead_id,
                test_event_code: shared_code.clone(),
                fbtrace_id: Arc::clone(&shared_trace),
            });
            if keep > 0 {
                if s.full.len() == keep {
                    s.full.pop_front();
                }
                s.full.push_back(full);
            }
        }
    }
    let mut r = axum::Json(json!({"events_received": n, "messages": [], "fbtrace_id": trace}))
        .into_response();
    decorate(&mut r, &trace, Some(usage(&dataset, 2, 0)));
    r
}

async fn lead(
    AxState(state): AxState<Shared>,
    Path((_version, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let now = now();
    let p: HashMap<String, Value> = query
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let mut s = state.lock().expect("sandbox state");
    if let Err((status, e)) = authorize(&s, None, &headers, &p, now) {
        record(&mut s, &id, 0, status, Some(&e), false);
        return error_response(status, e, None);
    }
    // A dataset: answered to the token that may write to it (doctor).
    if s.cfg.datasets.iter().any(|d| d.id == id) {
        if let Err((status, e)) = authorize(&s, Some(&id), &headers, &p, now) {
            record(&mut s, &id, 0, status, Some(&e), false);
            return error_response(status, e, None);
        }
        record(&mut s, &id, 0, StatusCode::OK, None, false);
        let mut r =
            axum::Json(json!({"id": id, "name": format!("Sandbox dataset {id}")})).into_response();
        let offset = s.cfg.faults.clock_offset_secs;
        if offset != 0 {
            // Graph's clock, as its Date header tells it (RFC 7231 form).
            let date = chrono::DateTime::from_timestamp(now + offset, 0)
                .unwrap_or_default()
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string();
            if let Ok(v) = HeaderValue::from_str(&date) {
                r.headers_mut().insert(header::DATE, v);
            }
        }
        return r;
    }
    let found = id
        .parse::<u64>()
        .ok()
        .and_then(|n| s.cfg.leads.iter().find(|l| l.id == n).cloned());
    let Some(l) = found else {
        let mut e = oauth(
            100,
            Some(33),
            &format!("Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."),
        );
        e.kind = "GraphMethodException".into();
        record(&mut s, &id, 0, StatusCode::BAD_REQUEST, Some(&e), false);
        return error_response(StatusCode::BAD_REQUEST, e, None);
    };
    record(&mut s, &id, 0, StatusCode::OK, None, false);
    drop(s);
    let fields: Vec<String> = p
        .get("fields")
        .and_then(Value::as_str)
        .unwrap_or("created_time,id")
        .split(',')
        .map(|f| f.trim().to_string())
        .collect();
    let mut out = serde_json::Map::new();
    out.insert("id".into(), json!(l.id.to_string()));
    if fields.iter().any(|f| f == "created_time") {
        let t = chrono::DateTime::from_timestamp(l.created_time, 0)
            .map(|d| d.format("%Y-%m-%dT%H:%M:%S+0000").to_string());
        out.insert("created_time".into(), json!(t));
    }
    if fields.iter().any(|f| f == "field_data") {
        out.insert("field_data".into(), json!(l.field_data));
    }
    axum::Json(Value::Object(out)).into_response()
}

async fn list_events(
    AxState(state): AxState<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100);
    let s = state.lock().expect("sandbox state");
    let dataset = query.get("dataset");
    let events: Vec<&Accepted> = s
        .accepted
        .iter()
        .rev()
        .filter(|a| dataset.is_none_or(|d| *a.dataset_id == **d))
        .take(limit)
        .collect();
    let full: Vec<&Value> = s.full.iter().rev().take(limit.min(s.full.len())).collect();
    axum::Json(json!({"events": events, "recent_full": full, "total": s.accepted.len()}))
        .into_response()
}

async fn stats(AxState(state): AxState<Shared>) -> Response {
    let s = state.lock().expect("sandbox state");
    axum::Json(json!(s.stats)).into_response()
}
