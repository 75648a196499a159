//! Deterministic event IDs and lead keys.

use crate::hash::Sha256;
use crate::lead_id::LeadId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Who a stage change is about, for idempotency: the Meta lead ID when known,
/// else the CRM record ID, else the first hashed identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum LeadKey {
    /// Meta lead ID.
    LeadId(LeadId),
    /// CRM record ID.
    CrmId(String),
    /// A hashed identifier (`em`, `ph`, `external_id`, ...) when neither ID is known.
    Hashed {
        /// Meta key of the identifier.
        key: String,
        /// Its digest.
        hash: Sha256,
    },
}

impl fmt::Display for LeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeadKey::LeadId(id) => write!(f, "lead_id:{id}"),
            LeadKey::CrmId(id) => write!(f, "crm_id:{id}"),
            LeadKey::Hashed { key, hash } => write!(f, "{key}:{hash}"),
        }
    }
}

/// A deterministic event ID: 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId([u8; 32]);

impl EventId {
    /// The ID as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }

    /// The ID's ASCII bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses an ID of 32 hex digits.
    pub fn parse(s: &str) -> Option<EventId> {
        let b = s.as_bytes();
        (b.len() == 32
            && b.iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)))
        .then(|| EventId(b.try_into().expect("length checked")))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.as_str())
    }
}

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        EventId::parse(&s)
            .ok_or_else(|| serde::de::Error::custom("expected 32 lowercase hex digits"))
    }
}

/// Stack buffer for the hashed material.
type Material = smallvec::SmallVec<[u8; 128]>;

/// Appends `bytes` with a one-byte length (or a marker and a digest when
/// longer than 127 bytes), so that the material is unambiguous.
fn push_field(material: &mut Material, bytes: &[u8]) {
    if bytes.len() < 128 {
        material.push(bytes.len() as u8);
        material.extend_from_slice(bytes);
    } else {
        material.push(0xff);
        material.extend_from_slice(&Sha256::of_bytes(bytes).0);
    }
}

/// Numeric strings (dataset IDs) as 8 bytes, others length-prefixed.
fn push_id(material: &mut Material, id: &str) {
    match id.parse::<u64>() {
        Ok(n) if !id.starts_with('0') && id.len() <= 19 => {
            material.push(0xfe);
            material.extend_from_slice(&n.to_be_bytes());
        }
        _ => push_field(material, id.as_bytes()),
    }
}

/// The `event_id` of an event: XXH3-128, in hex, of (dataset, lead, stage,
/// event_time), so that re-sending or re-importing the same stage change
/// always yields the same ID, and Meta and the outbox can deduplicate. The
/// material holds IDs and digests only (never raw contact data) and the ID
/// is no secret, so a fast non-cryptographic 128-bit hash is enough: the
/// chance of any two of a billion events colliding is below 10⁻²¹. The
/// material is a compact binary encoding (fields length-prefixed, so that
/// different inputs never give the same material).
pub fn event_id(dataset_id: &str, lead: &LeadKey, stage: &str, event_time: i64) -> EventId {
    let mut material = Material::new();
    material.push(1); // version
    push_id(&mut material, dataset_id);
    match lead {
        LeadKey::LeadId(id) => {
            material.push(b'L');
            material.extend_from_slice(&id.get().to_be_bytes());
        }
        LeadKey::CrmId(id) => {
            material.push(b'C');
            push_field(&mut material, id.as_bytes());
        }
        LeadKey::Hashed { key, hash } => {
            material.push(b'H');
            push_field(&mut material, key.as_bytes());
            material.extend_from_slice(&hash.0);
        }
    }
    push_field(&mut material, stage.as_bytes());
    material.extend_from_slice(&event_time.to_be_bytes());
    let digest = xxhash_rust::xxh3::xxh3_128(&material).to_be_bytes();
    let mut hex = [0u8; 32];
    faster_hex::hex_encode(&digest, &mut hex).expect("32 hex digits for 16 bytes");
    EventId(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sensitive_to_each_part() {
        let lead = LeadKey::LeadId(LeadId::parse("1234567890123456").unwrap());
        let a = event_id("1", &lead, "Lead", 100);
        assert_eq!(a, event_id("1", &lead, "Lead", 100));
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(EventId::parse(a.as_str()), Some(a));
        assert_ne!(a, event_id("2", &lead, "Lead", 100));
        assert_ne!(
            a,
            event_id("1", &LeadKey::CrmId("1234567890123456".into()), "Lead", 100)
        );
        assert_ne!(a, event_id("1", &lead, "MQL", 100));
        assert_ne!(a, event_id("1", &lead, "Lead", 101));
    }
}
