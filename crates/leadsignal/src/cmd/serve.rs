//! `leadsignal serve`: the always-on mode (see `server/`).

use crate::config::Config;
use std::path::Path;
use std::process::ExitCode;

/// Receive stage changes over HTTP and from the Lead Ads webhook, deliver
/// continuously, and serve metrics and a dashboard, until SIGTERM/SIGINT.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Listen address (overrides [server] listen).
    #[arg(long)]
    pub(crate) listen: Option<String>,
    /// Print the OpenAPI document of the HTTP API and exit.
    #[arg(long)]
    pub(crate) openapi: bool,
}

pub(crate) fn run(config: Option<&Path>, a: Args) -> anyhow::Result<ExitCode> {
    if a.openapi {
        println!("{}", crate::server::openapi_json());
        return Ok(ExitCode::SUCCESS);
    }
    let (cfg, _) = Config::load(config)?;
    let listen = a.listen.unwrap_or_else(|| cfg.server.listen.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = crate::server::start(cfg, &listen).await?;
        eprintln!(
            "leadsignal serve: listening on http://{} (dashboard /, API /v1, webhook /webhooks/meta, metrics /metrics); SIGTERM or Ctrl-C stops it without losing anything",
            server.addr
        );
        server.wait().await
    })?;
    Ok(ExitCode::SUCCESS)
}
