//! The sandbox's checks of an events request, in the order Graph applies
//! them, each failing with Graph's code and subcode (`docs/meta-rules.md`
//! §1–§4). One bad event fails the whole request, as on Meta.

use leadsignal_graph::GraphError;
use serde_json::Value;

/// Seven days: the oldest `event_time` Meta accepts.
pub const MAX_AGE_SECONDS: i64 = 7 * 86_400;
/// Meta's cap on events per request.
pub const MAX_EVENTS: usize = 1000;

/// Keys whose values must be SHA-256 digests.
const HASHED: [&str; 10] = [
    "em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country",
];
/// Keys sent as they are.
const PLAIN: [&str; 16] = [
    "external_id",
    "lead_id",
    "fbc",
    "fbp",
    "client_ip_address",
    "client_user_agent",
    "subscription_id",
    "fb_login_id",
    "anon_id",
    "madid",
    "page_id",
    "page_scoped_user_id",
    "ctwa_clid",
    "ig_account_id",
    "ig_sid",
    "partner_id",
];
/// `action_source` values Graph knows.
const ACTION_SOURCES: [&str; 8] = [
    "email",
    "website",
    "app",
    "phone_call",
    "chat",
    "physical_store",
    "system_generated",
    "other",
];

/// A `(#100)` error with Graph's wording.
pub fn invalid(subcode: Option<i64>, title: &str, msg: impl Into<String>) -> GraphError {
    GraphError {
        message: "Invalid parameter".into(),
        kind: "OAuthException".into(),
        code: 100,
        error_subcode: subcode,
        is_transient: Some(false),
        error_user_title: Some(title.into()),
        error_user_msg: Some(msg.into()),
        fbtrace_id: None,
    }
}

/// What the sandbox keeps of an accepted event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checked {
    /// The event name (the funnel stage).
    pub event_name: String,
    /// When the stage changed (`event_time`, Unix seconds).
    pub event_time: i64,
    /// `event_id`, when given.
    pub event_id: Option<String>,
    /// `user_data.lead_id`, when given.
    pub lead_id: Option<u64>,
}

/// Checks the `data` array; `now` is the sandbox's clock.
pub fn check_events(data: &[Value], now: i64) -> Result<Vec<Checked>, GraphError> {
    if data.is_empty() {
        return Err(invalid(
            None,
            "No Events",
            "The data parameter holds no events.",
        ));
    }
    if data.len() > MAX_EVENTS {
        return Err(invalid(
            None,
            "Too Many Events",
            format!(
                "A request may carry at most {MAX_EVENTS} events; this one has {}.",
                data.len()
            ),
        ));
    }
    data.iter()
        .enumerate()
        .map(|(i, e)| check_event(i, e, now))
        .collect()
}

