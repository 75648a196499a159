//! Bodies of `POST /v1/stage-changes`: stage-change records as JSON (one
//! object or an array), HubSpot webhook deliveries, and Salesforce outbound
//! messages (SOAP). Each item becomes a [`SourceRow`] numbered from 1, so
//! that a bad item is answered with its position, field and rule while the
//! good ones proceed.

use crate::SourceRow;
use leadsignal_core::record::Scalar;
use leadsignal_core::{Origin, Sha256, StageChangeRecord, Violation};
use serde::Deserialize;
use serde_json::Value;

/// Deepest JSON nesting accepted (a record needs 3).
pub const MAX_DEPTH: usize = 16;

/// The shape of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestFormat {
    /// Stage-change records (the file import's JSON shape).
    Records,
    /// HubSpot webhook: an array of `contact.propertyChange` events.
    Hubspot,
    /// Salesforce outbound message: a SOAP envelope of `Notification`s.
    Salesforce,
}

impl IngestFormat {
    /// From the `?format=` parameter.
    pub fn parse(s: &str) -> Option<IngestFormat> {
        match s {
            "" | "records" | "json" => Some(IngestFormat::Records),
            "hubspot" => Some(IngestFormat::Hubspot),
            "salesforce" => Some(IngestFormat::Salesforce),
            _ => None,
        }
    }
}

/// Settings of the CRM-specific shapes.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The HubSpot property that holds the stage (`lifecyclestage`).
    pub hubspot_stage_property: String,
    /// The Salesforce field that holds Meta's lead ID (a custom field).
    pub salesforce_lead_id_field: String,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            hubspot_stage_property: "lifecyclestage".into(),
            salesforce_lead_id_field: "Meta_Lead_ID__c".into(),
        }
    }
}

/// One item of a body.
#[derive(Debug)]
pub enum Item {
    /// A stage change (or why it cannot be read).
    Row(Box<SourceRow>),
    /// Not a stage change (another HubSpot property, say): nothing to do.
    Ignored {
        /// Where the item is in the body.
        origin: Origin,
        /// Why it is not a stage change.
        reason: String,
    },
}

/// Why a whole body is refused (HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IngestError {
    /// Not JSON, or not the expected shape.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("JSON nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Splits a body into items; `source` names them (`source`, item number).
pub fn parse(
    body: &[u8],
    format: IngestFormat,
    opts: &IngestOptions,
    source: &str,
) -> Result<Vec<Item>, IngestError> {
    match format {
        IngestFormat::Records => records(body, source),
        IngestFormat::Hubspot => hubspot(body, opts, source),
        IngestFormat::Salesforce => salesforce(body, opts, source),
    }
}

/// Refuses JSON nested deeper than [`MAX_DEPTH`] before parsing it.
fn check_depth(body: &[u8]) -> Result<(), IngestError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(IngestError::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn json_items(body: &[u8]) -> Result<Vec<Value>, IngestError> {
    check_depth(body)?;
    let v: Value =
        serde_json::from_slice(body).map_err(|e| IngestError::Malformed(e.to_string()))?;
    match v {
        Value::Array(items) => Ok(items),
        Value::Object(_) => Ok(vec![v]),
        _ => Err(IngestError::Malformed(
            "expected a JSON object or an array of objects".into(),
        )),
    }
}

fn fingerprint(v: &Value) -> Sha256 {
    Sha256::of_bytes(&serde_json::to_vec(v).unwrap_or_default())
}

fn records(body: &[u8], source: &str) -> Result<Vec<Item>, IngestError> {
    Ok(json_items(body)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let fp = fingerprint(&v);
            let record = StageChangeRecord::deserialize(&v).map_err(|e| {
                let code = if v.is_object() {
                    "json.field"
                } else {
                    "json.syntax"
                };
                vec![Violation::new(code, None, e.to_string())]
            });
            Item::Row(Box::new(SourceRow {
                origin: Origin::new(source, i as u64 + 1),
                fingerprint: fp,
                record,
                warnings: Vec::new(),
            }))
        })
        .collect())
}

/// One HubSpot webhook event (the fields leadsignal reads).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HubspotEvent {
    subscription_type: Option<String>,
    object_id: Option<Value>,
    property_name: Option<String>,
    property_value: Option<Value>,
    occurred_at: Option<i64>,
}

fn scalar(v: &Value) -> Option<Scalar> {
    match v {
        Value::String(s) => Some(Scalar::Text(s.clone())),
        Value::Number(n) => n
            .as_u64()
            .map(|u| Scalar::Int(u.into()))
            .or_else(|| n.as_i64().map(|i| Scalar::Int(i.into())))
            .or_else(|| n.as_f64().map(Scalar::Float)),
        _ => None,
    }
}

