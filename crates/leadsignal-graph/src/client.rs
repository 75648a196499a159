//! The Graph API client: `POST /{version}/{dataset_id}/events` and lead
//! retrieval. One `GraphClient` (one connection pool) serves any number of
//! datasets and tokens at once: credentials travel with each call.
//!
//! The access token and the proof go in the JSON body (events) or the
//! `Authorization` header (lead retrieval), never in a URL; errors from the
//! HTTP layer are stripped of their URL before they are shown.

use crate::outcome::{classify, Outcome, TransientCause};
use crate::proof::{appsecret_proof, appsecret_proof_timed, ProofMode};
use leadsignal_core::{LeadId, ServerEvent};
use std::fmt;
use std::time::Duration;

/// Where Graph is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL (`https://graph.facebook.com`, or the sandbox's).
    pub graph_url: String,
    /// Pinned API version (`v23.0`).
    pub api_version: String,
    /// Request timeout. Meta suggests 1.5 s; most answers take under 600 ms.
    pub timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            graph_url: "https://graph.facebook.com".into(),
            api_version: "v23.0".into(),
            timeout: Duration::from_millis(10_000),
        }
    }
}

/// The secrets of one dataset. Debug never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_token: String,
    app_secret: Option<String>,
    proof: ProofMode,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_token", &"***")
            .field("app_secret", &self.app_secret.as_ref().map(|_| "***"))
            .field("proof", &self.proof)
            .finish()
    }
}

impl Credentials {
    /// A token alone (no `appsecret_proof`).
    pub fn new(access_token: impl Into<String>) -> Self {
        Credentials {
            access_token: access_token.into(),
            app_secret: None,
            proof: ProofMode::Plain,
        }
    }

    /// Adds the app secret: every request then carries `appsecret_proof`.
    pub fn with_app_secret(mut self, app_secret: impl Into<String>, proof: ProofMode) -> Self {
        self.app_secret = Some(app_secret.into());
        self.proof = proof;
        self
    }

    /// The token, for the one place that sends it (and for redaction).
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// `(appsecret_proof, appsecret_time)` for a request made at `now`.
    pub fn proof(&self, now: i64) -> Option<(String, Option<i64>)> {
        let secret = self.app_secret.as_deref()?;
        Some(match self.proof {
            ProofMode::Plain => (appsecret_proof(secret, &self.access_token), None),
            ProofMode::Timed => (
                appsecret_proof_timed(secret, &self.access_token, now),
                Some(now),
            ),
        })
    }

    /// Replaces every secret this holds (and its proofs) in `text` by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        let mut secrets = vec![self.access_token.clone()];
        if let Some(s) = &self.app_secret {
            secrets.push(s.clone());
            secrets.push(appsecret_proof(s, &self.access_token));
        }
        for s in secrets.iter().filter(|s| s.len() >= 4) {
            out = out.replace(s.as_str(), "***");
        }
        out
    }
}

/// Request-level options of an events call.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOptions<'a> {
    /// Routes the events to Events Manager's Test Events.
    pub test_event_code: Option<&'a str>,
    /// Platform identifier agreed with Meta (top level, beside `data`).
    pub partner_agent: Option<&'a str>,
}

/// A lead read back from Graph.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lead {
    /// The lead ID.
    pub id: String,
    /// When the lead was created (Unix seconds).
    pub created_time: Option<i64>,
    /// The form's answers (personal data: hash before storing).
    #[serde(default)]
    pub field_data: Vec<FieldData>,
}

/// One answer of a lead form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldData {
    /// The question's key (`email`, `full_name`, `phone_number`, ...).
    pub name: String,
    /// The answers.
    #[serde(default)]
    pub values: Vec<String>,
}

/// Why a lead could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LeadError {
    /// Graph refused or failed; the outcome says how.
    #[error("Graph answered: {0:?}")]
    Graph(Box<Outcome>),
    /// The answer was not a lead.
    #[error("unexpected lead body: {0}")]
    Body(String),
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP stack could not start (TLS roots, ...).
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    /// The base URL is not usable.
    #[error("graph_url {0:?} must start with http:// or https://")]
    Url(String),
}

/// The Graph client. Cheap to clone; clones share the connection pool.
#[derive(Clone, Debug)]
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
}

