//! One source row through the rules: the step `import`, `sync`, `poll`,
//! `validate` and `serve` share between reading a row and storing it. A
//! row becomes a prepared event or a rejection, with every warning the
//! user should see (the reader's, `prepare`'s, and the identity check's).

use leadsignal_core::{prepare, Origin, PrepareConfig, Prepared, Violation, Warning};
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
    let fingerprint = row.fingerprint;
    let mut warnings = std::mem::take(&mut row.warnings);
    let rejected = |origin, violations| Checked::Rejected {
        origin,
        fingerprint: fingerprint.to_string(),
        violations,
    };
    let checked = match row.into_stage_change() {
        Err((origin, violations)) => rejected(origin, violations),
        Ok(sc) => match prepare(&sc, pc, now) {
            Ok(mut p) => {
                warnings.append(&mut p.warnings);
                Checked::Event {
                    prepared: Box::new(p),
                    origin: sc.origin,
                    crm_id: sc.crm_id,
                    lead_created_at: sc.lead_created_at,
                }
            }
            Err(violations) => rejected(sc.origin, violations),
        },
    };
    (checked, warnings)
}

/// Finds the same e-mail or phone under two CRM record IDs within one
/// file: two records for one person (a duplicate in the CRM, or a shared
/// address), whose events Meta ties to the same person.
///
/// A table of [`SLOTS`] slots, each (digest tag, record ID hash, line),
/// placed by the address's digest: 6 MiB at most whatever the file's size,
/// allocated zeroed (untouched pages cost nothing, so a small file uses a
/// few KiB). Two addresses meeting in one slot replace each other: in a file
/// of more than some hundred thousand addresses a duplicate may go unseen;
/// one is never reported wrongly (the 32-bit tags must match).
pub struct Identities {
    slots: Vec<[u32; 3]>,
}

/// Slots of the table.
pub const SLOTS: usize = 1 << 19;

impl Default for Identities {
    fn default() -> Self {
        Identities {
            slots: vec![[0; 3]; SLOTS],
        }
    }
}

impl Identities {
    /// Checks an event's e-mails and phones; warns once per row.
    pub fn check(&mut self, checked: &Checked, warnings: &mut Vec<Warning>) {
        let Checked::Event {
            prepared,
            origin,
            crm_id: Some(crm),
            ..
        } = checked
        else {
            return;
        };
        let crm = crm_hash(crm);
        let line = origin.line.min(u64::from(u32::MAX)) as u32;
        let u = &prepared.event.user_data;
        let keys =
            u.em.iter()
                .map(|h| ("e-mail address", h))
                .chain(u.ph.iter().map(|h| ("phone number", h)));
        for (what, digest) in keys {
            let mut key = [0u8; 8];
            key.copy_from_slice(&digest.0[..8]);
            let key = u64::from_le_bytes(key) ^ what.len() as u64;
            // A tag is never 0, the empty slot's.
            let tag = (key >> 32) as u32 | 1;
            let slot = &mut self.slots[key as usize & (SLOTS - 1)];
            let [seen_tag, other, at] = *slot;
            if seen_tag != tag {
                *slot = [tag, crm, line];
                continue;
            }
            if other != crm && at != line {
                if !warnings.iter().any(|w| w.rule == "identity.duplicate") {
                    warnings.push(Warning::new(
                        if what.starts_with('e') { "email" } else { "phone" },
                        "identity.duplicate",
                        format!(
                            "the same {what} as the record on line {at}, which has another CRM record ID: two records for one person? Meta ties both to the same person"
                        ),
                    ));
                }
                return;
            }
        }
    }
}

fn crm_hash(crm: &str) -> u32 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    crm.hash(&mut h);
    h.finish() as u32
}
