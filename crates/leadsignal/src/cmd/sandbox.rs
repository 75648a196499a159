//! `leadsignal sandbox`: a local stand-in for Meta's Graph API.

use leadsignal_sandbox::{self as sandbox, Faults, SandboxConfig, SandboxDataset};
use std::net::SocketAddr;
use std::process::ExitCode;

/// Run a local server that answers like Graph's events and lead endpoints
/// (validation, errors, rate-limit headers), with injectable faults. Point
/// [meta] graph_url at it. Accepted events: GET /sandbox/events; counters:
/// GET /sandbox/stats. Stops on Ctrl-C.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:8788")]
    listen: SocketAddr,
    /// Dataset ID it accepts.
    #[arg(long, default_value = "2780431635496611")]
    dataset: String,
    /// Access token it accepts for that dataset (use an env var:
    /// --token "$TOKEN"; it is never printed).
    #[arg(long, env = "LEADSIGNAL_SANDBOX_TOKEN", hide_env_values = true)]
    token: String,
    /// Require appsecret_proof made with this app secret.
    #[arg(long, env = "LEADSIGNAL_SANDBOX_APP_SECRET", hide_env_values = true)]
    app_secret: Option<String>,
    /// A JSON file with the whole sandbox configuration (datasets, leads,
    /// faults) instead of the flags above.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["app_secret"])]
    config_json: Option<std::path::PathBuf>,
    /// Time from an events request to its answer (ms), the sandbox's own work included.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of requests answered HTTP 500 (0-1).
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Share of requests that hang past the client's timeout (0-1).
    #[arg(long, default_value_t = 0.0)]
    timeout_rate: f64,
    /// Rate-limit every request for this many seconds from start.
    #[arg(long)]
    rate_limit_secs: Option<i64>,
    /// Revoke the token this many seconds after start.
    #[arg(long)]
    revoke_after_secs: Option<i64>,
}

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let now = crate::clock::now_or(None);
    let mut cfg = match &a.config_json {
        Some(p) => serde_json::from_slice::<SandboxConfig>(&std::fs::read(p)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => SandboxConfig {
            listen: a.listen,
            datasets: vec![SandboxDataset {
                id: a.dataset.clone(),
                access_token: a.token.clone(),
                app_secret: a.app_secret.clone(),
            }],
            leads: Vec::new(),
            deleted_leads: Vec::new(),
            faults: Faults::default(),
            keep_full: 1000,
        },
    };
    let f = &mut cfg.faults;
    f.latency_ms = f.latency_ms.max(a.latency_ms);
    f.error_rate = f.error_rate.max(a.error_rate);
    f.timeout_rate = f.timeout_rate.max(a.timeout_rate);
    if f.timeout_rate > 0.0 && f.hang_ms == 0 {
        f.hang_ms = 30_000;
    }
    if let Some(s) = a.rate_limit_secs {
        f.rate_limit_windows.push((now, now + s));
    }
    if let Some(s) = a.revoke_after_secs {
        f.revoke_at = Some(now + s);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let handle = sandbox::start(cfg).await?;
        println!(
            "sandbox listening on {} (graph_url = \"{}\")",
            handle.addr(),
            handle.url()
        );
        println!(
            "accepted events: {}/sandbox/events, counters: {}/sandbox/stats",
            handle.url(),
            handle.url()
        );
        tokio::signal::ctrl_c().await?;
        let stats = handle.stats();
        handle.shutdown().await;
        println!(
            "stopped: {} requests, {} events accepted",
            stats.requests, stats.events_accepted
        );
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
