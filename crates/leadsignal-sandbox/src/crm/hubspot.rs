//! A HubSpot emulator for what leadsignal's `kind = "hubspot"` source calls:
//! `POST /crm/v3/objects/contacts/search` with a private app's bearer
//! token, as HubSpot's CRM API reference describes it: filters on a
//! property (`GTE`, `EQ`), one sort, `limit` (at most 200) and `after`
//! paging, the 10,000-result cap, every property value a string (times as
//! ISO 8601 with milliseconds), HubSpot's error bodies for a wrong token
//! (401), a bad request (400) and rate limits (429 with `Retry-After`).
//! Contacts change through the handle, the way a sales rep moves them
//! through lifecycle stages.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// One contact: its ID and properties (HubSpot's internal names).
#[derive(Debug, Clone, Default)]
pub struct HubspotContact {
    /// `hs_object_id`.
    pub id: String,
    /// Property values, as HubSpot stores them (text).
    pub properties: BTreeMap<String, String>,
}

/// What the emulator starts with.
#[derive(Debug, Clone)]
pub struct HubspotConfig {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// The private app token it accepts.
    pub token: String,
    /// Every `n`-th search is refused with 429 (0: never).
    pub rate_limit_every: u64,
    /// Time each search takes (a distant API).
    pub latency_ms: u64,
}

impl HubspotConfig {
    /// One token, on a free port of 127.0.0.1, no rate limiting.
    pub fn new(token: &str) -> HubspotConfig {
        HubspotConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: token.to_string(),
            rate_limit_every: 0,
            latency_ms: 0,
        }
    }
}

#[derive(Default)]
struct Hub {
    token: String,
    contacts: BTreeMap<u64, HubspotContact>,
    deals: BTreeMap<u64, HubspotContact>,
    /// Deal → its associated contacts.
    deal_contacts: BTreeMap<u64, Vec<u64>>,
    rate_limit_every: u64,
    latency_ms: u64,
    searches: u64,
    refused: u64,
}

/// The running emulator.
pub struct HubspotHandle {
    addr: SocketAddr,
    state: Arc<Mutex<Hub>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// HubSpot's time format: ISO 8601, UTC, milliseconds.
pub fn hubspot_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl HubspotHandle {
    /// `http://127.0.0.1:<port>`: the source's `base_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Hub) -> R) -> R {
        f(&mut self.state.lock().expect("emulator state"))
    }

    /// Creates a contact at `at_ms` with `properties`; returns its ID.
    pub fn create(&self, at_ms: i64, properties: &[(&str, &str)]) -> String {
        self.with(|h| {
            let id = h.contacts.keys().next_back().map_or(51, |k| k + 1);
            let mut p: BTreeMap<String, String> = properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            p.insert("hs_object_id".into(), id.to_string());
            p.insert("createdate".into(), hubspot_time(at_ms));
            p.insert("lastmodifieddate".into(), hubspot_time(at_ms));
            h.contacts.insert(
                id,
                HubspotContact {
                    id: id.to_string(),
                    properties: p,
                },
            );
            id.to_string()
        })
    }

    /// Moves a contact to lifecycle stage `stage` (internal name) at
    /// `at_ms`: the stage's date is set, as HubSpot does.
    pub fn set_stage(&self, id: &str, stage: &str, at_ms: i64) {
        self.with(|h| {
            let c = h
                .contacts
                .get_mut(&id.parse::<u64>().expect("a contact ID"))
                .expect("a known contact");
            let t = hubspot_time(at_ms);
            c.properties.insert("lifecyclestage".into(), stage.into());
            c.properties
                .insert(format!("hs_lifecyclestage_{stage}_date"), t.clone());
            c.properties.insert("lastmodifieddate".into(), t);
        });
    }

    /// Changes another property at `at_ms` (no stage change).
    pub fn set(&self, id: &str, property: &str, value: &str, at_ms: i64) {
        self.with(|h| {
            let c = h
                .contacts
                .get_mut(&id.parse::<u64>().expect("a contact ID"))
                .expect("a known contact");
            c.properties.insert(property.into(), value.into());
            c.properties
                .insert("lastmodifieddate".into(), hubspot_time(at_ms));
        });
    }

