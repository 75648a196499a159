//! `leadsignal bench`: events/second of the core path, against the SHA-256
//! floor, and peak memory. Same typical event as `benches/prepare.rs`.

use leadsignal_core::sample::{config, typical_stage_change, TYPICAL_NORMALIZED};
use leadsignal_core::{prepare, Sha256};
use std::hint::black_box;
use std::time::Instant;

/// Measure leadsignal's throughput and peak memory.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// `prepare` + JSON of a typical event on one thread, against SHA-256 alone.
    Prepare(PrepareArgs),
    /// Import of a generated CSV into a fresh SQLite outbox.
    Import(ImportArgs),
    /// Delivery of an outbox to the in-process sandbox with injected latency.
    Deliver(DeliverArgs),
    /// Stage changes per second through `POST /v1/stage-changes`.
    Ingest(super::bench_ingest::IngestArgs),
    /// Several `send` workers on one PostgreSQL outbox, and its enqueue rate.
    Workers(super::bench_workers::WorkersArgs),
}

/// Deliver generated events from a SQLite outbox to the sandbox (batches of
/// `--batch-size`, `--latency-ms` per request) with K requests in flight,
/// for each K; then without latency (CPU bound), and optionally Meta's
/// Python SDK sending the same kind of events to the same sandbox.
#[derive(clap::Args)]
pub struct DeliverArgs {
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

/// Measure `prepare` + JSON serialization of a typical event on one thread,
/// and SHA-256 of its nine normalized strings alone, in one run.
#[derive(clap::Args)]
pub struct PrepareArgs {
    /// Events per measurement.
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// Measurements of each kind (the best is reported).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn rate(events: u64, f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..events {
        f();
    }
    events as f64 / t.elapsed().as_secs_f64()
}

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

pub fn run(a: Args) -> anyhow::Result<std::process::ExitCode> {
    match a.what {
        What::Prepare(p) => prepare_bench(p),
        What::Import(i) => import_bench(i),
        What::Deliver(d) => deliver_bench(d),
        What::Ingest(i) => super::bench_ingest::run(i),
        What::Workers(w) => super::bench_workers::run(w),
    }
}

/// Import a generated CSV of stage changes into a fresh SQLite outbox.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// Rows to generate and import.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Directory for the CSV and the database (default: a temporary one).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Writes `rows` stage changes as a CRM export would: leads with 1 to 4
/// funnel stages each, contact data, times within the last five days.
pub fn generate_csv(path: &std::path::Path, rows: u64, now: i64) -> std::io::Result<()> {
    use std::io::Write;
    const STAGES: [&str; 4] = ["new", "mql", "opportunity", "won"];
    const CITIES: [(&str, &str, &str); 4] = [
        ("Menlo Park", "California", "94025"),
        ("Austin", "TX", "78701-1234"),
        ("New York", "New York", "10001"),
        ("Seattle", "WA", "98101"),
    ];
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(
        w,
        "lead_id,crm_id,stage,changed_at,email,phone,first_name,last_name,city,state,zip,country"
    )?;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut written, mut lead) = (0u64, 0u64);
    while written < rows {
        lead += 1;
        let stages = 1 + (next() % 4) as usize;
        let start = now - 5 * 86_400 + (next() % (4 * 86_400)) as i64;
        let (city, state, zip) = CITIES[(next() % 4) as usize];
        for (i, stage) in STAGES.iter().take(stages).enumerate() {
            if written == rows {
                break;
            }
            writeln!(
                w,
                "{},HS-{lead},{stage},{},Person.{lead}@Example.com,(650) 555-{:04},Jane{},Doe{},{city},{state},{zip},United States",
                1_000_000_000_000_000 + lead,
                start + i as i64 * 3_600,
                lead % 10_000,
                lead % 97,
                lead % 89,
            )?;
            written += 1;
        }
    }
    w.flush()
}

/// Imports a generated CSV into a fresh SQLite outbox at `db` with the
/// typical event's configuration.
fn import_generated(
    csv: &std::path::Path,
    db: &std::path::Path,
    now: i64,
) -> anyhow::Result<(leadsignal_store::SqliteOutbox, leadsignal_intake::Summary)> {
    let mut store = leadsignal_store::SqliteOutbox::open(db.to_str().expect("UTF-8 path"))?;
    let summary = leadsignal_intake::import_files(
        std::slice::from_ref(&csv.to_path_buf()),
        &leadsignal_sources::Mapping::record_fields(),
        &config(),
        leadsignal_store::MissingStages::Fill,
        &mut store,
        now,
        |_| {},
        |_| {},
    )?;
    Ok((store, summary))
}

