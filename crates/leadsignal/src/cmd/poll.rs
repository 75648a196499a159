//! Reading `[[sources]]` (CRM databases) into the outbox: each poll's rows
//! and the cursor after them are stored in one transaction, so a crash
//! between reading and storing neither loses nor repeats a stage change.

use crate::config::Config;
use leadsignal_core::PrepareConfig;
use leadsignal_store::{EnqueueContext, EnqueueReport, Incoming, Outbox};
use serde::Serialize;

/// Rows read per poll (one transaction each).
const POLL_ROWS: usize = 10_000;

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

/// Reads every new row of every configured source, until none is left.
pub fn poll_all(
    cfg: &Config,
    pc: &PrepareConfig,
    store: &mut dyn Outbox,
    now: i64,
) -> anyhow::Result<Vec<SourceSummary>> {
    cfg.sources
        .iter()
        .map(|source| poll_source(source, pc, cfg.funnel.missing_stages, store, now))
        .collect()
}

/// Reads every new row of one source, until none is left.
pub fn poll_source(
    source: &crate::config::SourceConfig,
    pc: &PrepareConfig,
    missing: leadsignal_store::MissingStages,
    store: &mut dyn Outbox,
    now: i64,
) -> anyhow::Result<SourceSummary> {
    {
        let reader = match source.kind {
            crate::config::SourceKind::Sql => source.sql(),
        };
        let mut summary = SourceSummary {
            source: source.name.clone(),
            ..Default::default()
        };
        loop {
            let cursor = store
                .cursor(&source.name)?
                .unwrap_or_else(|| source.initial_cursor.clone());
            let poll = reader.poll(&cursor, POLL_ROWS)?;
            let Some(next) = poll.cursor else {
                summary.cursor = Some(cursor);
                break;
            };
            summary.rows += poll.rows.len() as u64;
            let batch: Vec<Incoming> = poll
                .rows
                .into_iter()
                .map(|row| crate::intake::check(row, pc, now).0.into_incoming())
                .collect();
            let ctx = EnqueueContext {
                prepare: pc,
                missing,
                now,
            };
            let report = store.enqueue_from(&batch, &ctx, &source.name, &next)?;
            summary.store.add(&report);
            summary.cursor = Some(next);
        }
        Ok(summary)
    }
}