fn hubspot(body: &[u8], opts: &IngestOptions, source: &str) -> Result<Vec<Item>, IngestError> {
    Ok(json_items(body)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let origin = Origin::new(source, i as u64 + 1);
            let fp = fingerprint(&v);
            let e = match HubspotEvent::deserialize(&v) {
                Ok(e) => e,
                Err(err) => {
                    return Item::Row(Box::new(SourceRow {
                        origin,
                        fingerprint: fp,
                        record: Err(vec![Violation::new("json.field", None, err.to_string())]),
                        warnings: Vec::new(),
                    }))
                }
            };
            let kind = e.subscription_type.as_deref().unwrap_or("");
            let property = e.property_name.as_deref().unwrap_or("");
            if !kind.ends_with(".propertyChange") || property != opts.hubspot_stage_property {
                return Item::Ignored {
                    origin,
                    reason: format!(
                        "not a change of {:?} ({kind} {property})",
                        opts.hubspot_stage_property
                    ),
                };
            }
            let record = StageChangeRecord {
                crm_id: e.object_id.as_ref().and_then(scalar),
                stage: e.property_value.as_ref().and_then(scalar),
                // occurredAt is in milliseconds.
                changed_at: e.occurred_at.map(|ms| Scalar::Int((ms / 1000).into())),
                ..Default::default()
            };
            Item::Row(Box::new(SourceRow {
                origin,
                fingerprint: fp,
                record: Ok(record),
                warnings: Vec::new(),
            }))
        })
        .collect())
}

/// Salesforce API field names and the record fields they fill.
const SALESFORCE_FIELDS: &[(&str, &str)] = &[
    ("Id", "crm_id"),
    ("Status", "stage"),
    ("LastModifiedDate", "changed_at"),
    ("CreatedDate", "lead_created_at"),
    ("Email", "email"),
    ("Phone", "phone"),
    ("MobilePhone", "phone"),
    ("FirstName", "first_name"),
    ("LastName", "last_name"),
    ("City", "city"),
    ("State", "state"),
    ("PostalCode", "zip"),
    ("Country", "country"),
];

fn salesforce(body: &[u8], opts: &IngestOptions, source: &str) -> Result<Vec<Item>, IngestError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().expand_empty_elements = true;
    let mut items = Vec::new();
    let mut fields: Option<Vec<(String, String)>> = None;
    let mut current: Option<String> = None;
    let mut text = String::new();
    let mut depth = 0usize;
    let mut buf = Vec::new();
    let malformed = |e: &dyn std::fmt::Display| IngestError::Malformed(format!("XML: {e}"));
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| malformed(&e))?
        {
            Event::Start(e) => {
                depth += 1;
                if depth > MAX_DEPTH * 2 {
                    return Err(IngestError::TooDeep);
                }
                let name = local(e.name().as_ref());
                if name == "sObject" {
                    fields = Some(Vec::new());
                } else if fields.is_some() {
                    current = Some(name);
                }
            }
            Event::Text(t) if current.is_some() => {
                text.push_str(&t.xml_content().map_err(|e| malformed(&e))?);
            }
            Event::GeneralRef(r) if current.is_some() => {
                let name = r.decode().map_err(|e| malformed(&e))?;
                match r.resolve_char_ref().map_err(|e| malformed(&e))? {
                    Some(c) => text.push(c),
                    None => text.push_str(
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| malformed(&format!("unknown entity &{name};")))?,
                    ),
                }
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                if local(e.name().as_ref()) == "sObject" {
                    let f = fields.take().unwrap_or_default();
                    items.push(salesforce_item(f, opts, source, items.len() + 1));
                } else if let (Some(f), Some(name)) = (fields.as_mut(), current.take()) {
                    f.push((name, text.trim().to_string()));
                }
                current = None;
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if items.is_empty() {
        return Err(IngestError::Malformed(
            "no Notification/sObject in the outbound message".into(),
        ));
    }
    Ok(items)
}

fn local(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    s.rsplit(':').next().unwrap_or("").to_string()
}

fn salesforce_item(
    fields: Vec<(String, String)>,
    opts: &IngestOptions,
    source: &str,
    n: usize,
) -> Item {
    let origin = Origin::new(source, n as u64);
    let mut raw = Vec::new();
    let mut map = serde_json::Map::new();
    for (name, value) in &fields {
        raw.extend_from_slice(name.as_bytes());
        raw.push(0);
        raw.extend_from_slice(value.as_bytes());
        raw.push(0);
        let field = if *name == opts.salesforce_lead_id_field {
            Some("lead_id")
        } else {
            SALESFORCE_FIELDS
                .iter()
                .find(|(sf, _)| sf == name)
                .map(|&(_, f)| f)
        };
        if let Some(f) = field {
            map.entry(f).or_insert_with(|| Value::String(value.clone()));
        }
    }
    let record = StageChangeRecord::deserialize(&Value::Object(map))
        .map_err(|e| vec![Violation::new("json.field", None, e.to_string())]);
    Item::Row(Box::new(SourceRow {
        origin,
        fingerprint: Sha256::of_bytes(&raw),
        record,
        warnings: Vec::new(),
    }))
}

