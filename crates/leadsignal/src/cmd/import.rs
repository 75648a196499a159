//! `leadsignal import <file>...`: CRM exports into the durable outbox.

use crate::config::Config;
use crate::intake::{self, Checked, Identities};
use crate::report::Style;
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use leadsignal_core::PrepareConfig;
use leadsignal_sources::{FileRows, Mapping};
use leadsignal_store::{EnqueueContext, EnqueueReport, Incoming, MissingStages, Outbox};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Rows per transaction: large enough to amortize the commit, small enough
/// that a crash loses little work (the re-run redoes it, idempotently). At
/// most two batches wait between the threads, which bounds memory.
const BATCH: usize = 10_000;

/// Import CSV or JSONL stage-change files into the outbox. Every row ends as
/// an event ready to send or a quarantine record with its position and
/// reason; importing the same rows again adds nothing.
#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 when every row was stored (or already known), 1 when any row \
was rejected or a file could not be read, 2 on usage or configuration errors."
)]
pub struct Args {
    /// Files to import (.csv, .tsv, .jsonl; other names are sniffed).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also write the rejected rows' positions and reasons to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Print one JSON summary object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Check the time rules as of this Unix time instead of now.
    #[arg(long)]
    pub now: Option<i64>,
    /// CSV column preset: hubspot, salesforce, zoho, pipedrive, dynamics, meta-lead-ads
    /// (default: `[import] preset`, else headers named as the record fields).
    #[arg(long)]
    pub preset: Option<String>,
    /// The dataset to store into (`default`: `[meta]`'s; others by their
    /// `[[datasets]]` name).
    #[arg(long, value_name = "NAME")]
    pub dataset: Option<String>,
}

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
    /// File.
    pub source: String,
    /// Line.
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
    store: &mut dyn Outbox,
    now: i64,
    mut on_progress: impl FnMut(&Summary),
    mut on_reject: impl FnMut(Reject),
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let (tx, rx) = mpsc::sync_channel::<Result<(u64, Vec<Incoming>, Notes), String>>(2);
    // Written batches go back to the reader to be freed: the writer is the
    // bottleneck of an import, and freeing 10,000 events is not free. The
    // reader frees them as it goes (one waiting at most; when the reader is
    // blocked, the writer frees the next itself), so that at most five
    // batches are alive: memory stays bounded.
    let (done_tx, done_rx) = mpsc::sync_channel::<Vec<Incoming>>(1);
    let mut summary = Summary::default();
    std::thread::scope(|scope| -> anyhow::Result<()> {
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
                    let (checked, mut warnings) = intake::check(row, pc, now);
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
                    let report = store
                        .enqueue(&batch, &ctx)
                        .context("writing to the outbox")?;
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
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("the file reader panicked"))?;
        store.flush().context("writing to the outbox")?;
        Ok(())
    })?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

pub fn text(s: &Summary) -> String {
    let r = &s.store;
    let mut out = format!(
        "{} rows read in {:.1}s: {} accepted, {} already known, {} inferred earlier stages, {} held, {} expired, {} rejected",
        s.rows, s.seconds, r.accepted, r.already_known, r.inferred, r.held, r.expired, r.rejected
    );
    if r.released > 0 {
        out.push_str(&format!(", {} held events released", r.released));
    }
    if r.recovered > 0 {
        out.push_str(&format!(
            ", {} with Meta's lead ID recovered by e-mail or phone",
            r.recovered
        ));
    }
    if r.ambiguous > 0 {
        out.push_str(&format!(
            ", {} whose e-mail or phone belongs to several leads (no lead ID attached)",
            r.ambiguous
        ));
    }
    if r.skipped > 0 {
        out.push_str(&format!(
            ", {} skipped (leads made by Meta's Lead Ads testing tool)",
            r.skipped
        ));
    }
    if s.footer_lines > 0 {
        out.push_str(&format!("; footer skipped ({} lines)", s.footer_lines));
    }
    if let Some(e) = crate::report::expired_summary(r.expired, r.oldest_expired) {
        out.push_str(&format!("\n{e}"));
    }
    if !r.rejected_by_rule.is_empty() {
        out.push_str("\nrejected by rule:");
    }
    for (rule, n) in &r.rejected_by_rule {
        out.push_str(&format!("\n  {rule:<34} {n}"));
    }
    if !s.warnings_by_rule.is_empty() {
        out.push_str("\nwarnings by rule (rows kept; `leadsignal validate` lists them):");
    }
    for (rule, n) in &s.warnings_by_rule {
        out.push_str(&format!("\n  {rule:<34} {n}"));
    }
    for f in &s.unreadable_files {
        out.push_str(&format!("\nunreadable: {f}"));
    }
    out
}

pub fn run(config: Option<&Path>, a: Args) -> anyhow::Result<ExitCode> {
    let (cfg, _) = Config::load(config)?;
    let cfg = cfg.for_dataset(a.dataset.as_deref())?;
    let pc = cfg.prepare_config_for_outbox()?;
    let mapping = cfg.mapping(a.preset.as_deref())?;
    let mut store = leadsignal_store::open(&cfg.store.url)?;
    let now = super::now_or(a.now);
    let style = if a.json { Style::Json } else { Style::Text };

    let mut rejects = match &a.rejects {
        Some(p) => {
            let mut w = csv::Writer::from_path(p)
                .with_context(|| format!("cannot write {}", p.display()))?;
            w.write_record(["source", "line", "field", "rule", "message"])?;
            Some(w)
        }
        None => None,
    };
    let mut reject_error = None;
    let tty = std::io::stderr().is_terminal();
    let bar = tty.then(|| {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let mut last_log = Instant::now();
    let progress = |s: &Summary| {
        let rate = s.rows as f64 / s.seconds.max(1e-9);
        let line = format!(
            "{} rows ({:.0}/s): {} accepted, {} already known, {} rejected",
            s.rows, rate, s.store.accepted, s.store.already_known, s.store.rejected
        );
        match &bar {
            Some(b) => b.set_message(line),
            None if last_log.elapsed() >= Duration::from_secs(5) => {
                eprintln!("import: {line}");
                last_log = Instant::now();
            }
            None => {}
        }
    };
    let on_reject = |r: Reject| {
        if let Some(w) = rejects.as_mut() {
            if let Err(e) = w.write_record([
                &r.source,
                &r.line.to_string(),
                &r.field,
                &r.rule,
                &r.message,
            ]) {
                reject_error.get_or_insert(e);
            }
        }
    };
    let summary = import_files(
        &a.files,
        &mapping,
        &pc,
        cfg.funnel.missing_stages,
        &mut *store,
        now,
        progress,
        on_reject,
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(mut w) = rejects {
        w.flush()?;
    }
    if let Some(e) = reject_error {
        return Err(e).context("writing the rejects file");
    }
    let out = &mut std::io::stdout().lock();
    match style {
        Style::Json => writeln!(out, "{}", serde_json::to_string(&summary)?)?,
        Style::Text => writeln!(out, "{}", text(&summary))?,
    }
    Ok(
        if summary.store.rejected > 0 || !summary.unreadable_files.is_empty() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}
