//! A Salesforce emulator for what leadsignal's `kind = "salesforce"` source
//! calls, as Salesforce's REST API reference describes it: the OAuth 2.0
//! client-credentials token endpoint, and `GET /services/data/{v}/query`
//! with `nextRecordsUrl` paging for the queries the source makes
//! (`LeadHistory` rows after a cursor, leads' first status changes,
//! `OpportunityHistory` rows after a cursor, converted leads by
//! opportunity).
//! Times are written as Salesforce writes them
//! (`2026-11-20T17:00:00.000+0000`); errors are Salesforce's bodies
//! (`INVALID_SESSION_ID` for an expired token, `REQUEST_LIMIT_EXCEEDED`).
//! Leads change through the handle, the way a sales rep works them; every
//! change is a history row, as with field history tracking on Lead Status.
//!
//! The query endpoint understands exactly those query shapes; anything
//! else is answered with `MALFORMED_QUERY`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// What the emulator starts with.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// The connected app's consumer key.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// Records per query page (Salesforce: 2,000 by default).
    pub page_size: usize,
    /// Time each query request takes (a distant API).
    pub latency_ms: u64,
}

impl SalesforceConfig {
    /// One connected app, on a free port of 127.0.0.1, small pages.
    pub fn new(client_id: &str, client_secret: &str) -> SalesforceConfig {
        SalesforceConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            page_size: 2000,
            latency_ms: 0,
        }
    }
}

#[derive(Debug, Clone)]
struct HistoryRow {
    id: String,
    lead: String,
    field: &'static str,
    old: Option<String>,
    new: Option<String>,
    at_ms: i64,
}

#[derive(Default)]
struct Org {
    cfg: Option<SalesforceConfig>,
    url: String,
    tokens: Vec<String>,
    leads: BTreeMap<String, BTreeMap<String, Value>>,
    history: Vec<HistoryRow>,
    /// (ID, opportunity, stage, time) of `OpportunityHistory`.
    opp_history: Vec<(String, String, String, i64)>,
    cursors: HashMap<String, (Vec<Value>, usize)>,
    logins: u64,
    queries: u64,
    limit_exceeded: bool,
    next: u64,
}

/// The running emulator.
pub struct SalesforceHandle {
    addr: SocketAddr,
    state: Arc<Mutex<Org>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Salesforce's time format.
pub fn salesforce_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

impl SalesforceHandle {
    /// The login URL (and the instance URL: one server plays both).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Org) -> R) -> R {
        f(&mut self.state.lock().expect("emulator state"))
    }

    /// Creates a lead at `at_ms` with status `status` and `fields`
    /// (`Email`, `Phone`, `Meta_Lead_ID__c`...); returns its ID.
    pub fn create_lead(&self, at_ms: i64, status: &str, fields: &[(&str, &str)]) -> String {
        self.with(|o| {
            o.next += 1;
            let id = format!("00Q5g{:010}EAA", o.next);
            let mut f: BTreeMap<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect();
            f.insert("Status".into(), Value::from(status));
            f.insert("CreatedDate".into(), Value::from(salesforce_time(at_ms)));
            o.leads.insert(id.clone(), f);
            o.next += 1;
            o.history.push(HistoryRow {
                id: format!("0175g{:010}AAA", o.next),
                lead: id.clone(),
                field: "created",
                old: None,
                new: None,
                at_ms,
            });
            id
        })
    }

    /// Changes a lead's status at `at_ms` (a `Status` history row).
    pub fn set_status(&self, lead: &str, status: &str, at_ms: i64) {
        self.with(|o| {
            let l = o.leads.get_mut(lead).expect("a known lead");
            let old = l.insert("Status".into(), Value::from(status));
            o.next += 1;
            o.history.push(HistoryRow {
                id: format!("0175g{:010}AAA", o.next),
                lead: lead.to_string(),
                field: "Status",
                old: old.and_then(|v| v.as_str().map(str::to_string)),
                new: Some(status.to_string()),
                at_ms,
            });
        });
    }

    /// Converts a lead at `at_ms` (status `Closed - Converted`) into an
    /// opportunity in stage `stage`; returns the opportunity's ID.
    pub fn convert_lead(&self, lead: &str, stage: &str, at_ms: i64) -> String {
        self.set_status(lead, "Closed - Converted", at_ms);
        let opp = self.with(|o| {
            o.next += 1;
            let opp = format!("0065g{:010}AAA", o.next);
            let l = o.leads.get_mut(lead).expect("a known lead");
            l.insert("IsConverted".into(), Value::Bool(true));
            l.insert("ConvertedOpportunityId".into(), Value::from(opp.as_str()));
            opp
        });
        self.set_opportunity_stage(&opp, stage, at_ms);
        opp
    }

