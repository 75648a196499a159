//! `leadsignal serve`: one process that receives stage changes (HTTP API,
//! Lead Ads webhook, files dropped in a folder), delivers continuously, and
//! shows an operator what is going on (status API, Prometheus metrics,
//! dashboard).
//!
//! - `writer.rs`: the one thread writing received items to the outbox.
//! - `ingest.rs`: `POST /v1/stage-changes`.
//! - `webhook.rs`: `GET/POST /webhooks/meta`.
//! - `api.rs`: leads, status, health.
//! - `metrics.rs`, `dashboard.rs`: what an operator looks at.
//! - `background.rs`: the sender loop and the folder poller.

mod answers;
mod api;
mod auth;
mod background;
mod dashboard;
pub(crate) mod ingest;
mod metrics;
mod problem;
mod state;
mod webhook;
mod writer;

use crate::config::Config;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};
use leadsignal_sources::ingest::IngestOptions;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use utoipa::OpenApi;

pub(crate) use problem::{ApiError, ApiResult, Problem};
pub(crate) use state::AppState;
pub(crate) use writer::Writer;

use crate::clock::unix_now;

#[derive(OpenApi)]
#[openapi(
    info(title = "leadsignal", description = "CRM stage changes in, Meta Conversion Leads events out."),
    paths(
        ingest::stage_changes,
        ingest::hubspot,
        ingest::salesforce,
        ingest::salesforce_with_token,
        api::lead,
        api::status,
        api::healthz,
        api::readyz,
        webhook::verify,
        webhook::deliver,
    ),
    components(schemas(Problem, ingest::StageChangeRecordDoc, ingest::HubspotEventDoc, answers::IngestAnswer, answers::ItemAnswer, answers::ItemError, answers::WebhookAnswer)),
    modifiers(&Bearer)
)]
struct ApiDoc;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of the HTTP API.
pub(crate) fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}

/// The routes. The API routes take the bearer token (`auth::require`);
/// the two CRM routes that cannot send one take it or their own proof; the
/// webhook is signed; health, metrics, the OpenAPI document and the
/// dashboard are open.
pub(crate) fn router(st: Arc<AppState>, max_body_bytes: usize) -> Router {
    let api = Router::new()
        .route("/v1/stage-changes", post(ingest::stage_changes))
        .route("/v1/stage-changes/salesforce", post(ingest::salesforce))
        .route("/v1/leads/{lead_id}", get(api::lead))
        .route("/v1/status", get(api::status))
        .route_layer(middleware::from_fn(auth::require));
    Router::new()
        .merge(api)
        .route("/v1/stage-changes/hubspot", post(ingest::hubspot))
        .route(
            "/v1/stage-changes/salesforce/{token}",
            post(ingest::salesforce_with_token),
        )
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route(
            "/webhooks/meta",
            get(webhook::verify).post(webhook::deliver),
        )
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .route("/", get(dashboard::page))
        .route("/sandbox", get(dashboard::sandbox_page))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&st),
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(st)
}

async fn metrics_text(axum::extract::State(st): axum::extract::State<Arc<AppState>>) -> ApiResult {
    let now = unix_now();
    let status = st
        .read(move |s| s.status(now))
        .await
        .map_err(ApiError::unavailable)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.render(&status, now),
    )
        .into_response())
}

/// A running server (for `serve` and tests).
pub(crate) struct Server {
    /// The address it listens on.
    pub(crate) addr: std::net::SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    state: Arc<AppState>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Asks the server to stop (as SIGTERM does) and waits until it has:
    /// no new requests, in-flight deliveries finished or given back, every
    /// accepted item written.
    pub(crate) async fn shutdown(self) -> anyhow::Result<()> {
        self.state.stopping.store(true, Ordering::SeqCst);
        drop(self.state);
        let _ = self.stop.send(true);
        self.done.await?
    }

    /// Waits until the server stops by itself (a signal).
    pub(crate) async fn wait(self) -> anyhow::Result<()> {
        drop(self.state);
        self.done.await?
    }
}

