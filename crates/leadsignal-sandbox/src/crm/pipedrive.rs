//! A Pipedrive emulator for what leadsignal's `kind = "pipedrive"` source
//! calls, as Pipedrive's API reference describes it: `GET /api/v2/stages`,
//! `GET /api/v2/deals` (`updated_since`, sorted by `update_time`, cursor
//! paging in `additional_data.next_cursor`), `GET /api/v2/persons/{id}`,
//! and the v1 change log `GET /v1/deals/{id}/flow` (`dealChange` items with
//! `field_key`, `old_value`, `new_value`, `log_time` as `YYYY-MM-DD
//! HH:MM:SS` UTC, `start`/`limit` paging). The API token is read from the
//! `x-api-token` header or the `api_token` parameter; Pipedrive's bodies
//! for 401 and 429 (with `Retry-After`). Deals move through the handle.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The stages of Pipedrive's default pipeline, by ID.
pub const PIPEDRIVE_STAGES: [(u64, &str); 5] = [
    (1, "Lead In"),
    (2, "Contact Made"),
    (3, "Demo Scheduled"),
    (4, "Proposal Made"),
    (5, "Negotiations Started"),
];

#[derive(Clone)]
struct Deal {
    id: u64,
    person: Option<u64>,
    stage: u64,
    status: String,
    add_s: i64,
    update_s: i64,
    custom: BTreeMap<String, String>,
    /// (log time, field, old, new).
    flow: Vec<(i64, &'static str, String, String)>,
}

#[derive(Default)]
struct Company {
    token: String,
    deals: BTreeMap<u64, Deal>,
    persons: BTreeMap<u64, Value>,
    next: u64,
    requests: u64,
    rate_limit_every: u64,
    refused: u64,
    latency_ms: u64,
}

/// The running emulator.
pub struct PipedriveHandle {
    addr: SocketAddr,
    state: Arc<Mutex<Company>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn v2_time(s: i64) -> String {
    chrono::DateTime::from_timestamp(s, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn v1_time(s: i64) -> String {
    chrono::DateTime::from_timestamp(s, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

impl PipedriveHandle {
    /// The company domain: the source's `base_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Company) -> R) -> R {
        f(&mut self.state.lock().expect("emulator state"))
    }

    /// A person with a name, e-mails and phones (the first primary).
    pub fn create_person(&self, first: &str, last: &str, emails: &[&str], phones: &[&str]) -> u64 {
        self.with(|c| {
            c.next += 1;
            let id = c.next;
            let list = |vals: &[&str]| -> Vec<Value> {
                vals.iter()
                    .enumerate()
                    .map(|(i, v)| json!({"value": v, "primary": i == 0, "label": "work"}))
                    .collect()
            };
            c.persons.insert(
                id,
                json!({"id": id, "name": format!("{first} {last}"), "first_name": first, "last_name": last,
                       "emails": list(emails), "phones": list(phones)}),
            );
            id
        })
    }

    /// A deal for `person` added at `at_s` in stage `stage`, with custom
    /// fields (key → text).
    pub fn create_deal(
        &self,
        at_s: i64,
        person: Option<u64>,
        stage: u64,
        custom: &[(&str, &str)],
    ) -> u64 {
        self.with(|c| {
            c.next += 1;
            let id = c.next;
            c.deals.insert(
                id,
                Deal {
                    id,
                    person,
                    stage,
                    status: "open".into(),
                    add_s: at_s,
                    update_s: at_s,
                    custom: custom
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    flow: Vec::new(),
                },
            );
            id
        })
    }

    /// Moves a deal to `stage` at `at_s`.
    pub fn move_stage(&self, deal: u64, stage: u64, at_s: i64) {
        self.with(|c| {
            let d = c.deals.get_mut(&deal).expect("a known deal");
            d.flow
                .push((at_s, "stage_id", d.stage.to_string(), stage.to_string()));
            d.stage = stage;
            d.update_s = at_s;
        });
    }

    /// Marks a deal `won` or `lost` at `at_s`.
    pub fn set_status(&self, deal: u64, status: &str, at_s: i64) {
        self.with(|c| {
            let d = c.deals.get_mut(&deal).expect("a known deal");
            d.flow
                .push((at_s, "status", d.status.clone(), status.to_string()));
            d.status = status.to_string();
            d.update_s = at_s;
        });
    }

    /// Every `n`-th request is refused with 429 (0: never).
    pub fn rate_limit_every(&self, n: u64) {
        self.with(|c| c.rate_limit_every = n);
    }

    /// Time each request takes (a distant API).
    pub fn set_latency_ms(&self, ms: u64) {
        self.with(|c| c.latency_ms = ms);
    }

    /// Requests answered, and how many were refused with 429.
    pub fn requests(&self) -> (u64, u64) {
        self.with(|c| (c.requests, c.refused))
    }
}

/// Starts the emulator, accepting `token`.
pub async fn start_pipedrive(token: &str) -> std::io::Result<PipedriveHandle> {
    let state = Arc::new(Mutex::new(Company {
        token: token.to_string(),
        ..Company::default()
    }));
    let app = Router::new()
        .route("/api/v2/stages", get(stages))
        .route("/api/v2/deals", get(deals))
        .route("/api/v2/persons/{id}", get(person))
        .route("/v1/deals/{id}/flow", get(flow))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(PipedriveHandle {
        addr,
        state,
        _stop: stop,
    })
}

type Shared = Arc<Mutex<Company>>;
type Params = HashMap<String, String>;

/// Waits the configured latency (before taking the state's lock).
async fn pause(s: &Shared) {
    let ms = s.lock().expect("emulator state").latency_ms;
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Token and rate limit checks.
fn admit(c: &mut Company, headers: &HeaderMap, q: &Params) -> Option<Response> {
    c.requests += 1;
    let token = headers
        .get("x-api-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get("api_token").cloned())
        .unwrap_or_default();
    if token != c.token {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                Json(
                    json!({"success": false, "error": "unauthorized access", "errorCode": 401,
                            "error_info": "Please check developers.pipedrive.com"}),
                ),
            )
                .into_response(),
        );
    }
    if c.rate_limit_every > 0 && c.requests % c.rate_limit_every == 0 {
        c.refused += 1;
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"success": false, "error": "Request over limit", "errorCode": 429})),
        )
            .into_response();
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        return Some(r);
    }
    None
}

async fn stages(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<Params>) -> Response {
    pause(&s).await;
    let mut c = s.lock().expect("emulator state");
    if let Some(r) = admit(&mut c, &headers, &q) {
        return r;
    }
    let data: Vec<Value> = PIPEDRIVE_STAGES
        .iter()
        .enumerate()
        .map(|(i, (id, name))| json!({"id": id, "name": name, "pipeline_id": 1, "order_nr": i + 1}))
        .collect();
    Json(json!({"success": true, "data": data, "additional_data": {"next_cursor": null}}))
        .into_response()
}

async fn deals(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<Params>) -> Response {
    pause(&s).await;
    let mut c = s.lock().expect("emulator state");
    if let Some(r) = admit(&mut c, &headers, &q) {
        return r;
    }
    let since = match q.get("updated_since") {
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(d) => d.timestamp(),
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"success": false, "error": "Invalid updated_since: RFC 3339 expected", "errorCode": 400})),
                )
                    .into_response()
            }
        },
        None => i64::MIN,
    };
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100)
        .min(500);
    let offset: usize = q
        .get("cursor")
        .and_then(|c| c.strip_prefix("cur-"))
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    let mut found: Vec<&Deal> = c.deals.values().filter(|d| d.update_s >= since).collect();
    found.sort_by_key(|d| (d.update_s, d.id));
    let page: Vec<Value> = found
        .iter()
        .skip(offset)
        .take(limit)
        .map(|d| {
            let custom: serde_json::Map<String, Value> = d
                .custom
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            json!({
                "id": d.id, "title": format!("Deal {}", d.id), "person_id": d.person,
                "stage_id": d.stage, "pipeline_id": 1, "status": d.status,
                "add_time": v2_time(d.add_s), "update_time": v2_time(d.update_s),
                "custom_fields": custom,
            })
        })
        .collect();
    let next = (offset + limit < found.len()).then(|| format!("cur-{}", offset + limit));
    Json(json!({"success": true, "data": page, "additional_data": {"next_cursor": next}}))
        .into_response()
}

