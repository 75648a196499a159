//! `leadsignal demo`: bundled sample CRM data through the whole path that
//! exists so far (read → prepare), no configuration needed.

use crate::config::Config;
use crate::report::{dropped_lines, violation_lines, Style, Tally};
use leadsignal_core::{prepare, EventsRequest, Prepared, StageChange};
use leadsignal_sources::{FileFormat, FileRows};
use std::io::Write;
use std::process::ExitCode;

const SAMPLE: &str = include_str!("../../data/demo.jsonl");
const CONFIG: &str = include_str!("../../data/demo.toml");
/// Times in the sample are moved so that its newest stage change is this
/// long before now: the data is always fresh, except the rows that are
/// meant to be too old or in milliseconds.
const NEWEST_AGE: i64 = 3600;

/// Run bundled sample CRM data (every funnel stage, and several bad rows)
/// through normalization, hashing and Meta's rules, and show the result.
#[derive(clap::Args)]
pub struct Args {
    /// Fix the clock (Unix seconds) for reproducible output.
    #[arg(long)]
    now: Option<i64>,
    /// Print every accepted event's request body instead of the first one.
    #[arg(long)]
    all: bool,
}

fn shift(sc: &mut StageChange, delta: i64) {
    // Values in milliseconds are left alone: they are meant to be rejected.
    let seconds = |t: i64| t < leadsignal_core::rules::MILLISECONDS_THRESHOLD;
    if seconds(sc.changed_at) {
        sc.changed_at += delta;
    }
    if let Some(t) = sc.lead_created_at.as_mut().filter(|t| seconds(**t)) {
        *t += delta;
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let cfg = Config::from_toml(CONFIG)?;
    let pc = cfg.prepare_config("unset")?;
    let now = super::now_or(a.now);
    let rows: Vec<_> = FileRows::from_reader(
        "demo.jsonl".into(),
        Box::new(SAMPLE.as_bytes()),
        Some(FileFormat::Jsonl),
    )?
    .map(|r| r.into_stage_change())
    .collect();
    let newest = rows
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|sc| sc.changed_at)
        .filter(|t| *t < leadsignal_core::rules::MILLISECONDS_THRESHOLD)
        .max()
        .unwrap_or(now);
    let delta = now - NEWEST_AGE - newest;

    let out = &mut std::io::stdout().lock();
    writeln!(out, "leadsignal demo: {} sample stage changes from a HubSpot-like CRM (times moved to the present)", rows.len())?;
    writeln!(
        out,
        "dataset {}, lead_event_source \"{}\", default country US\n",
        pc.dataset_id, pc.lead_event_source
    )?;

    let mut tally = Tally::default();
    let mut accepted: Vec<Prepared> = Vec::new();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for row in rows {
        match row {
            Err((origin, v)) => {
                tally.reject(&v);
                problems.extend(violation_lines(&origin, &v, Style::Text));
            }
            Ok(mut sc) => {
                shift(&mut sc, delta);
                match prepare(&sc, &pc, now) {
                    Ok(p) => {
                        tally.accept(&p.dropped);
                        warnings.extend(dropped_lines(&sc.origin, &p.dropped, Style::Text));
                        writeln!(
                            out,
                            "  ok  {:<14} {:<26} {:<24} keys: {}",
                            sc.origin.to_string(),
                            &*p.event.event_name,
                            p.lifecycle.as_str(),
                            p.event.user_data.keys().join(" ")
                        )?;
                        accepted.push(p);
                    }
                    Err(v) => {
                        tally.reject(&v);
                        problems.extend(violation_lines(&sc.origin, &v, Style::Text));
                    }
                }
            }
        }
    }
    writeln!(out, "\nrejected (never sent), with the rule each breaks:")?;
    for p in &problems {
        writeln!(out, "  {p}")?;
    }
    writeln!(out, "\nvalues left out of otherwise good events:")?;
    for w in &warnings {
        writeln!(out, "  {w}")?;
    }
    writeln!(out, "\n{}\n", tally.text())?;
    let shown = if a.all {
        &accepted[..]
    } else {
        &accepted[..accepted.len().min(1)]
    };
    let body = EventsRequest {
        data: shown.iter().map(|p| p.event.clone()).collect(),
        test_event_code: None,
        partner_agent: None,
    };
    writeln!(
        out,
        "{} as Meta receives it (POST /{}/{}/events; access_token added at send time):",
        if a.all {
            "Every event"
        } else {
            "The first event"
        },
        cfg.meta.api_version,
        pc.dataset_id
    )?;
    writeln!(out, "{}", serde_json::to_string_pretty(&body)?)?;
    writeln!(
        out,
        "\nNext:\n  leadsignal demo --all                  every request body\n  \
         leadsignal validate <export.csv|.jsonl> check your own CRM export offline\n  \
         leadsignal preview < changes.jsonl     request bodies for your stage changes\n  \
         leadsignal hash phone \"(650) 555-1212\"  how one value is normalized and hashed\n  \
         leadsignal import <export.csv>          store the events in the durable outbox (see status)\n\
         Delivery to Meta (sender and sandbox) comes with the next release."
    )?;
    Ok(ExitCode::SUCCESS)
}
