//! `leadsignal bench`: throughput and peak memory of each part of the
//! product, run as the README documents. Benchmark code only: no command
//! of the product uses it, and it uses the product's library crates and
//! `crate::server` like any caller would.

mod data;
mod deliver;
mod import;
mod ingest;
mod measure;
mod prepare;
mod workers;

/// Measure leadsignal's throughput and peak memory.
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// `prepare` + JSON of a typical event on one thread, against SHA-256 alone.
    Prepare(prepare::PrepareArgs),
    /// Import of a generated CSV into a fresh SQLite outbox.
    Import(import::ImportArgs),
    /// Delivery of an outbox to the in-process sandbox with injected latency.
    Deliver(deliver::DeliverArgs),
    /// Stage changes per second through `POST /v1/stage-changes`.
    Ingest(ingest::IngestArgs),
    /// Several `send` workers on one PostgreSQL outbox, and its enqueue rate.
    Workers(workers::WorkersArgs),
}

/// Runs the benchmark named on the command line.
pub(crate) fn run(a: Args) -> anyhow::Result<std::process::ExitCode> {
    match a.what {
        What::Prepare(p) => prepare::run(p),
        What::Import(i) => import::run(i),
        What::Deliver(d) => deliver::run(d),
        What::Ingest(i) => ingest::run(i),
        What::Workers(w) => workers::run(w),
    }
}
