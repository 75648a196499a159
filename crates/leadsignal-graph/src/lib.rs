//! leadsignal's side of Meta's Graph API.
//!
//! - [`client`]: `POST /{version}/{dataset_id}/events` and lead retrieval,
//!   with `appsecret_proof`, timeouts and connection reuse.
//! - [`outcome`]: what an answer means for delivery (accepted, transient,
//!   rate limited, rejected, auth), read from codes, never from the
//!   localized messages.
//!
//! It is only the client: the stand-in for Meta that tests, benchmarks and
//! the demo talk to is the `leadsignal-sandbox` crate, so this crate carries
//! no HTTP server.

pub mod client;
pub mod outcome;
pub mod proof;

pub use client::{ClientConfig, Credentials, DatasetCheck, GraphClient, Lead, SendOptions};
pub use outcome::{GraphError, Outcome, TransientCause, Usage};
pub use proof::ProofMode;
