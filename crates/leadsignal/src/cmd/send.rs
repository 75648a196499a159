//! `leadsignal send`: deliver everything due to Meta, then exit.

use crate::config::Config;
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use leadsignal_deliver::{send_due, SendReport};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Deliver every due event of the outbox to Meta (deadline first), then
/// print a summary. Exit status: 0 delivered (or nothing due), 1 some events
/// were rejected or expired, 3 delivery is paused (token or permissions).
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Send to Events Manager's Test Events with this code instead: up to
    /// --test-limit due events, once; nothing is marked sent.
    #[arg(long, value_name = "CODE")]
    pub(crate) test_event_code: Option<String>,
    /// Most events a test send carries.
    #[arg(long, default_value_t = 100)]
    pub(crate) test_limit: usize,
    /// Events per request (overrides [delivery] batch_size).
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    /// Requests in flight (overrides [delivery] in_flight).
    #[arg(long)]
    pub(crate) in_flight: Option<usize>,
    /// Seconds to wait for scheduled retries before exiting (overrides
    /// [delivery] max_wait_secs).
    #[arg(long)]
    pub(crate) max_wait: Option<u64>,
    /// Print one JSON summary object (one line per dataset).
    #[arg(long)]
    pub(crate) json: bool,
    /// Deliver only this dataset (`default` is `[meta]`'s, others are
    /// `[[datasets]]` names); by default every configured dataset, each on
    /// its own.
    #[arg(long, value_name = "NAME")]
    pub(crate) dataset: Option<String>,
}

pub(crate) fn run(config: Option<&Path>, a: Args) -> anyhow::Result<ExitCode> {
    let (cfg, _) = Config::load(config)?;
    let targets = match &a.dataset {
        Some(name) => vec![(name.clone(), cfg.for_dataset(Some(name))?)],
        None => cfg.all_datasets()?,
    };
    // Each dataset has its own sender, Graph credentials and store
    // connection, on its own task: one dataset's pause, rate limit or
    // retries never hold another back.
    let mut jobs = Vec::with_capacity(targets.len());
    for (name, c) in &targets {
        let sc = sender_config(c, &a).with_context(|| format!("dataset {name}"))?;
        let client = c.graph_client()?;
        let mut store = leadsignal_store::open_existing(&c.store.url)?;
        crate::lock::check(
            name,
            c.meta.dataset_id.as_deref(),
            &mut *store,
            crate::clock::unix_now(),
        )?;
        jobs.push((name.clone(), sc, client, store));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let single = jobs.len() == 1;
    let bar = (single && !a.json && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let quiet = a.json;
    let results = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (name, sc, client, mut store)) in jobs.into_iter().enumerate() {
            let bar = bar.clone();
            tasks.spawn(async move {
                let mut last_log = Instant::now();
                let progress = |r: &SendReport| {
                    let line = progress_line(r);
                    match &bar {
                        Some(b) => b.set_message(line),
                        None if !quiet && last_log.elapsed() >= Duration::from_secs(5) => {
                            eprintln!("send {name}: {line}");
                            last_log = Instant::now();
                        }
                        None => {}
                    }
                };
                let r = send_due(&mut *store, &client, &sc, progress).await;
                (i, name, client.events_url(&sc.dataset_id), r)
            });
        }
        let mut out = Vec::new();
        while let Some(done) = tasks.join_next().await {
            out.push(done.expect("a sender task panicked"));
        }
        out.sort_by_key(|r| r.0);
        out
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut worst = 0u8;
    for (_, name, url, r) in results {
        let report = r.with_context(|| format!("dataset {name}"))?;
        if a.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            if !single {
                println!("dataset {name} ({}):", report.dataset_id);
            }
            print!("{}", crate::summary::send_text(&report, &url));
        }
        worst = worst.max(crate::summary::send_severity(&report));
    }
    Ok(ExitCode::from(worst))
}

/// The sender's settings for one dataset, with the command line's overrides.
fn sender_config(cfg: &Config, a: &Args) -> anyhow::Result<leadsignal_deliver::SenderConfig> {
    let mut sc = cfg.sender_config()?;
    if let Some(n) = a.batch_size {
        anyhow::ensure!((1..=1000).contains(&n), "--batch-size must be 1 to 1000");
        sc.batch_size = n;
    }
    if let Some(k) = a.in_flight {
        sc.in_flight = k.max(1);
    }
    if let Some(w) = a.max_wait {
        sc.max_wait = Duration::from_secs(w);
    }
    sc.test_event_code = a.test_event_code.clone();
    sc.test_limit = a.test_limit;
    Ok(sc)
}

fn progress_line(r: &SendReport) -> String {
    let rate = (r.accepted + r.test_sent) as f64 / r.seconds.max(1e-9);
    format!(
        "{} accepted ({rate:.0}/s), {} rejected, {} expired, {} retries, {} requests",
        r.accepted + r.test_sent,
        r.rejected,
        r.expired,
        r.retried,
        r.requests
    )
}
