//! `leadsignal validate <file>...`: offline check of CRM stage-change files.

use crate::config::Config;
use crate::report::{
    dropped_lines, expired_line, skipped_lines, violation_lines, warning_lines, Style, Tally,
};
use leadsignal_core::{Origin, Prepared};
use leadsignal_intake::{self as intake, Checked, Identities};
use leadsignal_sources::{Detected, FileRows};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Check CSV or JSONL files of stage changes (header names / keys as in the
/// record shape) without sending anything: every bad row is printed with
/// file:line, field and rule, stage changes too old to send as expired,
/// then a summary by rule.
#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 when every row is valid (expired history included), 1 when any \
row is rejected or a file cannot be read, 2 on usage or configuration errors."
)]
pub(crate) struct Args {
    /// Files to check (.csv, .tsv, .jsonl; other names are sniffed).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print problems as JSON lines and the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Do not print values dropped from otherwise valid rows, warnings or notes.
    #[arg(long)]
    quiet: bool,
    /// Also print every event the files give: name, time (UTC), lead ID and
    /// CRM record ID (what `import` would store, in the same order); with
    /// `--json` also its `user_data` as Meta receives it (hashed).
    #[arg(long)]
    events: bool,
    /// Check the time rules as of this Unix time instead of now.
    #[arg(long)]
    now: Option<i64>,
    /// CSV column preset: hubspot, salesforce, zoho, pipedrive, dynamics, meta-lead-ads
    /// (default: `[import] preset`, else headers named as the record fields).
    #[arg(long)]
    preset: Option<String>,
}

pub(crate) fn run(config: Option<&Path>, a: Args) -> anyhow::Result<ExitCode> {
    let (cfg, _) = Config::load(config)?;
    let pc = cfg.prepare_config("unset")?;
    let mapping = cfg.mapping(a.preset.as_deref())?;
    let now = crate::clock::now_or(a.now);
    let style = if a.json { Style::Json } else { Style::Text };
    let mut tally = Tally::default();
    let mut unreadable = 0u64;
    let mut records = 0u64;
    let mut footer_lines = 0u64;
    let mut blank_rows = 0u64;
    let out = &mut std::io::stdout().lock();
    for path in &a.files {
        let mut rows = match FileRows::open_with(path, &mapping) {
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
        if !a.quiet {
            for note in file_notes(&rows) {
                match style {
                    Style::Text => writeln!(out, "{}:1: note: {note}", rows.name())?,
                    Style::Json => writeln!(
                        out,
                        "{}",
                        serde_json::json!({"source": rows.name(), "line": 1, "kind": "note", "message": note})
                    )?,
                }
            }
        }
        let mut identities = Identities::default();
        for row in rows.by_ref() {
            let (checked, mut warnings) = intake::check(row, &pc, now);
            identities.check(&checked, &mut warnings);
            tally.warn(&warnings);
            if !a.quiet {
                for line in warning_lines(checked.origin(), &warnings, style) {
                    writeln!(out, "{line}")?;
                }
            }
            match checked {
                Checked::Rejected {
                    origin, violations, ..
                } if intake::skipped(&violations) => {
                    tally.skip();
                    for line in skipped_lines(&origin, &violations, style) {
                        writeln!(out, "{line}")?;
                    }
                }
                Checked::Rejected {
                    origin, violations, ..
                } => {
                    tally.reject(&violations);
                    for line in violation_lines(&origin, &violations, style) {
                        writeln!(out, "{line}")?;
                    }
                }
                Checked::Event {
                    prepared: p,
                    origin,
                    crm_id,
                    ..
                } => {
                    let e = &p.event;
                    if p.is_expired(now) {
                        tally.expire(e.event_time, &p.dropped);
                        let why = pc.time.expired_message(e.event_time, now);
                        writeln!(
                            out,
                            "{}",
                            expired_line(&origin, &e.event_name, e.event_time, &why, style)
                        )?;
                    } else {
                        tally.accept(&p.dropped);
                        if a.events {
                            writeln!(out, "{}", event_line(&origin, &p, crm_id.as_deref(), style))?;
                        }
                    }
                    if !a.quiet {
                        for line in dropped_lines(&origin, &p.dropped, style) {
                            writeln!(out, "{line}")?;
                        }
                    }
                }
            }
        }
        let stats = rows.stats();
        records += stats.records;
        footer_lines += stats.footer_lines;
        blank_rows += stats.blank;
        if stats.footer_lines > 0 && !a.quiet {
            let note = format!("footer skipped ({} lines)", stats.footer_lines);
            match style {
                Style::Text => writeln!(out, "{}: {note}", rows.name())?,
                Style::Json => writeln!(
                    out,
                    "{}",
                    serde_json::json!({"source": rows.name(), "kind": "footer", "lines": stats.footer_lines, "message": note})
                )?,
            }
        }
    }
    match style {
        Style::Text => {
            let mut head = format!("{records} rows read");
            if footer_lines > 0 {
                head.push_str(&format!(", footer skipped ({footer_lines} lines)"));
            }
            if blank_rows > 0 {
                head.push_str(&format!(", {blank_rows} empty rows skipped"));
            }
            writeln!(out, "{head}\n{}", tally.text())?
        }
        Style::Json => {
            let mut summary = tally.to_json();
            summary["rows"] = records.into();
            summary["footer_lines"] = footer_lines.into();
            summary["blank_rows"] = blank_rows.into();
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

/// What the user should know about how a file is read: its encoding when
/// it is not UTF-8, and the columns left unread.
pub(crate) fn file_notes(rows: &FileRows) -> Vec<String> {
    let mut notes = Vec::new();
    match rows.encoding() {
        (name, Detected::NotUtf8(at)) => notes.push(format!(
            "read as {name}: no byte-order mark and not UTF-8 (byte {at}); set import.encoding if it is another encoding"
        )),
        (name, Detected::NulBytes) => {
            notes.push(format!("read as {name} (no byte-order mark; NUL bytes)"))
        }
        (name, Detected::Configured) if name != "UTF-8" => {
            notes.push(format!("read as {name} (import.encoding)"))
        }
        _ => {}
    }
    if !rows.ignored_columns().is_empty() {
        notes.push(format!(
            "columns ignored (not read by the mapping): {}",
            rows.ignored_columns().join(", ")
        ));
    }
    notes
}

/// One accepted event, for `--events`.
fn event_line(origin: &Origin, p: &Prepared, crm_id: Option<&str>, style: Style) -> String {
    let e = &p.event;
    let lead_id = e.user_data.lead_id.map(|l| l.get());
    match style {
        Style::Text => format!(
            "{origin}: event {:?} at {} (lead_id {}, crm_id {})",
            &*e.event_name,
            crate::report::utc(e.event_time),
            lead_id.map_or_else(|| "-".into(), |l| l.to_string()),
            crm_id.unwrap_or("-"),
        ),
        Style::Json => serde_json::json!({
            "source": origin.source, "line": origin.line, "kind": "event",
            "event_name": &*e.event_name, "event_time": e.event_time, "event_id": e.event_id.as_str(),
            "lead_id": lead_id, "crm_id": crm_id, "keys": e.user_data.keys(),
            "user_data": &e.user_data,
        })
        .to_string(),
    }
}
