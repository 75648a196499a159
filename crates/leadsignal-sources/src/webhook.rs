//! Meta's Lead Ads webhook: the subscription check, the signature of each
//! delivery, and the `leadgen` changes it carries.
//!
//! Meta signs every delivery with `X-Hub-Signature-256: sha256=<hex>`, the
//! HMAC-SHA256 of the raw body keyed with the app secret. The signature is
//! checked, in constant time, before anything of the body is parsed.

use hmac::{KeyInit, Mac};
use leadsignal_core::LeadId;
use serde::Deserialize;
use serde_json::Value;

/// Why a webhook request is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// Subscription check with a wrong mode or verify token.
    #[error("the subscription check failed: wrong hub.mode or hub.verify_token")]
    Verification,
    /// No `X-Hub-Signature-256` header.
    #[error("the X-Hub-Signature-256 header is missing")]
    Unsigned,
    /// The header is not `sha256=` and 64 hex digits.
    #[error("the X-Hub-Signature-256 header is malformed (expected sha256=<64 hex digits>)")]
    MalformedSignature,
    /// The signature does not match the body.
    #[error("the X-Hub-Signature-256 signature does not match the body")]
    Forged,
    /// The body is not a webhook payload.
    #[error("the body is not a Lead Ads webhook payload: {0}")]
    Malformed(String),
}

/// Answers Meta's subscription check (`GET` with `hub.mode`,
/// `hub.verify_token`, `hub.challenge`): the challenge to echo, or an error.
pub fn verify_subscription(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
    expected_token: &str,
) -> Result<String, WebhookError> {
    let ok = mode == Some("subscribe")
        && !expected_token.is_empty()
        && constant_time_eq(token.unwrap_or("").as_bytes(), expected_token.as_bytes());
    match (ok, challenge) {
        (true, Some(c)) => Ok(c.to_string()),
        _ => Err(WebhookError::Verification),
    }
}

/// Checks `X-Hub-Signature-256` against the raw body.
pub fn verify_signature(
    app_secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::Unsigned)?;
    let hex = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(WebhookError::MalformedSignature)?;
    let mut given = [0u8; 32];
    if hex.len() != 64 || faster_hex::hex_decode(hex.as_bytes(), &mut given).is_err() {
        return Err(WebhookError::MalformedSignature);
    }
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(app_secret).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| WebhookError::Forged)
}

/// The signature Meta would send for `body` (for tests and the sandbox).
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(app_secret).expect("HMAC takes any key");
    mac.update(body);
    format!(
        "sha256={}",
        faster_hex::hex_string(&mac.finalize().into_bytes())
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One new lead announced by the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadgen {
    /// The lead (`leadgen_id`).
    pub lead_id: LeadId,
    /// When the lead was created (Unix seconds), when given.
    pub created_time: Option<i64>,
    /// Page, form and ad, when given (decimal text).
    pub page_id: Option<String>,
    /// The lead form.
    pub form_id: Option<String>,
    /// The ad.
    pub ad_id: Option<String>,
}

#[derive(Deserialize)]
struct Payload {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    field: String,
    #[serde(default)]
    value: Value,
}

/// The `leadgen` changes of a (signature-checked) delivery. Changes of other
/// fields are skipped; a `leadgen` change without a valid `leadgen_id` is an
/// error (Meta always sends one).
pub fn parse_leadgen(body: &[u8]) -> Result<Vec<Leadgen>, WebhookError> {
    let p: Payload =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    if p.object != "page" {
        return Err(WebhookError::Malformed(format!(
            "object is {:?}, expected \"page\"",
            p.object
        )));
    }
    let mut out = Vec::new();
    for change in p.entry.iter().flat_map(|e| &e.changes) {
        if change.field != "leadgen" {
            continue;
        }
        let v = &change.value;
        let lead_id = id_text(v.get("leadgen_id"))
            .and_then(|t| LeadId::parse(&t).ok())
            .ok_or_else(|| {
                WebhookError::Malformed("a leadgen change without a valid leadgen_id".into())
            })?;
        out.push(Leadgen {
            lead_id,
            created_time: v.get("created_time").and_then(unix_time),
            page_id: id_text(v.get("page_id")),
            form_id: id_text(v.get("form_id")),
            ad_id: id_text(v.get("ad_id")),
        });
    }
    Ok(out)
}

/// An ID given as a JSON integer or as decimal text.
fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        _ => None,
    }
}