    /// Moves an opportunity to `stage` at `at_ms` (an `OpportunityHistory`
    /// row).
    pub fn set_opportunity_stage(&self, opp: &str, stage: &str, at_ms: i64) {
        self.with(|o| {
            o.next += 1;
            let id = format!("0085g{:010}AAA", o.next);
            o.opp_history
                .push((id, opp.to_string(), stage.to_string(), at_ms));
        });
    }

    /// Invalidates every access token (they expire, or an admin revokes
    /// them): the next query gets `INVALID_SESSION_ID`.
    pub fn expire_sessions(&self) {
        self.with(|o| o.tokens.clear());
    }

    /// Makes every query fail with `REQUEST_LIMIT_EXCEEDED` (or not).
    pub fn set_limit_exceeded(&self, on: bool) {
        self.with(|o| o.limit_exceeded = on);
    }

    /// Tokens issued.
    pub fn logins(&self) -> u64 {
        self.with(|o| o.logins)
    }

    /// Query requests answered (pages included).
    pub fn queries(&self) -> u64 {
        self.with(|o| o.queries)
    }
}

/// Starts the emulator.
pub async fn start_salesforce(cfg: SalesforceConfig) -> std::io::Result<SalesforceHandle> {
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(Mutex::new(Org {
        cfg: Some(cfg),
        url: format!("http://{addr}"),
        ..Org::default()
    }));
    let app = Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/data/{version}/query", get(query))
        .route("/services/data/{version}/query/{locator}", get(more))
        .with_state(Arc::clone(&state));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(SalesforceHandle {
        addr,
        state,
        _stop: stop,
    })
}

async fn token(
    State(state): State<Arc<Mutex<Org>>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut o = state.lock().expect("emulator state");
    let cfg = o.cfg.clone().expect("configured");
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type", "error_description": "grant type not supported"})),
        )
            .into_response();
    }
    if form.get("client_id") != Some(&cfg.client_id)
        || form.get("client_secret") != Some(&cfg.client_secret)
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_client", "error_description": "invalid client credentials"})),
        )
            .into_response();
    }
    o.logins += 1;
    let token = format!("00D5g000004ABCD!AQ8AQ{:016x}", fastrand::u64(..));
    o.tokens.push(token.clone());
    Json(json!({
        "access_token": token,
        "signature": "q0YqkJ0E3Y6n8o1rC9W8bqZ0kK5c7tX9mJ2vA1sD4fE=",
        "scope": "api",
        "instance_url": o.url,
        "id": format!("{}/id/00D5g000004ABCDEAU/0055g00000XYZ12AAA", o.url),
        "token_type": "Bearer",
        "issued_at": "1795194000000",
    }))
    .into_response()
}

fn sf_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!([{"message": message, "errorCode": code}])),
    )
        .into_response()
}

/// Checks the bearer token and the API limit.
fn admit(o: &mut Org, headers: &HeaderMap) -> Option<Response> {
    o.queries += 1;
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !o.tokens.iter().any(|t| t == bearer) {
        return Some(sf_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        ));
    }
    if o.limit_exceeded {
        return Some(sf_error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        ));
    }
    None
}

/// The text between `start` and the next `end` after it.
fn between<'a>(q: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = q.find(start)? + start.len();
    let j = q[i..].find(end)? + i;
    Some(&q[i..j])
}

