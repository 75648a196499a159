//! What `serve` does without being asked: deliver what is due every flush
//! interval, import files dropped in the inbox folder, and say so when
//! Meta's daily-upload expectation is at risk.

use super::state::AppState;
use crate::config::Config;
use leadsignal_deliver::{send_due, SendReport};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Starts the background tasks; the handle ends when they have stopped.
pub(crate) fn start(
    cfg: &Config,
    st: Arc<AppState>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut sc = cfg.sender_config()?;
    sc.max_wait = Duration::ZERO;
    sc.stop = Some(stop.clone());
    let client = cfg.graph_client()?;
    let url = cfg.store.url.clone();
    let flush = Duration::from_millis(cfg.server.flush_interval_ms.max(10));
    let inbox = cfg.server.inbox_dir.clone().map(|dir| Inbox {
        dir,
        mapping: cfg.mapping(cfg.import.preset.as_deref()),
        missing: cfg.funnel.missing_stages,
    });
    let pc = Arc::clone(&st.pc);
    let sources = cfg.sources.clone();
    let missing = cfg.funnel.missing_stages;
    // Every other configured dataset delivers on its own task, with its
    // own credentials and store connection: a pause, rate limit or retry
    // of one never holds another back.
    let others = cfg
        .all_datasets()?
        .into_iter()
        .filter(|(name, _)| name != crate::config::DEFAULT_DATASET)
        .map(|(name, c)| dataset_sender(&name, &c, Arc::clone(&st), stop.clone(), flush))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(tokio::spawn(async move {
        let mut next_poll: Vec<std::time::Instant> = vec![std::time::Instant::now(); sources.len()];
        let mut store = match leadsignal_store::open(&url) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "the sender cannot open the outbox");
                return;
            }
        };
        let mut stop = stop;
        let mut last_warning = None::<Vec<String>>;
        loop {
            if *stop.borrow() {
                break;
            }
            if let Some(inbox) = &inbox {
                inbox.poll(&url, &pc);
            }
            for (i, source) in sources.iter().enumerate() {
                if next_poll[i] > std::time::Instant::now() {
                    continue;
                }
                next_poll[i] =
                    std::time::Instant::now() + Duration::from_secs(source.poll_secs.max(1));
                // A poll blocks (database or HTTP, with the CRM's rate-limit
                // waits): off the async workers.
                let polled = tokio::task::block_in_place(|| {
                    crate::polling::poll(
                        source,
                        &pc,
                        missing,
                        &mut *store,
                        crate::clock::unix_now(),
                    )
                });
                match polled {
                    Ok(s) if s.rows > 0 => {
                        tracing::info!(source = %s.source, rows = s.rows, accepted = s.store.accepted, rejected = s.store.rejected, "source polled")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(source = %source.name, error = %e, "source poll failed; retrying at its next poll")
                    }
                }
            }
            deliver_due(&mut *store, &client, &sc, &st.metrics).await;
            // Meta asks for an upload at least once a day: say so in the
            // logs when that is at risk (status, metrics and the dashboard
            // show the same warnings).
            if let Ok(s) = leadsignal_store::Reports::status(&*store, crate::clock::unix_now()) {
                if !s.warnings.is_empty() && last_warning.as_ref() != Some(&s.warnings) {
                    for w in &s.warnings {
                        tracing::warn!(warning = %w, "upload cadence");
                    }
                }
                last_warning = Some(s.warnings);
            }
            tokio::select! {
                _ = tokio::time::sleep(flush) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        for other in others {
            let _ = other.await;
        }
        drop(st);
    }))
}

/// One round of delivery for one dataset: what is due now, counted in the
/// metrics, logged.
async fn deliver_due(
    store: &mut (dyn leadsignal_store::Outbox + Send),
    client: &leadsignal_graph::GraphClient,
    sc: &leadsignal_deliver::SenderConfig,
    metrics: &super::metrics::Metrics,
) {
    let mut before = SendReport::default();
    let result = send_due(store, client, sc, |r| {
        metrics.delivered(&before, r);
        before = r.clone();
    })
    .await;
    match result {
        Ok(r) if r.requests > 0 => tracing::info!(
            dataset = %sc.dataset_id,
            accepted = r.accepted,
            rejected = r.rejected,
            expired = r.expired,
            requests = r.requests,
            "delivered"
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::error!(dataset = %sc.dataset_id, error = %e, "delivery failed; retrying at the next flush")
        }
    }
}

/// Delivery of one more dataset (`[[datasets]]`) every flush interval.
fn dataset_sender(
    name: &str,
    cfg: &Config,
    st: Arc<AppState>,
    stop: watch::Receiver<bool>,
    flush: Duration,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use anyhow::Context as _;
    let mut sc = cfg
        .sender_config()
        .with_context(|| format!("dataset {name}"))?;
    sc.max_wait = Duration::ZERO;
    sc.stop = Some(stop.clone());
    let client = cfg.graph_client()?;
    let mut store = leadsignal_store::open(&cfg.store.url)?;
    let mut stop = stop;
    Ok(tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                break;
            }
            deliver_due(&mut *store, &client, &sc, &st.metrics).await;
            tokio::select! {
                _ = tokio::time::sleep(flush) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }))
}

/// Files dropped in a folder: imported, then moved to `done/` (or to
/// `unreadable/` when they cannot be read at all).
struct Inbox {
    dir: PathBuf,
    mapping: anyhow::Result<leadsignal_sources::Mapping>,
    missing: leadsignal_store::MissingStages,
}

impl Inbox {
    fn poll(&self, url: &str, pc: &leadsignal_core::PrepareConfig) {
        let mapping = match &self.mapping {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "inbox: the [import] mapping is invalid");
                return;
            }
        };
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && leadsignal_sources::FileFormat::from_path(p).is_some()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        for file in files {
            let mut store = match leadsignal_store::open(url) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "inbox: cannot open the outbox");
                    return;
                }
            };
            let now = crate::clock::unix_now();
            let result = leadsignal_intake::import_files(
                std::slice::from_ref(&file),
                mapping,
                pc,
                self.missing,
                &mut *store,
                now,
                |_| {},
                |_| {},
            );
            let to = match &result {
                Ok(s) if s.unreadable_files.is_empty() => {
                    tracing::info!(file = %file.display(), rows = s.rows, accepted = s.store.accepted, rejected = s.store.rejected, "inbox file imported");
                    "done"
                }
                Ok(s) => {
                    tracing::error!(file = %file.display(), errors = ?s.unreadable_files, "inbox file unreadable");
                    "unreadable"
                }
                Err(e) => {
                    tracing::error!(file = %file.display(), error = %e, "inbox import failed; will retry");
                    continue;
                }
            };
            if let Err(e) = move_into(&file, &self.dir.join(to)) {
                tracing::error!(file = %file.display(), error = %e, "inbox: cannot move the file");
            }
        }
    }
}

fn move_into(file: &Path, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = file.file_name().unwrap_or_default();
    std::fs::rename(file, dir.join(name))
}