/// `created_time`: Unix seconds as a number or text.
fn unix_time(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"app-secret";

    fn body(value: &str) -> Vec<u8> {
        format!(r#"{{"object":"page","entry":[{{"id":"1","time":1795262400,"changes":[{{"field":"leadgen","value":{value}}}]}}]}}"#).into_bytes()
    }

    #[test]
    fn subscription_check() {
        let ok = verify_subscription(Some("subscribe"), Some("tok"), Some("123"), "tok");
        assert_eq!(ok, Ok("123".into()));
        for (m, t) in [
            (Some("subscribe"), Some("bad")),
            (Some("x"), Some("tok")),
            (None, None),
        ] {
            assert_eq!(
                verify_subscription(m, t, Some("1"), "tok"),
                Err(WebhookError::Verification)
            );
        }
        assert!(verify_subscription(Some("subscribe"), Some(""), Some("1"), "").is_err());
    }

    #[test]
    fn signatures() {
        let b = body(r#"{"leadgen_id":1234567890123456}"#);
        let sig = sign(SECRET, &b);
        assert!(verify_signature(SECRET, &b, Some(&sig)).is_ok());
        assert_eq!(
            verify_signature(SECRET, &b, None),
            Err(WebhookError::Unsigned)
        );
        assert_eq!(
            verify_signature(SECRET, &b, Some("sha1=abc")),
            Err(WebhookError::MalformedSignature)
        );
        assert_eq!(
            verify_signature(SECRET, &b, Some("sha256=zz")),
            Err(WebhookError::MalformedSignature)
        );
        assert_eq!(
            verify_signature(b"other", &b, Some(&sig)),
            Err(WebhookError::Forged)
        );
        let mut tampered = b.clone();
        tampered[20] ^= 1;
        assert_eq!(
            verify_signature(SECRET, &tampered, Some(&sig)),
            Err(WebhookError::Forged)
        );
    }

    #[test]
    fn ids_as_numbers_or_text() {
        for v in [
            r#"{"leadgen_id":1234567890123456,"created_time":1795262000,"page_id":11,"form_id":"22"}"#,
            r#"{"leadgen_id":"1234567890123456","created_time":"1795262000","page_id":"11","form_id":22}"#,
        ] {
            let l = parse_leadgen(&body(v)).unwrap();
            assert_eq!(l.len(), 1);
            assert_eq!(l[0].lead_id.get(), 1_234_567_890_123_456);
            assert_eq!(l[0].created_time, Some(1_795_262_000));
            assert_eq!(l[0].page_id.as_deref(), Some("11"));
            assert_eq!(l[0].form_id.as_deref(), Some("22"));
        }
        // Beyond 2^53: exact.
        let l = parse_leadgen(&body(r#"{"leadgen_id":9007199254740993}"#)).unwrap();
        assert_eq!(l[0].lead_id.get(), 9_007_199_254_740_993);
    }

    #[test]
    fn malformed_payloads() {
        assert!(parse_leadgen(b"not json").is_err());
        assert!(parse_leadgen(br#"{"object":"user","entry":[]}"#).is_err());
        assert!(parse_leadgen(&body(r#"{"leadgen_id":1.5e15}"#)).is_err());
        assert!(parse_leadgen(&body(r#"{"page_id":1}"#)).is_err());
        // Other fields are not leads.
        let other = br#"{"object":"page","entry":[{"changes":[{"field":"feed","value":{}}]}]}"#;
        assert_eq!(parse_leadgen(other).unwrap(), vec![]);
    }
}
