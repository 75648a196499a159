//! # leadsignal-store
//!
//! The durable outbox: every prepared event is stored before anything is
//! sent, with its delivery state; every rejected input row is kept in a
//! quarantine with its position and reason (never raw contact data).
//! [`Outbox`] is the interface, in three parts by who uses them
//! ([`Enqueue`], [`Delivery`], [`Reports`]); [`SqliteOutbox`] is the
//! embedded default, [`PgOutbox`] for several workers sharing one
//! PostgreSQL database.
//!
//! The store never calls Graph, never reads configuration files and never
//! holds raw contact data: events arrive prepared and hashed.

#![warn(missing_docs)]

mod codec;
mod model;
mod pg;
mod plan;
mod recover;
mod reports;
mod sqlite;

pub use leadsignal_core::redact::redact_url;
pub use model::*;
pub use pg::PgOutbox;
pub use sqlite::SqliteOutbox;

/// Everything the outbox can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement (the driver's error is
    /// the source; its type is not part of this API).
    #[error("{backend} error: {source}")]
    Db {
        /// `database` (SQLite) or `PostgreSQL`.
        backend: &'static str,
        /// The driver's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database server could not be reached or refused the login.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// `store.url`, its password hidden.
        url: String,
        /// The driver's reason.
        message: String,
    },
    /// A schema newer than this program understands.
    #[error("the database at {path} has schema version {found}, newer than this leadsignal understands ({known}); upgrade leadsignal")]
    SchemaTooNew {
        /// Database location.
        path: String,
        /// Version found.
        found: i64,
        /// Newest version known here.
        known: i64,
    },
    /// A stored payload that does not parse (corruption).
    #[error("stored event {id} is unreadable: {message}")]
    Corrupt {
        /// Outbox row.
        id: i64,
        /// Parser message.
        message: String,
    },
    /// Reading an outbox that does not exist.
    #[error("there is no outbox at {0}: run `leadsignal import` first, or set store.url")]
    Missing(String),
    /// An unsupported `store.url`.
    #[error("unsupported store.url {0:?}: use sqlite://<path> or postgres://[user@]host[:port]/database")]
    Url(String),
}

/// The whole outbox, as a process that writes, sends and reports holds
/// it: every backend is all three. Callers take the part they use:
/// [`Enqueue`] (import, polled sources, serve's writer), [`Delivery`] (the
/// sender), [`Reports`] (status, dashboard, the API's reads).
pub trait Outbox: Enqueue + Delivery + Reports {}

impl<T: Enqueue + Delivery + Reports + ?Sized> Outbox for T {}

/// What writers use: store stage changes (and a polled source's cursor)
/// in one transaction.
pub trait Enqueue {
    /// Stores a batch in one transaction: events (applying the funnel policy
    /// per lead) and rejected rows. Idempotent: the same input twice adds
    /// nothing the second time.
    fn enqueue(
        &mut self,
        batch: &[Incoming],
        ctx: &EnqueueContext<'_>,
    ) -> Result<EnqueueReport, StoreError> {
        self.enqueue_with_cursor(batch, ctx, None)
    }

    /// `enqueue`, and in the same transaction records that polled `source`
    /// has been read up to `cursor`: a crash either stores both or neither.
    fn enqueue_from(
        &mut self,
        batch: &[Incoming],
        ctx: &EnqueueContext<'_>,
        source: &str,
        cursor: &str,
    ) -> Result<EnqueueReport, StoreError> {
        self.enqueue_with_cursor(batch, ctx, Some((source, cursor)))
    }

    /// What every backend implements for `enqueue` and `enqueue_from`: one
    /// transaction storing the batch and, with `cursor = Some((source,
    /// value))`, the source's new cursor.
    fn enqueue_with_cursor(
        &mut self,
        batch: &[Incoming],
        ctx: &EnqueueContext<'_>,
        cursor: Option<(&str, &str)>,
    ) -> Result<EnqueueReport, StoreError>;

    /// How far polled `source` has been read (`enqueue_from`).
    fn cursor(&self, source: &str) -> Result<Option<String>, StoreError>;

    /// Writes what an enqueue left waiting (the SQLite outbox writes lead
    /// index entries together, see `sqlite.rs`); the end of an import
    /// calls it. Dropping the store does it too.
    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Replaces the stored form of events still pending with the same lead,
    /// stage and time (an enriched version: the lead's form answers fetched
    /// from Meta), and lifts their hold; returns how many. Entries already
    /// sent or leased are left as they are.
    fn refresh(&mut self, batch: &[Incoming], dataset_id: &str) -> Result<u64, StoreError>;

