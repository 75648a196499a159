//! Lead ID recovery: a stage change that lost Meta's lead ID (HubSpot's Lead
//! Sync and Zoho's integration do not store it) gets it back from the lead
//! index, the leads Meta generated, by the SHA-256 of their e-mail
//! addresses and phone numbers. Independent of the database: each backend
//! loads the index entries a batch asks for ([`wanted`]), lets [`recover`]
//! decide, and stores the batch's own leads ([`entries`]) in the index.
//!
//! The index holds digests only (the same ones Meta receives), never a raw
//! value. A recovered lead ID is added to the event's `user_data`; the
//! event's identity stays the CRM's record: its lead key, and so its
//! `event_id`, do not change (a re-import before and after recovery is the
//! same event).

use crate::model::Incoming;
use leadsignal_core::{LeadId, LeadKey, Sha256};
use std::collections::HashMap;

/// An index key: `e` or `p`, then the 32-byte digest of a normalized
/// e-mail or phone.
pub(crate) type IndexKey = [u8; 33];

fn key(kind: u8, h: &Sha256) -> IndexKey {
    let mut k = [0; 33];
    k[0] = kind;
    k[1..].copy_from_slice(&h.0);
    k
}

/// An index key as the database stores it: 64 bits of the digest, mixed
/// with the dataset and the kind. Eight bytes keep the index small (an
/// import writes one entry per lead and address); two different addresses
/// share one only with probability 2^-64 per pair.
pub(crate) fn db_key(dataset: &str, k: &IndexKey) -> i64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dataset.hash(&mut h);
    k[0].hash(&mut h);
    let mut digest = [0u8; 8];
    digest.copy_from_slice(&k[1..9]);
    (u64::from_le_bytes(digest) ^ h.finish()) as i64
}

/// The index keys of a stored event's e-mails and phones.
pub(crate) fn event_keys(e: &leadsignal_core::ServerEvent) -> Vec<IndexKey> {
    let u = &e.user_data;
    u.em.iter()
        .map(|h| key(b'e', h))
        .chain(u.ph.iter().map(|h| key(b'p', h)))
        .collect()
}

/// The one lead ID among index answers, if there is exactly one.
pub(crate) fn unique(ids: impl IntoIterator<Item = i64>) -> Option<u64> {
    let mut found: Option<i64> = None;
    for id in ids {
        match found {
            Some(f) if f != id => return None,
            _ => found = Some(id),
        }
    }
    found.map(|f| f as u64)
}

/// The index keys of an event's e-mails and phones.
fn keys_of(item: &Incoming) -> impl Iterator<Item = IndexKey> + '_ {
    let (em, ph) = match item {
        Incoming::Event { prepared, .. } => (
            &prepared.event.user_data.em[..],
            &prepared.event.user_data.ph[..],
        ),
        Incoming::Rejected { .. } => (&[][..], &[][..]),
    };
    em.iter()
        .map(|h| key(b'e', h))
        .chain(ph.iter().map(|h| key(b'p', h)))
}

fn lead_id_of(item: &Incoming) -> Option<LeadId> {
    match item {
        Incoming::Event { prepared, .. } => prepared.event.user_data.lead_id,
        Incoming::Rejected { .. } => None,
    }
}

/// The keys the batch's events without a lead ID look up.
pub(crate) fn wanted(batch: &[Incoming]) -> Vec<IndexKey> {
    let mut out: Vec<IndexKey> = batch
        .iter()
        .filter(|i| matches!(i, Incoming::Event { .. }) && lead_id_of(i).is_none())
        .flat_map(keys_of)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// What the batch adds to the index: each e-mail and phone of an event
/// that carries a lead ID, with the lead's creation time when given; only
/// for the leads `new` says (an import indexes a lead when it first sees
/// it, not again with each of its stages or each re-import).
pub(crate) fn entries(
    batch: &[Incoming],
    new: impl Fn(&LeadKey) -> bool,
) -> Vec<(IndexKey, i64, Option<i64>)> {
    let mut out: Vec<(IndexKey, i64, Option<i64>)> = Vec::new();
    for item in batch {
        let (
            Some(id),
            Incoming::Event {
                lead_created_at,
                prepared,
                ..
            },
        ) = (lead_id_of(item), item)
        else {
            continue;
        };
        if !new(&prepared.lead_key) {
            continue;
        }
        for k in keys_of(item) {
            out.push((k, id.get() as i64, *lead_created_at));
        }
    }
    // One entry per key and lead, the creation time where any row gave one.
    out.sort_unstable_by_key(|e| (e.0, e.1, e.2.is_none()));
    out.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    out
}

/// What recovery decided for one item of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Nothing to do: it has a lead ID, or no e-mail or phone, or none is
    /// in the index.
    None,
    /// Exactly one lead has its e-mail or phone.
    Found {
        /// Its lead ID.
        lead_id: LeadId,
        /// Its creation time, when the index has one.
        created_at: Option<i64>,
    },
    /// Its e-mails and phones belong to several leads: nothing attached.
    Ambiguous,
}

