//! What every benchmark measures with: rates, peak memory, a scratch
//! directory.

use std::time::Instant;

/// Events per second of `f` run `events` times.
pub(crate) fn rate(events: u64, f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..events {
        f();
    }
    events as f64 / t.elapsed().as_secs_f64()
}

/// Peak resident memory of this process (VmHWM), in MiB.
pub(crate) fn peak_rss_mib() -> Option<f64> {
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

/// A scratch directory for this process.
pub(crate) fn tempdir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("leadsignal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