impl GraphClient {
    /// Builds a client (rustls, connection reuse, the configured timeout).
    pub fn new(cfg: &ClientConfig) -> Result<GraphClient, ClientError> {
        let url = cfg.graph_url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ClientError::Url(cfg.graph_url.clone()));
        }
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(cfg.timeout)
            .pool_max_idle_per_host(64)
            .user_agent(concat!("leadsignal/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Http(e.without_url().to_string()))?;
        Ok(GraphClient {
            http,
            base: format!("{url}/{}", cfg.api_version.trim_matches('/')),
        })
    }

    /// The base of every request: `{graph_url}/{api_version}`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The events endpoint of a dataset (no token in it: safe to print).
    pub fn events_url(&self, dataset_id: &str) -> String {
        format!("{}/{}/events", self.base, dataset_id)
    }

    /// Sends `events` (1 to 1000) to `dataset_id` and classifies the answer.
    pub async fn send_events(
        &self,
        dataset_id: &str,
        events: &[&ServerEvent],
        creds: &Credentials,
        opts: SendOptions<'_>,
        now: i64,
    ) -> Outcome {
        let body = events_body(events, creds, opts, now);
        let sent = events.len() as u64;
        let request = self
            .http
            .post(self.events_url(dataset_id))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return network(e, creds),
        };
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return network(e, creds),
        };
        classify(
            status,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &bytes,
            sent,
        )
    }

    /// `GET /{dataset_id}?fields=id,name`: whether this token can use the
    /// dataset (nothing is sent), and Graph's clock (its `Date` header).
    pub async fn check_dataset(
        &self,
        dataset_id: &str,
        creds: &Credentials,
        now: i64,
    ) -> Result<DatasetCheck, Outcome> {
        let mut query = vec![("fields".to_string(), "id,name".to_string())];
        if let Some((proof, time)) = creds.proof(now) {
            query.push(("appsecret_proof".into(), proof));
            if let Some(t) = time {
                query.push(("appsecret_time".into(), t.to_string()));
            }
        }
        let response = self
            .http
            .get(format!("{}/{}", self.base, dataset_id))
            .query(&query)
            .bearer_auth(creds.access_token())
            .send()
            .await
            .map_err(|e| network(e, creds))?;
        let status = response.status().as_u16();
        let server_time = response
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
            .map(|d| d.timestamp());
        let bytes = response.bytes().await.map_err(|e| network(e, creds))?;
        if !(200..300).contains(&status) {
            return Err(classify(status, std::iter::empty(), &bytes, 0));
        }
        #[derive(serde::Deserialize)]
        struct Raw {
            id: String,
            name: Option<String>,
        }
        let raw: Raw = serde_json::from_slice(&bytes).map_err(|e| {
            Outcome::Transient(crate::outcome::TransientCause::Network(format!(
                "not a dataset answer: {e}"
            )))
        })?;
        Ok(DatasetCheck {
            id: raw.id,
            name: raw.name,
            server_time,
        })
    }

    /// `GET /{lead_id}?fields=...`: the lead's creation time and answers.
    pub async fn get_lead(
        &self,
        lead_id: LeadId,
        fields: &[&str],
        creds: &Credentials,
        now: i64,
    ) -> Result<Lead, LeadError> {
        let mut query = vec![("fields".to_string(), fields.join(","))];
        if let Some((proof, time)) = creds.proof(now) {
            query.push(("appsecret_proof".into(), proof));
            if let Some(t) = time {
                query.push(("appsecret_time".into(), t.to_string()));
            }
        }
        let response = self
            .http
            .get(format!("{}/{}", self.base, lead_id))
            .query(&query)
            .bearer_auth(creds.access_token())
            .send()
            .await
            .map_err(|e| LeadError::Graph(Box::new(network(e, creds))))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| LeadError::Graph(Box::new(network(e, creds))))?;
        if !(200..300).contains(&status) {
            return Err(LeadError::Graph(Box::new(classify(
                status,
                std::iter::empty(),
                &bytes,
                0,
            ))));
        }
        #[derive(serde::Deserialize)]
        struct Raw {
            id: String,
            created_time: Option<String>,
            #[serde(default)]
            field_data: Vec<FieldData>,
        }
        let raw: Raw =
            serde_json::from_slice(&bytes).map_err(|e| LeadError::Body(e.to_string()))?;
        let created_time = match raw.created_time.as_deref() {
            None => None,
            Some(t) => Some(parse_graph_time(t).ok_or_else(|| {
                LeadError::Body(format!("created_time {t:?} is not a Graph time"))
            })?),
        };
        Ok(Lead {
            id: raw.id,
            created_time,
            field_data: raw.field_data,
        })
    }
}