/// Decides, for each item of `batch`, from the index entries `found` (the
/// database's answers for [`wanted`]: key, lead ID, creation time) and
/// the batch's own [`entries`].
pub(crate) fn recover(batch: &[Incoming], found: &[(IndexKey, i64, Option<i64>)]) -> Vec<Recovery> {
    // The usual import: every event has its lead ID, nothing to look for.
    if batch
        .iter()
        .all(|i| !matches!(i, Incoming::Event { .. }) || lead_id_of(i).is_some())
    {
        return vec![Recovery::None; batch.len()];
    }
    let own = entries(batch, |_| true);
    let mut index: HashMap<&IndexKey, Vec<(i64, Option<i64>)>> = HashMap::new();
    for (k, id, created) in found.iter().chain(&own) {
        let leads = index.entry(k).or_default();
        match leads.iter_mut().find(|(l, _)| l == id) {
            Some(seen) => seen.1 = seen.1.or(*created),
            None => leads.push((*id, *created)),
        }
    }
    batch
        .iter()
        .map(|item| {
            if !matches!(item, Incoming::Event { .. }) || lead_id_of(item).is_some() {
                return Recovery::None;
            }
            let mut lead: Option<(i64, Option<i64>)> = None;
            for k in keys_of(item) {
                for &(id, created) in index.get(&k).into_iter().flatten() {
                    match lead {
                        Some((l, _)) if l != id => return Recovery::Ambiguous,
                        _ => lead = Some((id, created.or(lead.and_then(|l| l.1)))),
                    }
                }
            }
            match lead.and_then(|(id, created)| Some((LeadId::from_u64(id as u64).ok()?, created)))
            {
                Some((lead_id, created_at)) => Recovery::Found {
                    lead_id,
                    created_at,
                },
                None => Recovery::None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadsignal_core::sample::config;
    use leadsignal_core::{prepare, Contact, Origin, StageChange};

    const NOW: i64 = 1_795_262_400;

    fn item(lead: Option<u64>, crm: &str, email: &str, created: Option<i64>) -> Incoming {
        let sc = StageChange {
            lead_id: lead.map(|l| LeadId::from_u64(l).unwrap()),
            crm_id: Some(crm.into()),
            stage: "new".into(),
            changed_at: NOW - 60,
            contact: Contact {
                email: Some(email.into()),
                ..Default::default()
            },
            origin: Origin::new("t", 1),
            ..Default::default()
        };
        Incoming::event(
            prepare(&sc, &config(), NOW).unwrap(),
            sc.origin,
            sc.crm_id,
            created,
        )
    }

    const A: u64 = 1_054_367_891_260_001;
    const B: u64 = 1_054_367_891_260_002;

    #[test]
    fn one_lead_by_its_address_in_the_index_or_the_batch() {
        // The index knows A by jane's address (normalized: case and spaces).
        let meta = [item(Some(A), "x", "Jane@Example.com", Some(NOW - 3600))];
        let found = entries(&meta, |_| true);
        let batch = [
            item(None, "HS-1", " jane@example.COM", None),
            item(None, "HS-2", "bob@example.com", None),
            // The same batch: a row with B, and one without for the same address.
            item(Some(B), "HS-3", "ann@example.com", None),
            item(None, "HS-3", "ann@example.com", None),
        ];
        assert_eq!(wanted(&batch).len(), 3);
        assert_eq!(
            recover(&batch, &found),
            [
                Recovery::Found {
                    lead_id: LeadId::from_u64(A).unwrap(),
                    created_at: Some(NOW - 3600)
                },
                Recovery::None,
                Recovery::None,
                Recovery::Found {
                    lead_id: LeadId::from_u64(B).unwrap(),
                    created_at: None
                },
            ]
        );
    }

    #[test]
    fn an_address_shared_by_two_leads_recovers_nothing() {
        let found = entries(
            &[
                item(Some(A), "x", "family@example.com", None),
                item(Some(B), "y", "family@example.com", None),
            ],
            |_| true,
        );
        assert_eq!(
            recover(&[item(None, "HS-1", "family@example.com", None)], &found),
            [Recovery::Ambiguous]
        );
    }
}
