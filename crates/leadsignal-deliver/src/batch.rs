//! One claimed batch to Meta. Meta rejects a whole request for one bad event,
//! so a rejected request is split in halves, and halves again, until each bad
//! event is alone: only those are quarantined, the rest is delivered.

use leadsignal_core::ServerEvent;
use leadsignal_graph::outcome::SUBCODE_TOO_OLD;
use leadsignal_graph::{
    Credentials, GraphClient, GraphError, Outcome, SendOptions, TransientCause,
};
use std::time::Duration;

/// A claimed entry as the settle step needs it: its row, the attempts it
/// had when claimed and its deadline (no second look-up to plan a retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// Outbox row ID.
    pub id: i64,
    /// Delivery attempts before this one.
    pub attempts: i64,
    /// Meta's 7-day deadline (Unix seconds).
    pub send_by: i64,
}

/// What to send: claimed entries with their events.
pub struct Batch {
    /// The dataset (pixel) ID.
    pub dataset_id: String,
    /// (entry, event).
    pub entries: Vec<(Ticket, ServerEvent)>,
}

/// Where each entry of a batch ended.
#[derive(Debug, Default)]
pub struct BatchResult {
    /// Accepted, with the request's `fbtrace_id`.
    pub accepted: Vec<(Vec<i64>, Option<String>)>,
    /// Rejected alone by Meta: quarantine with Meta's error.
    pub rejected: Vec<(i64, GraphError)>,
    /// Meta said too old: expire.
    pub too_old: Vec<(i64, GraphError)>,
    /// Failed for a reason a retry may fix: (ids, why, wait at least).
    pub retry: Vec<(Vec<Ticket>, String, Option<Duration>)>,
    /// Not sent because the credentials or dataset were refused: give back.
    pub untouched: Vec<i64>,
    /// The refusal, when there was one.
    pub auth: Option<GraphError>,
    /// Requests Meta refused for rate limiting.
    pub rate_limited: u64,
    /// Requests made.
    pub requests: u64,
    /// Time from the first request to the last answer.
    pub seconds: f64,
    /// Requests by outcome class: accepted, rejected, transient,
    /// rate_limited, auth.
    pub by_class: [u64; 5],
}

/// The names of `BatchResult::by_class`, in order.
pub const CLASSES: [&str; 5] = ["accepted", "rejected", "transient", "rate_limited", "auth"];

/// Sends `batch`, bisecting on rejection. In a test send, rejected events are
/// reported but left as they are (a test never changes production state):
/// the caller decides.
pub async fn deliver(
    client: &GraphClient,
    creds: &Credentials,
    opts: SendOptions<'_>,
    batch: Batch,
    now: impl Fn() -> i64,
) -> BatchResult {
    let mut result = BatchResult::default();
    // Work list of index ranges into `entries`, processed depth first so
    // that the halves of a rejected range go next.
    let mut todo: Vec<std::ops::Range<usize>> = Vec::new();
    todo.push(0..batch.entries.len());
    while let Some(range) = todo.pop() {
        let slice = &batch.entries[range.clone()];
        if slice.is_empty() {
            continue;
        }
        let ids = || slice.iter().map(|(t, _)| t.id).collect::<Vec<_>>();
        let tickets = || slice.iter().map(|(t, _)| *t).collect::<Vec<_>>();
        if result.auth.is_some() {
            result.untouched.extend(ids());
            continue;
        }
        let events: Vec<&ServerEvent> = slice.iter().map(|(_, e)| e).collect();
        result.requests += 1;
        let outcome = client
            .send_events(&batch.dataset_id, &events, creds, opts, now())
            .await;
        result.by_class[match &outcome {
            Outcome::Accepted(_) => 0,
            Outcome::Rejected(_) => 1,
            Outcome::Transient(_) => 2,
            Outcome::RateLimited { .. } => 3,
            Outcome::Auth(_) => 4,
        }] += 1;
        match outcome {
            Outcome::Accepted(r) => result.accepted.push((ids(), r.fbtrace_id)),
            Outcome::Rejected(e) if slice.len() == 1 => {
                let id = slice[0].0.id;
                if e.error_subcode == Some(SUBCODE_TOO_OLD) {
                    result.too_old.push((id, e));
                } else {
                    result.rejected.push((id, e));
                }
            }
            Outcome::Rejected(_) => {
                let mid = range.start + slice.len() / 2;
                // Second half pushed first: the first half is tried first.
                todo.push(mid..range.end);
                todo.push(range.start..mid);
            }
            Outcome::Transient(cause) => {
                let why = match cause {
                    TransientCause::Network(m) => m,
                    TransientCause::Server { status, error } => match error {
                        Some(e) => format!("HTTP {status}, {}", e.summary()),
                        None => format!("HTTP {status}"),
                    },
                    TransientCause::Miscount { sent, received, .. } => {
                        format!("Meta received {received} of {sent} events")
                    }
                };
                result.retry.push((tickets(), creds.redact(&why), None));
            }
            Outcome::RateLimited { error, retry_after } => {
                result.rate_limited += 1;
                let why = error.map_or("rate limited (HTTP 429)".into(), |e| {
                    format!("rate limited: {}", e.summary())
                });
                result
                    .retry
                    .push((tickets(), creds.redact(&why), retry_after));
            }
            Outcome::Auth(e) => {
                result.untouched.extend(ids());
                result.auth = Some(e);
            }
        }
    }
    result
}
