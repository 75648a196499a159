//! When to try again: exponential backoff with jitter, never sooner than
//! Meta's own estimate, and never past an event's send-by deadline.

use std::time::Duration;

/// The retry schedule.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First wait.
    pub base: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(2),
            max: Duration::from_secs(30 * 60),
        }
    }
}

impl RetryPolicy {
    /// Seconds to wait after the `attempts`-th failure: `base · 2^attempts`,
    /// capped, with "equal jitter" (between half and all of it), and at least
    /// `at_least` (Meta's regain-access estimate).
    pub fn wait(&self, attempts: i64, at_least: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempts.clamp(0, 20) as u32)
            .min(self.max);
        let half = exp / 2;
        let jittered = half + half.mul_f64(fastrand::f64());
        jittered.max(at_least.unwrap_or_default())
    }
}

/// Whether a retry at `retry_at` is still in time for `send_by`.
pub fn in_time(retry_at: i64, send_by: i64) -> bool {
    retry_at <= send_by
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_jitters_and_honours_meta() {
        let p = RetryPolicy {
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        for _ in 0..200 {
            let w0 = p.wait(0, None);
            assert!(
                w0 >= Duration::from_secs(1) && w0 <= Duration::from_secs(2),
                "{w0:?}"
            );
            let w3 = p.wait(3, None);
            assert!(w3 >= Duration::from_secs(8) && w3 <= Duration::from_secs(16));
            let w30 = p.wait(30, None);
            assert!(w30 >= Duration::from_secs(30) && w30 <= Duration::from_secs(60));
            assert!(p.wait(0, Some(Duration::from_secs(300))) >= Duration::from_secs(300));
        }
        // Jitter: not always the same.
        let waits: std::collections::HashSet<_> = (0..50).map(|_| p.wait(4, None)).collect();
        assert!(waits.len() > 1);
        assert!(in_time(100, 100) && !in_time(101, 100));
    }
}
