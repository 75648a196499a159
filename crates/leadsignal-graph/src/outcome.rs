//! What Graph answered to one request, classified for the sender
//! (`docs/meta-rules.md` §4). Classification reads the HTTP status, Graph's
//! `code`, `error_subcode` and `is_transient`, and the usage headers; never
//! the localized `error_user_title` / `error_user_msg`.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Graph's error envelope (`{"error": {...}}`), as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GraphError {
    /// Developer message (English, e.g. `Invalid parameter`).
    #[serde(default)]
    pub message: String,
    /// Exception type (`OAuthException`, `GraphMethodException`, ...).
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Graph error code.
    #[serde(default)]
    pub code: i64,
    /// Graph error subcode.
    #[serde(default)]
    pub error_subcode: Option<i64>,
    /// Whether Meta says retrying may succeed.
    #[serde(default)]
    pub is_transient: Option<bool>,
    /// Localized title (shown to people, never used for decisions).
    #[serde(default)]
    pub error_user_title: Option<String>,
    /// Localized explanation (shown to people, never used for decisions).
    #[serde(default)]
    pub error_user_msg: Option<String>,
    /// Meta's trace ID for support.
    #[serde(default)]
    pub fbtrace_id: Option<String>,
}

impl GraphError {
    /// One line for logs and the quarantine: code, subcode and the texts.
    pub fn summary(&self) -> String {
        let mut s = format!("code {}", self.code);
        if let Some(sub) = self.error_subcode {
            s.push_str(&format!(", subcode {sub}"));
        }
        s.push_str(": ");
        s.push_str(&self.message);
        if let Some(t) = self.error_user_title.as_deref().filter(|t| !t.is_empty()) {
            s.push_str(&format!(" ({t})"));
        }
        if let Some(m) = self.error_user_msg.as_deref().filter(|m| !m.is_empty()) {
            s.push_str(": ");
            s.push_str(m);
        }
        s
    }
}

/// The success body of `POST /{dataset_id}/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsResponse {
    /// How many events Meta received.
    pub events_received: u64,
    /// Meta's warnings, when the answer has any.
    #[serde(default)]
    pub messages: Vec<String>,
    /// Meta's trace ID.
    #[serde(default)]
    pub fbtrace_id: Option<String>,
}

/// Why a request failed in a way that a later retry may fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransientCause {
    /// No HTTP answer: connection refused or reset, timeout, DNS.
    Network(String),
    /// HTTP 5xx, codes 1 and 2, or `is_transient: true`.
    Server {
        /// HTTP status.
        status: u16,
        /// The Graph error, when the body had one.
        error: Option<GraphError>,
    },
    /// HTTP 2xx but `events_received` is not what was sent.
    Miscount {
        /// Events sent.
        sent: u64,
        /// Events Meta says it received.
        received: u64,
        /// Meta's trace ID.
        fbtrace_id: Option<String>,
    },
}

/// The classified answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// HTTP 2xx and every event received.
    Accepted(EventsResponse),
    /// Retry later with backoff.
    Transient(TransientCause),
    /// Rate limited: retry no sooner than `retry_after` when Meta says.
    RateLimited {
        /// The Graph error, when the body had one.
        error: Option<GraphError>,
        /// Meta's estimate of when access comes back.
        retry_after: Option<Duration>,
    },
    /// The request was refused for its content (code 100 and others): Meta
    /// rejects the whole batch for one bad event, so split it to find it.
    Rejected(GraphError),
    /// Token, permission or dataset configuration problem (190, 10,
    /// 200–299, 368, 3, 100/33, appsecret_proof required): nothing in the
    /// batch is at fault; pause the dataset until the configuration changes.
    Auth(GraphError),
}

/// Codes Meta uses for throttling (docs/meta-rules.md §4).
fn is_rate_limit(code: i64) -> bool {
    matches!(code, 4 | 17 | 32 | 341 | 613) || (80_000..=80_014).contains(&code)
}

/// Codes that mean the credentials or the dataset setup, not the events.
fn is_auth(e: &GraphError) -> bool {
    matches!(e.code, 190 | 10 | 368 | 3)
        || (200..=299).contains(&e.code)
        || (e.code == 100 && e.error_subcode == Some(33))
        // "API calls from the server require an appsecret_proof argument":
        // `message` is the developer text (not localized); this one has no
        // subcode of its own.
        || (e.code == 100 && e.error_subcode.is_none() && e.message.contains("appsecret_proof"))
}

/// Subcode of "Event Timestamp Too Old": the event can never be sent.
pub const SUBCODE_TOO_OLD: i64 = 2_804_003;

