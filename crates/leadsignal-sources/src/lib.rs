//! # leadsignal-sources
//!
//! Turns what a CRM hands over into stage-change records, one at a time and
//! with its position, so that a bad row is reported by file and line and
//! never stops the good ones: files (CSV and JSONL in the record shape of
//! ARCHITECTURE.md, CRM presets), HTTP ingest bodies (`ingest`: records, HubSpot
//! webhooks, Salesforce outbound messages) and Meta's Lead Ads webhook
//! (`webhook`: subscription check, signature, leadgen changes), and CRM
//! databases (`sql`).
//!
//! It only reads: it does not prepare events (the intake does, through
//! `leadsignal-core`), store or send them, and it holds no state between
//! calls but a reader's position.

#![warn(missing_docs)]

pub mod crm;
pub mod decode;
pub mod file;
pub mod ingest;
pub mod mapping;
pub mod sql;
pub mod webhook;

pub use decode::{Detected, TextEncoding};
pub use file::{FileFormat, FileRows, ReadStats, SourceError};
pub use mapping::{Mapping, StageDate, PRESETS};

use leadsignal_core::{Origin, Sha256, StageChange, StageChangeRecord, Violation, Warning};

/// One row read from a source: where it is, and the record or why it could
/// not be read.
#[derive(Debug)]
pub struct SourceRow {
    /// Source name and 1-based line of the row's start.
    pub origin: Origin,
    /// SHA-256 of the raw row (CSV fields or the JSON line): recognizes the
    /// same row again without keeping its content.
    pub fingerprint: Sha256,
    /// The record, or what is wrong with the row.
    pub record: Result<StageChangeRecord, Vec<Violation>>,
    /// How the row was read, where the user should know (an ambiguous
    /// local time, a status without a time, two lead IDs in one row).
    pub warnings: Vec<Warning>,
}

impl SourceRow {
    /// Checks the record's fields and builds the stage change.
    pub fn into_stage_change(self) -> Result<StageChange, (Origin, Vec<Violation>)> {
        match self.record {
            Ok(r) => r
                .into_stage_change(self.origin.clone())
                .map_err(|v| (self.origin, v)),
            Err(v) => Err((self.origin, v)),
        }
    }
}