/// Why a HubSpot signature is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HubspotSignatureError {
    /// `X-HubSpot-Signature-v3` or `X-HubSpot-Request-Timestamp` missing.
    #[error("X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp are required")]
    Missing,
    /// The timestamp is not a number of milliseconds, or is more than five
    /// minutes away (a replay).
    #[error("X-HubSpot-Request-Timestamp is more than 5 minutes away (or not a time)")]
    Stale,
    /// The signature does not match.
    #[error("X-HubSpot-Signature-v3 does not match the request")]
    Forged,
}

/// Checks HubSpot's v3 request signature: base64 of HMAC-SHA256, keyed with
/// the app's client secret, of method + URI (as HubSpot called it, e.g.
/// `https://leads.example.com/v1/stage-changes/hubspot`) + body + timestamp;
/// the timestamp (ms) must be within five minutes of `now_ms`.
pub fn verify_hubspot_v3(
    client_secret: &[u8],
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    now_ms: i64,
) -> Result<(), HubspotSignatureError> {
    use base64::Engine as _;
    use hmac::Mac;
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err(HubspotSignatureError::Missing);
    };
    let t: i64 = ts
        .trim()
        .parse()
        .map_err(|_| HubspotSignatureError::Stale)?;
    if (now_ms - t).abs() > 5 * 60 * 1000 {
        return Err(HubspotSignatureError::Stale);
    }
    let given = base64::engine::general_purpose::STANDARD
        .decode(sig.trim())
        .map_err(|_| HubspotSignatureError::Forged)?;
    hubspot_mac(client_secret, method, uri, body, ts.trim())
        .verify_slice(&given)
        .map_err(|_| HubspotSignatureError::Forged)
}

/// HMAC-SHA256 over what HubSpot signs (v3).
fn hubspot_mac(
    client_secret: &[u8],
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
) -> hmac::Hmac<sha2::Sha256> {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(client_secret).expect("HMAC takes any key");
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    mac
}