/// Classifies an HTTP answer. `sent` is the number of events in the request;
/// `headers` yields (name, value) pairs.
pub fn classify<'h>(
    status: u16,
    headers: impl IntoIterator<Item = (&'h str, &'h str)>,
    body: &[u8],
    sent: u64,
) -> Outcome {
    let usage = Usage::from_headers(headers);
    if (200..300).contains(&status) {
        return match serde_json::from_slice::<EventsResponse>(body) {
            Ok(r) if r.events_received == sent => Outcome::Accepted(r),
            Ok(r) => Outcome::Transient(TransientCause::Miscount {
                sent,
                received: r.events_received,
                fbtrace_id: r.fbtrace_id,
            }),
            Err(_) => Outcome::Transient(TransientCause::Server {
                status,
                error: None,
            }),
        };
    }
    #[derive(Deserialize)]
    struct Envelope {
        error: GraphError,
    }
    let error = serde_json::from_slice::<Envelope>(body)
        .ok()
        .map(|e| e.error);
    match error {
        Some(e) if is_rate_limit(e.code) => Outcome::RateLimited {
            error: Some(e),
            retry_after: usage.regain_after(),
        },
        Some(e) if is_auth(&e) => Outcome::Auth(e),
        Some(e) if e.is_transient == Some(true) || matches!(e.code, 1 | 2) || status >= 500 => {
            Outcome::Transient(TransientCause::Server {
                status,
                error: Some(e),
            })
        }
        Some(e) => Outcome::Rejected(e),
        None if status == 429 => Outcome::RateLimited {
            error: None,
            retry_after: usage.regain_after(),
        },
        None if status == 401 || status == 403 => Outcome::Auth(GraphError {
            message: format!("HTTP {status} without a Graph error body"),
            code: 190,
            ..GraphError::default()
        }),
        None if !(400..500).contains(&status) => Outcome::Transient(TransientCause::Server {
            status,
            error: None,
        }),
        None => Outcome::Rejected(GraphError {
            message: format!("HTTP {status} without a Graph error body"),
            ..GraphError::default()
        }),
    }
}

/// What the usage headers say (`X-Business-Use-Case-Usage`, `X-App-Usage`,
/// `X-Ad-Account-Usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Highest share of any allowance used, in percent.
    pub max_percent: Option<u32>,
    /// Longest `estimated_time_to_regain_access` (minutes) of any business use case.
    pub regain_minutes: Option<u64>,
    /// `reset_time_duration` of the ad account (seconds).
    pub reset_seconds: Option<u64>,
}

