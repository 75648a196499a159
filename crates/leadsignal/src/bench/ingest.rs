//! `leadsignal bench ingest`: stage changes per second accepted through
//! `POST /v1/stage-changes` on loopback into SQLite, with request latency
//! percentiles. The load generator is built in: `--connections` clients,
//! each sending its next batch as soon as the previous is answered (closed
//! loop, so the load is bounded by the server's answers).

use crate::config::Config;
use std::time::{Duration, Instant};

/// Measure HTTP ingest.
#[derive(clap::Args)]
pub(crate) struct IngestArgs {
    /// Stage changes to send in all.
    #[arg(long, default_value_t = 200_000)]
    changes: u64,
    /// Stage changes per request.
    #[arg(long, default_value_t = 100)]
    batch: u64,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 16)]
    connections: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: IngestArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::ensure!(
        a.batch >= 1 && a.connections >= 1,
        "--batch and --connections must be at least 1"
    );
    let dir = std::env::temp_dir().join(format!("leadsignal-bench-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let token = "bench-api-token";
    // Delivery is parked (no Meta to reach, long flush interval): this
    // measures receiving, hashing and durable storing.
    let cfg = Config::from_toml(&format!(
        "[meta]\ndataset_id = \"2780431635496611\"\naccess_token = \"bench\"\ngraph_url = \"http://127.0.0.1:9\"\n\
         [crm]\nname = \"HubSpot\"\n[normalize]\ndefault_country = \"US\"\n[store]\nurl = \"sqlite://{}\"\n\
         [server]\napi_token = \"{token}\"\nflush_interval_ms = 3600000\n",
        dir.join("ingest.db").display()
    ))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let now = crate::clock::now_or(None);
    let result = runtime.block_on(async {
        let server = crate::server::start(cfg, "127.0.0.1:0").await?;
        let url = format!("http://{}/v1/stage-changes", server.addr);
        let http = reqwest::Client::new();
        let requests = a.changes.div_ceil(a.batch);
        let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = Instant::now();
        let mut clients = Vec::new();
        for _ in 0..a.connections {
            let (http, url, next) = (http.clone(), url.clone(), next.clone());
            let batch = a.batch;
            clients.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut accepted = 0u64;
                loop {
                    let r = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if r >= requests {
                        break;
                    }
                    let body = batch_body(r * batch, batch, now);
                    let t = Instant::now();
                    let resp = http
                        .post(&url)
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await?;
                    anyhow::ensure!(resp.status().is_success(), "HTTP {}", resp.status());
                    let v: serde_json::Value = resp.json().await?;
                    latencies.push(t.elapsed());
                    accepted += v["accepted"].as_u64().unwrap_or(0);
                }
                anyhow::Ok((latencies, accepted))
            }));
        }
        let mut latencies: Vec<Duration> = Vec::new();
        let mut accepted = 0;
        for c in clients {
            let (l, n) = c.await??;
            latencies.extend(l);
            accepted += n;
        }
        let seconds = started.elapsed().as_secs_f64();
        server.shutdown().await?;
        latencies.sort();
        anyhow::Ok((seconds, accepted, latencies))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let (seconds, accepted, latencies) = result?;
    anyhow::ensure!(
        accepted == a.changes,
        "accepted {accepted} of {}",
        a.changes
    );
    let q = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    let rate = accepted as f64 / seconds;
    let rss = super::measure::peak_rss_mib();
    if a.json {
        println!(
            "{}",
            serde_json::json!({"changes": accepted, "batch": a.batch, "connections": a.connections,
                "changes_per_sec": rate.round(), "requests": latencies.len(),
                "p50_ms": q(0.5).as_secs_f64() * 1e3, "p99_ms": q(0.99).as_secs_f64() * 1e3,
                "max_ms": q(1.0).as_secs_f64() * 1e3, "peak_rss_mib": rss})
        );
    } else {
        println!(
            "{accepted} stage changes in {} requests of {} over {} connections: {rate:.0} stage changes/s accepted (hashed and durably stored); latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latencies.len(),
            a.batch,
            a.connections,
            q(0.5).as_secs_f64() * 1e3,
            q(0.99).as_secs_f64() * 1e3,
            q(1.0).as_secs_f64() * 1e3,
        );
        if let Some(r) = rss {
            println!("peak memory: {r:.0} MiB (server and load generator in one process)");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `n` distinct stage changes starting at number `first`, as a JSON array.
fn batch_body(first: u64, n: u64, now: i64) -> String {
    const STAGES: [&str; 4] = ["new", "mql", "opportunity", "won"];
    let mut s = String::with_capacity(n as usize * 160);
    s.push('[');
    for i in first..first + n {
        if i > first {
            s.push(',');
        }
        // Each lead gets its stages in order; leads are distinct per 4 changes.
        let lead = 1_000_000_000_000_000 + i / 4;
        let stage = STAGES[(i % 4) as usize];
        let t = now - 86_400 + (i % 4) as i64 * 600 + (i / 4 % 3600) as i64;
        s.push_str(&format!(
            r#"{{"lead_id":{lead},"stage":"{stage}","changed_at":{t},"email":"p{}@example.com","phone":"+1 512 555 {:04}","first_name":"Ann","city":"Austin","state":"TX","zip":"78701"}}"#,
            i / 4,
            i / 4 % 10_000
        ));
    }
    s.push(']');
    s
}
