//! Conversion Leads rules on time and data-processing options
//! (`docs/meta-rules.md` §2 and §7).

use crate::stage_change::DataProcessing;
use crate::violation::Violation;
use serde::{Deserialize, Serialize};

/// Above this, a Unix time is in milliseconds (10^10 s is the year 2286).
pub const MILLISECONDS_THRESHOLD: i64 = 10_000_000_000;
/// Meta's window: `event_time` at most 7 days before the upload.
pub const META_MAX_AGE_SECS: i64 = 7 * 86_400;

/// The time rules' settings (`[rules]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeRules {
    /// Stop this long before Meta's 7-day limit, to leave room for queueing
    /// and retries (default 1 hour: events are sent at most 6 d 23 h old).
    pub window_margin_seconds: i64,
    /// How far in the future an `event_time` may be (clock skew), default 5 minutes.
    pub future_skew_seconds: i64,
}

impl Default for TimeRules {
    fn default() -> Self {
        TimeRules {
            window_margin_seconds: 3_600,
            future_skew_seconds: 300,
        }
    }
}

impl TimeRules {
    /// The last moment an event of `event_time` may be sent.
    pub fn send_by(&self, event_time: i64) -> i64 {
        event_time + META_MAX_AGE_SECS - self.window_margin_seconds
    }

    /// Whether an event of `event_time` is past its send-by deadline at
    /// `now`: expired, never sent. That is not an error of the input (a CRM
    /// export holds its whole history), so [`TimeRules::check`] does not
    /// report it; the outbox stores such an event as expired.
    pub fn expired(&self, event_time: i64, now: i64) -> bool {
        now > self.send_by(event_time)
    }

    /// Why an event of `event_time` is expired at `now`.
    pub fn expired_message(&self, event_time: i64, now: i64) -> String {
        format!(
            "the stage changed {} ago; Meta accepts events up to 7 days old and leadsignal stops {} before that, so it is not sent",
            human_duration(now - event_time),
            human_duration(self.window_margin_seconds)
        )
    }

    /// Checks `event_time` (and the lead's creation time) against `now`:
    /// milliseconds, the future, before the lead's creation. Age is not
    /// checked here ([`TimeRules::expired`]).
    pub fn check(
        &self,
        event_time: i64,
        lead_created_at: Option<i64>,
        now: i64,
        out: &mut Vec<Violation>,
    ) {
        if event_time >= MILLISECONDS_THRESHOLD {
            out.push(Violation::new(
                "event_time.milliseconds",
                Some("changed_at"),
                format!("{event_time} looks like milliseconds; event_time must be Unix seconds"),
            ));
            return;
        }
        if event_time <= 0 {
            out.push(Violation::new(
                "event_time.invalid",
                Some("changed_at"),
                format!("{event_time} is not a valid Unix time"),
            ));
            return;
        }
        if event_time > now + self.future_skew_seconds {
            out.push(Violation::new(
                "event_time.future",
                Some("changed_at"),
                format!(
                    "is {} in the future (more than the allowed clock skew of {}); check the time zone",
                    human_duration(event_time - now),
                    human_duration(self.future_skew_seconds)
                ),
            ));
        }
        if let Some(created) = lead_created_at {
            if created >= MILLISECONDS_THRESHOLD {
                out.push(Violation::new(
                    "lead_created_at.milliseconds",
                    Some("lead_created_at"),
                    format!("{created} looks like milliseconds; it must be Unix seconds"),
                ));
            } else if event_time < created {
                out.push(Violation::new(
                    "event_time.before_lead_created",
                    Some("changed_at"),
                    format!(
                        "the stage changed {} before the lead was created; Meta discards such events",
                        human_duration(created - event_time)
                    ),
                ));
            }
        }
    }
}

