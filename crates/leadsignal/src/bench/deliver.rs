//! `bench deliver`: events/second of delivery to the sandbox at a given
//! latency, for several requests in flight, against the latency bound.

use super::data::{generate_csv, import_generated};
use super::measure::{peak_rss_mib, tempdir};
use leadsignal_core::sample::config;

/// Deliver generated events from a SQLite outbox to the sandbox (batches of
/// `--batch-size`, `--latency-ms` per request) with K requests in flight,
/// for each K; then without latency (CPU bound), and optionally Meta's
/// Python SDK sending the same kind of events to the same sandbox.
#[derive(clap::Args)]
pub(crate) struct DeliverArgs {
    /// Events to deliver per run.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Injected latency per request (ms).
    #[arg(long, default_value_t = 200)]
    latency_ms: u64,
    /// Requests in flight to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,16")]
    in_flight: Vec<usize>,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Also run Meta's Python SDK (pip package facebook_business) against
    /// the sandbox, with this many events.
    #[arg(long)]
    python_sdk: Option<u64>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The Python SDK script, shipped inside the binary.
const PYTHON_SDK_SCRIPT: &str = include_str!("../../../../scripts/python_sdk_send.py");

/// Runs it.
pub(crate) fn run(a: DeliverArgs) -> anyhow::Result<std::process::ExitCode> {
    use leadsignal_sandbox::{self as sandbox, SandboxConfig};
    let dir = tempdir()?;
    let now = crate::clock::now_or(None);
    let csv = dir.join("deliver.csv");
    generate_csv(&csv, a.events, now)?;
    let db = dir.join("deliver-outbox.db");
    let (mut store, imported) = import_generated(&csv, &db, now)?;
    let pc = config();
    let import_rate = imported.rows as f64 / imported.seconds;
    let token = "bench-token";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut run = |k: usize, latency_ms: u64| -> anyhow::Result<(f64, u64, u64)> {
        store.connection().execute_batch(
            "UPDATE outbox SET state = 'pending', sent_at = NULL, fbtrace_id = NULL, attempts = 0,
                    next_attempt_at = 0, lease_until = NULL, last_error = NULL",
        )?;
        runtime.block_on(async {
            let mut cfg = SandboxConfig::single(&pc.dataset_id, token);
            cfg.faults.latency_ms = latency_ms;
            cfg.keep_full = 0;
            let sb = sandbox::start(cfg).await?;
            let client = leadsignal_graph::GraphClient::new(&leadsignal_graph::ClientConfig {
                graph_url: sb.url(),
                api_version: "v23.0".into(),
                timeout: std::time::Duration::from_secs(30),
            })?;
            let mut sc = leadsignal_deliver::SenderConfig::new(
                &pc.dataset_id,
                leadsignal_graph::Credentials::new(token),
            );
            sc.batch_size = a.batch_size;
            sc.in_flight = k;
            sc.lease_secs = 600;
            sc.max_wait = std::time::Duration::from_secs(60);
            let r = leadsignal_deliver::send_due(&mut store, &client, &sc, |_| {}).await?;
            let distinct = sb.stats().distinct_event_ids;
            sb.shutdown().await;
            anyhow::ensure!(
                r.accepted == a.events && distinct == a.events,
                "delivered {} of {} ({distinct} distinct)",
                r.accepted,
                a.events
            );
            anyhow::Ok((
                r.accepted as f64 / r.seconds,
                r.requests,
                peak_rss_mib().unwrap_or(0.0) as u64,
            ))
        })
    };
    let mut rows = Vec::new();
    if !a.json {
        println!(
            "{} events in the outbox (import {:.0} rows/s); batches of {}, {} ms per request",
            a.events, import_rate, a.batch_size, a.latency_ms
        );
        println!(
            "{:>4} {:>14} {:>14} {:>8} {:>9}",
            "K", "events/s", "bound", "of bound", "requests"
        );
    }
    for &k in &a.in_flight {
        let (rate, requests, _) = run(k, a.latency_ms)?;
        let bound = k as f64 * a.batch_size as f64 * 1000.0 / a.latency_ms.max(1) as f64;
        if !a.json {
            println!(
                "{k:>4} {rate:>14.0} {bound:>14.0} {:>7.0}% {requests:>9}",
                rate / bound * 100.0
            );
        }
        rows.push(serde_json::json!({"in_flight": k, "events_per_sec": rate.round(), "bound": bound, "share_of_bound": (rate / bound * 1000.0).round() / 1000.0, "requests": requests}));
    }
    let (cpu_rate, _, _) = run(4, 0)?;
    let end_to_end = 1.0 / (1.0 / import_rate + 1.0 / cpu_rate);
    if !a.json {
        println!("no latency (CPU bound, K = 4): {cpu_rate:.0} events/s delivered; with the import, {end_to_end:.0} events/s from CSV to Meta's answer");
    }
    let mut sdk = serde_json::Value::Null;
    if let Some(n) = a.python_sdk {
        let script = dir.join("python_sdk_send.py");
        std::fs::write(&script, PYTHON_SDK_SCRIPT)?;
        let out = runtime.block_on(async {
            let sb = sandbox::start(SandboxConfig::single(&pc.dataset_id, token)).await?;
            let url = sb.url();
            let dataset = pc.dataset_id.clone();
            let script = script.clone();
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new("python3")
                    .arg(&script)
                    .args([
                        url.as_str(),
                        dataset.as_str(),
                        token,
                        &n.to_string(),
                        "1000",
                    ])
                    .output()
            })
            .await??;
            let accepted = sb.stats().events_accepted;
            sb.shutdown().await;
            anyhow::Ok((out, accepted))
        })?;
        let (out, accepted) = out;
        anyhow::ensure!(
            out.status.success() && accepted == n,
            "Meta's Python SDK against the sandbox failed ({accepted} of {n} accepted): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        sdk = serde_json::from_slice(&out.stdout)?;
        let rate = sdk["events_per_sec"].as_f64().unwrap_or(0.0);
        if !a.json {
            println!(
                "Meta's Python SDK (facebook_business), same sandbox, {n} events incl. its own hashing: {rate:.0} events/s; leadsignal end to end is {:.1}x faster",
                end_to_end / rate.max(1.0)
            );
        }
    }
    let rss = peak_rss_mib();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "events": a.events, "batch_size": a.batch_size, "latency_ms": a.latency_ms,
                "import_rows_per_sec": import_rate.round(), "runs": rows,
                "cpu_bound_events_per_sec": cpu_rate.round(), "end_to_end_events_per_sec": end_to_end.round(),
                "python_sdk": sdk, "peak_rss_mib": rss,
            })
        );
    } else if let Some(rss) = rss {
        println!("peak memory: {rss:.0} MiB");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(std::process::ExitCode::SUCCESS)
}
