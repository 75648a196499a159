//! `leadsignal doctor`: checks everything a run depends on, sending no
//! event: the configuration, the store, each dataset's token and ID
//! against Graph (and the clock against Graph's), each source's
//! credentials, the webhook settings. Every line names the key or the fix;
//! exit 0 when all is well, 1 with warnings, 2 with failures.

use crate::config::{Config, SourceReader};
use leadsignal_graph::{DatasetCheck, Outcome};
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;

/// Check the configuration, the store, Graph access, sources and webhook
/// settings without sending anything.
#[derive(clap::Args)]
#[command(after_help = "Exit status: 0 all good, 1 warnings, 2 failures.")]
pub(crate) struct Args {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
struct Check {
    check: String,
    verdict: Verdict,
    message: String,
}

#[derive(Default)]
struct Report(Vec<Check>);

impl Report {
    fn add(&mut self, check: impl Into<String>, verdict: Verdict, message: impl Into<String>) {
        self.0.push(Check {
            check: check.into(),
            verdict,
            message: message.into(),
        });
    }

    fn worst(&self) -> Verdict {
        self.0
            .iter()
            .map(|c| c.verdict)
            .max()
            .unwrap_or(Verdict::Ok)
    }
}

/// Seconds of clock difference beyond which event times would be off.
const MAX_SKEW_SECS: i64 = 60;

/// Runs it.
pub(crate) fn run(config: Option<&Path>, a: Args) -> anyhow::Result<ExitCode> {
    let mut r = Report::default();
    let cfg = match Config::load(config) {
        Ok((cfg, _)) => {
            r.add("configuration", Verdict::Ok, "the configuration file reads");
            Some(cfg)
        }
        Err(e) => {
            r.add("configuration", Verdict::Fail, format!("{e:#}"));
            None
        }
    };
    if let Some(cfg) = &cfg {
        check_config(cfg, &mut r);
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({"verdict": r.worst(), "checks": r.0})
        );
    } else {
        for c in &r.0 {
            let tag = match c.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
            };
            println!("{tag} {:<28} {}", c.check, c.message);
        }
    }
    Ok(ExitCode::from(match r.worst() {
        Verdict::Ok => 0,
        Verdict::Warn => 1,
        Verdict::Fail => 2,
    }))
}

