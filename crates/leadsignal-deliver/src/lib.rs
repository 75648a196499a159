//! leadsignal's sender: claims due outbox entries (deadline first, one stage per lead
//! at a time), sends them to Meta in batches with several requests in
//! flight, and records every outcome in the outbox.
//!
//! - Accepted: marked sent with Meta's `fbtrace_id`.
//! - Rejected: bisected down to the bad events (`batch.rs`); those are
//!   quarantined with Meta's code, subcode and message, too-old ones expired.
//! - Transient, rate limited: released for a retry with exponential backoff
//!   and jitter, no sooner than Meta's regain-access estimate; when rate
//!   limited, no new request until then. A retry that would miss the send-by
//!   deadline expires the entry instead.
//! - Token or permission refused: the dataset is paused (nothing dropped,
//!   nothing failed); a later run probes with one event and resumes by
//!   itself once Meta accepts the (new) token.
//! - Test sends (`test_event_code`): up to `test_limit` due events, once;
//!   recorded apart, never marked sent, never mixed with production sends.
//!
//! It uses only the [`Delivery`] part of the outbox; it does not prepare or
//! enqueue events, read configuration files or print (callers get a
//! [`SendReport`]).

pub mod batch;
pub mod retry;

pub use batch::Ticket;
pub use retry::RetryPolicy;

use batch::{deliver, Batch, BatchResult};
use leadsignal_graph::{Credentials, GraphClient, SendOptions};
use leadsignal_store::{Delivery, OutboxEntry, StoreError};

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// How the sender works for one dataset.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// The dataset (pixel) ID.
    pub dataset_id: String,
    /// Token (and app secret).
    pub creds: Credentials,
    /// Events per request (1–1000).
    pub batch_size: usize,
    /// Requests in flight.
    pub in_flight: usize,
    /// How long a claim is leased (seconds): longer than a request with all
    /// its bisection steps can take.
    pub lease_secs: i64,
    /// Retry schedule.
    pub retry: RetryPolicy,
    /// Send to Test Events with this code instead.
    pub test_event_code: Option<String>,
    /// Test sends: how many events at most.
    pub test_limit: usize,
    /// `partner_agent`, when agreed with Meta.
    pub partner_agent: Option<String>,
    /// How long to wait for scheduled retries before returning with
    /// entries still pending (they stay in the outbox for the next run).
    pub max_wait: Duration,
    /// Set to true to stop: no new claims; requests in flight finish, and
    /// batches claimed ahead are given back.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

impl SenderConfig {
    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|r| *r.borrow())
    }
}

/// Events per request unless configured (Meta allows 1000).
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// Requests in flight per dataset unless configured.
pub const DEFAULT_IN_FLIGHT: usize = 4;
/// Lease of claimed entries unless configured (seconds).
pub const DEFAULT_LEASE_SECS: i64 = 300;
/// How long a run waits for scheduled retries unless configured (seconds).
pub const DEFAULT_MAX_WAIT_SECS: u64 = 120;

