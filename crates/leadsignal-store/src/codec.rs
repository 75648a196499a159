//! The stored form of an event: the fields of the `ServerEvent` JSON that
//! the outbox row does not already hold (`event_name`, `event_time` and
//! `event_id` are columns), encoded compactly (postcard; digests as 32 raw
//! bytes instead of 64 hex digits; the constant `action_source` and
//! `event_source` as one byte), so that the outbox writes less than half as
//! many bytes per event. Decoding with the row's columns gives back the
//! identical `ServerEvent`.

use leadsignal_core::event::{ACTION_SOURCE, EVENT_SOURCE};
use leadsignal_core::{CustomData, EventId, Field, Hashes, LeadId, ServerEvent, Sha256, UserData};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Format version, first byte of every stored payload.
const VERSION: u8 = 2;

/// The columns of the outbox row that complete a stored payload.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    /// The event name (the funnel stage).
    pub event_name: &'a str,
    /// When the stage changed (`event_time`, Unix seconds).
    pub event_time: i64,
    /// The deterministic `event_id`.
    pub event_id: &'a str,
}

#[derive(Serialize)]
struct Out<'a> {
    /// None when it is `system_generated`.
    action_source: Option<&'a str>,
    lead_id: Option<u64>,
    hashes: [&'a [Sha256]; 11],
    fbc: Option<&'a str>,
    fbp: Option<&'a str>,
    /// None when it is `crm`.
    event_source: Option<&'a str>,
    lead_event_source: &'a str,
    facebook_lifecycle_stage_name: Option<&'a str>,
    lifecycle_stage_name: Option<&'a str>,
    data_processing_options: Option<&'a [String]>,
    data_processing_options_country: Option<i64>,
    data_processing_options_state: Option<i64>,
}

#[derive(Deserialize)]
struct In<'a> {
    #[serde(borrow)]
    action_source: Option<Cow<'a, str>>,
    lead_id: Option<u64>,
    hashes: [Vec<Sha256>; 11],
    fbc: Option<String>,
    fbp: Option<String>,
    #[serde(borrow)]
    event_source: Option<Cow<'a, str>>,
    #[serde(borrow)]
    lead_event_source: Cow<'a, str>,
    facebook_lifecycle_stage_name: Option<String>,
    lifecycle_stage_name: Option<String>,
    data_processing_options: Option<Vec<String>>,
    data_processing_options_country: Option<i64>,
    data_processing_options_state: Option<i64>,
}

/// Encodes an event for storage.
pub fn encode(e: &ServerEvent) -> Vec<u8> {
    let mut buf = Vec::with_capacity(512);
    encode_into(e, &mut buf);
    buf
}

/// Encodes an event for storage into `buf` (cleared first).
pub fn encode_into(e: &ServerEvent, buf: &mut Vec<u8>) {
    let u = &e.user_data;
    let out = Out {
        action_source: Some(&*e.action_source).filter(|s| *s != ACTION_SOURCE),
        lead_id: u.lead_id.map(LeadId::get),
        hashes: Field::ALL.map(|f| u.slot(f)),
        fbc: u.fbc.as_deref(),
        fbp: u.fbp.as_deref(),
        event_source: Some(&*e.custom_data.event_source).filter(|s| *s != EVENT_SOURCE),
        lead_event_source: &e.custom_data.lead_event_source,
        facebook_lifecycle_stage_name: e.custom_data.facebook_lifecycle_stage_name.as_deref(),
        lifecycle_stage_name: e.custom_data.lifecycle_stage_name.as_deref(),
        data_processing_options: e.data_processing_options.as_deref(),
        data_processing_options_country: e.data_processing_options_country,
        data_processing_options_state: e.data_processing_options_state,
    };
    buf.clear();
    buf.push(VERSION);
    postcard::to_io(&out, &mut *buf).expect("encoding to a Vec cannot fail");
}

/// Decodes a stored event, completed by its row's columns.
pub fn decode(bytes: &[u8], columns: Columns<'_>) -> Result<ServerEvent, String> {
    let (&version, body) = bytes.split_first().ok_or("empty payload")?;
    if version != VERSION {
        return Err(format!(
            "payload format {version} is not known to this leadsignal"
        ));
    }
    let i: In<'_> = postcard::from_bytes(body).map_err(|e| e.to_string())?;
    let lead_id = match i.lead_id {
        Some(v) => Some(LeadId::from_u64(v).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut user_data = UserData {
        lead_id,
        fbc: i.fbc,
        fbp: i.fbp,
        ..UserData::default()
    };
    for (f, hs) in Field::ALL.into_iter().zip(i.hashes) {
        *user_data.slot_mut(f) = Hashes::from_vec(hs);
    }
    let constant = |v: Option<Cow<'_, str>>, default: &'static str| match v {
        None => Cow::Borrowed(default),
        Some(s) => Cow::Owned(s.into_owned()),
    };
    Ok(ServerEvent {
        event_name: columns.event_name.into(),
        event_time: columns.event_time,
        action_source: constant(i.action_source, ACTION_SOURCE),
        event_id: EventId::parse(columns.event_id).ok_or("bad event_id")?,
        user_data: Box::new(user_data),
        custom_data: CustomData {
            event_source: constant(i.event_source, EVENT_SOURCE),
            lead_event_source: i.lead_event_source.as_ref().into(),
            facebook_lifecycle_stage_name: i.facebook_lifecycle_stage_name,
            lifecycle_stage_name: i.lifecycle_stage_name,
        },
        data_processing_options: i.data_processing_options,
        data_processing_options_country: i.data_processing_options_country,
        data_processing_options_state: i.data_processing_options_state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadsignal_core::sample::{config, typical_stage_change};
    use leadsignal_core::{prepare, DataProcessing, Profile};

    #[test]
    fn round_trip_is_exact_and_about_half_the_json() {
        let now = 1_795_262_400;
        let mut cfg = config();
        for legacy in [false, true] {
            if legacy {
                cfg.profile = Profile::LegacyV7;
            }
            let mut sc = typical_stage_change(now);
            sc.fbc = Some("fb.1.1700000000000.AbC".into());
            sc.data_processing = Some(DataProcessing {
                options: vec!["LDU".into()],
                country: Some(1),
                state: Some(1000),
            });
            let e = prepare(&sc, &cfg, now).unwrap().event;
            let bytes = encode(&e);
            let columns = Columns {
                event_name: &e.event_name,
                event_time: e.event_time,
                event_id: e.event_id.as_str(),
            };
            assert_eq!(decode(&bytes, columns).unwrap(), e);
            // Other constants than Meta's (never produced today) survive too.
            let mut odd = e.clone();
            odd.action_source = "website".into();
            odd.custom_data.event_source = "other".into();
            assert_eq!(decode(&encode(&odd), columns).unwrap(), odd);
            let json = serde_json::to_vec(&e).unwrap();
            assert!(
                bytes.len() * 2 < json.len() + 200,
                "{} vs {}",
                bytes.len(),
                json.len()
            );
        }
        let columns = Columns {
            event_name: "Lead",
            event_time: now,
            event_id: "0123456789abcdef0123456789abcdef",
        };
        assert!(decode(&[], columns).is_err());
        assert!(decode(&[9, 1, 2], columns)
            .unwrap_err()
            .contains("format 9"));
        assert!(decode(&[VERSION, 0xff], columns).is_err());
    }
}
