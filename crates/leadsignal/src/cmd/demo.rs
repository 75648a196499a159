//! `leadsignal demo`: bundled sample CRM data through the whole path (read →
//! prepare → outbox → delivery to an in-process sandbox standing in for
//! Meta), no configuration needed.

use crate::config::Config;
use crate::report::{dropped_lines, expired_line, violation_lines, Style, Tally};
use leadsignal_core::{EventsRequest, Prepared, StageChange};
use leadsignal_intake::{check_change, Checked};
use leadsignal_sandbox::{self as sandbox, SandboxConfig};
use leadsignal_sources::{FileFormat, FileRows};
use leadsignal_store::{Enqueue, EnqueueContext, Incoming, MissingStages};
use std::io::Write;
use std::process::ExitCode;

const SAMPLE: &str = include_str!("../../data/demo.jsonl");
const CONFIG: &str = include_str!("../../data/demo.toml");
/// Times in the sample are moved so that its newest stage change is this
/// long before now: the data is always fresh, except the rows that are
/// meant to be too old or in milliseconds.
const NEWEST_AGE: i64 = 3600;

/// A lead of the sample that Meta (played by the sandbox) no longer knows:
/// its event passes every local check and is rejected by Meta.
const DELETED_ON_META: u64 = 1_234_567_890_123_464;
/// The token the demo's sandbox accepts (not a secret: it exists only there).
const DEMO_TOKEN: &str = "demo-access-token";

