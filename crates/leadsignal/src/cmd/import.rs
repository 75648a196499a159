//! `leadsignal import <file>...`: CRM exports into the durable outbox.

use crate::config::Config;
use crate::report::Style;
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use leadsignal_intake::{import_files, Reject, Summary};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Import CSV or JSONL stage-change files into the outbox. Every row ends as
/// an event ready to send or a quarantine record with its position and
/// reason; importing the same rows again adds nothing.
#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 when every row was stored (or already known), 1 when any row \
was rejected or a file could not be read, 2 on usage or configuration errors."
)]
pub(crate) struct Args {
    /// Files to import (.csv, .tsv, .jsonl; other names are sniffed).
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// Also write the rejected rows' positions and reasons to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub(crate) rejects: Option<PathBuf>,
    /// Print one JSON summary object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Check the time rules as of this Unix time instead of now.
    #[arg(long)]
    pub(crate) now: Option<i64>,
    /// CSV column preset: hubspot, salesforce, zoho, pipedrive, dynamics, meta-lead-ads
    /// (default: `[import] preset`, else headers named as the record fields).
    #[arg(long)]
    pub(crate) preset: Option<String>,
    /// The dataset to store into (`default`: `[meta]`'s; others by their
    /// `[[datasets]]` name).
    #[arg(long, value_name = "NAME")]
    pub(crate) dataset: Option<String>,
}

pub(crate) fn run(config: Option<&Path>, a: Args) -> anyhow::Result<ExitCode> {
    let (cfg, _) = Config::load(config)?;
    let cfg = cfg.for_dataset(a.dataset.as_deref())?;
    let pc = cfg.prepare_config_for_outbox()?;
    let mapping = cfg.mapping(a.preset.as_deref())?;
    let mut store = leadsignal_store::open(&cfg.store.url)?;
    let now = crate::clock::now_or(a.now);
    crate::lock::check(
        a.dataset
            .as_deref()
            .unwrap_or(crate::config::DEFAULT_DATASET),
        cfg.meta.dataset_id.as_deref(),
        &mut *store,
        crate::clock::unix_now(),
    )?;
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
        Style::Text => writeln!(out, "{}", crate::summary::import_text(&summary))?,
    }
    Ok(
        if summary.store.rejected > 0 || !summary.unreadable_files.is_empty() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}