/// A SOQL string literal's value.
fn unquote(s: &str) -> Option<String> {
    let s = s.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else if c == '\'' {
            return None; // an unescaped quote: not one literal
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn soql_ms(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t.trim())
        .ok()
        .map(|d| d.timestamp_millis())
}

fn record(o: &Org, h: &HistoryRow) -> Value {
    let lead = o.leads.get(&h.lead).cloned().unwrap_or_default();
    let mut l = serde_json::Map::new();
    l.insert(
        "attributes".into(),
        json!({"type": "Lead", "url": format!("/services/data/v62.0/sobjects/Lead/{}", h.lead)}),
    );
    for (k, v) in lead {
        l.insert(k, v);
    }
    json!({
        "attributes": {"type": "LeadHistory", "url": format!("/services/data/v62.0/sobjects/LeadHistory/{}", h.id)},
        "Id": h.id,
        "LeadId": h.lead,
        "Field": h.field,
        "OldValue": h.old,
        "NewValue": h.new,
        "CreatedDate": salesforce_time(h.at_ms),
        "Lead": l,
    })
}

/// The records of one of the two queries the source makes.
fn run(o: &Org, q: &str) -> Option<Vec<Value>> {
    let limit = || -> Option<usize> { q.rsplit("LIMIT ").next()?.trim().parse().ok() };
    let after = || -> Option<(i64, Option<String>)> {
        let t = soql_ms(between(q, "CreatedDate > ", " ")?.trim_end_matches(')'))?;
        let id = match between(q, "AND Id > ", ")") {
            Some(lit) => Some(unquote(lit)?),
            None => None,
        };
        Some((t, id))
    };
    if q.contains("FROM OpportunityHistory") {
        let (t, after_id) = after()?;
        let mut rows: Vec<&(String, String, String, i64)> = o.opp_history.iter().collect();
        rows.sort_by(|a, b| (a.3, &a.0).cmp(&(b.3, &b.0)));
        return Some(
            rows.into_iter()
                .filter(|h| h.3 > t || (h.3 == t && after_id.as_ref().is_some_and(|id| h.0 > *id)))
                .take(limit()?)
                .map(|(id, opp, stage, at)| {
                    json!({"attributes": {"type": "OpportunityHistory"}, "Id": id, "OpportunityId": opp,
                           "StageName": stage, "CreatedDate": salesforce_time(*at)})
                })
                .collect(),
        );
    }
    if q.contains("FROM Lead WHERE IsConverted = true") {
        let list = between(q, "ConvertedOpportunityId IN (", ")")?;
        let ids: Vec<String> = list.split(',').map(unquote).collect::<Option<_>>()?;
        return Some(
            o.leads
                .iter()
                .filter(|(_, l)| {
                    l.get("ConvertedOpportunityId")
                        .and_then(Value::as_str)
                        .is_some_and(|opp| ids.iter().any(|i| i == opp))
                })
                .map(|(id, l)| {
                    let mut v = serde_json::Map::new();
                    v.insert("attributes".into(), json!({"type": "Lead"}));
                    v.insert("Id".into(), Value::from(id.as_str()));
                    for (k, val) in l {
                        v.insert(k.clone(), val.clone());
                    }
                    Value::Object(v)
                })
                .collect(),
        );
    }
    if !q.contains("FROM LeadHistory") {
        return None;
    }
    let mut rows: Vec<&HistoryRow> = o.history.iter().collect();
    rows.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
    if let Some(list) = between(q, "LeadId IN (", ")") {
        // Leads' status changes.
        let ids: Vec<String> = list.split(',').map(unquote).collect::<Option<_>>()?;
        return Some(
            rows.into_iter()
                .filter(|h| h.field == "Status" && ids.contains(&h.lead))
                .map(|h| json!({"attributes": {"type": "LeadHistory"}, "LeadId": h.lead, "OldValue": h.old, "CreatedDate": salesforce_time(h.at_ms)}))
                .collect(),
        );
    }
    if !q.contains("Field IN ('Status', 'created')") {
        return None;
    }
    let t = soql_ms(between(q, "CreatedDate > ", " ")?.trim_end_matches(')'))?;
    let after_id = match between(q, "AND Id > ", ")") {
        Some(lit) => Some(unquote(lit)?),
        None => None,
    };
    let limit: usize = q.rsplit("LIMIT ").next()?.trim().parse().ok()?;
    Some(
        rows.into_iter()
            .filter(|h| {
                h.at_ms > t || (h.at_ms == t && after_id.as_ref().is_some_and(|id| h.id > *id))
            })
            .take(limit)
            .map(|h| record(o, h))
            .collect(),
    )
}

fn page(o: &mut Org, all: Vec<Value>, from: usize) -> Response {
    let size = o.cfg.as_ref().map_or(2000, |c| c.page_size.max(1));
    let total = all.len();
    let chunk: Vec<Value> = all.iter().skip(from).take(size).cloned().collect();
    let done = from + size >= total;
    let mut answer = json!({"totalSize": total, "done": done, "records": chunk});
    if !done {
        let locator = format!("01g5g{:010}AAA-{}", fastrand::u32(..), from + size);
        answer["nextRecordsUrl"] = Value::from(format!("/services/data/v62.0/query/{locator}"));
        o.cursors.insert(locator, (all, from + size));
    }
    Json(answer).into_response()
}

async fn query(
    State(state): State<Arc<Mutex<Org>>>,
    Path(_version): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let latency = state
        .lock()
        .expect("emulator state")
        .cfg
        .as_ref()
        .map_or(0, |c| c.latency_ms);
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let mut o = state.lock().expect("emulator state");
    if let Some(refused) = admit(&mut o, &headers) {
        return refused;
    }
    let q = params.get("q").cloned().unwrap_or_default();
    match run(&o, &q) {
        Some(all) => page(&mut o, all, 0),
        None => sf_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "unexpected token: the emulator answers only the queries leadsignal makes",
        ),
    }
}

async fn more(
    State(state): State<Arc<Mutex<Org>>>,
    Path((_version, locator)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut o = state.lock().expect("emulator state");
    if let Some(refused) = admit(&mut o, &headers) {
        return refused;
    }
    match o.cursors.remove(&locator) {
        Some((all, from)) => page(&mut o, all, from),
        None => sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        ),
    }
}