    /// Creates a deal at `at_ms` in the default pipeline's first stage,
    /// associated with `contact`; returns its ID.
    pub fn create_deal(
        &self,
        at_ms: i64,
        contact: Option<&str>,
        properties: &[(&str, &str)],
    ) -> String {
        let id = self.with(|h| {
            let id = h.deals.keys().next_back().map_or(9001, |k| k + 1);
            let mut p: BTreeMap<String, String> = properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            p.insert("hs_object_id".into(), id.to_string());
            p.insert("pipeline".into(), "default".into());
            p.insert("createdate".into(), hubspot_time(at_ms));
            h.deals.insert(
                id,
                HubspotContact {
                    id: id.to_string(),
                    properties: p,
                },
            );
            if let Some(c) = contact {
                h.deal_contacts
                    .insert(id, vec![c.parse().expect("a contact ID")]);
            }
            id.to_string()
        });
        self.set_deal_stage(&id, DEAL_STAGES[0].0, at_ms);
        id
    }

    /// Moves a deal to pipeline stage `stage` (its ID) at `at_ms`: the
    /// stage's `hs_date_entered_<stage>` is set, as HubSpot does.
    pub fn set_deal_stage(&self, id: &str, stage: &str, at_ms: i64) {
        self.with(|h| {
            let d = h
                .deals
                .get_mut(&id.parse::<u64>().expect("a deal ID"))
                .expect("a known deal");
            let t = hubspot_time(at_ms);
            d.properties.insert("dealstage".into(), stage.into());
            d.properties
                .insert(format!("hs_date_entered_{stage}"), t.clone());
            if stage.starts_with("closed") {
                d.properties.insert("closedate".into(), t.clone());
            }
            d.properties.insert("hs_lastmodifieddate".into(), t);
        });
    }

    /// Replaces the accepted token (the old one is refused from now on).
    pub fn set_token(&self, token: &str) {
        self.with(|h| h.token = token.to_string());
    }

    /// Searches answered (refused ones included).
    pub fn searches(&self) -> u64 {
        self.with(|h| h.searches)
    }

    /// Searches refused with 429.
    pub fn rate_limited(&self) -> u64 {
        self.with(|h| h.refused)
    }
}

/// The default deal pipeline's stages (ID, label), as HubSpot creates it.
pub const DEAL_STAGES: [(&str, &str); 7] = [
    ("appointmentscheduled", "Appointment Scheduled"),
    ("qualifiedtobuy", "Qualified To Buy"),
    ("presentationscheduled", "Presentation Scheduled"),
    ("decisionmakerboughtin", "Decision Maker Bought-In"),
    ("contractsent", "Contract Sent"),
    ("closedwon", "Closed Won"),
    ("closedlost", "Closed Lost"),
];

/// Starts the emulator.
pub async fn start_hubspot(cfg: HubspotConfig) -> std::io::Result<HubspotHandle> {
    let state = Arc::new(Mutex::new(Hub {
        token: cfg.token,
        rate_limit_every: cfg.rate_limit_every,
        latency_ms: cfg.latency_ms,
        ..Hub::default()
    }));
    let app = Router::new()
        .route("/crm/v3/objects/{object}/search", post(search))
        .route("/crm/v3/pipelines/deals", axum::routing::get(pipelines))
        .route(
            "/crm/v3/properties/contacts/lifecyclestage",
            axum::routing::get(lifecycle_property),
        )
        .route(
            "/crm/v4/associations/deals/contacts/batch/read",
            post(associations),
        )
        .route("/crm/v3/objects/contacts/batch/read", post(batch_read))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(HubspotHandle {
        addr,
        state,
        _stop: stop,
    })
}