    /// Records how polled `source`'s poll at `now` ended: `None` when it
    /// worked, else its error (without secrets). `Reports::status` shows
    /// the last of each source.
    fn record_poll(
        &mut self,
        source: &str,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;

    /// The dataset ID dataset `name` is bound to: `dataset_id` (bound at
    /// `now`) on first use, else the one bound before, which the caller
    /// compares (Meta restarts learning on a new dataset).
    fn bind_dataset(
        &mut self,
        name: &str,
        dataset_id: &str,
        now: i64,
    ) -> Result<DatasetBinding, StoreError>;

    /// Binds `name` to `dataset_id` deliberately, keeping the previous ID
    /// and the time; returns the binding before (if any).
    fn rebind_dataset(
        &mut self,
        name: &str,
        dataset_id: &str,
        now: i64,
    ) -> Result<Option<DatasetBinding>, StoreError>;
}

/// What the sender uses: claim due entries, settle them with Meta's
/// answer, pause and resume a dataset, expire what passed its deadline.
pub trait Delivery {
    /// Claims up to `limit` due entries for delivery, deadline first, at most
    /// one per lead and only its earliest undelivered stage, leased until
    /// `now + lease_secs`. Entries whose lease ran out are claimable again.
    fn claim(
        &mut self,
        dataset_id: &str,
        limit: usize,
        lease_secs: i64,
        now: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Records Meta's acceptance of claimed entries.
    fn mark_sent(
        &mut self,
        ids: &[i64],
        fbtrace_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Gives claimed entries back for a later attempt.
    fn release(
        &mut self,
        ids: &[i64],
        retry_at: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Takes claimed entries this process still holds out of the queue as
    /// `state` (`Quarantined` or `Expired`), with the reason and the trace
    /// of Meta's answer; one attempt counted. What [`Delivery::reject`] and
    /// [`Delivery::expire`] do.
    fn leave_queue(
        &mut self,
        ids: &[i64],
        state: State,
        reason: &str,
        fbtrace_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Quarantines claimed entries Meta rejected (`error`: Meta's code,
    /// subcode and message; `fbtrace_id`: the trace of Meta's answer). They
    /// are never retried.
    fn reject(
        &mut self,
        ids: &[i64],
        error: &str,
        fbtrace_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.leave_queue(ids, State::Quarantined, error, fbtrace_id, now)
    }

    /// Marks claimed entries expired (Meta said too old, or a retry would
    /// pass the deadline), with the reason.
    fn expire(&mut self, ids: &[i64], reason: &str, now: i64) -> Result<(), StoreError> {
        self.leave_queue(ids, State::Expired, reason, None, now)
    }

    /// Gives claimed entries back untouched (no attempt counted): delivery
    /// paused, or the sender is stopping.
    fn unlease(&mut self, ids: &[i64]) -> Result<(), StoreError>;

    /// Records that claimed entries were sent to Meta's Test Events and gives
    /// them back as pending: a test send never marks an entry as sent.
    fn record_test_send(
        &mut self,
        ids: &[i64],
        test_event_code: &str,
        fbtrace_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;

    /// When something of a dataset may next become claimable: the earliest
    /// scheduled retry after `now`, or the end of a lease held by a sender
    /// that is gone (a crashed run), if any.
    fn next_attempt_at(&mut self, dataset_id: &str, now: i64) -> Result<Option<i64>, StoreError>;

    /// Pauses delivery to a dataset (`Some(reason)`) or resumes it (`None`).
    fn set_paused(
        &mut self,
        dataset_id: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Entries of a dataset waiting to be sent (`pending`).
    fn pending(&self, dataset_id: &str) -> Result<u64, StoreError>;

    /// Whether delivery to a dataset is paused, and why.
    fn paused(&self, dataset_id: &str) -> Result<Option<Paused>, StoreError>;

    /// Marks pending and held entries past their send-by deadline as expired;
    /// returns how many.
    fn expire_due(&mut self, now: i64) -> Result<u64, StoreError>;
}

/// What reports use: read-only figures and histories.
pub trait Reports {
    /// Figures for `leadsignal status`.
    fn status(&self, now: i64) -> Result<Status, StoreError>;

    /// The Meta lead ID of the lead a CRM knows as `crm_id`, when a stage
    /// change gave both (CRM webhooks name leads by record ID only).
    fn lead_id_of(&self, dataset_id: &str, crm_id: &str) -> Result<Option<u64>, StoreError>;

    /// One lead of a dataset by Meta lead ID: what is known of it and every
    /// stage with its delivery state (hashed data only).
    fn lead(&self, dataset_id: &str, lead_id: u64) -> Result<Option<LeadHistory>, StoreError>;

    /// What an operator's dashboard shows beyond `status`: uploads per hour,
    /// events closest to the cutoff, the latest errors, match-key coverage.
    fn activity(&self, now: i64) -> Result<Activity, StoreError>;
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db {
            backend: "database",
            source: Box::new(e),
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Db {
            backend: "PostgreSQL",
            source: Box::new(e),
        }
    }
}

/// A store that several threads of one process may hold.
pub type DynOutbox = Box<dyn Outbox + Send>;

/// Opens the outbox named by `store.url` (`sqlite://<path>` or
/// `postgres://...`), creating it if needed.
pub fn open(url: &str) -> Result<DynOutbox, StoreError> {
    if is_postgres(url) {
        return Ok(Box::new(PgOutbox::open(url)?));
    }
    Ok(Box::new(SqliteOutbox::open(sqlite_path(url)?)?))
}

/// Opens an existing outbox (for commands that only read it).
pub fn open_existing(url: &str) -> Result<DynOutbox, StoreError> {
    if is_postgres(url) {
        return Ok(Box::new(PgOutbox::open(url)?));
    }
    let path = sqlite_path(url)?;
    if !std::path::Path::new(path).exists() {
        return Err(StoreError::Missing(path.to_string()));
    }
    Ok(Box::new(SqliteOutbox::open(path)?))
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn sqlite_path(url: &str) -> Result<&str, StoreError> {
    match url.strip_prefix("sqlite://") {
        Some(path) if !path.is_empty() => Ok(path),
        _ => Err(StoreError::Url(redact_url(url))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_urls_hide_their_password() {
        let e = open("mysql://u:pw@h/db").err().unwrap().to_string();
        assert!(e.contains("mysql://u:***@h/db"), "{e}");
    }
}