/// Run bundled sample CRM data (every funnel stage, and several bad rows)
/// through normalization, hashing and Meta's rules into a SQLite outbox,
/// deliver it to a built-in sandbox that answers like Meta, and show what
/// was accepted, rejected and why.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Fix the clock (Unix seconds) for the listing; delivery uses the real
    /// clock (Meta's 7-day window does).
    #[arg(long)]
    now: Option<i64>,
    /// Keep the outbox in this SQLite file (default: a temporary one).
    #[arg(long, value_name = "FILE")]
    db: Option<std::path::PathBuf>,
    /// Print every accepted event's request body instead of the first one.
    #[arg(long)]
    all: bool,
    /// Then keep going as `leadsignal serve` on ADDR (default
    /// 127.0.0.1:8787) with the demo's outbox and sandbox: open the
    /// dashboard, push stage changes with the printed token; Ctrl-C stops.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8787")]
    serve: Option<String>,
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

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let cfg = Config::from_toml(CONFIG)?;
    let pc = cfg.prepare_config("unset")?;
    let now = crate::clock::now_or(a.now);
    let rows: Vec<_> = FileRows::from_reader(
        "demo.jsonl".into(),
        Box::new(SAMPLE.as_bytes()),
        Some(FileFormat::Jsonl),
    )?
    .map(|r| {
        let fingerprint = r.fingerprint.to_string();
        (fingerprint, r.into_stage_change())
    })
    .collect();
    let newest = rows
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
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
    let mut expired = Vec::new();
    let mut batch = Vec::new();
    for (fingerprint, row) in rows {
        match row {
            Err((origin, v)) => {
                tally.reject(&v);
                problems.extend(violation_lines(&origin, &v, Style::Text));
                batch.push(Incoming::Rejected {
                    origin,
                    fingerprint,
                    violations: v,
                });
            }
            Ok(mut sc) => {
                shift(&mut sc, delta);
                let checked = check_change(sc, &fingerprint, &pc, now, &mut Vec::new());
                match &checked {
                    Checked::Event {
                        prepared: p,
                        origin,
                        ..
                    } if p.is_expired(now) => {
                        tally.expire(p.event.event_time, &p.dropped);
                        expired.push(expired_line(
                            origin,
                            &p.event.event_name,
                            p.event.event_time,
                            &pc.time.expired_message(p.event.event_time, now),
                            Style::Text,
                        ));
                    }
                    Checked::Event {
                        prepared: p,
                        origin,
                        ..
                    } => {
                        tally.accept(&p.dropped);
                        warnings.extend(dropped_lines(origin, &p.dropped, Style::Text));
                        writeln!(
                            out,
                            "  ok  {:<14} {:<26} {:<24} keys: {}",
                            origin.to_string(),
                            &*p.event.event_name,
                            p.lifecycle.as_str(),
                            p.event.user_data.keys().join(" ")
                        )?;
                        accepted.push((**p).clone());
                    }
                    Checked::Rejected {
                        origin, violations, ..
                    } => {
                        tally.reject(violations);
                        problems.extend(violation_lines(origin, violations, Style::Text));
                    }
                }
                batch.push(checked.into_incoming());
            }
        }
    }
    writeln!(out, "\nrejected (never sent), with the rule each breaks:")?;
    for p in &problems {
        writeln!(out, "  {p}")?;
    }
    writeln!(
        out,
        "\ntoo old to send (Meta takes 7 days): stored as expired, not an error:"
    )?;
    for e in &expired {
        writeln!(out, "  {e}")?;
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

    deliver(out, &cfg, &pc, batch, a.db.as_deref(), a.serve.as_deref())?;
    writeln!(
        out,
        "\nNext:\n  leadsignal demo --all                   every request body\n  \
         leadsignal demo --db demo.db            keep the outbox; then LEADSIGNAL_STORE__URL=sqlite://demo.db leadsignal status\n  \
         leadsignal validate <export.csv|.jsonl> check your own CRM export offline\n  \
         leadsignal preview < changes.jsonl      request bodies for your stage changes\n  \
         leadsignal hash phone \"(650) 555-1212\"   how one value is normalized and hashed\n  \
         leadsignal import <export.csv>          store your events in the durable outbox\n  \
         leadsignal send --test-event-code CODE  try Meta's Test Events with your real dataset and token\n  \
         leadsignal sync                         import [import] files, then send: the daily cron job\n  \
         leadsignal demo --serve                 this demo as a running service: dashboard, HTTP API, webhook\n  \
         leadsignal sandbox --token T            this demo's stand-in for Meta, as a server"
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Stores the batch in a SQLite outbox and delivers it to an in-process
/// sandbox, printing what Meta (the sandbox) accepted and rejected.
fn deliver(
    out: &mut impl Write,
    cfg: &Config,
    pc: &leadsignal_core::PrepareConfig,
    batch: Vec<Incoming>,
    db: Option<&std::path::Path>,
    serve: Option<&str>,
) -> anyhow::Result<()> {
    let tmp = tempdir_path();
    let path = match db {
        Some(p) => p.to_path_buf(),
        None => {
            std::fs::create_dir_all(&tmp)?;
            tmp.join("demo-outbox.db")
        }
    };
    let mut store = leadsignal_store::SqliteOutbox::open(path.to_str().expect("UTF-8 path"))?;
    let now = crate::clock::now_or(None);
    let report = store.enqueue(
        &batch,
        &EnqueueContext {
            prepare: pc,
            missing: MissingStages::Fill,
            now,
        },
    )?;
    writeln!(
        out,
        "\nOutbox ({}): {} events stored, {} earlier stages inferred (fill policy), {} rows quarantined",
        path.display(),
        report.accepted,
        report.inferred,
        report.rejected
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (send, accepted, sb) = runtime.block_on(async {
        let mut sb_cfg = SandboxConfig::single(&pc.dataset_id, DEMO_TOKEN);
        sb_cfg.deleted_leads.push(DELETED_ON_META);
        let sb = sandbox::start(sb_cfg).await?;
        let client = leadsignal_graph::GraphClient::new(&leadsignal_graph::ClientConfig {
            graph_url: sb.url(),
            api_version: cfg.meta.api_version.clone(),
            timeout: std::time::Duration::from_secs(10),
        })?;
        let mut sc = leadsignal_deliver::SenderConfig::new(
            &pc.dataset_id,
            leadsignal_graph::Credentials::new(DEMO_TOKEN),
        );
        sc.batch_size = 50;
        sc.in_flight = 2;
        sc.max_wait = std::time::Duration::from_secs(10);
        let report = leadsignal_deliver::send_due(&mut store, &client, &sc, |_| {}).await?;
        let accepted = sb.accepted();
        anyhow::Ok((report, accepted, sb))
    })?;
    writeln!(
        out,
        "Delivered to the built-in sandbox standing in for Meta (POST /{}/{}/events): {} events accepted in {} requests",
        cfg.meta.api_version, pc.dataset_id, send.accepted, send.requests
    )?;
    let mut by_stage: std::collections::BTreeMap<&str, u64> = Default::default();
    for a in &accepted {
        *by_stage.entry(&*a.event_name).or_default() += 1;
    }
    for (stage, n) in by_stage {
        writeln!(out, "  accepted  {stage:<28} {n}")?;
    }
    if send.rejected + send.expired > 0 {
        writeln!(
            out,
            "Rejected by Meta after every local check passed (found by splitting the batch; quarantined, never retried):"
        )?;
        for (e, n) in &send.errors {
            writeln!(out, "  {n} x {e}")?;
        }
    }
    drop(store);
    if let Some(listen) = serve {
        serve_demo(out, &runtime, &sb.url(), &path, listen)?;
    }
    runtime.block_on(sb.shutdown());
    if db.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}

/// `demo --serve`: `leadsignal serve` on the demo's outbox, with the demo's
/// sandbox as Meta, until Ctrl-C.
fn serve_demo(
    out: &mut impl Write,
    runtime: &tokio::runtime::Runtime,
    sandbox_url: &str,
    db: &std::path::Path,
    listen: &str,
) -> anyhow::Result<()> {
    let api_token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let toml = CONFIG.replacen(
        "[meta]\n",
        &format!("[meta]\naccess_token = \"{DEMO_TOKEN}\"\ngraph_url = \"{sandbox_url}\"\n"),
        1,
    ) + &format!(
        "\n[store]\nurl = \"sqlite://{}\"\n[server]\napi_token = \"{api_token}\"\nwebhook_verify_token = \"demo-verify\"\n",
        db.display()
    );
    let cfg = Config::from_toml(&toml)?;
    runtime.block_on(async {
        let server = crate::server::start(cfg, listen).await?;
        let base = format!("http://{}", server.addr);
        writeln!(
            out,
            "\nServing (Ctrl-C stops, nothing is lost):\n  dashboard   {base}/\n  sandbox     {base}/sandbox   (what \"Meta\" received)\n  metrics     {base}/metrics\n  API token   {api_token}   (this run only)\n  push a stage change:\n    curl -H 'Authorization: Bearer {api_token}' -d '[{{\"lead_id\":\"1234567890123456\",\"stage\":\"won\",\"changed_at\":{},\"email\":\"jane@example.com\"}}]' {base}/v1/stage-changes",
            crate::clock::now_or(None) - 60
        )?;
        out.flush()?;
        server.wait().await
    })
}

fn tempdir_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("leadsignal-demo-{}", std::process::id()))
}