fn error(status: StatusCode, category: &str, message: &str) -> Response {
    (
        status,
        Json(json!({
            "status": "error",
            "message": message,
            "correlationId": "5d1b4a1e-8c1f-4f8e-9d0a-3f2b1c0e9a77",
            "category": category,
        })),
    )
        .into_response()
}

fn authorized(h: &Hub, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        == Some(h.token.as_str())
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    )
}

async fn pipelines(State(state): State<Arc<Mutex<Hub>>>, headers: HeaderMap) -> Response {
    let h = state.lock().expect("emulator state");
    if !authorized(&h, &headers) {
        return unauthorized();
    }
    let stages: Vec<Value> = DEAL_STAGES
        .iter()
        .enumerate()
        .map(|(i, (id, label))| {
            let closed = id.starts_with("closed");
            json!({"id": id, "label": label, "displayOrder": i, "archived": false,
                   "metadata": {"isClosed": closed.to_string(), "probability": if *id == "closedwon" { "1.0" } else if closed { "0.0" } else { "0.2" }}})
        })
        .collect();
    Json(json!({"results": [{"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": false, "stages": stages}]})).into_response()
}

/// The lifecycle stages HubSpot creates: (internal name, label).
pub const LIFECYCLE_STAGES: [(&str, &str); 8] = [
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
];

async fn lifecycle_property(State(state): State<Arc<Mutex<Hub>>>, headers: HeaderMap) -> Response {
    let h = state.lock().expect("emulator state");
    if !authorized(&h, &headers) {
        return unauthorized();
    }
    let options: Vec<Value> = LIFECYCLE_STAGES
        .iter()
        .enumerate()
        .map(|(i, (value, label))| json!({"label": label, "value": value, "displayOrder": i, "hidden": false}))
        .collect();
    Json(json!({
        "name": "lifecyclestage", "label": "Lifecycle Stage", "type": "enumeration",
        "fieldType": "radio", "groupName": "contactinformation", "options": options,
    }))
    .into_response()
}

