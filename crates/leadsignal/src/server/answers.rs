//! The API's answers to stage changes and webhook deliveries (their
//! OpenAPI schemas too), shared by the handlers that give them and the
//! metrics that count them.

use serde::{Deserialize, Serialize};

/// The answer to a batch of stage changes.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct IngestAnswer {
    /// Items in the body.
    pub(crate) received: usize,
    /// Stored, ready to send.
    pub(crate) accepted: usize,
    /// Already in the outbox: nothing added.
    pub(crate) already_known: usize,
    /// Stored, waiting for earlier stages (`hold` policy).
    pub(crate) held: usize,
    /// Older than Meta's 7-day window: stored as a stage of the lead, never
    /// sent (not an error).
    pub(crate) expired: usize,
    /// Not production data (leads made by Meta's testing tool): kept aside,
    /// never sent, not an error.
    pub(crate) skipped: usize,
    /// Not stage changes (e.g. another HubSpot property).
    pub(crate) ignored: usize,
    /// Rejected (and quarantined), with field and rule.
    pub(crate) rejected: usize,
    /// One entry per item, in order.
    pub(crate) items: Vec<ItemAnswer>,
}

/// What became of one item.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct ItemAnswer {
    /// 1-based position in the body.
    pub(crate) item: u64,
    /// `accepted`, `already_known`, `held`, `expired`, `skipped` (a Meta test
    /// lead), `ignored` or `rejected`.
    pub(crate) status: String,
    /// The stage as Meta receives it (`event_name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) event_name: Option<String>,
    /// The deterministic `event_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) event_id: Option<String>,
    /// Why it was rejected or ignored.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub(crate) errors: Vec<ItemError>,
}

/// One reason an item was rejected (never a raw contact value).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct ItemError {
    /// Record field, when the rule concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) field: Option<String>,
    /// Rule code (stable).
    pub(crate) rule: String,
    /// What is wrong (never the raw value).
    pub(crate) message: String,
}

/// What a delivery did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct WebhookAnswer {
    /// New leads stored.
    pub(crate) new_leads: usize,
    /// Leads already known (a repeated delivery).
    pub(crate) already_known: usize,
    /// Leads whose first stage could not be stored, with the rule.
    pub(crate) rejected: usize,
}
