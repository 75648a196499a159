//! Polled sources (CRM databases, and any source read after a cursor) into
//! the outbox: each poll's rows and the cursor after them are stored in one
//! transaction, so a crash between reading and storing neither loses nor
//! repeats a stage change.

use crate::check::check;
use crate::IntakeError;
use leadsignal_core::PrepareConfig;
use leadsignal_sources::sql::{Poll, SqlError, SqlSource};
use leadsignal_store::{Enqueue, EnqueueContext, EnqueueReport, Incoming, MissingStages};
use serde::Serialize;

/// Rows read per poll (one transaction each).
const POLL_ROWS: usize = 10_000;

/// A source read by polling: the rows after a cursor, in cursor order, with
/// the cursor of the last.
pub trait Polled {
    /// Why a poll failed.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The source's name (positions and the stored cursor use it).
    fn name(&self) -> &str;
    /// Up to `limit` rows after `cursor`.
    fn poll(&self, cursor: &str, limit: usize) -> Result<Poll, Self::Error>;
}

impl Polled for SqlSource {
    type Error = SqlError;
    fn name(&self) -> &str {
        &self.name
    }
    fn poll(&self, cursor: &str, limit: usize) -> Result<Poll, SqlError> {
        SqlSource::poll(self, cursor, limit)
    }
}

/// `Polled` for the CRM API sources: their own `poll`, their `name`.
macro_rules! polled_crm {
    ($($source:ty),*) => {$(
        impl Polled for $source {
            type Error = leadsignal_sources::crm::CrmError;
            fn name(&self) -> &str {
                &self.name
            }
            fn poll(&self, cursor: &str, limit: usize) -> Result<Poll, Self::Error> {
                <$source>::poll(self, cursor, limit)
            }
        }
    )*};
}

polled_crm!(
    leadsignal_sources::crm::HubspotSource,
    leadsignal_sources::crm::SalesforceSource,
    leadsignal_sources::crm::PipedriveSource
);

/// What polling one source did.
#[derive(Debug, Default, Serialize)]
pub struct SourceSummary {
    /// Source name.
    pub source: String,
    /// Rows read.
    pub rows: u64,
    /// What the outbox did with them.
    pub store: EnqueueReport,
    /// Where the cursor stands now.
    pub cursor: Option<String>,
}

/// Reads every new row of one source, until none is left; the cursor
/// starts at `initial_cursor` when the store holds none for the source.
pub fn poll_source<P: Polled>(
    source: &P,
    initial_cursor: &str,
    pc: &PrepareConfig,
    missing: MissingStages,
    store: &mut dyn Enqueue,
    now: i64,
) -> Result<SourceSummary, IntakeError> {
    let name = source.name();
    let mut summary = SourceSummary {
        source: name.to_string(),
        ..Default::default()
    };
    let ctx = EnqueueContext {
        prepare: pc,
        missing,
        now,
    };
    loop {
        let cursor = store
            .cursor(name)?
            .unwrap_or_else(|| initial_cursor.to_string());
        let poll = source
            .poll(&cursor, POLL_ROWS)
            .map_err(|e| IntakeError::Source(Box::new(e)))?;
        let Some(next) = poll.cursor else {
            summary.cursor = Some(cursor);
            break;
        };
        summary.rows += poll.rows.len() as u64;
        let batch: Vec<Incoming> = poll
            .rows
            .into_iter()
            .map(|row| check(row, pc, now).0.into_incoming())
            .collect();
        let report = store.enqueue_from(&batch, &ctx, name, &next)?;
        summary.store.add(&report);
        summary.cursor = Some(next);
    }
    Ok(summary)
}