/// The v3 signature HubSpot would send (tests, tools).
pub fn sign_hubspot_v3(
    client_secret: &[u8],
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
) -> String {
    use base64::Engine as _;
    use hmac::Mac;
    let mac = hubspot_mac(client_secret, method, uri, body, timestamp);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Salesforce expects this answer to an outbound message; without it, it
/// delivers the message again.
pub const SALESFORCE_ACK: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(items: Vec<Item>) -> Vec<SourceRow> {
        items
            .into_iter()
            .filter_map(|i| match i {
                Item::Row(r) => Some(*r),
                Item::Ignored { .. } => None,
            })
            .collect()
    }

    #[test]
    fn records_one_or_many() {
        let one = parse(
            br#"{"lead_id":1234567890123456,"stage":"mql","changed_at":"2026-11-20T10:00:00Z"}"#,
            IngestFormat::Records,
            &IngestOptions::default(),
            "http",
        )
        .unwrap();
        assert_eq!(one.len(), 1);
        let many = rows(
            parse(
                br#"[{"lead_id":"1234567890123456","stage":"mql"},{"lead_id":1,"bogus":2},7]"#,
                IngestFormat::Records,
                &IngestOptions::default(),
                "http",
            )
            .unwrap(),
        );
        assert_eq!(many.len(), 3);
        assert!(many[0].record.is_ok());
        let e = many[1].record.as_ref().unwrap_err();
        assert_eq!(e[0].code, "json.field");
        assert!(e[0].message.contains("bogus"), "{}", e[0].message);
        assert_eq!(many[2].record.as_ref().unwrap_err()[0].code, "json.syntax");
        assert_eq!(many[2].origin.line, 3);
    }

    #[test]
    fn malformed_and_deep_bodies() {
        let o = IngestOptions::default();
        assert!(matches!(
            parse(b"{", IngestFormat::Records, &o, "h"),
            Err(IngestError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"42", IngestFormat::Records, &o, "h"),
            Err(IngestError::Malformed(_))
        ));
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(
            parse(deep.as_bytes(), IngestFormat::Records, &o, "h").unwrap_err(),
            IngestError::TooDeep
        );
        // Brackets inside strings do not count.
        let s = format!(r#"{{"stage":"{}"}}"#, "[".repeat(100));
        assert!(parse(s.as_bytes(), IngestFormat::Records, &o, "h").is_ok());
    }

    #[test]
    fn hubspot_property_changes() {
        let body = br#"[
          {"eventId":1,"subscriptionType":"contact.propertyChange","objectId":51,"propertyName":"lifecyclestage","propertyValue":"salesqualifiedlead","occurredAt":1795262400123},
          {"eventId":2,"subscriptionType":"contact.propertyChange","objectId":51,"propertyName":"email","propertyValue":"x@example.com","occurredAt":1795262400123},
          {"eventId":3,"subscriptionType":"contact.creation","objectId":52,"occurredAt":1795262400123}
        ]"#;
        let items = parse(body, IngestFormat::Hubspot, &IngestOptions::default(), "hs").unwrap();
        assert_eq!(items.len(), 3);
        assert!(matches!(items[1], Item::Ignored { .. }));
        assert!(matches!(items[2], Item::Ignored { .. }));
        let r = rows(items).remove(0).record.unwrap();
        assert_eq!(r.crm_id, Some(Scalar::Int(51)));
        assert_eq!(r.stage, Some(Scalar::Text("salesqualifiedlead".into())));
        assert_eq!(r.changed_at, Some(Scalar::Int(1_795_262_400)));
    }

    #[test]
    fn hubspot_v3_signatures() {
        let (secret, uri, body) = (
            b"client-secret".as_slice(),
            "https://leads.example.com/v1/stage-changes/hubspot",
            b"[]".as_slice(),
        );
        let now = 1_795_262_400_000i64;
        let ts = now.to_string();
        let sig = sign_hubspot_v3(secret, "POST", uri, body, &ts);
        assert_eq!(
            verify_hubspot_v3(secret, "POST", uri, body, Some(&ts), Some(&sig), now + 1000),
            Ok(())
        );
        assert_eq!(
            verify_hubspot_v3(secret, "POST", uri, body, None, Some(&sig), now),
            Err(HubspotSignatureError::Missing)
        );
        assert_eq!(
            verify_hubspot_v3(
                secret,
                "POST",
                uri,
                body,
                Some(&ts),
                Some(&sig),
                now + 301_000
            ),
            Err(HubspotSignatureError::Stale)
        );
        assert_eq!(
            verify_hubspot_v3(secret, "POST", uri, b"[1]", Some(&ts), Some(&sig), now),
            Err(HubspotSignatureError::Forged)
        );
        assert_eq!(
            verify_hubspot_v3(b"other", "POST", uri, body, Some(&ts), Some(&sig), now),
            Err(HubspotSignatureError::Forged)
        );
        assert_eq!(
            verify_hubspot_v3(
                secret,
                "POST",
                "https://evil.example/x",
                body,
                Some(&ts),
                Some(&sig),
                now
            ),
            Err(HubspotSignatureError::Forged)
        );
        assert_eq!(
            verify_hubspot_v3(
                secret,
                "POST",
                uri,
                body,
                Some(&ts),
                Some("not base64!"),
                now
            ),
            Err(HubspotSignatureError::Forged)
        );
    }

    #[test]
    fn salesforce_outbound_message() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D000000000001</OrganizationId>
   <ActionId>04k000000000001</ActionId>
   <SessionId xsi:nil="true"/>
   <Notification>
    <Id>04l000000000001</Id>
    <sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>00Q000000000001</sf:Id>
     <sf:Email>Jane.Doe@Example.com</sf:Email>
     <sf:LastModifiedDate>2026-11-20T10:00:00.000Z</sf:LastModifiedDate>
     <sf:Meta_Lead_ID__c>1234567890123456</sf:Meta_Lead_ID__c>
     <sf:Status>Working &amp; Contacted</sf:Status>
    </sObject>
   </Notification>
   <Notification>
    <Id>04l000000000002</Id>
    <sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>00Q000000000002</sf:Id>
     <sf:Status>Qualified</sf:Status>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#;
        let r = rows(
            parse(
                body,
                IngestFormat::Salesforce,
                &IngestOptions::default(),
                "sf",
            )
            .unwrap(),
        );
        assert_eq!(r.len(), 2);
        let first = r[0].record.as_ref().unwrap();
        assert_eq!(first.crm_id, Some(Scalar::Text("00Q000000000001".into())));
        assert_eq!(first.lead_id, Some(Scalar::Text("1234567890123456".into())));
        assert_eq!(
            first.stage,
            Some(Scalar::Text("Working & Contacted".into()))
        );
        assert_eq!(
            first.email,
            Some(Scalar::Text("Jane.Doe@Example.com".into()))
        );
        assert_eq!(r[1].origin.line, 2);
        assert!(parse(
            b"<a><b></a>",
            IngestFormat::Salesforce,
            &IngestOptions::default(),
            "sf"
        )
        .is_err());
        assert!(parse(
            b"<a/>",
            IngestFormat::Salesforce,
            &IngestOptions::default(),
            "sf"
        )
        .is_err());
    }
}
