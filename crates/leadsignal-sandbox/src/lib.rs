//! The sandbox: a local HTTP server that answers Graph's
//! `POST /{version}/{dataset_id}/events` and `GET /{version}/{lead_id}` as
//! Meta documents them (validation, success and error bodies, whole-batch
//! rejection, usage headers), keeps what it accepted, and injects faults on
//! demand. Tests, benchmarks and `leadsignal demo` deliver to it; nothing
//! ever needs to reach Meta.
//!
//! Inspection (not part of Graph): `GET /sandbox/events` (accepted events,
//! most recent first, with `?dataset=`, `?limit=`), `GET /sandbox/stats`.
//!
//! Test and demo code: nothing on the delivery path depends on it, it
//! keeps what it accepted in memory only, and it is not a security
//! boundary (it checks tokens and proofs the way Graph does, to test the
//! client, not to protect anything).

// A Graph error is the sandbox's ordinary answer, not an exceptional path.
#![allow(clippy::result_large_err)]

pub mod crm;
mod routes;
pub mod validate;

use leadsignal_graph::GraphError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A dataset the sandbox knows, with the token that may write to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxDataset {
    /// Dataset (pixel) ID.
    pub id: String,
    /// Access token accepted for it.
    pub access_token: String,
    /// App secret: when set, requests must carry a valid `appsecret_proof`
    /// ("Require App Secret" switched on).
    #[serde(default)]
    pub app_secret: Option<String>,
}

/// A lead the sandbox can return from `GET /{lead_id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxLead {
    /// Lead ID.
    pub id: u64,
    /// Creation time (Unix seconds).
    pub created_time: i64,
    /// Form answers.
    #[serde(default)]
    pub field_data: Vec<leadsignal_graph::client::FieldData>,
}

/// Faults to inject. All off by default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Time from an events request to its answer (the sandbox's own work
    /// included), as a distant Meta would take.
    pub latency_ms: u64,
    /// Share (0–1) of events requests answered with HTTP 500, code 2, transient.
    pub error_rate: f64,
    /// Share (0–1) of events requests that never answer in time (held for
    /// `hang_ms`, then answered 504).
    pub timeout_rate: f64,
    /// How long a timed-out request is held.
    pub hang_ms: u64,
    /// Unix-time windows `[start, end)` during which every request is rate
    /// limited (code 17, usage headers at 100%).
    pub rate_limit_windows: Vec<(i64, i64)>,
    /// When not empty, the rate-limit windows apply to these datasets only
    /// (each token has its own limits at Meta).
    pub rate_limited_datasets: Vec<String>,
    /// `estimated_time_to_regain_access` (minutes) announced while limited.
    pub regain_minutes: u64,
    /// From this Unix time on, every dataset's token is revoked (code 190).
    pub revoke_at: Option<i64>,
    /// Seconds the sandbox's clock (its `Date` header on dataset reads) is
    /// ahead of this machine's (negative: behind).
    pub clock_offset_secs: i64,
}

/// How the sandbox starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// Listen address (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Known datasets.
    pub datasets: Vec<SandboxDataset>,
    /// Known leads.
    #[serde(default)]
    pub leads: Vec<SandboxLead>,
    /// Lead IDs Meta no longer knows (deleted): events naming them are
    /// rejected with code 100, subcode 2804036.
    #[serde(default)]
    pub deleted_leads: Vec<u64>,
    /// Injected faults.
    #[serde(default)]
    pub faults: Faults,
    /// Accepted events kept in full for `/sandbox/events` (the rest are
    /// counted and summarized only).
    #[serde(default = "default_keep")]
    pub keep_full: usize,
}

fn default_keep() -> usize {
    1000
}

impl SandboxConfig {
    /// One dataset with one token, on a free loopback port.
    pub fn single(dataset_id: &str, access_token: &str) -> SandboxConfig {
        SandboxConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            datasets: vec![SandboxDataset {
                id: dataset_id.into(),
                access_token: access_token.into(),
                app_secret: None,
            }],
            leads: Vec::new(),
            deleted_leads: Vec::new(),
            faults: Faults::default(),
            keep_full: default_keep(),
        }
    }
}

/// An event the sandbox accepted. The strings one request's events share
/// (dataset, name, code, trace) are stored once: a million accepted events
/// fit in ~100 MB less.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// Dataset it went to.
    pub dataset_id: Arc<str>,
    /// The deterministic `event_id`.
    pub event_id: Option<Arc<str>>,
    /// The event name (the funnel stage).
    pub event_name: Arc<str>,
    /// When the stage changed (`event_time`, Unix seconds).
    pub event_time: i64,
    /// The Meta lead ID sent (`user_data.lead_id`), if any.
    pub lead_id: Option<u64>,
    /// The request's `test_event_code`, when it had one.
    pub test_event_code: Option<Arc<str>>,
    /// The request's `fbtrace_id`.
    pub fbtrace_id: Arc<str>,
}

