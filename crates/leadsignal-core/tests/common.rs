//! Shared helpers for the integration tests.
#![allow(dead_code)]

use leadsignal_core::*;

/// The tests' clock: 2026-11-21T12:00:00Z.
pub const NOW: i64 = 1_795_262_400;

pub fn config() -> PrepareConfig {
    PrepareConfig {
        dataset_id: "2780431635496611".into(),
        lead_event_source: "HubSpot".into(),
        funnel: Funnel::new(Funnel::default_stages(), false).unwrap(),
        normalize: NormalizeOptions {
            default_country: CountryCode::parse_alpha2("US"),
            date_order: DateOrder::Mdy,
        },
        time: TimeRules::default(),
        profile: Profile::ConversionLeads,
        identity: Default::default(),
    }
}

pub fn ctx(country: Option<&str>) -> Context {
    let opts = NormalizeOptions {
        default_country: country.and_then(CountryCode::parse_alpha2),
        date_order: DateOrder::Mdy,
    };
    Context::new(&opts, None, NOW)
}

pub fn norm(field: Field, value: &str, country: Option<&str>) -> Result<String, &'static str> {
    match normalize(field, value, &ctx(country)) {
        Ok(Normalized::Value(v)) => Ok(v),
        Ok(Normalized::PreHashed(h)) => Ok(h.to_string()),
        Err(e) => Err(e.rule),
    }
}