/// Limited Data Use consistency: `["LDU"]` needs country 0/1 and state 0 or
/// 1000–1013; country/state without LDU make no sense.
pub fn check_data_processing(dp: &DataProcessing, out: &mut Vec<Violation>) {
    let mut ldu = false;
    for o in &dp.options {
        if o == "LDU" {
            ldu = true;
        } else {
            out.push(Violation::new(
                "ldu.option",
                Some("data_processing_options"),
                format!("{o:?} is not a data processing option; the only one is \"LDU\""),
            ));
        }
    }
    if !ldu {
        if dp.country.is_some() || dp.state.is_some() {
            out.push(Violation::new(
                "ldu.inconsistent",
                Some("data_processing_options"),
                "a data processing country or state is set but Limited Data Use (\"LDU\") is not",
            ));
        }
        return;
    }
    match dp.country {
        Some(0 | 1) => {}
        Some(c) => out.push(Violation::new(
            "ldu.country",
            Some("data_processing_options_country"),
            format!("{c} is not allowed: use 1 (USA) or 0 (let Meta geolocate)"),
        )),
        None => out.push(Violation::new(
            "ldu.country",
            Some("data_processing_options_country"),
            "is required with LDU: 1 (USA) or 0 (let Meta geolocate)",
        )),
    }
    match dp.state {
        Some(0 | 1000..=1013) => {}
        Some(s) => out.push(Violation::new(
            "ldu.state",
            Some("data_processing_options_state"),
            format!("{s} is not allowed: use 0 (geolocate) or a state code 1000-1013 (1000 = California)"),
        )),
        None => out.push(Violation::new(
            "ldu.state",
            Some("data_processing_options_state"),
            "is required with LDU: 0 (geolocate) or a state code 1000-1013",
        )),
    }
}

/// `3d 4h`, `12m`, `45s`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_763_700_000;

    fn codes(event_time: i64, created: Option<i64>) -> Vec<&'static str> {
        let mut v = Vec::new();
        TimeRules::default().check(event_time, created, NOW, &mut v);
        v.into_iter().map(|v| v.code).collect()
    }

    #[test]
    fn window() {
        assert!(codes(NOW - 3600, None).is_empty());
        // Age is not a violation: expired is a state, not an error.
        assert!(codes(NOW - 8 * 86_400, None).is_empty());
        let r = TimeRules::default();
        assert!(!r.expired(NOW - 6 * 86_400 - 23 * 3600, NOW));
        assert!(r.expired(NOW - 6 * 86_400 - 23 * 3600 - 1, NOW));
        assert!(r.expired_message(NOW - 8 * 86_400, NOW).contains("8d ago"));
        assert!(codes(NOW + 299, None).is_empty());
        assert_eq!(codes(NOW + 301, None), ["event_time.future"]);
        assert_eq!(codes(NOW * 1000, None), ["event_time.milliseconds"]);
        assert_eq!(codes(0, None), ["event_time.invalid"]);
        assert_eq!(
            codes(NOW - 10, Some(NOW - 5)),
            ["event_time.before_lead_created"]
        );
        assert!(codes(NOW - 10, Some(NOW - 10)).is_empty());
        assert_eq!(
            codes(NOW - 10, Some(NOW * 1000)),
            ["lead_created_at.milliseconds"]
        );
    }

    #[test]
    fn ldu() {
        let check = |options: &[&str], country, state| {
            let mut v = Vec::new();
            let dp = DataProcessing {
                options: options.iter().map(|s| s.to_string()).collect(),
                country,
                state,
            };
            check_data_processing(&dp, &mut v);
            v.into_iter().map(|v| v.code).collect::<Vec<_>>()
        };
        assert!(check(&["LDU"], Some(1), Some(1000)).is_empty());
        assert!(check(&["LDU"], Some(0), Some(0)).is_empty());
        assert!(check(&["LDU"], Some(1), Some(1013)).is_empty());
        assert!(check(&[], None, None).is_empty());
        assert_eq!(check(&["LDU"], Some(2), Some(1000)), ["ldu.country"]);
        assert_eq!(check(&["LDU"], Some(1), Some(1014)), ["ldu.state"]);
        assert_eq!(check(&["LDU"], None, None), ["ldu.country", "ldu.state"]);
        assert_eq!(check(&[], Some(1), None), ["ldu.inconsistent"]);
        assert_eq!(check(&["ldu"], None, None), ["ldu.option"]);
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(8 * 86_400 + 3 * 3600), "8d 3h");
    }
}
