//! One module per command.

pub mod bench;
pub mod bench_ingest;
pub mod bench_workers;
pub mod demo;
pub mod hash;
pub mod import;
pub mod preview;
pub mod sandbox;
pub mod send;
pub mod serve;
pub mod status;
pub mod sync;
pub mod validate;

/// The current Unix time, or `--now` when given (for reproducible output).
pub fn now_or(fixed: Option<i64>) -> i64 {
    fixed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    })
}
