//! `bench import`: rows/second of importing a generated CSV into a fresh
//! SQLite outbox, and peak memory.

use super::data::{generate_csv, import_generated};
use super::measure::{peak_rss_mib, tempdir};
use std::time::Instant;

/// Import a generated CSV of stage changes into a fresh SQLite outbox.
#[derive(clap::Args)]
pub(crate) struct ImportArgs {
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

/// Runs it.
pub(crate) fn run(a: ImportArgs) -> anyhow::Result<std::process::ExitCode> {
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