async fn associations(
    State(state): State<Arc<Mutex<Hub>>>,
    headers: HeaderMap,
    Json(req): Json<Value>,
) -> Response {
    let h = state.lock().expect("emulator state");
    if !authorized(&h, &headers) {
        return unauthorized();
    }
    let results: Vec<Value> = req
        .get("inputs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("id")?.as_str()?.parse::<u64>().ok())
        .filter_map(|deal| {
            let to: Vec<Value> = h
                .deal_contacts
                .get(&deal)?
                .iter()
                .map(|c| json!({"toObjectId": c, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": null}]}))
                .collect();
            Some(json!({"from": {"id": deal.to_string()}, "to": to}))
        })
        .collect();
    Json(json!({"status": "COMPLETE", "results": results, "startedAt": "2026-11-20T17:00:00.000Z", "completedAt": "2026-11-20T17:00:00.010Z"})).into_response()
}

async fn batch_read(
    State(state): State<Arc<Mutex<Hub>>>,
    headers: HeaderMap,
    Json(req): Json<Value>,
) -> Response {
    let h = state.lock().expect("emulator state");
    if !authorized(&h, &headers) {
        return unauthorized();
    }
    let wanted: Vec<&str> = req
        .get("properties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let results: Vec<Value> = req
        .get("inputs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("id")?.as_str()?.parse::<u64>().ok())
        .filter_map(|id| {
            let c = h.contacts.get(&id)?;
            let props: Map<String, Value> = wanted
                .iter()
                .chain(&["hs_object_id", "createdate", "lastmodifieddate"])
                .map(|p| {
                    (
                        p.to_string(),
                        c.properties
                            .get(*p)
                            .map_or(Value::Null, |v| Value::from(v.as_str())),
                    )
                })
                .collect();
            Some(json!({"id": c.id, "properties": props, "archived": false}))
        })
        .collect();
    Json(json!({"status": "COMPLETE", "results": results})).into_response()
}

async fn search(
    State(state): State<Arc<Mutex<Hub>>>,
    axum::extract::Path(object): axum::extract::Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let latency = state.lock().expect("emulator state").latency_ms;
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let mut h = state.lock().expect("emulator state");
    h.searches += 1;
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(h.token.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        );
    }
    if h.rate_limit_every > 0 && h.searches % h.rate_limit_every == 0 {
        h.refused += 1;
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({
                "status": "error",
                "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": "0b6e1c7a-2f1d-4e4b-8a57-6c9f0d3e2b11",
                "policyName": "SECONDLY",
            })),
        )
            .into_response();
        r.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return r;
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "Invalid input JSON on line 1",
        );
    };
    let limit = req.get("limit").and_then(Value::as_u64).unwrap_or(10) as usize;
    if limit > 200 {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "limit must be at most 200",
        );
    }
    let after: usize = match req.get("after") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_str().and_then(|s| s.parse().ok()) {
            Some(n) => n,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "after must be a numeric string",
                )
            }
        },
    };
    if after + limit > 10_000 {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "There was a problem with the request. The search endpoints return at most 10,000 results: narrow the filters.",
        );
    }
    // Filters: one group, each filter `GTE` or `EQ` on a property.
    let filters: Vec<(String, String, String)> = req
        .pointer("/filterGroups/0/filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| {
            Some((
                f.get("propertyName")?.as_str()?.to_string(),
                f.get("operator")?.as_str()?.to_string(),
                f.get("value")?.as_str()?.to_string(),
            ))
        })
        .collect();
    let as_ms = |v: &str| -> Option<i64> {
        v.parse::<i64>().ok().or_else(|| {
            chrono::DateTime::parse_from_rfc3339(v)
                .ok()
                .map(|d| d.timestamp_millis())
        })
    };
    let store = match object.as_str() {
        "contacts" => &h.contacts,
        "deals" => &h.deals,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                "Unable to infer object type from: the emulator knows contacts and deals",
            )
        }
    };
    let mut found: Vec<&HubspotContact> = store
        .values()
        .filter(|c| {
            filters.iter().all(|(p, op, v)| {
                let have = c.properties.get(p);
                match op.as_str() {
                    "GTE" => match (have.and_then(|x| as_ms(x)), as_ms(v)) {
                        (Some(a), Some(b)) => a >= b,
                        _ => false,
                    },
                    "EQ" => have.is_some_and(|x| x == v),
                    _ => false,
                }
            })
        })
        .collect();
    if let Some(sort) = req.pointer("/sorts/0") {
        let prop = sort
            .get("propertyName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let key = |c: &&HubspotContact| {
            let v = c.properties.get(prop).cloned().unwrap_or_default();
            (as_ms(&v).unwrap_or(i64::MIN), v)
        };
        found.sort_by_key(key);
        if sort.get("direction").and_then(Value::as_str) == Some("DESCENDING") {
            found.reverse();
        }
    }
    let wanted: Vec<String> = req
        .get("properties")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_else(|| {
            [
                "createdate",
                "email",
                "firstname",
                "hs_object_id",
                "lastmodifieddate",
                "lastname",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        });
    let total = found.len();
    let results: Vec<Value> = found
        .iter()
        .skip(after)
        .take(limit)
        .map(|c| {
            let mut props = Map::new();
            for p in wanted.iter().map(String::as_str).chain([
                "hs_object_id",
                "createdate",
                "lastmodifieddate",
            ]) {
                props.insert(
                    p.to_string(),
                    c.properties
                        .get(p)
                        .map_or(Value::Null, |v| Value::from(v.as_str())),
                );
            }
            json!({
                "id": c.id,
                "properties": props,
                "createdAt": c.properties.get("createdate"),
                "updatedAt": c.properties.get(if object == "deals" { "hs_lastmodifieddate" } else { "lastmodifieddate" }),
                "archived": false,
            })
        })
        .collect();
    let mut answer = json!({"total": total, "results": results});
    if after + limit < total {
        let next = (after + limit).to_string();
        answer["paging"] = json!({"next": {"after": next, "link": format!("?after={next}")}});
    }
    Json(answer).into_response()
}
