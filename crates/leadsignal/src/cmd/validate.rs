//! `leadsignal validate <file>...`: offline check of CRM stage-change files.

use crate::config::Config;
use crate::report::{dropped_lines, violation_lines, Style, Tally};
use leadsignal_core::prepare;
use leadsignal_sources::FileRows;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Check CSV or JSONL files of stage changes (header names / keys as in the
/// record shape) without sending anything: every bad row is printed with
/// file:line, field and rule, then a summary by rule.
#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 when every row is valid, 1 when any row is rejected \
or a file cannot be read, 2 on usage or configuration errors."
)]
pub struct Args {
    /// Files to check (.csv, .tsv, .jsonl; other names are sniffed).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print problems as JSON lines and the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Do not print values dropped from otherwise valid rows.
    #[arg(long)]
    quiet: bool,
    /// Check the time rules as of this Unix time instead of now.
    #[arg(long)]
    now: Option<i64>,
    /// CSV column preset: hubspot, salesforce, zoho, pipedrive, dynamics, meta-lead-ads
    /// (default: `[import] preset`, else headers named as the record fields).
    #[arg(long)]
    preset: Option<String>,
}

pub fn run(config: Option<&Path>, a: Args) -> anyhow::Result<ExitCode> {
    let (cfg, _) = Config::load(config)?;
    let pc = cfg.prepare_config("unset")?;
    let mapping = cfg.mapping(a.preset.as_deref())?;
    let now = super::now_or(a.now);
    let style = if a.json { Style::Json } else { Style::Text };
    let mut tally = Tally::default();
    let mut unreadable = 0u64;
    let out = &mut std::io::stdout().lock();
    for path in &a.files {
        let rows = match FileRows::open_with(path, &mapping) {
            Ok(r) => r,
            Err(e) => {
                unreadable += 1;
                match style {
                    Style::Text => writeln!(out, "{e}")?,
                    Style::Json => writeln!(
                        out,
                        "{}",
                        serde_json::json!({"source": path.display().to_string(), "kind": "file_error", "message": e.to_string()})
                    )?,
                }
                continue;
            }
        };
        if !rows.ignored_columns().is_empty() && style == Style::Text && !a.quiet {
            writeln!(
                out,
                "{}:1: note: columns ignored (not record fields): {}",
                rows.name(),
                rows.ignored_columns().join(", ")
            )?;
        }
        for row in rows {
            match row.into_stage_change() {
                Err((origin, v)) => {
                    tally.reject(&v);
                    for line in violation_lines(&origin, &v, style) {
                        writeln!(out, "{line}")?;
                    }
                }
                Ok(sc) => match prepare(&sc, &pc, now) {
                    Ok(p) => {
                        tally.accept(&p.dropped);
                        if !a.quiet {
                            for line in dropped_lines(&sc.origin, &p.dropped, style) {
                                writeln!(out, "{line}")?;
                            }
                        }
                    }
                    Err(v) => {
                        tally.reject(&v);
                        for line in violation_lines(&sc.origin, &v, style) {
                            writeln!(out, "{line}")?;
                        }
                    }
                },
            }
        }
    }
    match style {
        Style::Text => writeln!(out, "{}", tally.text())?,
        Style::Json => {
            let mut summary = tally.to_json();
            summary["unreadable_files"] = unreadable.into();
            writeln!(out, "{}", serde_json::json!({"summary": summary}))?;
        }
    }
    Ok(if tally.rejected > 0 || unreadable > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
