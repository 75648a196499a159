//! Payload profiles: which shape of event leadsignal produces.

use crate::event::Hashes;
use crate::event::ServerEvent;
use crate::prepare::Prepared;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::fmt;

/// The shape of the events produced (`[meta] profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Today's Conversion Leads payload (default).
    #[default]
    ConversionLeads,
    /// The 2020 "Lead Ads API Doc V7" server-side shape: today's payload plus
    /// `facebook_lifecycle_stage_name` and `lifecycle_stage_name` in `custom_data`.
    LegacyV7,
    /// The 2020 Offline Conversions shape (`match_keys`). Export only: the
    /// API that took it is retired.
    OfflineV7,
}

impl Profile {
    /// The profile's name in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::ConversionLeads => "conversion-leads",
            Profile::LegacyV7 => "legacy-v7",
            Profile::OfflineV7 => "offline-v7",
        }
    }

    /// Whether events of this profile may be sent to Meta.
    pub fn check_sendable(self) -> Result<(), RetiredApi> {
        match self {
            Profile::OfflineV7 => Err(RetiredApi),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Refusal to send the `offline-v7` profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the offline-v7 profile is the payload of Meta's Offline Conversions API, which Meta retired in May 2025 (offline events were no longer accepted from Graph API v17.0, and the API was discontinued when v16.0 expired on 2025-05-14); it can be exported for reference but never sent. Use profile \"conversion-leads\" (the Conversions API) instead")]
pub struct RetiredApi;

/// `match_keys` of the Offline Conversions API: hashed contact keys, and the
/// lead ID as an unhashed string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfflineMatchKeys {
    /// Hashed e-mail addresses (`em`).
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub email: Hashes,
    /// Hashed phone numbers with their country code (`ph`).
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub phone: Hashes,
    /// First name.
    #[serde(rename = "fn", skip_serializing_if = "SmallVec::is_empty")]
    pub fn_: Hashes,
    /// Last name.
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub ln: Hashes,
    /// Hashed gender initial (`ge`).
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub gen: Hashes,
    /// Hashed city (`ct`).
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub ct: Hashes,
    /// Hashed state or region (`st`).
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub st: Hashes,
    /// Postal code.
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub zip: Hashes,
    /// Hashed ISO country code (`country`).
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub country: Hashes,
    /// Advertiser ID.
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub extern_id: Hashes,
    /// Lead ID, unhashed, as a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<String>,
}

/// `custom_data` of the 2020 offline shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfflineCustomData {
    /// The CRM's name.
    pub lead_event_source: String,
    /// Meta lifecycle category.
    pub facebook_lifecycle_stage_name: String,
    /// The CRM's own stage name.
    pub lifecycle_stage_name: String,
}

/// One event in the retired Offline Conversions shape (export only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfflineEvent {
    /// Hashed match keys.
    pub match_keys: OfflineMatchKeys,
    /// Always `Other` in the 2020 document.
    pub event_name: &'static str,
    /// Unix seconds.
    pub event_time: i64,
    /// Lead stage information.
    pub custom_data: OfflineCustomData,
}

impl OfflineEvent {
    /// The offline shape of a prepared event; `crm_stage` is the CRM's own
    /// stage name (the stage change's `stage`). Date of birth is left out: the
    /// offline API wanted year, month and day hashed separately.
    pub fn from_prepared(p: &Prepared, crm_stage: &str) -> OfflineEvent {
        let u = &p.event.user_data;
        OfflineEvent {
            match_keys: OfflineMatchKeys {
                email: u.em.clone(),
                phone: u.ph.clone(),
                fn_: u.fn_.clone(),
                ln: u.ln.clone(),
                gen: u.ge.clone(),
                ct: u.ct.clone(),
                st: u.st.clone(),
                zip: u.zp.clone(),
                country: u.country.clone(),
                extern_id: u.external_id.clone(),
                lead_id: u.lead_id.map(|l| l.to_string()),
            },
            event_name: "Other",
            event_time: p.event.event_time,
            custom_data: OfflineCustomData {
                lead_event_source: p.event.custom_data.lead_event_source.to_string(),
                facebook_lifecycle_stage_name: p.lifecycle.as_str().to_string(),
                lifecycle_stage_name: crm_stage.trim().to_string(),
            },
        }
    }
}

/// Adds the `legacy-v7` fields to an event.
pub(crate) fn apply_legacy(event: &mut ServerEvent, lifecycle: &str, crm_stage: &str) {
    event.custom_data.facebook_lifecycle_stage_name = Some(lifecycle.to_string());
    event.custom_data.lifecycle_stage_name = Some(crm_stage.to_string());
}
