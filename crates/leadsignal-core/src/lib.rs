//! # leadsignal-core
//!
//! The pure heart of leadsignal: turns what a CRM says about a lead
//! ([`StageChange`]) into the exact event Meta's Conversions API receives for
//! Conversion Leads ([`ServerEvent`]), with every contact field normalized and
//! SHA-256-hashed per Meta's rules, the funnel mapped, and the rules checked.
//!
//! No I/O, no async, no clock: `now` is always an argument. It does not
//! read files, store events or talk to Meta; the crates above it do.
//!
//! ```
//! use leadsignal_core::*;
//! let cfg = PrepareConfig {
//!     dataset_id: "2780431635496611".into(),
//!     lead_event_source: "HubSpot".into(),
//!     funnel: Funnel::new(Funnel::default_stages(), false).unwrap(),
//!     normalize: NormalizeOptions { default_country: CountryCode::parse_alpha2("US"), ..Default::default() },
//!     time: TimeRules::default(),
//!     profile: Profile::ConversionLeads,
//!     identity: IdentityRules::default(),
//! };
//! let now = 1_763_700_000;
//! let sc = StageChange {
//!     lead_id: Some(LeadId::parse("1234567890123456").unwrap()),
//!     stage: "mql".into(),
//!     changed_at: now - 3600,
//!     contact: Contact { email: Some(" John_Smith@gmail.com".into()), ..Default::default() },
//!     ..Default::default()
//! };
//! let p = prepare(&sc, &cfg, now).unwrap();
//! assert_eq!(&*p.event.event_name, "Marketing Qualified Lead");
//! assert_eq!(p.event.user_data.em[0].to_string(),
//!            "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f");
//! ```

#![warn(missing_docs)]

pub mod event;
pub mod event_id;
pub mod full_name;
pub mod funnel;
pub mod hash;
mod json;
pub mod lead_id;
pub mod normalize;
pub mod prepare;
pub mod profile;
pub mod record;
pub mod redact;
pub mod rules;
pub mod sample;
pub mod stage_change;
pub mod violation;

pub use event::{CustomData, EventsRequest, Hashes, ServerEvent, UserData};
pub use event_id::{event_id, EventId, LeadKey};
pub use full_name::split_full_name;
pub use funnel::{Funnel, FunnelError, Lifecycle, StageIndex, StageRef, StageSpec};
pub use hash::Sha256;
pub use lead_id::{LeadId, LeadIdError};
pub use normalize::{
    hash_field, lookup_country, normalize, normalize_into, Context, CountryCode, DateOrder,
    DropReason, Field, NormalizeOptions, Normalized,
};
pub use prepare::{
    key_bit, key_names, prepare, IdentityRules, PrepareConfig, Prepared, DEFAULT_MATCH_KEYS,
    TEST_LEAD,
};
pub use profile::{OfflineEvent, Profile, RetiredApi};
pub use record::{record_fields, Scalar, StageChangeRecord};
pub use rules::TimeRules;
pub use stage_change::{Contact, DataProcessing, Origin, StageChange};
pub use violation::{Dropped, Violation, Warning};
