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
fn peak_rss_mib() -> Option<f64> {
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

fn import_bench(a: ImportArgs) -> anyhow::Result<std::process::ExitCode> {
    use leadsignal_store::MissingStages;
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
    let mut store = leadsignal_store::SqliteOutbox::open(db.to_str().expect("UTF-8 path"))?;
    let pc = config();
    let summary = super::import::import_files(
        std::slice::from_ref(&csv),
        &leadsignal_sources::Mapping::record_fields(),
        &pc,
        MissingStages::Fill,
        &mut store,
        now,
        |_| {},
        |_| {},
    )?;
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