/// One request the sandbox answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// Milliseconds since the sandbox started.
    pub at_ms: u64,
    /// Dataset or lead ID in the path.
    pub object_id: String,
    /// Events in the request (0 for lead reads).
    pub events: usize,
    /// HTTP status answered.
    pub status: u16,
    /// Graph error code, when it was an error.
    pub code: Option<i64>,
    /// Graph error subcode.
    pub subcode: Option<i64>,
    /// Whether the request carried a `test_event_code`.
    pub test: bool,
}

/// What the sandbox has seen, for tests and `/sandbox/stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Requests answered.
    pub requests: u64,
    /// Requests by HTTP status.
    pub by_status: std::collections::BTreeMap<u16, u64>,
    /// Events accepted (test events included).
    pub events_accepted: u64,
    /// Of those, sent with a `test_event_code`.
    pub test_events_accepted: u64,
    /// Distinct `event_id`s accepted outside tests.
    pub distinct_event_ids: u64,
    /// `event_id`s accepted more than once outside tests.
    pub duplicate_event_ids: u64,
}

pub(crate) struct State {
    pub(crate) cfg: SandboxConfig,
    pub(crate) started: Instant,
    pub(crate) accepted: Vec<Accepted>,
    pub(crate) full: std::collections::VecDeque<serde_json::Value>,
    pub(crate) seen: HashMap<Arc<str>, u32>,
    /// Event names seen, each stored once.
    pub(crate) names: HashMap<String, Arc<str>>,
    pub(crate) requests: Vec<RequestRecord>,
    pub(crate) stats: Stats,
    /// Tokens replaced at run time (dataset → token).
    pub(crate) tokens: HashMap<String, Option<String>>,
}

pub(crate) type Shared = Arc<Mutex<State>>;

/// A running sandbox. Dropping it stops the server.
pub struct SandboxHandle {
    addr: SocketAddr,
    state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Starts the sandbox on the current Tokio runtime.
pub async fn start(cfg: SandboxConfig) -> std::io::Result<SandboxHandle> {
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let state: Shared = Arc::new(Mutex::new(State {
        cfg,
        started: Instant::now(),
        accepted: Vec::new(),
        full: Default::default(),
        seen: HashMap::new(),
        names: HashMap::new(),
        requests: Vec::new(),
        stats: Stats::default(),
        tokens: HashMap::new(),
    }));
    let app = routes::router(state.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(SandboxHandle {
        addr,
        state,
        stop: Some(stop),
        task: Some(task),
    })
}

impl SandboxHandle {
    /// The base URL to use as `graph_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("sandbox state"))
    }

    /// Every event accepted so far, in order.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.with(|s| s.accepted.clone())
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.with(|s| s.requests.clone())
    }

    /// Requests and events counted so far.
    pub fn stats(&self) -> Stats {
        self.with(|s| s.stats.clone())
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.with(|s| s.cfg.faults = faults);
    }

    /// Revokes a dataset's token now: requests get code 190 until
    /// [`SandboxHandle::set_token`].
    pub fn revoke_token(&self, dataset_id: &str) {
        self.with(|s| s.tokens.insert(dataset_id.to_string(), None));
    }

    /// Issues a new token for a dataset (the old one stops working).
    pub fn set_token(&self, dataset_id: &str, token: &str) {
        self.with(|s| {
            s.tokens
                .insert(dataset_id.to_string(), Some(token.to_string()))
        });
    }

    /// Adds a lead for `GET /{lead_id}`.
    pub fn add_lead(&self, lead: SandboxLead) {
        self.with(|s| s.cfg.leads.push(lead));
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A random trace ID in Meta's style (letters, digits, `_` and `-`).
pub(crate) fn trace_id() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    (0..23)
        .map(|_| CHARS[fastrand::usize(..CHARS.len())] as char)
        .collect()
}

/// An OAuth error (token problems).
pub(crate) fn oauth(code: i64, subcode: Option<i64>, message: &str) -> GraphError {
    GraphError {
        message: message.into(),
        kind: "OAuthException".into(),
        code,
        error_subcode: subcode,
        is_transient: Some(false),
        error_user_title: None,
        error_user_msg: None,
        fbtrace_id: None,
    }
}

/// The sandbox's clock.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Milliseconds as a `Duration`.
pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