fn check_event(i: usize, e: &Value, now: i64) -> Result<Checked, GraphError> {
    let at = |what: &str| format!("data[{i}]: {what}");
    let e = e
        .as_object()
        .ok_or_else(|| invalid(None, "Invalid Event", at("is not an object")))?;
    let event_name = e
        .get("event_name")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| invalid(None, "Missing Event Name", at("event_name is required")))?;
    let event_time = match e.get("event_time") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        invalid(
            None,
            "Invalid Event Time",
            at("event_time must be a Unix timestamp in seconds"),
        )
    })?;
    if event_time < now - MAX_AGE_SECONDS {
        return Err(invalid(
            Some(leadsignal_graph::outcome::SUBCODE_TOO_OLD),
            "Event Timestamp Too Old",
            at("The timestamp for this event is too far in the past. Events must be sent within 7 days of when they occurred."),
        ));
    }
    let action_source = e.get("action_source").and_then(Value::as_str);
    if !action_source.is_some_and(|a| ACTION_SOURCES.contains(&a)) {
        return Err(invalid(
            None,
            "Invalid Action Source",
            at("action_source is required and must be one of email, website, app, phone_call, chat, physical_store, system_generated, other"),
        ));
    }
    let ud = e
        .get("user_data")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid(None, "Missing User Data", at("user_data is required")))?;
    let mut keys = Vec::new();
    let mut lead_id = None;
    for (k, v) in ud {
        if HASHED.contains(&k.as_str()) {
            let values: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                v => vec![v],
            };
            for v in values {
                let ok = v.as_str().is_some_and(|s| {
                    s.len() == 64
                        && s.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                });
                if !ok {
                    return Err(invalid(
                        None,
                        "Unhashed Customer Information",
                        at(&format!(
                            "user_data.{k} must be SHA-256 hashed (64 lowercase hex characters)"
                        )),
                    ));
                }
            }
        } else if k == "lead_id" {
            let digits = match v {
                Value::Number(n) => n.as_u64().map(|n| n.to_string()),
                Value::String(s) => Some(s.clone()),
                _ => None,
            };
            let parsed = digits
                .filter(|d| {
                    (15..=17).contains(&d.len())
                        && d.bytes().all(|b| b.is_ascii_digit())
                        && !d.starts_with('0')
                })
                .and_then(|d| d.parse::<u64>().ok())
                .ok_or_else(|| {
                    invalid(
                        Some(2_804_036),
                        "Invalid Lead ID",
                        at("The lead ID is invalid or was deleted. A lead ID has 15 to 17 digits."),
                    )
                })?;
            lead_id = Some(parsed);
        } else if !PLAIN.contains(&k.as_str()) {
            return Err(invalid(
                None,
                "Invalid Parameter",
                at(&format!(
                    "user_data.{k} is not a customer information parameter"
                )),
            ));
        }
        let empty = matches!(v, Value::Null) || v.as_array().is_some_and(Vec::is_empty);
        if !empty {
            keys.push(k.as_str());
        }
    }
    if keys.is_empty() {
        return Err(invalid(
            Some(2_804_050),
            "Insufficient Customer Information",
            at("user_data holds no customer information parameter"),
        ));
    }
    // Meta's baseline rule (v13.0+): these sets alone cannot be matched.
    const WEAK: [&[&str]; 4] = [
        &["ct", "country", "st", "zp", "ge", "client_user_agent"],
        &["db", "client_user_agent"],
        &["fn", "ge"],
        &["ln", "ge"],
    ];
    if WEAK.iter().any(|set| keys.iter().all(|k| set.contains(k))) {
        return Err(invalid(
            Some(2_804_050),
            "Insufficient Customer Information",
            at("the customer information parameters given are too few to match on"),
        ));
    }
    if action_source == Some("system_generated") {
        // Conversion Leads: the CRM markers.
        let cd = e.get("custom_data").and_then(Value::as_object);
        let source = cd
            .and_then(|c| c.get("event_source"))
            .and_then(Value::as_str);
        let les = cd
            .and_then(|c| c.get("lead_event_source"))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty());
        if source != Some("crm") || les.is_none() {
            return Err(invalid(
                None,
                "Missing CRM Parameters",
                at("CRM events need custom_data.event_source = \"crm\" and a custom_data.lead_event_source"),
            ));
        }
    }
    if let Some(dpo) = e.get("data_processing_options") {
        let ldu = dpo
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o.as_str() == Some("LDU")));
        if ldu {
            let country = e
                .get("data_processing_options_country")
                .and_then(Value::as_i64);
            let state = e
                .get("data_processing_options_state")
                .and_then(Value::as_i64);
            let ok = matches!(country, Some(0 | 1))
                && state.is_some_and(|s| s == 0 || (1000..=1013).contains(&s));
            if !ok {
                return Err(invalid(
                    None,
                    "Invalid Data Processing Options",
                    at("with LDU, data_processing_options_country must be 0 or 1 and data_processing_options_state 0 or 1000-1013"),
                ));
            }
        }
    }
    Ok(Checked {
        event_name: event_name.to_string(),
        event_time,
        event_id: e.get("event_id").and_then(Value::as_str).map(String::from),
        lead_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_262_400;
    const H: &str = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f";

    fn good() -> Value {
        json!({"event_name": "Lead", "event_time": NOW - 60, "action_source": "system_generated",
               "event_id": "e1", "user_data": {"lead_id": 1234567890123456u64, "em": [H]},
               "custom_data": {"event_source": "crm", "lead_event_source": "HubSpot"}})
    }

    fn with(f: impl FnOnce(&mut Value)) -> Result<Vec<Checked>, GraphError> {
        let mut e = good();
        f(&mut e);
        check_events(&[e], NOW)
    }

    #[test]
    fn accepts_a_conversion_leads_event() {
        let c = check_events(&[good()], NOW).unwrap();
        assert_eq!(c[0].lead_id, Some(1_234_567_890_123_456));
        assert_eq!(c[0].event_id.as_deref(), Some("e1"));
        // lead_id as a string, as the Python SDK sends it.
        assert!(with(|e| e["user_data"]["lead_id"] = json!("1234567890123456")).is_ok());
    }

    #[test]
    fn rejects_like_graph() {
        let sub = |r: Result<Vec<Checked>, GraphError>| r.unwrap_err().error_subcode;
        assert_eq!(
            sub(with(|e| e["event_time"] = json!(NOW - 8 * 86_400))),
            Some(2_804_003)
        );
        assert_eq!(
            sub(with(|e| e["user_data"]["lead_id"] = json!(12345))),
            Some(2_804_036)
        );
        assert_eq!(
            sub(with(|e| e["user_data"]["lead_id"] = json!(1.5e15))),
            Some(2_804_036)
        );
        assert_eq!(
            sub(with(|e| e["user_data"] = json!({"ct": [H], "country": [H]}))),
            Some(2_804_050)
        );
        assert_eq!(sub(with(|e| e["user_data"] = json!({}))), Some(2_804_050));
        for broken in [
            |e: &mut Value| e["user_data"]["em"] = json!(["jane@example.com"]),
            |e: &mut Value| e["user_data"]["em"] = json!(H.to_uppercase()),
            |e: &mut Value| e["event_name"] = json!(""),
            |e: &mut Value| e["event_time"] = json!("yesterday"),
            |e: &mut Value| e["action_source"] = json!("crm"),
            |e: &mut Value| e["custom_data"]["event_source"] = json!("web"),
            |e: &mut Value| e["custom_data"]["lead_event_source"] = json!(" "),
            |e: &mut Value| e["user_data"]["password"] = json!("x"),
            |e: &mut Value| {
                e["data_processing_options"] = json!(["LDU"]);
                e["data_processing_options_country"] = json!(1);
            },
        ] {
            let err = with(broken).unwrap_err();
            assert_eq!(err.code, 100);
            assert!(err.error_user_msg.unwrap().starts_with("data[0]"));
        }
        assert!(check_events(&[], NOW).is_err());
        let many = vec![good(); MAX_EVENTS + 1];
        assert!(check_events(&many, NOW).is_err());
        assert!(check_events(&vec![good(); MAX_EVENTS], NOW).is_ok());
    }

    #[test]
    fn one_bad_event_fails_the_batch() {
        let mut bad = good();
        bad["user_data"]["lead_id"] = json!(1);
        let mut batch = vec![good(); 10];
        batch[7] = bad;
        let e = check_events(&batch, NOW).unwrap_err();
        assert!(e.error_user_msg.unwrap().starts_with("data[7]"));
    }
}
