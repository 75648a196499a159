//! `leadsignal preview`: what Meta would receive, like Meta's Payload Helper.

use crate::config::Config;
use crate::report::{dropped_lines, expired_line, violation_lines, warning_lines, Style};
use leadsignal_core::{
    prepare, EventsRequest, OfflineEvent, Origin, Profile, Scalar, StageChange, StageChangeRecord,
};
use leadsignal_sources::{FileFormat, FileRows};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Print the exact request body Meta would receive for stage changes given
/// as JSON lines on stdin (the record shape of ARCHITECTURE.md) or as flags.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
leadsignal preview --lead-id 1234567890123456 --stage mql --changed-at 2026-11-20T10:00:00Z\n  \
echo '{\"lead_id\":\"1234567890123456\",\"stage\":\"new\",\"changed_at\":1795168800}' | leadsignal preview\n\n\
Violations go to stderr; the exit status is 1 when any stage change was rejected.")]
pub(crate) struct Args {
    /// Meta lead ID.
    #[arg(long)]
    lead_id: Option<String>,
    /// CRM record ID.
    #[arg(long)]
    crm_id: Option<String>,
    /// CRM stage name (giving it reads the stage change from flags, not stdin).
    #[arg(long)]
    stage: Option<String>,
    /// When the stage changed: RFC 3339 or Unix seconds.
    #[arg(long)]
    changed_at: Option<String>,
    /// When the lead was created: RFC 3339 or Unix seconds.
    #[arg(long)]
    lead_created_at: Option<String>,
    /// E-mail address, as the CRM holds it.
    #[arg(long)]
    email: Option<String>,
    /// Phone number, national or international.
    #[arg(long)]
    phone: Option<String>,
    /// First name.
    #[arg(long)]
    first_name: Option<String>,
    /// Last name.
    #[arg(long)]
    last_name: Option<String>,
    /// City, as the CRM holds it.
    #[arg(long)]
    city: Option<String>,
    /// State or region.
    #[arg(long)]
    state: Option<String>,
    /// Postal code.
    #[arg(long)]
    zip: Option<String>,
    /// Country, as a name or an ISO code.
    #[arg(long)]
    country: Option<String>,
    /// Date of birth.
    #[arg(long)]
    date_of_birth: Option<String>,
    /// Gender, as the CRM holds it (`f`, `male`, ...).
    #[arg(long)]
    gender: Option<String>,
    /// External ID.
    #[arg(long)]
    external_id: Option<String>,
    /// Click ID (fb.1.<ms>.<fbclid>).
    #[arg(long)]
    fbc: Option<String>,
    /// Add test_event_code to the body (Meta's Test Events).
    #[arg(long)]
    test_event_code: Option<String>,
    /// Fix the clock (Unix seconds) for reproducible output.
    #[arg(long)]
    now: Option<i64>,
    /// Violations on stderr as JSON lines.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn record(&self) -> StageChangeRecord {
        let t = |v: &Option<String>| v.clone().map(Scalar::Text);
        StageChangeRecord {
            lead_id: t(&self.lead_id),
            crm_id: t(&self.crm_id),
            stage: t(&self.stage),
            changed_at: t(&self.changed_at),
            lead_created_at: t(&self.lead_created_at),
            email: t(&self.email),
            phone: t(&self.phone),
            first_name: t(&self.first_name),
            last_name: t(&self.last_name),
            city: t(&self.city),
            state: t(&self.state),
            zip: t(&self.zip),
            country: t(&self.country),
            date_of_birth: t(&self.date_of_birth),
            gender: t(&self.gender),
            external_id: t(&self.external_id),
            fbc: t(&self.fbc),
            ..Default::default()
        }
    }
}

/// Meta's cap on events per request.
const MAX_EVENTS: usize = 1000;

pub(crate) fn run(config: Option<&Path>, a: Args) -> anyhow::Result<ExitCode> {
    let (cfg, _) = Config::load(config)?;
    if cfg.meta.dataset_id.is_none() {
        eprintln!("note: [meta] dataset_id is not set; event_id values are computed for dataset \"unset\"");
    }
    let pc = cfg.prepare_config("unset")?;
    let now = crate::clock::now_or(a.now);
    let style = if a.json { Style::Json } else { Style::Text };
    let mut changes: Vec<Result<StageChange, (Origin, Vec<leadsignal_core::Violation>)>> =
        Vec::new();
    if a.stage.is_some() {
        let origin = Origin::new("flags", 0);
        changes.push(
            a.record()
                .into_stage_change(origin.clone())
                .map_err(|v| (origin, v)),
        );
    } else {
        let rows = FileRows::from_reader(
            "stdin".into(),
            Box::new(std::io::stdin()),
            Some(FileFormat::Jsonl),
        )?;
        changes.extend(rows.map(|r| r.into_stage_change()));
    }
    let mut prepared = Vec::new();
    let mut rejected = 0;
    let stderr = &mut std::io::stderr();
    for change in changes {
        let result = change.and_then(|sc| {
            prepare(&sc, &pc, now)
                .map_err(|v| (sc.origin.clone(), v))
                .map(|p| (sc.origin, sc.stage, p))
        });
        match result {
            Ok((origin, _, p)) if p.is_expired(now) => {
                // Too old for Meta: never in a body leadsignal would send.
                let why = pc.time.expired_message(p.event.event_time, now);
                let e = &p.event;
                writeln!(
                    stderr,
                    "{}",
                    expired_line(&origin, &e.event_name, e.event_time, &why, style)
                )?;
            }
            Ok((origin, stage, p)) => {
                for line in warning_lines(&origin, &p.warnings, style) {
                    writeln!(stderr, "{line}")?;
                }
                for line in dropped_lines(&origin, &p.dropped, style) {
                    writeln!(stderr, "{line}")?;
                }
                prepared.push((p, stage));
            }
            Err((origin, v)) => {
                rejected += 1;
                for line in violation_lines(&origin, &v, style) {
                    writeln!(stderr, "{line}")?;
                }
            }
        }
    }
    let out = &mut std::io::stdout().lock();
    if pc.profile == Profile::OfflineV7 {
        eprintln!(
            "note: {}",
            Profile::OfflineV7
                .check_sendable()
                .expect_err("offline-v7 is never sendable")
        );
    }
    let many = prepared.len() > MAX_EVENTS;
    if many {
        eprintln!(
            "note: {} events make {} requests of at most {MAX_EVENTS}; one body per line",
            prepared.len(),
            prepared.len().div_ceil(MAX_EVENTS)
        );
    }
    for chunk in prepared.chunks(MAX_EVENTS) {
        let body = if pc.profile == Profile::OfflineV7 {
            let data: Vec<OfflineEvent> = chunk
                .iter()
                .map(|(p, stage)| OfflineEvent::from_prepared(p, stage))
                .collect();
            let request = EventsRequest {
                data,
                test_event_code: None,
                partner_agent: None,
            };
            to_json(&request, many)?
        } else {
            let request = EventsRequest {
                data: chunk.iter().map(|(p, _)| p.event.clone()).collect(),
                test_event_code: a.test_event_code.clone(),
                partner_agent: cfg.meta.partner_agent.clone(),
            };
            to_json(&request, many)?
        };
        writeln!(out, "{body}")?;
    }
    Ok(if rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Meta's field order is kept: structs are serialized directly, never
/// through a (key-sorting) `serde_json::Value`.
fn to_json<T: serde::Serialize>(v: &T, compact: bool) -> serde_json::Result<String> {
    if compact {
        serde_json::to_string(v)
    } else {
        serde_json::to_string_pretty(v)
    }
}