impl SenderConfig {
    /// The defaults for one dataset: batches of [`DEFAULT_BATCH_SIZE`],
    /// [`DEFAULT_IN_FLIGHT`] requests in flight, the default
    /// [`RetryPolicy`], production sends.
    pub fn new(dataset_id: &str, creds: Credentials) -> SenderConfig {
        SenderConfig {
            dataset_id: dataset_id.to_string(),
            creds,
            batch_size: DEFAULT_BATCH_SIZE,
            in_flight: DEFAULT_IN_FLIGHT,
            lease_secs: DEFAULT_LEASE_SECS,
            retry: RetryPolicy::default(),
            test_event_code: None,
            test_limit: 100,
            partner_agent: None,
            max_wait: Duration::from_secs(DEFAULT_MAX_WAIT_SECS),
            stop: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SendReport {
    /// The dataset (pixel) ID.
    pub dataset_id: String,
    /// Events Meta accepted (production).
    pub accepted: u64,
    /// Whether this was a test send (Test Events).
    pub test: bool,
    /// Events sent to Test Events.
    pub test_sent: u64,
    /// Events Meta rejected, quarantined (by Meta's code/subcode).
    pub rejected: u64,
    /// Events expired (too old for Meta, or would have been by the retry).
    pub expired: u64,
    /// Entries given back for a retry (one per entry and failure).
    pub retried: u64,
    /// Requests made.
    pub requests: u64,
    /// Requests refused for rate limiting.
    pub rate_limited_requests: u64,
    /// Rejections and expiries by Meta's error.
    pub errors: BTreeMap<String, u64>,
    /// Set when delivery is paused (token or permission problem).
    pub paused: Option<String>,
    /// Due entries left for a later run (retry scheduled after `max_wait`).
    pub left_pending: u64,
    /// Time the last finished batch took, its bisection steps included.
    pub last_batch_seconds: f64,
    /// Requests by outcome class (see `batch::CLASSES`).
    pub requests_by_class: BTreeMap<String, u64>,
    /// Wall time.
    pub seconds: f64,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Delivers everything due for one dataset, then returns. `progress` is
/// called after every finished batch.
pub async fn send_due(
    store: &mut (dyn Delivery + Send),
    client: &GraphClient,
    cfg: &SenderConfig,
    mut progress: impl FnMut(&SendReport),
) -> Result<SendReport, StoreError> {
    let started = Instant::now();
    let mut report = SendReport {
        dataset_id: cfg.dataset_id.clone(),
        ..SendReport::default()
    };
    store.expire_due(unix_now())?;
    if cfg.test_event_code.is_some() {
        report.test = true;
        test_send(store, client, cfg, &mut report).await?;
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    // A paused dataset: probe with one event; stay paused if refused again.
    if store.paused(&cfg.dataset_id)?.is_some() {
        let probe = store.claim(&cfg.dataset_id, 1, cfg.lease_secs, unix_now())?;
        if probe.is_empty() {
            report.paused = store.paused(&cfg.dataset_id)?.map(|p| p.reason);
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        let r = run_batch(client, cfg, probe).await;
        apply(store, cfg, r, &mut report)?;
        if report.paused.is_some() {
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        store.set_paused(&cfg.dataset_id, None, unix_now())?;
        tracing::info!(dataset = %cfg.dataset_id, "Meta accepts the token again: delivery resumed");
    }
    let mut tasks: JoinSet<BatchResult> = JoinSet::new();
    let mut hold_until: Option<Instant> = None;
    let deadline = Instant::now() + cfg.max_wait;
    // Batches claimed while all requests are in flight, so that a slot
    // that frees sends at once instead of waiting for a claim (two: slots
    // often free close together).
    let mut ready: VecDeque<Vec<OutboxEntry>> = VecDeque::new();
    let spawn = |tasks: &mut JoinSet<BatchResult>, entries: Vec<OutboxEntry>| {
        let (client, cfg2) = (client.clone(), cfg.clone());
        tasks.spawn(async move { run_batch(&client, &cfg2, entries).await });
    };
    loop {
        let now_i = Instant::now();
        let held = hold_until.is_some_and(|t| t > now_i) || cfg.stopping();
        if cfg.stopping() {
            give_back(store, &mut ready)?;
        }
        let mut claimed_any = false;
        while report.paused.is_none() && !held && tasks.len() < cfg.in_flight.max(1) {
            let entries = match ready.pop_front() {
                Some(batch) => batch,
                None => store.claim(&cfg.dataset_id, cfg.batch_size, cfg.lease_secs, unix_now())?,
            };
            if entries.is_empty() {
                break;
            }
            claimed_any = true;
            spawn(&mut tasks, entries);
        }
        while report.paused.is_none()
            && !held
            && ready.len() < READY
            && tasks.len() >= cfg.in_flight
        {
            let batch = store.claim(&cfg.dataset_id, cfg.batch_size, cfg.lease_secs, unix_now())?;
            if batch.is_empty() {
                break;
            }
            ready.push_back(batch);
        }
        if let Some(done) = tasks.join_next().await {
            let r = done.expect("a delivery task panicked");
            if r.rate_limited == 0 && r.auth.is_none() {
                if let Some(batch) = ready.pop_front() {
                    spawn(&mut tasks, batch);
                }
            }
            if r.rate_limited > 0 {
                // Stop calling until Meta's estimate (or the backoff) passes.
                let wait = r
                    .retry
                    .iter()
                    .filter_map(|(_, _, w)| *w)
                    .max()
                    .unwrap_or_else(|| cfg.retry.wait(0, None));
                hold_until = Some(Instant::now() + wait);
                tracing::warn!(dataset = %cfg.dataset_id, wait_secs = wait.as_secs(), "rate limited by Meta: holding new requests");
            }
            if r.rate_limited > 0 || r.auth.is_some() {
                give_back(store, &mut ready)?;
            }
            apply(store, cfg, r, &mut report)?;
            report.seconds = started.elapsed().as_secs_f64();
            progress(&report);
            continue;
        }
        if claimed_any {
            continue;
        }
        // Nothing in flight and nothing claimable now: wait for the next
        // scheduled retry if it comes before `max_wait` runs out.
        if report.paused.is_some() || cfg.stopping() {
            break;
        }
        let next = store.next_attempt_at(&cfg.dataset_id, unix_now())?;
        let wake = match (next, hold_until) {
            (Some(at), h) => {
                let secs = (at - unix_now()).max(0) as u64;
                let t = Instant::now() + Duration::from_secs(secs);
                h.map_or(t, |h| h.max(t))
            }
            (None, _) => break,
        };
        if wake > deadline {
            break;
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(wake.max(Instant::now()))).await;
        hold_until = None;
        store.expire_due(unix_now())?;
    }
    give_back(store, &mut ready)?;
    // This dataset's: another dataset's sender may still be at work.
    report.left_pending = store.pending(&cfg.dataset_id)?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Batches claimed ahead of a free slot, at most.
const READY: usize = 2;

/// Gives batches claimed ahead back to the outbox, untouched.
fn give_back(
    store: &mut dyn Delivery,
    ready: &mut VecDeque<Vec<OutboxEntry>>,
) -> Result<(), StoreError> {
    let ids: Vec<i64> = ready.drain(..).flatten().map(|e| e.id).collect();
    if !ids.is_empty() {
        store.unlease(&ids)?;
    }
    Ok(())
}

async fn run_batch(
    client: &GraphClient,
    cfg: &SenderConfig,
    entries: Vec<OutboxEntry>,
) -> BatchResult {
    let batch = Batch {
        dataset_id: cfg.dataset_id.clone(),
        entries: entries
            .into_iter()
            .map(|e| {
                let t = Ticket {
                    id: e.id,
                    attempts: e.attempts,
                    send_by: e.send_by,
                };
                (t, e.event)
            })
            .collect(),
    };
    let opts = SendOptions {
        test_event_code: cfg.test_event_code.as_deref(),
        partner_agent: cfg.partner_agent.as_deref(),
    };
    let started = Instant::now();
    let mut r = deliver(client, &cfg.creds, opts, batch, unix_now).await;
    r.seconds = started.elapsed().as_secs_f64();
    r
}

/// Records a batch's outcome in the outbox and the report.
fn apply(
    store: &mut dyn Delivery,
    cfg: &SenderConfig,
    r: BatchResult,
    report: &mut SendReport,
) -> Result<(), StoreError> {
    let now = unix_now();
    report.requests += r.requests;
    report.last_batch_seconds = r.seconds;
    for (name, n) in batch::CLASSES.iter().zip(r.by_class) {
        if n > 0 {
            *report
                .requests_by_class
                .entry(name.to_string())
                .or_default() += n;
        }
    }
    report.rate_limited_requests += r.rate_limited;
    for (ids, trace) in &r.accepted {
        store.mark_sent(ids, trace.as_deref(), now)?;
        report.accepted += ids.len() as u64;
        tracing::info!(dataset = %cfg.dataset_id, events = ids.len(), fbtrace_id = trace.as_deref().unwrap_or(""), "accepted by Meta");
    }
    for (id, e) in &r.rejected {
        let why = cfg.creds.redact(&e.summary());
        tracing::warn!(dataset = %cfg.dataset_id, entry = id, error = %why, "rejected by Meta: quarantined");
        store.reject(&[*id], &why, e.fbtrace_id.as_deref(), now)?;
        report.rejected += 1;
        *report.errors.entry(why).or_default() += 1;
    }
    for (id, e) in &r.too_old {
        let why = cfg.creds.redact(&e.summary());
        tracing::warn!(dataset = %cfg.dataset_id, entry = id, error = %why, "too old for Meta: expired");
        store.expire(&[*id], &why, now)?;
        report.expired += 1;
        *report.errors.entry(why).or_default() += 1;
    }
    for (tickets, why, at_least) in &r.retry {
        // One retry time per failed request (the entries of a request share
        // their history), so that the bookkeeping is one transaction. The
        // claim carried each entry's attempts and deadline.
        let attempts = tickets.iter().map(|t| t.attempts).max().unwrap_or(0);
        let wait = cfg.retry.wait(attempts, *at_least);
        let at = now + wait.as_secs().max(1) as i64;
        let (release, late): (Vec<&Ticket>, Vec<&Ticket>) =
            tickets.iter().partition(|t| retry::in_time(at, t.send_by));
        let release: Vec<i64> = release.iter().map(|t| t.id).collect();
        let late: Vec<i64> = late.iter().map(|t| t.id).collect();
        if !late.is_empty() {
            let reason = format!(
                "expired: the next retry would pass the 7-day deadline (last error: {why})"
            );
            store.expire(&late, &reason, now)?;
            report.expired += late.len() as u64;
            *report
                .errors
                .entry("retry past the send-by deadline".into())
                .or_default() += late.len() as u64;
        }
        store.release(&release, at, Some(why))?;
        report.retried += release.len() as u64;
        tracing::warn!(dataset = %cfg.dataset_id, events = tickets.len(), retry_in_secs = at - now, error = %why, "delivery failed, retry scheduled");
    }
    if !r.untouched.is_empty() {
        store.unlease(&r.untouched)?;
    }
    if let Some(e) = &r.auth {
        let why = cfg.creds.redact(&e.summary());
        store.set_paused(&cfg.dataset_id, Some(&why), now)?;
        tracing::error!(dataset = %cfg.dataset_id, error = %why, "Meta refused the token or permissions: delivery PAUSED for this dataset; nothing is lost. Fix [meta] access_token (or the dataset's permissions); the next run probes and resumes by itself");
        report.paused = Some(why);
    }
    Ok(())
}

/// Sends up to `test_limit` due events once to Test Events.
async fn test_send(
    store: &mut (dyn Delivery + Send),
    client: &GraphClient,
    cfg: &SenderConfig,
    report: &mut SendReport,
) -> Result<(), StoreError> {
    let code = cfg.test_event_code.as_deref().expect("test mode");
    let entries = store.claim(&cfg.dataset_id, cfg.test_limit, cfg.lease_secs, unix_now())?;
    let mut chunks: Vec<Vec<OutboxEntry>> = Vec::new();
    let mut it = entries.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(it.by_ref().take(cfg.batch_size.max(1)).collect());
    }
    for chunk in chunks {
        let r = run_batch(client, cfg, chunk).await;
        report.requests += r.requests;
        let now = unix_now();
        for (ids, trace) in &r.accepted {
            store.record_test_send(ids, code, trace.as_deref(), now)?;
            report.test_sent += ids.len() as u64;
        }
        // Nothing of a test changes production state: everything else goes
        // back untouched, with Meta's verdict in the report.
        let mut back: Vec<i64> = r.untouched.clone();
        for (id, e) in r.rejected.iter().chain(&r.too_old) {
            back.push(*id);
            *report
                .errors
                .entry(cfg.creds.redact(&e.summary()))
                .or_default() += 1;
        }
        for (tickets, why, _) in &r.retry {
            back.extend(tickets.iter().map(|t| t.id));
            *report.errors.entry(why.clone()).or_default() += tickets.len() as u64;
        }
        store.unlease(&back)?;
        if let Some(e) = &r.auth {
            report.paused = Some(cfg.creds.redact(&e.summary()));
            break;
        }
    }
    Ok(())
}
