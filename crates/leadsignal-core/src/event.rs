//! `ServerEvent`: the exact JSON object Meta receives for one event.

use crate::event_id::EventId;
use crate::hash::Sha256;
use crate::lead_id::LeadId;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::sync::Arc;

/// The digests of one hashed key (usually one; Meta accepts a list).
pub type Hashes = SmallVec<[Sha256; 1]>;

/// Always `system_generated` for Conversion Leads.
pub const ACTION_SOURCE: &str = "system_generated";
/// Always `crm` for Conversion Leads.
pub const EVENT_SOURCE: &str = "crm";

/// One event of the `data` array of `POST /{dataset_id}/events`.
/// Field order follows Meta's documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerEvent {
    /// The funnel stage's name.
    pub event_name: Arc<str>,
    /// Unix seconds when the stage changed.
    pub event_time: i64,
    /// Always `system_generated` for CRM events.
    pub action_source: Cow<'static, str>,
    /// Deterministic ID (see [`crate::event_id`]).
    pub event_id: EventId,
    /// Identifiers, hashed where Meta requires it.
    pub user_data: Box<UserData>,
    /// `event_source`, `lead_event_source` (and legacy fields by profile).
    pub custom_data: CustomData,
    /// `["LDU"]` or `[]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_processing_options: Option<Vec<String>>,
    /// 0 or 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_processing_options_country: Option<i64>,
    /// 0 or 1000–1013.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_processing_options_state: Option<i64>,
}

/// `user_data`. Hashed keys are arrays of lowercase hex SHA-256 digests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserData {
    /// Meta lead ID, a JSON integer, never hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<LeadId>,
    /// Hashed e-mail addresses (`em`).
    #[serde(default, skip_serializing_if = "SmallVec::is_empty")]
    pub em: Hashes,
    /// Hashed phone numbers with their country code (`ph`).
    #[serde(default, skip_serializing_if = "SmallVec::is_empty")]
    pub ph: Hashes,
    /// First name.
    #[serde(default, rename = "fn", skip_serializing_if = "SmallVec::is_empty")]
    pub fn_: Hashes,
    /// Last name.
    #[serde(default, skip_serializing_if = "SmallVec::is_empty")]
    pub ln: Hashes,
    /// Hashed gender initial (`ge`).
    #[serde(default, skip_serializing_if = "SmallVec::is_empty")]
    pub ge: Hashes,
    /// Date of birth.
    #[serde(default, skip_serializing_if = "SmallVec::is_empty")]
    pub db: Hashes,
    /// Hashed city (`ct`).
    #[serde(default, skip_serializing_if = "SmallVec::is_empty")]
    pub ct: Hashes,
    /// Hashed state or region (`st`).
    #[serde(default, skip_serializing_if = "SmallVec::is_empty")]
    pub st: Hashes,
    /// Postal code.
    #[serde(default, skip_serializing_if = "SmallVec::is_empty")]
    pub zp: Hashes,
    /// Hashed ISO country code (`country`).
    #[serde(default, skip_serializing_if = "SmallVec::is_empty")]
    pub country: Hashes,
    /// Advertiser's ID for the person.
    #[serde(default, skip_serializing_if = "SmallVec::is_empty")]
    pub external_id: Hashes,
    /// Click ID, unhashed, byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbc: Option<String>,
    /// Browser ID, unhashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbp: Option<String>,
}

impl UserData {
    /// The slot of a hashed field.
    pub fn slot_mut(&mut self, field: crate::Field) -> &mut Hashes {
        use crate::Field::*;
        match field {
            Em => &mut self.em,
            Ph => &mut self.ph,
            Fn => &mut self.fn_,
            Ln => &mut self.ln,
            Ge => &mut self.ge,
            Db => &mut self.db,
            Ct => &mut self.ct,
            St => &mut self.st,
            Zp => &mut self.zp,
            Country => &mut self.country,
            ExternalId => &mut self.external_id,
        }
    }

    /// The hashed values of a field.
    pub fn slot(&self, field: crate::Field) -> &[Sha256] {
        use crate::Field::*;
        match field {
            Em => &self.em,
            Ph => &self.ph,
            Fn => &self.fn_,
            Ln => &self.ln,
            Ge => &self.ge,
            Db => &self.db,
            Ct => &self.ct,
            St => &self.st,
            Zp => &self.zp,
            Country => &self.country,
            ExternalId => &self.external_id,
        }
    }

    /// Present keys as bits: bit 0 = `lead_id`, bit `1 + field` = a hashed
    /// field (in [`crate::Field`] order), then `fbc` and `fbp`.
    pub fn key_mask(&self) -> u32 {
        let mut m = u32::from(self.lead_id.is_some());
        for f in crate::Field::ALL {
            if !self.slot(f).is_empty() {
                m |= 1 << (f as u32 + 1);
            }
        }
        m | u32::from(self.fbc.is_some()) << 12 | u32::from(self.fbp.is_some()) << 13
    }

    /// Meta keys present in this `user_data` (match-key coverage).
    pub fn keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.lead_id.is_some() {
            keys.push("lead_id");
        }
        for f in crate::Field::ALL {
            if !self.slot(f).is_empty() {
                keys.push(f.meta_key());
            }
        }
        if self.fbc.is_some() {
            keys.push("fbc");
        }
        if self.fbp.is_some() {
            keys.push("fbp");
        }
        keys
    }
}

/// The event's `custom_data`: where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomData {
    /// Always `crm`.
    pub event_source: Cow<'static, str>,
    /// The CRM's name (`[crm] name`).
    pub lead_event_source: Arc<str>,
    /// `legacy-v7` profile only: Meta's lifecycle category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facebook_lifecycle_stage_name: Option<String>,
    /// `legacy-v7` profile only: the CRM's own stage name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_stage_name: Option<String>,
}

/// The body of `POST /{api_version}/{dataset_id}/events`, less the access
/// token (added by the client at send time, never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsRequest<E = ServerEvent> {
    /// 1 to 1000 events.
    pub data: Vec<E>,
    /// Routes the events to Test Events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_event_code: Option<String>,
    /// Platform identifier agreed with Meta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_agent: Option<String>,
}
