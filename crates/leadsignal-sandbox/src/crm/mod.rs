//! Emulators of the CRM APIs leadsignal's API sources read, each for
//! exactly the endpoints used, written from the CRM's public API reference.

pub mod hubspot;

pub use hubspot::{hubspot_time, start_hubspot, HubspotConfig, HubspotContact, HubspotHandle};
