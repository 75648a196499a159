//! Files into the outbox: a reader thread parses and checks rows (CSV or
//! JSONL, any encoding the sources read) while the calling thread writes
//! batches, one transaction each.

use crate::check::{check, Checked};
use crate::identities::Identities;
use crate::IntakeError;
use leadsignal_core::PrepareConfig;
use leadsignal_sources::{FileRows, Mapping};
use leadsignal_store::{Enqueue, EnqueueContext, EnqueueReport, Incoming, MissingStages};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

/// Rows per transaction: large enough to amortize the commit, small enough
/// that a crash loses little work (the re-run redoes it, idempotently). At
/// most two batches wait between the threads, which bounds memory.
const BATCH: usize = 10_000;

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Data records read from the files (a CSV row with several stage dates
    /// is one; footers and empty rows are not records).
    pub rows: u64,
    /// Lines of report footers skipped (totals, notices, trailing empty rows).
    pub footer_lines: u64,
    /// Empty rows skipped before the end of a file.
    pub blank_rows: u64,
    /// Each file: how it was read.
    pub files: Vec<FileSummary>,
    /// Files that could not be read.
    pub unreadable_files: Vec<String>,
    /// Warnings by rule (rows kept; `validate` lists them).
    pub warnings_by_rule: BTreeMap<&'static str, u64>,
    /// Values dropped from kept rows, by rule.
    pub dropped_by_rule: BTreeMap<&'static str, u64>,
    /// The outbox's account of it.
    #[serde(flatten)]
    pub store: EnqueueReport,
    /// Wall time.
    pub seconds: f64,
}

/// How one file was read.
#[derive(Debug, Default, Serialize)]
pub struct FileSummary {
    /// The file.
    pub file: String,
    /// Its text encoding.
    pub encoding: &'static str,
    /// Data records.
    pub rows: u64,
    /// Footer lines skipped.
    pub footer_lines: u64,
}

/// What a batch tells besides its items: the file's summary with its last
/// batch, and the rules of the warnings and drops of its rows.
type Notes = (Option<FileSummary>, Vec<&'static str>, Vec<&'static str>);

/// One rejected row for `--rejects`.
pub struct Reject {
    /// The file (or source) the row came from.
    pub source: String,
    /// The row's line (or item number).
    pub line: u64,
    /// Record field, or empty.
    pub field: String,
    /// Rule code.
    pub rule: String,
    /// Explanation (never a raw contact value).
    pub message: String,
}

/// Reads, prepares and stores `files`. Parsing and `prepare` run on a second
/// thread while this one writes to the store.
#[allow(clippy::too_many_arguments)]
pub fn import_files(
    files: &[PathBuf],
    mapping: &Mapping,
    pc: &PrepareConfig,
    missing: MissingStages,
    store: &mut dyn Enqueue,
    now: i64,
    mut on_progress: impl FnMut(&Summary),
    mut on_reject: impl FnMut(Reject),
) -> Result<Summary, IntakeError> {
    let started = Instant::now();
    let (tx, rx) = mpsc::sync_channel::<Result<(u64, Vec<Incoming>, Notes), String>>(2);
    // Written batches go back to the reader to be freed: the writer is the
    // bottleneck of an import, and freeing 10,000 events is not free. The
    // reader frees them as it goes (one waiting at most; when the reader is
    // blocked, the writer frees the next itself), so that at most five
    // batches are alive: memory stays bounded.
    let (done_tx, done_rx) = mpsc::sync_channel::<Vec<Incoming>>(1);
    let mut summary = Summary::default();
    std::thread::scope(|scope| -> Result<(), IntakeError> {
        let reader = scope.spawn(move || {
            for path in files {
                let mut rows = match FileRows::open_with(path, mapping) {
                    Ok(r) => r,
                    Err(e) => {
                        if tx.send(Err(e.to_string())).is_err() {
                            return;
                        }
                        continue;
                    }
                };
                let mut identities = Identities::default();
                let mut batch = Vec::with_capacity(BATCH);
                let mut read = 0u64;
                let mut notes: Notes = (None, Vec::new(), Vec::new());
                while let Some(row) = rows.next() {
                    let (checked, mut warnings) = check(row, pc, now);
                    identities.check(&checked, &mut warnings);
                    notes.1.extend(warnings.iter().map(|w| w.rule));
                    if let Checked::Event { prepared, .. } = &checked {
                        notes.2.extend(prepared.dropped.iter().map(|d| d.rule));
                    }
                    batch.push(checked.into_incoming());
                    if batch.len() % 1024 == 0 {
                        while let Ok(written) = done_rx.try_recv() {
                            drop(written);
                        }
                    }
                    if batch.len() == BATCH {
                        let records = rows.stats().records;
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        let n = std::mem::take(&mut notes);
                        if tx.send(Ok((records - read, full, n))).is_err() {
                            return;
                        }
                        read = records;
                    }
                }
                let stats = rows.stats();
                notes.0 = Some(FileSummary {
                    file: rows.name().to_string(),
                    encoding: rows.encoding().0,
                    rows: stats.records,
                    footer_lines: stats.footer_lines,
                });
                if tx.send(Ok((stats.records - read, batch, notes))).is_err() {
                    return;
                }
            }
        });
        let ctx = EnqueueContext {
            prepare: pc,
            missing,
            now,
        };
        for msg in rx {
            match msg {
                Err(file_error) => summary.unreadable_files.push(file_error),
                Ok((read, batch, (file, warnings, dropped))) => {
                    let report = store.enqueue(&batch, &ctx)?;
                    summary.rows += read;
                    summary.store.add(&report);
                    for w in warnings {
                        *summary.warnings_by_rule.entry(w).or_default() += 1;
                    }
                    for d in dropped {
                        *summary.dropped_by_rule.entry(d).or_default() += 1;
                    }
                    if let Some(f) = file {
                        summary.footer_lines += f.footer_lines;
                        summary.files.push(f);
                    }
                    for item in &batch {
                        if let Incoming::Rejected {
                            origin, violations, ..
                        } = item
                        {
                            for v in violations {
                                on_reject(Reject {
                                    source: origin.source.clone(),
                                    line: origin.line,
                                    field: v.field.unwrap_or("").to_string(),
                                    rule: v.code.to_string(),
                                    message: v.message.clone(),
                                });
                            }
                        }
                    }
                    summary.seconds = started.elapsed().as_secs_f64();
                    on_progress(&summary);
                    // The reader frees it; if it has finished, free it here.
                    if let Err(mpsc::TrySendError::Full(b) | mpsc::TrySendError::Disconnected(b)) =
                        done_tx.try_send(batch)
                    {
                        drop(b);
                    }
                }
            }
        }
        reader.join().map_err(|_| IntakeError::ReaderPanicked)?;
        store.flush()?;
        Ok(())
    })?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}
