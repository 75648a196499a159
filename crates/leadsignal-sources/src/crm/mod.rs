//! CRMs read through their APIs (no export, no database access): each
//! source turns the CRM's stage history after a cursor into stage-change
//! rows, the way `sql.rs` does for a CRM's database, so that
//! `leadsignal_intake::poll_source` stores each poll's rows and the cursor
//! after them in one transaction.
//!
//! - [`hubspot`]: contacts, one row per lifecycle stage date.
//! - [`pipedrive`]: deals, one row per stage change and won/lost from
//!   each deal's change log, and its creation.
//! - [`salesforce`]: leads, one row per `LeadHistory` status change and
//!   creation.
//!
//! HTTP goes through `http.rs`: a blocking agent (the same code runs from
//! `sync` and from `serve`'s background thread), bounded retries of 429
//! and 5xx answers honouring `Retry-After`, and errors that name the source
//! and never carry its token.

mod http;
pub mod hubspot;
pub mod pipedrive;
pub mod salesforce;

pub use http::CrmError;
pub use hubspot::HubspotSource;
pub use pipedrive::PipedriveSource;
pub use salesforce::SalesforceSource;
