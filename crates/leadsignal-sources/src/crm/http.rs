//! HTTP for the CRM sources: one blocking agent per source (no async
//! runtime needed, so a poll runs the same from `sync` and from `serve`),
//! rate limits and server errors retried a bounded number of times, every
//! error message with the source's name and without its secrets.

use serde_json::Value;
use std::time::Duration;

/// Why a CRM source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    /// The CRM refused the credentials: nothing more is read from this
    /// source until they are fixed.
    #[error(
        "source {source_name}: the CRM refused the credentials (HTTP {status}): {message}; {fix}"
    )]
    Auth {
        /// The source.
        source_name: String,
        /// HTTP status.
        status: u16,
        /// The CRM's reason (secrets removed).
        message: String,
        /// What to change.
        fix: String,
    },
    /// Still rate limited after the retries.
    #[error("source {source_name}: rate limited by the CRM {attempts} times in a row; the next poll tries again")]
    RateLimited {
        /// The source.
        source_name: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Any other refusal.
    #[error("source {source_name}: {what} answered HTTP {status}: {message}")]
    Http {
        /// The source.
        source_name: String,
        /// The request (method and path, no query values).
        what: String,
        /// HTTP status.
        status: u16,
        /// The CRM's reason (secrets removed).
        message: String,
    },
    /// No answer.
    #[error("source {source_name}: {what}: {message}")]
    Network {
        /// The source.
        source_name: String,
        /// The request.
        what: String,
        /// Why.
        message: String,
    },
    /// An answer that is not what the CRM's API reference describes.
    #[error("source {source_name}: unexpected answer to {what}: {message}")]
    Answer {
        /// The source.
        source_name: String,
        /// The request.
        what: String,
        /// What was wrong.
        message: String,
    },
}

/// A CRM's answer.
pub(crate) struct Answer {
    /// HTTP status.
    pub(crate) status: u16,
    /// The body as JSON (`Null` when it is not JSON).
    pub(crate) body: Value,
}

/// One source's HTTP side.
pub(crate) struct Http {
    agent: ureq::Agent,
    source_name: String,
    /// Values never to print (tokens, secrets).
    secrets: Vec<String>,
    /// Attempts for a rate-limited or failing request.
    pub(crate) attempts: u32,
    /// Longest wait between two attempts.
    pub(crate) max_wait: Duration,
}

impl Http {
    /// An agent for `source_name` with a 30-second timeout per request.
    pub(crate) fn new(source_name: &str, secrets: Vec<String>) -> Http {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into();
        Http {
            agent,
            source_name: source_name.to_string(),
            secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
            attempts: 4,
            max_wait: Duration::from_secs(30),
        }
    }

    /// `text` without any of the source's secrets.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }

    /// Sends a request (`build` makes it, once per attempt) and reads the
    /// answer, retrying 429 and 5xx answers and network errors with
    /// backoff, at least the `Retry-After` the CRM asks for (capped).
    pub(crate) fn send(
        &self,
        what: &str,
        build: impl Fn(&ureq::Agent) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, CrmError> {
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=self.attempts {
            let last = attempt == self.attempts;
            match build(&self.agent) {
                Ok(mut r) => {
                    let status = r.status().as_u16();
                    let retry_after = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = r.body_mut().read_to_string().unwrap_or_default();
                    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let answer = Answer { status, body };
                    if status == 429 || status >= 500 {
                        if last {
                            return Err(if status == 429 {
                                CrmError::RateLimited {
                                    source_name: self.source_name.clone(),
                                    attempts: attempt,
                                }
                            } else {
                                self.refused(what, &answer)
                            });
                        }
                        let w = retry_after.unwrap_or(wait).min(self.max_wait);
                        tracing::warn!(source = %self.source_name, status, wait_ms = w.as_millis() as u64, "CRM asked to slow down or failed; retrying");
                        std::thread::sleep(w);
                        wait = (wait * 2).min(self.max_wait);
                        continue;
                    }
                    return Ok(answer);
                }
                Err(e) => {
                    if last {
                        return Err(CrmError::Network {
                            source_name: self.source_name.clone(),
                            what: what.to_string(),
                            message: self.redact(&e.to_string()),
                        });
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(self.max_wait);
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// The error for an answer that is not a success.
    pub(crate) fn refused(&self, what: &str, a: &Answer) -> CrmError {
        let message = self.redact(&message_of(&a.body));
        CrmError::Http {
            source_name: self.source_name.clone(),
            what: what.to_string(),
            status: a.status,
            message,
        }
    }

    /// The error for credentials the CRM refused.
    pub(crate) fn auth(&self, a: &Answer, fix: &str) -> CrmError {
        CrmError::Auth {
            source_name: self.source_name.clone(),
            status: a.status,
            message: self.redact(&message_of(&a.body)),
            fix: fix.to_string(),
        }
    }

    /// The error for an answer of the wrong shape.
    pub(crate) fn unexpected(&self, what: &str, message: impl Into<String>) -> CrmError {
        CrmError::Answer {
            source_name: self.source_name.clone(),
            what: what.to_string(),
            message: message.into(),
        }
    }
}

/// Percent-encoding of a value for a URL's path or query: only unreserved
/// characters pass.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The human part of a CRM's error body: HubSpot's and Pipedrive's
/// `message`/`error`, Salesforce's `[{"message", "errorCode"}]`.
fn message_of(body: &Value) -> String {
    let one = |v: &Value| -> Option<String> {
        let m = v
            .get("message")
            .or_else(|| v.get("error_description"))
            .or_else(|| v.get("error"))?
            .as_str()?
            .to_string();
        Some(match v.get("errorCode").and_then(Value::as_str) {
            Some(code) => format!("{code}: {m}"),
            None => m,
        })
    };
    match body {
        Value::Array(items) => items.iter().filter_map(one).collect::<Vec<_>>().join("; "),
        Value::Null => "(no JSON body)".into(),
        v => one(v).unwrap_or_else(|| "(no message)".into()),
    }
    .chars()
    .take(300)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_each_crm_and_no_secret() {
        let h = Http::new("hs", vec!["pat-na1-secret".into()]);
        let hub = serde_json::json!({"status": "error", "message": "bad token pat-na1-secret", "category": "INVALID_AUTHENTICATION"});
        let a = Answer {
            status: 401,
            body: hub,
        };
        let e = h.auth(&a, "set token").to_string();
        assert!(e.contains("bad token ***") && !e.contains("secret"), "{e}");
        let sf = serde_json::json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]);
        assert_eq!(
            message_of(&sf),
            "INVALID_SESSION_ID: Session expired or invalid"
        );
        assert_eq!(message_of(&Value::Null), "(no JSON body)");
    }
}
