//! `leadsignal bench workers`: several `leadsignal send` processes sharing
//! one PostgreSQL outbox, against the in-process sandbox with latency; and
//! the rate at which an import fills the PostgreSQL outbox.

use super::data::generate_csv;
use super::measure::peak_rss_mib;
use leadsignal_core::sample::config;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Throughput of 1, 2, 4... worker processes on one PostgreSQL outbox.
#[derive(clap::Args)]
pub(crate) struct WorkersArgs {
    /// PostgreSQL database to use (a fresh schema per run, dropped after).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    store: String,
    /// Events to generate and deliver per run.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Worker counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    workers: Vec<usize>,
    /// Sandbox answer time per request (ms).
    #[arg(long, default_value_t = 100)]
    latency_ms: u64,
    /// Requests in flight per worker.
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// Events per request.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// One measured run.
#[derive(serde::Serialize)]
struct Run {
    workers: usize,
    enqueue_rows_per_sec: f64,
    events_per_sec: f64,
    bound_events_per_sec: f64,
    duplicates: u64,
}

pub(crate) fn run(a: WorkersArgs) -> anyhow::Result<std::process::ExitCode> {
    use leadsignal_sandbox::{self as sandbox, SandboxConfig};
    let pc = config();
    let now = crate::clock::now_or(None);
    let dir = std::env::temp_dir().join(format!("leadsignal-bench-workers-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let csv = dir.join("events.csv");
    generate_csv(&csv, a.events, now)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let exe = std::env::current_exe()?;
    let token = "bench-workers-token";
    let mut runs = Vec::new();
    if !a.json {
        println!(
            "{} generated stage changes per run; PostgreSQL {}; {} ms per request, {} in flight x {} events per worker",
            a.events,
            leadsignal_store::redact_url(&a.store),
            a.latency_ms,
            a.in_flight,
            a.batch_size
        );
        println!(
            "{:>7} {:>16} {:>12} {:>12} {:>8} {:>10}",
            "workers", "enqueue rows/s", "events/s", "bound", "of bound", "sent twice"
        );
    }
    for &w in &a.workers {
        let schema = format!("ls_bench_{}_{w}", std::process::id());
        let sep = if a.store.contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}options=-csearch_path%3D{schema}", a.store);
        let mut admin = postgres::Client::connect(&a.store, postgres::NoTls)?;
        admin.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))?;
        let mut store = leadsignal_store::PgOutbox::open(&url)?;
        let imported = leadsignal_intake::import_files(
            std::slice::from_ref(&csv),
            &leadsignal_sources::Mapping::record_fields(),
            &pc,
            leadsignal_store::MissingStages::Fill,
            &mut store,
            now,
            |_| {},
            |_| {},
        )?;
        drop(store);
        let events = imported.store.accepted + imported.store.inferred;
        let enqueue = imported.rows as f64 / imported.seconds;
        let (sb, graph_url) = runtime.block_on(async {
            let mut cfg = SandboxConfig::single(&pc.dataset_id, token);
            cfg.faults.latency_ms = a.latency_ms;
            cfg.keep_full = 0;
            let sb = sandbox::start(cfg).await?;
            let url = sb.url();
            anyhow::Ok((sb, url))
        })?;
        let cfg_path = dir.join(format!("workers-{w}.toml"));
        std::fs::write(
            &cfg_path,
            format!(
                "[meta]\ndataset_id = \"{}\"\naccess_token = \"{token}\"\ngraph_url = \"{graph_url}\"\n\
                 [store]\nurl = \"{url}\"\n[delivery]\nbatch_size = {}\nin_flight = {}\nlease_secs = 600\n",
                pc.dataset_id, a.batch_size, a.in_flight
            ),
        )?;
        let started = Instant::now();
        let children = (0..w)
            .map(|_| {
                Command::new(&exe)
                    .args([
                        "--config",
                        cfg_path.to_str().expect("UTF-8 path"),
                        "send",
                        "--json",
                        "--max-wait",
                        "30",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
            })
            .collect::<Result<Vec<_>, _>>()?;
        for mut c in children {
            let status = c.wait()?;
            anyhow::ensure!(status.success(), "a worker failed: {status}");
        }
        let secs = started.elapsed().as_secs_f64();
        let stats = sb.stats();
        runtime.block_on(sb.shutdown());
        anyhow::ensure!(
            stats.distinct_event_ids == events,
            "{} of {events} events reached the sandbox",
            stats.distinct_event_ids
        );
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))?;
        let rate = events as f64 / secs;
        let bound = (w * a.in_flight * a.batch_size) as f64 * 1000.0 / a.latency_ms.max(1) as f64;
        if !a.json {
            println!(
                "{w:>7} {enqueue:>16.0} {rate:>12.0} {bound:>12.0} {:>7.0}% {:>10}",
                100.0 * rate / bound,
                stats.duplicate_event_ids
            );
        }
        runs.push(Run {
            workers: w,
            enqueue_rows_per_sec: enqueue.round(),
            events_per_sec: rate.round(),
            bound_events_per_sec: bound,
            duplicates: stats.duplicate_event_ids,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    let rss = peak_rss_mib();
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "events": a.events, "runs": runs, "peak_rss_mib": rss })
        );
    } else if let Some(rss) = rss {
        println!("peak memory of this process (import + sandbox): {rss:.1} MiB");
    }
    Ok(std::process::ExitCode::SUCCESS)
}
