//! `leadsignal status`: what the outbox holds.

use crate::config::Config;
use leadsignal_core::rules::human_duration;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Show the outbox: counts by state and stage, the oldest pending event and
/// the time left before it expires, the last successful upload, and
/// rejected rows by rule.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Report as of this Unix time instead of now.
    #[arg(long)]
    now: Option<i64>,
}

pub(crate) fn run(config: Option<&Path>, a: Args) -> anyhow::Result<ExitCode> {
    let (cfg, _) = Config::load(config)?;
    let store = leadsignal_store::open_existing(&cfg.store.url)?;
    let now = crate::clock::now_or(a.now);
    let s = store.status(now)?;
    let out = &mut std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&s)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "outbox {} ({} leads)",
        leadsignal_store::redact_url(&cfg.store.url),
        s.leads
    )?;
    for p in &s.paused {
        writeln!(
            out,
            "!! DELIVERY PAUSED for dataset {} since {} ago: {}\n!! nothing is lost; fix [meta] access_token or the dataset's permissions, then run `leadsignal send`",
            p.dataset_id,
            human_duration(now - p.since),
            p.reason
        )?;
    }
    for w in &s.warnings {
        writeln!(out, "!! {w}")?;
    }
    let states: Vec<String> = s.by_state.iter().map(|(k, v)| format!("{k} {v}")).collect();
    writeln!(
        out,
        "events: {}",
        if states.is_empty() {
            "none".into()
        } else {
            states.join(", ")
        }
    )?;
    if s.inferred > 0 {
        writeln!(
            out,
            "  of which inferred earlier stages (funnel.missing_stages = fill): {}",
            s.inferred
        )?;
    }
    for (stage, by_state) in &s.by_stage {
        let parts: Vec<String> = by_state.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(out, "  {stage:<28} {}", parts.join(", "))?;
    }
    match (s.oldest_pending_event_time, s.seconds_to_next_expiry) {
        (Some(t), Some(left)) => writeln!(
            out,
            "oldest pending event: {} old; the most urgent expires in {}",
            human_duration(now - t),
            if left > 0 {
                human_duration(left)
            } else {
                "0s (run delivery now)".into()
            }
        )?,
        _ => writeln!(out, "nothing pending")?,
    }
    let q = &s.match_quality;
    if q.events > 0 {
        let pct = |n: u64| n * 100 / q.events;
        writeln!(
            out,
            "match keys (last 7 days, {} events): lead_id {}% (recovered {}%), em {}%, ph {}%, fbc {}%; by matchable keys 0/1/2/3/4: {}",
            q.events,
            pct(q.lead_id),
            pct(q.lead_id_recovered),
            pct(q.em),
            pct(q.ph),
            pct(q.fbc),
            q.matchable_histogram
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("/")
        )?;
    }
    if s.sent_with_recovered_lead_id > 0 {
        writeln!(
            out,
            "sent with a lead ID recovered from the lead index (by e-mail or phone): {}",
            s.sent_with_recovered_lead_id
        )?;
    }
    let expired = s.by_state.get("expired").copied().unwrap_or(0);
    if let Some(line) = crate::report::expired_summary(expired, s.oldest_expired_event_time) {
        writeln!(out, "{line}")?;
    }
    match s.last_sent_at {
        Some(t) => writeln!(
            out,
            "last successful upload: {} ago",
            human_duration(now - t)
        )?,
        None => writeln!(out, "last successful upload: never")?,
    }
    for src in &s.sources {
        match (&src.error, src.error_at) {
            (Some(e), Some(at)) => writeln!(
                out,
                "SOURCE {} FAILING since {} ago (last worked: {}): {e}",
                src.source,
                human_duration(now - at),
                src.ok_at.map_or("never".to_string(), |t| format!(
                    "{} ago",
                    human_duration(now - t)
                ))
            )?,
            _ => writeln!(
                out,
                "source {}: last polled {} ago",
                src.source,
                human_duration(now - src.polled_at)
            )?,
        }
    }
    if s.test_sends > 0 {
        writeln!(
            out,
            "test sends (Test Events, not counted as sent): {}",
            s.test_sends
        )?;
    }
    if !s.delivery_errors.is_empty() {
        writeln!(out, "quarantined or expired, by reason:")?;
        for (e, n) in &s.delivery_errors {
            writeln!(out, "  {n:>8}  {e}")?;
        }
    }
    if let Some(n) = s.rejected_by_rule.get(leadsignal_core::TEST_LEAD) {
        writeln!(
            out,
            "skipped input rows: {n} leads made by Meta's Lead Ads testing tool (never sent)"
        )?;
    }
    let rejected: Vec<_> = s
        .rejected_by_rule
        .iter()
        .filter(|(rule, _)| *rule != leadsignal_core::TEST_LEAD)
        .collect();
    if !rejected.is_empty() {
        writeln!(out, "rejected input rows by rule:")?;
        for (rule, n) in rejected {
            writeln!(out, "  {rule:<34} {n}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
