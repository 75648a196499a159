//! One source row through the rules: the step every way in (`import`,
//! `sync`, polled sources, `serve`'s ingest and webhook, `demo`) takes
//! between reading a stage change and storing it, and `validate` takes
//! without storing. A row becomes a prepared event or a rejection, with
//! every warning the user should see (the reader's and `prepare`'s).

use leadsignal_core::{prepare, Origin, PrepareConfig, Prepared, StageChange, Violation, Warning};
use leadsignal_sources::SourceRow;
use leadsignal_store::Incoming;

/// A source row after the rules.
pub enum Checked {
    /// A stage change that became an event (possibly too old to send: see
    /// [`Prepared::is_expired`]).
    Event {
        /// The event.
        prepared: Box<Prepared>,
        /// Where it came from.
        origin: Origin,
        /// The CRM record ID.
        crm_id: Option<String>,
        /// When the lead was created.
        lead_created_at: Option<i64>,
    },
    /// A row that breaks a rule.
    Rejected {
        /// Where it came from.
        origin: Origin,
        /// Hex SHA-256 of the raw row.
        fingerprint: String,
        /// Every reason.
        violations: Vec<Violation>,
    },
}

/// Whether a rejection is only "not production data" (a Meta test lead):
/// kept aside and counted, never sent, not an error.
pub fn skipped(violations: &[Violation]) -> bool {
    !violations.is_empty()
        && violations
            .iter()
            .all(|v| v.code == leadsignal_core::TEST_LEAD)
}

impl Checked {
    /// The outbox item (the event encoded in its stored form).
    pub fn into_incoming(self) -> Incoming {
        match self {
            Checked::Event {
                prepared,
                origin,
                crm_id,
                lead_created_at,
            } => Incoming::event(prepared, origin, crm_id, lead_created_at),
            Checked::Rejected {
                origin,
                fingerprint,
                violations,
            } => Incoming::Rejected {
                origin,
                fingerprint,
                violations,
            },
        }
    }

    /// Where it came from.
    pub fn origin(&self) -> &Origin {
        match self {
            Checked::Event { origin, .. } | Checked::Rejected { origin, .. } => origin,
        }
    }
}

/// Reads `row` into a stage change and prepares its event at `now`. The
/// warnings are the reader's and `prepare`'s (values dropped are in the
/// event's `dropped`).
pub fn check(mut row: SourceRow, pc: &PrepareConfig, now: i64) -> (Checked, Vec<Warning>) {
    let mut warnings = std::mem::take(&mut row.warnings);
    let fingerprint = row.fingerprint;
    let checked = match row.into_stage_change() {
        Err((origin, violations)) => Checked::Rejected {
            origin,
            fingerprint: fingerprint.to_string(),
            violations,
        },
        Ok(sc) => check_change(sc, fingerprint, pc, now, &mut warnings),
    };
    (checked, warnings)
}

/// Prepares the event of a stage change at `now`, adding `prepare`'s
/// warnings to `warnings`. `fingerprint` identifies the raw input in a
/// rejection (a row's SHA-256, or what a webhook names it by); it is only
/// formatted for a rejection.
pub fn check_change(
    sc: StageChange,
    fingerprint: impl std::fmt::Display,
    pc: &PrepareConfig,
    now: i64,
    warnings: &mut Vec<Warning>,
) -> Checked {
    match prepare(&sc, pc, now) {
        Ok(mut p) => {
            warnings.append(&mut p.warnings);
            Checked::Event {
                prepared: Box::new(p),
                origin: sc.origin,
                crm_id: sc.crm_id,
                lead_created_at: sc.lead_created_at,
            }
        }
        Err(violations) => Checked::Rejected {
            origin: sc.origin,
            fingerprint: fingerprint.to_string(),
            violations,
        },
    }
}
