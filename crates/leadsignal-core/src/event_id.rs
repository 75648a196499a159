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

/// The `event_id` of an event: 32 hex digits derived from (dataset, lead,
/// stage, event_time), so that re-sending or re-importing the same stage
/// change always yields the same ID, and Meta and the outbox can deduplicate.
pub fn event_id(dataset_id: &str, lead: &LeadKey, stage: &str, event_time: i64) -> String {
    let material = format!("leadsignal/event_id/v1\n{dataset_id}\n{lead}\n{stage}\n{event_time}");
    let hex = Sha256::of(&material).to_hex_bytes();
    String::from_utf8(hex[..32].to_vec()).expect("hex digits are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sensitive_to_each_part() {
        let lead = LeadKey::LeadId(LeadId::parse("1234567890123456").unwrap());
        let a = event_id("1", &lead, "Lead", 100);
        assert_eq!(a, event_id("1", &lead, "Lead", 100));
        assert_eq!(a.len(), 32);
        assert_ne!(a, event_id("2", &lead, "Lead", 100));
        assert_ne!(
            a,
            event_id("1", &LeadKey::CrmId("1234567890123456".into()), "Lead", 100)
        );
        assert_ne!(a, event_id("1", &lead, "MQL", 100));
        assert_ne!(a, event_id("1", &lead, "Lead", 101));
    }
}
