//! `bench prepare`: events/second of `prepare` + JSON of the typical event
//! on one thread, against the SHA-256 floor. Same event as
//! `crates/leadsignal-core/benches/prepare.rs`.

use super::measure::{peak_rss_mib, rate};
use leadsignal_core::sample::{config, typical_stage_change, TYPICAL_NORMALIZED};
use leadsignal_core::{prepare, Sha256};
use std::hint::black_box;

/// Measure `prepare` + JSON serialization of a typical event on one thread,
/// and SHA-256 of its nine normalized strings alone, in one run.
#[derive(clap::Args)]
pub(crate) struct PrepareArgs {
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

/// Runs it.
pub(crate) fn run(a: PrepareArgs) -> anyhow::Result<std::process::ExitCode> {
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