/// What `GraphClient::check_dataset` learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetCheck {
    /// The dataset's ID as Graph knows it.
    pub id: String,
    /// Its name, when Graph gives one.
    pub name: Option<String>,
    /// Graph's clock (its `Date` header), Unix seconds.
    pub server_time: Option<i64>,
}

/// Graph's time format: `2015-02-28T08:49:14+0000` (offset without a colon).
pub fn parse_graph_time(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(t))
        .ok()
        .map(|d| d.timestamp())
}

fn network(e: reqwest::Error, creds: &Credentials) -> Outcome {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "network error"
    };
    let text = creds.redact(&format!("{kind}: {}", e.without_url()));
    Outcome::Transient(TransientCause::Network(text))
}

/// The JSON body of an events request: `data`, the token, the proof and the
/// options. Public so that tests and benchmarks see the exact bytes.
pub fn events_body(
    events: &[&ServerEvent],
    creds: &Credentials,
    opts: SendOptions<'_>,
    now: i64,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + events.len() * 900);
    body.extend_from_slice(b"{\"data\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        e.write_json(&mut body);
    }
    body.extend_from_slice(b"],\"access_token\":");
    json_str(&mut body, creds.access_token());
    if let Some((proof, time)) = creds.proof(now) {
        body.extend_from_slice(b",\"appsecret_proof\":");
        json_str(&mut body, &proof);
        if let Some(t) = time {
            body.extend_from_slice(format!(",\"appsecret_time\":{t}").as_bytes());
        }
    }
    if let Some(code) = opts.test_event_code {
        body.extend_from_slice(b",\"test_event_code\":");
        json_str(&mut body, code);
    }
    if let Some(agent) = opts.partner_agent {
        body.extend_from_slice(b",\"partner_agent\":");
        json_str(&mut body, agent);
    }
    body.push(b'}');
    body
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadsignal_core::sample::{config, typical_stage_change};

    #[test]
    fn body_has_data_token_proof_and_options() {
        let now = 1_795_262_400;
        let e = leadsignal_core::prepare(&typical_stage_change(now), &config(), now)
            .unwrap()
            .event;
        let creds = Credentials::new("EAA\"tok").with_app_secret("sec", ProofMode::Timed);
        let body = events_body(
            &[&e, &e],
            &creds,
            SendOptions {
                test_event_code: Some("TEST123"),
                partner_agent: Some("leadsignal"),
            },
            now,
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert_eq!(v["data"][0], serde_json::to_value(&e).unwrap());
        assert_eq!(v["access_token"], "EAA\"tok");
        assert_eq!(
            v["appsecret_proof"],
            appsecret_proof_timed("sec", "EAA\"tok", now)
        );
        assert_eq!(v["appsecret_time"], now);
        assert_eq!(v["test_event_code"], "TEST123");
        assert_eq!(v["partner_agent"], "leadsignal");
        let plain = events_body(
            &[&e],
            &Credentials::new("t0k3n"),
            SendOptions::default(),
            now,
        );
        let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert!(v.get("appsecret_proof").is_none() && v.get("test_event_code").is_none());
    }

    #[test]
    fn credentials_never_show_and_redact() {
        let c = Credentials::new("EAAsecret-token").with_app_secret("appsecret", ProofMode::Plain);
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("EAAsecret") && !dbg.contains("appsecret\""),
            "{dbg}"
        );
        let proof = appsecret_proof("appsecret", "EAAsecret-token");
        let text = format!("token EAAsecret-token secret appsecret proof {proof}");
        assert_eq!(c.redact(&text), "token *** secret *** proof ***");
    }

    #[test]
    fn graph_times() {
        assert_eq!(
            parse_graph_time("2015-02-28T08:49:14+0000"),
            Some(1_425_113_354)
        );
        assert_eq!(
            parse_graph_time("2015-02-28T08:49:14Z"),
            Some(1_425_113_354)
        );
        assert_eq!(parse_graph_time("yesterday"), None);
    }

    #[test]
    fn urls_carry_no_token() {
        let c = GraphClient::new(&ClientConfig {
            graph_url: "http://127.0.0.1:9/".into(),
            ..ClientConfig::default()
        })
        .unwrap();
        assert_eq!(c.events_url("123"), "http://127.0.0.1:9/v23.0/123/events");
        assert!(GraphClient::new(&ClientConfig {
            graph_url: "graph.facebook.com".into(),
            ..ClientConfig::default()
        })
        .is_err());
    }
}
