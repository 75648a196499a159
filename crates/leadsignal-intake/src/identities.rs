//! The same e-mail or phone under two CRM record IDs within one file.

use crate::check::Checked;
use leadsignal_core::Warning;

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