fn check_config(cfg: &Config, r: &mut Report) {
    let datasets = match cfg.all_datasets() {
        Ok(d) => d,
        Err(e) => {
            r.add("datasets", Verdict::Fail, format!("{e:#}"));
            return;
        }
    };
    // The store.
    match leadsignal_store::open_existing(&cfg.store.url) {
        Ok(_) => r.add(
            "store",
            Verdict::Ok,
            format!(
                "{} is reachable",
                leadsignal_store::redact_url(&cfg.store.url)
            ),
        ),
        Err(leadsignal_store::StoreError::Missing(p)) => r.add(
            "store",
            Verdict::Warn,
            format!("no outbox at {p} yet: `leadsignal import` or `sync` creates it"),
        ),
        Err(e) => r.add("store", Verdict::Fail, format!("{e}; check [store] url")),
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            r.add("runtime", Verdict::Fail, e.to_string());
            return;
        }
    };
    for (name, c) in &datasets {
        let what = format!("dataset {name}");
        if let Err(e) = c.prepare_config_for_outbox() {
            r.add(&what, Verdict::Fail, format!("{e:#}"));
            continue;
        }
        let (Some(dataset_id), Ok(creds), Ok(client)) =
            (c.meta.dataset_id.clone(), c.credentials(), c.graph_client())
        else {
            r.add(
                &what,
                Verdict::Fail,
                "needs [meta] dataset_id and access_token (use \"env:NAME\")",
            );
            continue;
        };
        let now = crate::clock::unix_now();
        match runtime.block_on(client.check_dataset(&dataset_id, &creds, now)) {
            Ok(DatasetCheck {
                name: dname,
                server_time,
                ..
            }) => {
                r.add(
                    &what,
                    Verdict::Ok,
                    format!(
                        "Graph answers for dataset {dataset_id} ({}) with this token",
                        dname.as_deref().unwrap_or("no name")
                    ),
                );
                if let Some(t) = server_time {
                    let skew = crate::clock::unix_now() - t;
                    if skew.abs() > MAX_SKEW_SECS {
                        r.add(
                            "clock",
                            Verdict::Warn,
                            format!("this machine's clock is {skew} s off Graph's: event times would be off; synchronize it (NTP)"),
                        );
                    } else {
                        r.add(
                            "clock",
                            Verdict::Ok,
                            format!("within {} s of Graph's", skew.abs()),
                        );
                    }
                }
            }
            Err(outcome) => r.add(
                &what,
                Verdict::Fail,
                classify(&dataset_id, &outcome, &creds),
            ),
        }
    }
    for source in &cfg.sources {
        let what = format!("source {}", source.name);
        match source.reader() {
            Err(e) => r.add(&what, Verdict::Fail, format!("{e:#}")),
            Ok(reader) => match reader_check(&reader) {
                Ok(()) => r.add(&what, Verdict::Ok, "reachable with its credentials"),
                Err(e) => r.add(&what, Verdict::Fail, e),
            },
        }
    }
    let webhook = cfg.server.webhook_verify_token.is_some();
    match (webhook, cfg.meta.app_secret.is_some()) {
        (true, false) => r.add(
            "webhook",
            Verdict::Fail,
            "[server] webhook_verify_token is set but [meta] app_secret is not: Lead Ads deliveries cannot be verified and would be refused",
        ),
        (true, true) => r.add("webhook", Verdict::Ok, "verify token and app secret are set"),
        (false, _) => {}
    }
    if webhook && cfg.server.api_token.is_none() {
        r.add(
            "server",
            Verdict::Warn,
            "[server] api_token is not set: `serve` will not start",
        );
    }
}

/// What Graph's refusal means, and the fix.
fn classify(dataset_id: &str, outcome: &Outcome, creds: &leadsignal_graph::Credentials) -> String {
    let e = match outcome {
        Outcome::Auth(e) | Outcome::Rejected(e) => e,
        Outcome::Transient(cause) => {
            return creds.redact(&format!(
                "Graph did not answer properly ({cause:?}); check [meta] graph_url and the network"
            ));
        }
        Outcome::RateLimited { .. } => {
            return "Graph rate-limits this token now; try again later".into()
        }
        Outcome::Accepted(_) => return "accepted".into(),
    };
    let code = (e.code, e.error_subcode);
    let token = matches!(code.0, 190 | 102) || matches!(code.1, Some(463 | 467));
    let access = matches!(code, (100, Some(33)) | (10, _)) || (200..300).contains(&code.0);
    let fix = if token {
        "the access token is invalid, expired or revoked: generate a new one (Events Manager > dataset > Settings > Conversions API) and set [meta] access_token"
    } else if access {
        "the token cannot use this dataset: check [meta] dataset_id and that the token's system user has the dataset assigned"
    } else {
        "see Meta's message"
    };
    creds.redact(&format!(
        "dataset {dataset_id}: Graph refused (code {}, subcode {}): {}; {fix}",
        e.code,
        e.error_subcode.map_or("-".into(), |s| s.to_string()),
        e.message
    ))
}

/// A light call with the source's credentials.
fn reader_check(reader: &SourceReader) -> Result<(), String> {
    match reader {
        SourceReader::Sql(s) => s.poll("0", 1).map(|_| ()).map_err(|e| e.to_string()),
        SourceReader::Hubspot(h) => h.check().map_err(|e| e.to_string()),
        SourceReader::Salesforce(s) => s.check().map_err(|e| e.to_string()),
        SourceReader::Pipedrive(p) => p.check().map_err(|e| e.to_string()),
    }
}