fn import_bench(a: ImportArgs) -> anyhow::Result<std::process::ExitCode> {
    let now = 1_795_262_400;
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempdir()?;
            tmp.clone()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let csv = dir.join(format!("bench-{}.csv", a.rows));
    let db = dir.join("bench-outbox.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let t = Instant::now();
    generate_csv(&csv, a.rows, now)?;
    let generated = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&csv)?.len();
    let (_store, summary) = import_generated(&csv, &db, now)?;
    let rate = summary.rows as f64 / summary.seconds;
    let rss = peak_rss_mib();
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "rows": summary.rows, "csv_bytes": size, "seconds": summary.seconds,
                "rows_per_sec": rate.round(), "accepted": summary.store.accepted,
                "rejected": summary.store.rejected, "peak_rss_mib": rss,
            })
        );
    } else {
        println!(
            "generated {} rows ({:.0} MB) in {generated:.1}s",
            a.rows,
            size as f64 / 1e6
        );
        println!(
            "import into SQLite:  {:>10.0} rows/s  ({} rows in {:.1}s; {} accepted, {} rejected)",
            rate, summary.rows, summary.seconds, summary.store.accepted, summary.store.rejected
        );
        if let Some(rss) = rss {
            println!("peak memory:         {rss:>10.1} MiB");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The Python SDK script, shipped inside the binary.
const PYTHON_SDK_SCRIPT: &str = include_str!("../../../../scripts/python_sdk_send.py");

fn deliver_bench(a: DeliverArgs) -> anyhow::Result<std::process::ExitCode> {
    use leadsignal_sandbox::{self as sandbox, SandboxConfig};
    let dir = tempdir()?;
    let now = super::now_or(None);
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

fn tempdir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("leadsignal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn prepare_bench(a: PrepareArgs) -> anyhow::Result<std::process::ExitCode> {
    let now = 1_795_262_400;
    let cfg = config();
    let sc = typical_stage_change(now);
    let mut buf = Vec::with_capacity(2048);
    let mut prepare_json = || {
        let p = prepare(black_box(&sc), &cfg, now).expect("the typical event is valid");
        buf.clear();
        p.event.write_json(&mut buf);
        black_box(buf.len());
    };
    // The floor, two ways: leadsignal's own single-block SHA-256 (the
    // strictest comparison) and the sha2 crate's standard Digest API.
    let mut hash_only = || {
        let mut acc = 0u8;
        for s in black_box(&TYPICAL_NORMALIZED) {
            acc ^= Sha256::of(s).0[0];
        }
        black_box(acc);
    };
    let mut hash_digest_api = || {
        use sha2::Digest;
        let mut acc = 0u8;
        for s in black_box(&TYPICAL_NORMALIZED) {
            acc ^= sha2::Sha256::digest(s.as_bytes())[0];
        }
        black_box(acc);
    };
    // Warm up tables and caches, then alternate the two kinds.
    rate(10_000, &mut prepare_json);
    let (mut best_prepare, mut best_hash, mut best_digest) = (0f64, 0f64, 0f64);
    for _ in 0..a.rounds.max(1) {
        best_prepare = best_prepare.max(rate(a.events, &mut prepare_json));
        best_hash = best_hash.max(rate(a.events, &mut hash_only));
        best_digest = best_digest.max(rate(a.events, &mut hash_digest_api));
    }
    let ratio = best_prepare / best_hash;
    let ratio_digest = best_prepare / best_digest;
    let rss = peak_rss_mib();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "events": a.events, "rounds": a.rounds,
                "prepare_and_serialize_events_per_sec": best_prepare.round(),
                "sha256_floor_events_per_sec": best_hash.round(),
                "ratio": (ratio * 1000.0).round() / 1000.0,
                "sha256_digest_api_floor_events_per_sec": best_digest.round(),
                "ratio_to_digest_api_floor": (ratio_digest * 1000.0).round() / 1000.0,
                "peak_rss_mib": rss,
            })
        );
    } else {
        println!(
            "prepare + JSON, one thread:      {:>12.0} events/s",
            best_prepare
        );
        println!("SHA-256 of the 9 normalized strings (the floor):");
        println!("  single-block path:             {best_hash:>12.0} events/s   ratio {ratio:.3}");
        println!("  sha2 Digest API:               {best_digest:>12.0} events/s   ratio {ratio_digest:.3}");
        if let Some(rss) = rss {
            println!("peak memory:                     {:>12.1} MiB", rss);
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
