//! A typical event, shared by the benchmarks (`benches/prepare.rs` and
//! `leadsignal bench`) so that both measure the same thing.

use crate::{
    Contact, CountryCode, DateOrder, Funnel, LeadId, NormalizeOptions, PrepareConfig, Profile,
    StageChange, TimeRules,
};

/// The configuration the typical event is prepared with.
pub fn config() -> PrepareConfig {
    PrepareConfig {
        dataset_id: "2780431635496611".into(),
        lead_event_source: "HubSpot".into(),
        funnel: Funnel::new(Funnel::default_stages(), false).expect("the default funnel is valid"),
        normalize: NormalizeOptions {
            default_country: CountryCode::parse_alpha2("US"),
            date_order: DateOrder::Mdy,
        },
        time: TimeRules::default(),
        profile: Profile::ConversionLeads,
        identity: Default::default(),
    }
}

/// A lead reaching MQL an hour before `now`, with lead_id, em, ph, fn, ln,
/// ct, st, zp and country as a CRM holds them.
pub fn typical_stage_change(now: i64) -> StageChange {
    StageChange {
        lead_id: Some(LeadId::from_u64(1_234_567_890_123_456).expect("16 digits")),
        crm_id: Some("HS-1001".into()),
        stage: "mql".into(),
        changed_at: now - 3600,
        contact: Contact {
            email: Some("Jane.Doe@Example.com".into()),
            phone: Some("(650) 555-1212".into()),
            first_name: Some("Jane".into()),
            last_name: Some("Doe".into()),
            city: Some("Menlo Park".into()),
            state: Some("California".into()),
            zip: Some("94025-1234".into()),
            country: Some("United States".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The typical event's nine identifiers, already normalized: what a
/// pipeline that only hashes would digest (the physical floor).
pub const TYPICAL_NORMALIZED: [&str; 9] = [
    "1234567890123456",
    "jane.doe@example.com",
    "16505551212",
    "jane",
    "doe",
    "menlopark",
    "ca",
    "94025",
    "us",
];