async fn person(
    State(s): State<Shared>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    Query(q): Query<Params>,
) -> Response {
    pause(&s).await;
    let mut c = s.lock().expect("emulator state");
    if let Some(r) = admit(&mut c, &headers, &q) {
        return r;
    }
    match c.persons.get(&id) {
        Some(p) => Json(json!({"success": true, "data": p})).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"success": false, "error": "Person not found", "errorCode": 404})),
        )
            .into_response(),
    }
}

async fn flow(
    State(s): State<Shared>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    Query(q): Query<Params>,
) -> Response {
    pause(&s).await;
    let mut c = s.lock().expect("emulator state");
    if let Some(r) = admit(&mut c, &headers, &q) {
        return r;
    }
    let Some(d) = c.deals.get(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"success": false, "error": "Deal not found", "errorCode": 404})),
        )
            .into_response();
    };
    let start: usize = q.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(100);
    let name = |sid: &str| {
        PIPEDRIVE_STAGES
            .iter()
            .find(|(i, _)| i.to_string() == sid)
            .map(|(_, n)| *n)
    };
    // Newest first, as Pipedrive lists a deal's updates.
    let items: Vec<Value> = d
        .flow
        .iter()
        .enumerate()
        .rev()
        .map(|(n, (at, field, old, new))| {
            let formatted = if *field == "stage_id" {
                json!({"old_value_formatted": name(old), "new_value_formatted": name(new)})
            } else {
                json!({})
            };
            json!({
                "object": "dealChange",
                "timestamp": v1_time(*at),
                "data": {"id": n + 1, "item_id": d.id, "user_id": 1, "field_key": field,
                         "old_value": old, "new_value": new, "is_bulk_update_flag": null,
                         "log_time": v1_time(*at), "change_source": "app", "additional_data": formatted},
            })
        })
        .collect();
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    Json(json!({
        "success": true,
        "data": page,
        "additional_data": {"pagination": {"start": start, "limit": limit, "more_items_in_collection": start + limit < total}},
    }))
    .into_response()
}