impl Usage {
    /// Reads the usage headers; unknown shapes are ignored.
    pub fn from_headers<'h>(headers: impl IntoIterator<Item = (&'h str, &'h str)>) -> Usage {
        let mut u = Usage::default();
        let mut percent = |v: &serde_json::Value| {
            if let Some(n) = v.as_f64() {
                let p = n.clamp(0.0, 1000.0) as u32;
                u.max_percent = Some(u.max_percent.map_or(p, |m| m.max(p)));
            }
        };
        let mut regain = None::<u64>;
        let mut reset = None::<u64>;
        for (name, value) in headers {
            let Ok(json) = serde_json::from_str::<serde_json::Value>(value) else {
                continue;
            };
            match name.to_ascii_lowercase().as_str() {
                "x-business-use-case-usage" => {
                    for entry in json
                        .as_object()
                        .into_iter()
                        .flat_map(|o| o.values())
                        .filter_map(|v| v.as_array())
                        .flatten()
                    {
                        for k in ["call_count", "total_cputime", "total_time"] {
                            percent(&entry[k]);
                        }
                        if let Some(m) = entry["estimated_time_to_regain_access"].as_u64() {
                            regain = Some(regain.map_or(m, |r| r.max(m)));
                        }
                    }
                }
                "x-app-usage" => {
                    for k in ["call_count", "total_cputime", "total_time"] {
                        percent(&json[k]);
                    }
                }
                "x-ad-account-usage" => {
                    percent(&json["acc_id_util_pct"]);
                    if let Some(s) = json["reset_time_duration"].as_u64() {
                        reset = Some(s);
                    }
                }
                _ => {}
            }
        }
        u.regain_minutes = regain;
        u.reset_seconds = reset;
        u
    }

    /// When access should be back, if the headers say.
    pub fn regain_after(&self) -> Option<Duration> {
        match (self.regain_minutes, self.reset_seconds) {
            (Some(m), _) if m > 0 => Some(Duration::from_secs(m * 60)),
            (_, Some(s)) if s > 0 => Some(Duration::from_secs(s)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: i64, sub: Option<i64>, transient: Option<bool>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"error": {
            "message": "Invalid parameter", "type": "OAuthException", "code": code,
            "error_subcode": sub, "is_transient": transient,
            "error_user_title": "Titre localisé", "error_user_msg": "Message localisé",
            "fbtrace_id": "AbC"}}))
        .unwrap()
    }

    fn no_headers() -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    #[test]
    fn success_must_count_every_event() {
        let ok = br#"{"events_received":3,"messages":[],"fbtrace_id":"T1"}"#;
        assert!(
            matches!(classify(200, no_headers(), ok, 3), Outcome::Accepted(r) if r.fbtrace_id.as_deref() == Some("T1"))
        );
        assert!(matches!(
            classify(200, no_headers(), ok, 4),
            Outcome::Transient(TransientCause::Miscount {
                sent: 4,
                received: 3,
                ..
            })
        ));
        assert!(matches!(
            classify(200, no_headers(), b"<html>", 1),
            Outcome::Transient(_)
        ));
    }

    #[test]
    fn every_documented_class() {
        let c = |status, body: Vec<u8>| classify(status, no_headers(), &body, 1);
        assert!(
            matches!(c(400, err(100, Some(2_804_003), Some(false))), Outcome::Rejected(e) if e.error_subcode == Some(SUBCODE_TOO_OLD))
        );
        assert!(matches!(
            c(400, err(100, Some(2_804_036), None)),
            Outcome::Rejected(_)
        ));
        assert!(matches!(c(400, err(100, None, None)), Outcome::Rejected(_)));
        assert!(matches!(c(400, err(100, Some(33), None)), Outcome::Auth(_)));
        assert!(matches!(c(401, err(190, None, None)), Outcome::Auth(_)));
        assert!(matches!(
            c(400, err(190, Some(463), None)),
            Outcome::Auth(_)
        ));
        assert!(matches!(c(403, err(10, None, None)), Outcome::Auth(_)));
        assert!(matches!(c(403, err(200, None, None)), Outcome::Auth(_)));
        assert!(matches!(c(403, err(299, None, None)), Outcome::Auth(_)));
        assert!(matches!(c(400, err(368, None, None)), Outcome::Auth(_)));
        for code in [4, 17, 32, 341, 613, 80_000, 80_005, 80_014] {
            assert!(
                matches!(c(400, err(code, None, None)), Outcome::RateLimited { .. }),
                "{code}"
            );
        }
        assert!(matches!(
            c(400, err(80_015, None, None)),
            Outcome::Rejected(_)
        ));
        assert!(matches!(c(500, err(1, None, None)), Outcome::Transient(_)));
        assert!(matches!(
            c(500, err(2, None, Some(true))),
            Outcome::Transient(_)
        ));
        assert!(matches!(
            c(400, err(100, Some(1), Some(true))),
            Outcome::Transient(_)
        ));
        assert!(matches!(
            c(503, b"Service Unavailable".to_vec()),
            Outcome::Transient(_)
        ));
        assert!(matches!(c(429, b"".to_vec()), Outcome::RateLimited { .. }));
        assert!(matches!(c(401, b"".to_vec()), Outcome::Auth(_)));
        assert!(matches!(
            c(404, b"not found".to_vec()),
            Outcome::Rejected(_)
        ));
        let proof = serde_json::to_vec(&serde_json::json!({"error": {
            "message": "API calls from the server require an appsecret_proof argument",
            "type": "GraphMethodException", "code": 100, "fbtrace_id": "x"}}))
        .unwrap();
        assert!(matches!(c(400, proof), Outcome::Auth(_)));
    }

    #[test]
    fn decisions_ignore_the_localized_texts() {
        // Same code and subcode, different languages: same class.
        let fr = err(100, Some(2_804_003), Some(false));
        let de = String::from_utf8(fr.clone())
            .unwrap()
            .replace("Titre localisé", "Zeitstempel zu alt")
            .replace("Message localisé", "appsecret_proof 190 transient");
        assert_eq!(
            std::mem::discriminant(&classify(400, no_headers(), &fr, 1)),
            std::mem::discriminant(&classify(400, no_headers(), de.as_bytes(), 1))
        );
    }

    #[test]
    fn usage_headers_give_the_wait() {
        let buc = r#"{"1234":[{"type":"ads_management","call_count":98,"total_cputime":20,"total_time":30,"estimated_time_to_regain_access":7,"ads_api_access_tier":"standard_access"}],"99":[{"type":"leadgen","call_count":10,"estimated_time_to_regain_access":2}]}"#;
        let u = Usage::from_headers([
            ("X-Business-Use-Case-Usage", buc),
            (
                "x-app-usage",
                r#"{"call_count":12,"total_cputime":5,"total_time":101}"#,
            ),
        ]);
        assert_eq!(u.regain_minutes, Some(7));
        assert_eq!(u.max_percent, Some(101));
        assert_eq!(u.regain_after(), Some(Duration::from_secs(420)));
        let limited = classify(
            400,
            [("x-business-use-case-usage", buc)],
            &err(80_004, Some(2_446_079), None),
            1,
        );
        assert!(
            matches!(limited, Outcome::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(420))
        );
        let acct = Usage::from_headers([(
            "X-Ad-Account-Usage",
            r#"{"acc_id_util_pct":9.67,"reset_time_duration":120,"ads_api_access_tier":"standard_access"}"#,
        )]);
        assert_eq!(acct.regain_after(), Some(Duration::from_secs(120)));
        assert_eq!(
            Usage::from_headers([("x-app-usage", "not json")]),
            Usage::default()
        );
    }

    #[test]
    fn summary_names_code_subcode_and_texts() {
        let e: GraphError =
            serde_json::from_slice::<serde_json::Value>(&err(100, Some(2_804_036), None))
                .map(|v| serde_json::from_value(v["error"].clone()).unwrap())
                .unwrap();
        assert_eq!(
            e.summary(),
            "code 100, subcode 2804036: Invalid parameter (Titre localisé): Message localisé"
        );
    }
}
