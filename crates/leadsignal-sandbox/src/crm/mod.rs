//! Emulators of the CRM APIs leadsignal's API sources read, each for
//! exactly the endpoints used, written from the CRM's public API reference.

pub mod hubspot;
pub mod pipedrive;
pub mod salesforce;

pub use hubspot::{
    hubspot_time, start_hubspot, HubspotConfig, HubspotContact, HubspotHandle, DEAL_STAGES,
};
pub use pipedrive::{start_pipedrive, PipedriveHandle, PIPEDRIVE_STAGES};
pub use salesforce::{salesforce_time, start_salesforce, SalesforceConfig, SalesforceHandle};
