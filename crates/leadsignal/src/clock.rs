//! The wall clock, in Unix seconds (the libraries take `now` as an
//! argument; the binary is where it is read).

/// The current Unix time.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The current Unix time, or `--now` when given (for reproducible output).
pub(crate) fn now_or(fixed: Option<i64>) -> i64 {
    fixed.unwrap_or_else(unix_now)
}
