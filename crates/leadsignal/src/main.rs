//! `leadsignal`: sends CRM lead-stage changes to Meta's Conversions API as
//! Conversion Leads events. See README.md for the commands and configuration.

mod bench;
mod clock;
mod cmd;
mod config;
mod lock;
mod polling;
mod report;
mod secret;
mod server;
mod summary;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Send CRM lead-stage changes to Meta's Conversions API (Conversion Leads).
#[derive(Parser)]
#[command(name = "leadsignal", version, about, long_about = None)]
struct Cli {
    /// Configuration file (default: ./leadsignal.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log format on stderr (level from LEADSIGNAL_LOG, e.g. `info`; default `warn`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEADSIGNAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Normalize and hash one contact value the way Meta requires.
    Hash(cmd::hash::Args),
    /// Print the exact request body Meta would receive for stage changes.
    Preview(Box<cmd::preview::Args>),
    /// Check CSV or JSONL files of stage changes offline.
    Validate(cmd::validate::Args),
    /// Import CSV or JSONL stage-change files into the durable outbox.
    Import(cmd::import::Args),
    /// Deliver every due event to Meta, then exit.
    Send(cmd::send::Args),
    /// Run a local stand-in for Meta's Graph API (tests, demos, load runs).
    Sandbox(Box<cmd::sandbox::Args>),
    /// Import the configured sources, then send (the daily cron job).
    Sync(cmd::sync::Args),
    /// Show what the outbox holds.
    Status(cmd::status::Args),
    /// The dataset lock: move a dataset name to another dataset ID on purpose.
    Dataset(cmd::dataset::Args),
    /// Check configuration, store, Graph access, sources and webhook
    /// settings, sending nothing.
    Doctor(cmd::doctor::Args),
    /// Run always-on: HTTP ingest, Lead Ads webhook, continuous delivery,
    /// metrics and a dashboard.
    Serve(cmd::serve::Args),
    /// Run bundled sample CRM data through the whole path (no config needed).
    Demo(cmd::demo::Args),
    /// Measure events/second of prepare + serialization, and peak memory.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let result = match cli.command {
        Command::Hash(a) => cmd::hash::run(cli.config.as_deref(), a),
        Command::Preview(a) => cmd::preview::run(cli.config.as_deref(), *a),
        Command::Validate(a) => cmd::validate::run(cli.config.as_deref(), a),
        Command::Import(a) => cmd::import::run(cli.config.as_deref(), a),
        Command::Serve(a) => cmd::serve::run(cli.config.as_deref(), a),
        Command::Send(a) => cmd::send::run(cli.config.as_deref(), a),
        Command::Sandbox(a) => cmd::sandbox::run(*a),
        Command::Sync(a) => cmd::sync::run(cli.config.as_deref(), a),
        Command::Status(a) => cmd::status::run(cli.config.as_deref(), a),
        Command::Dataset(a) => cmd::dataset::run(cli.config.as_deref(), a),
        Command::Doctor(a) => cmd::doctor::run(cli.config.as_deref(), a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Bench(a) => bench::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
