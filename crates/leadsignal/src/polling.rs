//! Polling one configured `[[sources]]` entry into the outbox: the reader
//! its kind names, from its stored cursor (or its first one), through the
//! intake. Used by `sync` and by `serve`'s background loop.

use crate::config::{SourceConfig, SourceReader};
use leadsignal_core::PrepareConfig;
use leadsignal_intake::{poll_source, SourceSummary};
use leadsignal_store::{Enqueue, MissingStages};

/// Reads every new row of `source`, until none is left, and records how
/// the poll ended (`status` shows a source's last error).
pub(crate) fn poll(
    source: &SourceConfig,
    pc: &PrepareConfig,
    missing: MissingStages,
    store: &mut dyn Enqueue,
    now: i64,
) -> anyhow::Result<SourceSummary> {
    let result = read(source, pc, missing, store, now);
    let error = result.as_ref().err().map(|e| format!("{e:#}"));
    store.record_poll(&source.name, error.as_deref(), now)?;
    result
}

fn read(
    source: &SourceConfig,
    pc: &PrepareConfig,
    missing: MissingStages,
    store: &mut dyn Enqueue,
    now: i64,
) -> anyhow::Result<SourceSummary> {
    let first = source.first_cursor(now);
    Ok(match source.reader()? {
        SourceReader::Sql(s) => poll_source(&s, &first, pc, missing, store, now)?,
        SourceReader::Hubspot(h) => poll_source(&h, &first, pc, missing, store, now)?,
        SourceReader::Salesforce(s) => poll_source(&s, &first, pc, missing, store, now)?,
        SourceReader::Pipedrive(p) => poll_source(&p, &first, pc, missing, store, now)?,
    })
}