/// Starts `serve` with `cfg` on `listen` (port 0: any free port).
pub(crate) async fn start(cfg: Config, listen: &str) -> anyhow::Result<Server> {
    let api_token = cfg
        .server
        .api_token
        .as_ref()
        .map(|s| s.expose().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "[server] api_token is required by serve (set it, e.g. api_token = \"env:LEADSIGNAL_API_TOKEN\")"
            )
        })?;
    let pc = Arc::new(cfg.prepare_config_for_outbox()?);
    let mut targets = vec![(
        crate::config::DEFAULT_DATASET.to_string(),
        Arc::clone(&pc),
        cfg.funnel.missing_stages,
    )];
    for (name, c) in cfg.all_datasets()? {
        if name != crate::config::DEFAULT_DATASET {
            let pc = c
                .prepare_config_for_outbox()
                .map_err(|e| anyhow::anyhow!("dataset {name}: {e:#}"))?;
            targets.push((name, Arc::new(pc), c.funnel.missing_stages));
        }
    }
    let mut writer_store = leadsignal_store::open(&cfg.store.url)?;
    crate::lock::check_all(&cfg, &mut *writer_store, unix_now())?;
    let reader = leadsignal_store::open(&cfg.store.url)?;
    let (writer, writer_thread) = Writer::start(
        writer_store,
        targets.iter().map(|t| (Arc::clone(&t.1), t.2)).collect(),
    );
    let webhook_stage = cfg
        .server
        .webhook_stage
        .clone()
        .or_else(|| cfg.funnel.stages.first().map(|s| s.name.to_string()))
        .unwrap_or_else(|| "Lead".into());
    let state = Arc::new(AppState {
        pc: Arc::clone(&pc),
        targets: targets.into_iter().map(|t| (t.0, t.1)).collect(),
        ingest: IngestOptions {
            hubspot_stage_property: cfg.server.hubspot_stage_property.clone(),
            salesforce_lead_id_field: cfg.server.salesforce_lead_id_field.clone(),
        },
        writer,
        reader: Mutex::new(reader),
        api_token,
        verify_token: cfg
            .server
            .webhook_verify_token
            .as_ref()
            .map(|s| s.expose().to_string()),
        app_secret: cfg.meta.app_secret.as_ref().map(|s| s.expose().to_string()),
        webhook_stage,
        metrics: metrics::Metrics::new(&pc.dataset_id),
        stopping: AtomicBool::new(false),
        sandbox_url: (cfg.server.sandbox_page || is_sandbox(&cfg.meta.graph_url).await)
            .then(|| cfg.meta.graph_url.clone()),
        hubspot_secret: cfg
            .server
            .hubspot_client_secret
            .as_ref()
            .map(|s| s.expose().to_string()),
        public_url: cfg.server.public_url.clone(),
        fetch: match cfg.server.fetch_leads {
            true => Some(state::Fetch {
                client: cfg.graph_client()?,
                creds: cfg.credentials()?,
                hold_secs: cfg.server.fetch_hold_secs.max(1),
            }),
            false => None,
        },
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let app = router(Arc::clone(&state), cfg.server.max_body_bytes);
    let background = background::start(&cfg, Arc::clone(&state), stop_rx.clone())?;
    let (mut stop2, state2) = (stop_rx, Arc::clone(&state));
    let state_handle = Arc::clone(&state);
    let stop_all = stop.clone();
    let done = tokio::spawn(async move {
        let stopped = async move {
            tokio::select! {
                _ = stop2.wait_for(|s| *s) => {}
                _ = signal() => {
                    tracing::info!("stopping: no new requests; finishing deliveries in flight");
                }
            }
            state2.stopping.store(true, Ordering::SeqCst);
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await?;
        // No more requests: stop the background work (deliveries in flight
        // finish or are given back), then let the writer drain and end.
        state.stopping.store(true, Ordering::SeqCst);
        let _ = stop_all.send(true);
        background.await?;
        drop(state);
        tokio::task::spawn_blocking(move || writer_thread.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the outbox writer panicked"))?;
        tracing::info!("stopped");
        anyhow::Ok(())
    });
    tracing::info!(%addr, "serving");
    Ok(Server {
        addr,
        stop,
        state: state_handle,
        done,
    })
}

/// Whether `graph_url` is a leadsignal sandbox on this machine (it answers
/// `GET /sandbox/stats`). Only loopback addresses are asked.
async fn is_sandbox(graph_url: &str) -> bool {
    let url = graph_url.trim_end_matches('/');
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', ':']).next())
        .unwrap_or("");
    let loopback = matches!(host, "127.0.0.1" | "localhost") || url.contains("://[::1]");
    if !loopback {
        return false;
    }
    let answer = async {
        let r = reqwest::Client::new()
            .get(format!("{url}/sandbox/stats"))
            .timeout(std::time::Duration::from_secs(1))
            .send()
            .await?;
        let v: serde_json::Value = r.error_for_status()?.json().await?;
        anyhow::Ok(v.get("requests").is_some())
    };
    answer.await.unwrap_or(false)
}

async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    /// The API's record schema and the record (`leadsignal_core::record_fields`)
    /// name the same fields.
    #[test]
    fn the_openapi_record_schema_is_the_record() {
        let doc: serde_json::Value = serde_json::from_str(&super::openapi_json()).unwrap();
        let props = doc["components"]["schemas"]["StageChangeRecordDoc"]["properties"]
            .as_object()
            .expect("the record schema");
        let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
        let mut fields = leadsignal_core::record_fields().to_vec();
        names.sort_unstable();
        fields.sort_unstable();
        assert_eq!(names, fields);
    }
}
