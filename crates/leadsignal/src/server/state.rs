//! What every handler shares: the datasets, the writer, a reader
//! connection, the secrets requests are checked against, the counters.

use super::metrics::Metrics;
use super::writer::Writer;
use leadsignal_core::PrepareConfig;
use leadsignal_sources::ingest::IngestOptions;
use leadsignal_store::{Outbox, StoreError};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// Everything the handlers share.
pub(crate) struct AppState {
    /// How stage changes become events (the default dataset).
    pub(crate) pc: Arc<PrepareConfig>,
    /// Every dataset stage changes may be posted to (`?dataset=NAME`), by
    /// name; the first is the default (`pc`).
    pub(crate) targets: Vec<(String, Arc<PrepareConfig>)>,
    /// Settings of the CRM-specific shapes.
    pub(crate) ingest: IngestOptions,
    /// Writes to the outbox.
    pub(crate) writer: Writer,
    /// Reads from the outbox (status, leads, dashboard).
    pub(crate) reader: Mutex<Box<dyn Outbox + Send>>,
    /// Bearer token for `/v1/*`.
    pub(crate) api_token: String,
    /// Lead Ads webhook subscription token.
    pub(crate) verify_token: Option<String>,
    /// App secret (webhook signatures).
    pub(crate) app_secret: Option<String>,
    /// The stage a webhook lead starts at.
    pub(crate) webhook_stage: String,
    /// Counters for `/metrics`.
    pub(crate) metrics: Metrics,
    /// Set on SIGTERM/SIGINT.
    pub(crate) stopping: AtomicBool,
    /// Where the sandbox is, when Meta is the sandbox (dashboard page).
    pub(crate) sandbox_url: Option<String>,
    /// Fetching webhook leads' form answers, when on.
    pub(crate) fetch: Option<Fetch>,
    /// HubSpot app client secret (v3 request signatures).
    pub(crate) hubspot_secret: Option<String>,
    /// The URL this server is reached at from outside (signatures).
    pub(crate) public_url: Option<String>,
}

impl AppState {
    /// The index of dataset `name` in `targets` (`None` or `default`: the first).
    pub(crate) fn target(&self, name: Option<&str>) -> Option<usize> {
        match name {
            None => Some(0),
            Some(n) => self.targets.iter().position(|t| t.0 == n),
        }
    }

    /// Runs a read on the reader connection, off the async threads.
    pub(crate) async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut dyn Outbox) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let st = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut guard = st
                .reader
                .lock()
                .map_err(|_| "store lock poisoned".to_string())?;
            f(guard.as_mut()).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// Fetching new leads' form answers from Meta (`[server] fetch_leads`).
pub(crate) struct Fetch {
    /// Graph client.
    pub(crate) client: leadsignal_graph::GraphClient,
    /// Token (and app secret).
    pub(crate) creds: leadsignal_graph::Credentials,
    /// How long a webhook lead's first event waits for its answers.
    pub(crate) hold_secs: i64,
}
