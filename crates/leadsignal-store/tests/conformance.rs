//! The outbox contract, the same tests for every backend (SQLite and
//! PostgreSQL): idempotent enqueue, funnel policies, quarantine, claiming
//! order and leases, several workers on one store, delivery outcomes,
//! source cursors. Everything is observed through the `Outbox` trait.

mod backends;

use backends::{change, ctx, Backend, NOW};
use leadsignal_core::sample::config;
use leadsignal_core::{prepare, LeadId, Origin, StageChange, Violation};
use leadsignal_store::*;
use std::collections::{HashMap, HashSet};

const L1: u64 = 1_234_567_890_123_456;
const L2: u64 = 1_234_567_890_123_457;

/// A lead's stages as (name, state, inferred), in funnel order.
fn stages(s: &dyn Outbox, lead: u64) -> Vec<(String, String, bool)> {
    let h = s.lead(&config().dataset_id, lead).unwrap().unwrap();
    h.stages
        .into_iter()
        .map(|e| (e.stage, e.state, e.inferred))
        .collect()
}

fn total(s: &dyn Outbox) -> u64 {
    s.status(NOW).unwrap().by_state.values().sum()
}

fn st(name: &str, state: &str, inferred: bool) -> (String, String, bool) {
    (name.into(), state.into(), inferred)
}

conformance!(
    enqueue_is_idempotent,
    repeated_and_backwards_stage_changes_add_nothing,
    fill_policy_infers_missing_earlier_stages_in_order,
    hold_policy_waits_for_earlier_stages,
    history_older_than_the_window_is_stored_expired,
    lead_ids_are_recovered_from_the_lead_index,
    reject_policy_quarantines_with_a_reason,
    rejected_rows_are_quarantined_once,
    claim_orders_by_deadline_keeps_lead_order_and_leases,
    claims_lose_nothing_behind_them,
    workers_never_claim_the_same_entry,
    a_lease_taken_over_belongs_to_its_new_holder,
    delivery_outcomes_are_recorded,
    source_cursor_moves_with_its_rows,
    source_polls_are_reported,
    datasets_stay_bound_to_their_first_id,
    datasets_are_isolated,
    works_inside_an_async_runtime,
);

/// Eight days before `NOW`: past Meta's window.
const OLD: i64 = NOW - 8 * 86_400;

fn history_older_than_the_window_is_stored_expired(b: &dyn Backend) {
    let mut s = b.open();
    let cfg = config();
    let c = ctx(&cfg, MissingStages::Fill);
    // An export's history: the lead came in 9 days ago (too old to send),
    // became an MQL an hour ago.
    let r = s
        .enqueue(
            &[
                change(L1, "new", OLD - 86_400, 2),
                change(L1, "mql", NOW - 3600, 3),
            ],
            &c,
        )
        .unwrap();
    assert_eq!(
        (r.accepted, r.expired, r.inferred, r.rejected),
        (1, 1, 0, 0)
    );
    assert_eq!(r.oldest_expired, Some(OLD - 86_400));
    assert_eq!(r.items, [ItemOutcome::Expired, ItemOutcome::Accepted]);
    // The expired stage is a stage of the lead: "fill" infers nothing.
    assert_eq!(
        stages(&*s, L1),
        [
            st("Lead", "expired", false),
            st("Marketing Qualified Lead", "pending", false)
        ]
    );
    let status = s.status(NOW).unwrap();
    assert_eq!(status.oldest_expired_event_time, Some(OLD - 86_400));
    assert_eq!(s.pending(&cfg.dataset_id).unwrap(), 1);
    assert_eq!(s.pending("another dataset").unwrap(), 0);
    assert!(
        status.delivery_errors[0]
            .0
            .contains("older than Meta's 7-day window"),
        "{:?}",
        status.delivery_errors
    );
    // Only the MQL is ever claimed; a second import adds nothing.
    let claimed = s.claim(&cfg.dataset_id, 10, 60, NOW).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(&*claimed[0].event.event_name, "Marketing Qualified Lead");
    let r = s
        .enqueue(&[change(L1, "new", OLD - 86_400, 2)], &c)
        .unwrap();
    assert_eq!((r.already_known, r.expired), (1, 0));

    // A stage inferred earlier is replaced by the real one, which is too
    // old: it becomes expired instead of being sent at a made-up time.
    let r = s.enqueue(&[change(L2, "mql", NOW - 60, 2)], &c).unwrap();
    assert_eq!(r.inferred, 1);
    let r = s.enqueue(&[change(L2, "new", OLD, 3)], &c).unwrap();
    assert_eq!((r.accepted, r.expired), (0, 1));
    assert_eq!(
        stages(&*s, L2),
        [
            st("Lead", "expired", false),
            st("Marketing Qualified Lead", "pending", false)
        ]
    );

    // "hold": a held stage is released by its earlier stage even when
    // that one arrives too old to send.
    let l3 = 1_234_567_890_123_458;
    let h = ctx(&cfg, MissingStages::Hold);
    assert_eq!(
        s.enqueue(&[change(l3, "mql", NOW - 60, 2)], &h)
            .unwrap()
            .held,
        1
    );
    let r = s.enqueue(&[change(l3, "new", OLD, 3)], &h).unwrap();
    assert_eq!((r.expired, r.released), (1, 1));
    assert_eq!(
        stages(&*s, l3),
        [
            st("Lead", "expired", false),
            st("Marketing Qualified Lead", "pending", false)
        ]
    );
}

/// A stage change from `crm` with only contact data, as a CRM export
/// without Meta's lead ID gives it.
fn crm_change(
    crm: &str,
    stage: &str,
    at: i64,
    email: &str,
    lead_id: Option<u64>,
    created: Option<i64>,
) -> Incoming {
    let sc = StageChange {
        lead_id: lead_id.map(|l| LeadId::from_u64(l).unwrap()),
        crm_id: Some(crm.into()),
        stage: stage.into(),
        changed_at: at,
        contact: leadsignal_core::Contact {
            email: Some(email.into()),
            ..Default::default()
        },
        origin: Origin::new("crm.csv", 2),
        ..Default::default()
    };
    let p = prepare(&sc, &config(), NOW).unwrap();
    Incoming::event(p, sc.origin, sc.crm_id, created)
}

fn lead_ids_are_recovered_from_the_lead_index(b: &dyn Backend) {
    let mut s = b.open();
    let cfg = config();
    let c = ctx(&cfg, MissingStages::Fill);
    // Meta's download: three leads, two sharing a family address.
    let created = NOW - 5 * 86_400;
    let r = s
        .enqueue(
            &[
                crm_change(
                    "",
                    "new",
                    created,
                    "Jane.Roe@Example.com",
                    Some(L1),
                    Some(created),
                ),
                crm_change(
                    "",
                    "new",
                    created,
                    "family@example.com",
                    Some(L2),
                    Some(created),
                ),
                crm_change(
                    "",
                    "new",
                    created,
                    "family@example.com",
                    Some(1_234_567_890_123_458),
                    Some(created),
                ),
            ],
            &c,
        )
        .unwrap();
    assert_eq!((r.accepted, r.recovered), (3, 0));
    // The CRM's export, without lead IDs.
    let jane = crm_change(
        "HS-1",
        "mql",
        NOW - 3600,
        " jane.roe@example.COM",
        None,
        None,
    );
    let Incoming::Event { prepared, .. } = &jane else {
        unreachable!()
    };
    let event_id = prepared.event.event_id;
    let r = s
        .enqueue(
            &[
                jane.clone(),
                crm_change("HS-2", "mql", NOW - 3600, "family@example.com", None, None),
                crm_change(
                    "HS-3",
                    "mql",
                    NOW - 3600,
                    "stranger@example.com",
                    None,
                    None,
                ),
                // Before Jane's lead was created (the index knows when).
                crm_change(
                    "HS-4",
                    "new",
                    created - 86_400,
                    "jane.roe@example.com",
                    None,
                    None,
                ),
            ],
            &c,
        )
        .unwrap();
    assert_eq!((r.recovered, r.ambiguous, r.rejected), (1, 1, 1), "{r:?}");
    assert_eq!(r.rejected_by_rule["event_time.before_lead_created"], 1);
    // The Meta leads' and the inferred "Lead" stages go first.
    let first = s.claim(&cfg.dataset_id, 100, 60, NOW).unwrap();
    assert!(first.iter().all(|e| &*e.event.event_name == "Lead"));
    let ids: Vec<i64> = first.iter().map(|e| e.id).collect();
    s.mark_sent(&ids, None, NOW).unwrap();
    let claimed = s.claim(&cfg.dataset_id, 100, 60, NOW).unwrap();
    let mql: Vec<_> = claimed
        .iter()
        .filter(|e| &*e.event.event_name == "Marketing Qualified Lead")
        .collect();
    assert_eq!(mql.len(), 3);
    let got = mql.iter().find(|e| e.event.event_id == event_id).unwrap();
    // Meta's lead ID attached; the event's identity is still the CRM's
    // record (same event_id, same lead key).
    assert_eq!(got.event.user_data.lead_id.map(|l| l.get()), Some(L1));
    assert_eq!(got.lead_key, "crm_id:HS-1");
    // The CRM record now names the lead: a webhook naming HS-1 finds it.
    assert_eq!(s.lead_id_of(&cfg.dataset_id, "HS-1").unwrap(), Some(L1));
    assert_eq!(s.lead_id_of(&cfg.dataset_id, "HS-2").unwrap(), None);
    for e in mql.iter().filter(|e| e.event.event_id != event_id) {
        assert_eq!(
            e.event.user_data.lead_id, None,
            "shared or unknown: nothing attached"
        );
    }
    // Imported again: nothing new, the same event.
    let r = s.enqueue(&[jane], &c).unwrap();
    assert_eq!((r.already_known, r.recovered), (1, 0));
    // A CRM record seen before its Meta lead reached the index: a webhook
    // naming the record later finds the lead by the record's e-mail.
    s.enqueue(
        &[crm_change(
            "HS-5",
            "new",
            NOW - 600,
            "late@example.com",
            None,
            None,
        )],
        &c,
    )
    .unwrap();
    assert_eq!(s.lead_id_of(&cfg.dataset_id, "HS-5").unwrap(), None);
    let l5 = 1_234_567_890_123_459;
    s.enqueue(
        &[crm_change(
            "",
            "new",
            NOW - 900,
            "Late@Example.com",
            Some(l5),
            None,
        )],
        &c,
    )
    .unwrap();
    s.flush().unwrap();
    assert_eq!(s.lead_id_of(&cfg.dataset_id, "HS-5").unwrap(), Some(l5));
}

fn enqueue_is_idempotent(b: &dyn Backend) {
    let mut s = b.open();
    let cfg = config();
    let batch = vec![
        change(L1, "new", NOW - 300, 2),
        change(L1, "mql", NOW - 200, 3),
        change(L2, "new", NOW - 100, 4),
    ];
    let r = s.enqueue(&batch, &ctx(&cfg, MissingStages::Fill)).unwrap();
    assert_eq!((r.accepted, r.already_known, r.inferred), (3, 0, 0));
    assert_eq!(
        r.items,
        [
            ItemOutcome::Accepted,
            ItemOutcome::Accepted,
            ItemOutcome::Accepted
        ]
    );
    let r = s.enqueue(&batch, &ctx(&cfg, MissingStages::Fill)).unwrap();
    assert_eq!((r.accepted, r.already_known), (0, 3));
    assert_eq!(total(&*s), 3);
    assert_eq!(s.status(NOW).unwrap().leads, 2);
    // What comes back out is exactly the event that was prepared.
    let Incoming::Event { prepared, .. } = &batch[0] else {
        unreachable!()
    };
    let claimed = s.claim(&cfg.dataset_id, 10, 60, NOW).unwrap();
    let back = claimed
        .iter()
        .find(|e| e.event.event_id == prepared.event.event_id)
        .unwrap();
    assert_eq!(back.event, prepared.event);
    assert_eq!(back.lead_key, prepared.lead_key.to_string());
}

fn repeated_and_backwards_stage_changes_add_nothing(b: &dyn Backend) {
    let mut s = b.open();
    let cfg = config();
    let c = ctx(&cfg, MissingStages::Fill);
    s.enqueue(
        &[
            change(L1, "new", NOW - 300, 2),
            change(L1, "mql", NOW - 200, 3),
        ],
        &c,
    )
    .unwrap();
    // Back to "new" later, then "mql" again: each stage is sent once per lead.
    let r = s
        .enqueue(
            &[
                change(L1, "new", NOW - 100, 4),
                change(L1, "mql", NOW - 50, 5),
            ],
            &c,
        )
        .unwrap();
    assert_eq!((r.accepted, r.already_known), (0, 2));
    assert_eq!(total(&*s), 2);
}

fn fill_policy_infers_missing_earlier_stages_in_order(b: &dyn Backend) {
    let mut s = b.open();
    let cfg = config();
    let c = ctx(&cfg, MissingStages::Fill);
    let r = s.enqueue(&[change(L1, "won", NOW - 100, 2)], &c).unwrap();
    assert_eq!((r.accepted, r.inferred), (1, 3));
    assert_eq!(
        stages(&*s, L1),
        [
            st("Lead", "pending", true),
            st("Marketing Qualified Lead", "pending", true),
            st("Sales Opportunity", "pending", true),
            st("Converted", "pending", false)
        ]
    );
    // The real "new" arriving later replaces the inferred one (earlier time, real ID).
    let r = s.enqueue(&[change(L1, "new", NOW - 3000, 3)], &c).unwrap();
    assert_eq!((r.accepted, r.already_known), (1, 0));
    let h = s.lead(&cfg.dataset_id, L1).unwrap().unwrap();
    let lead = h.stages.iter().find(|e| e.stage == "Lead").unwrap();
    assert_eq!((lead.event_time, lead.inferred), (NOW - 3000, false));
    // Within one batch too: a stage inferred by an earlier row, replaced
    // by a later row of the same batch.
    let r = s
        .enqueue(
            &[
                change(L2, "mql", NOW - 100, 4),
                change(L2, "new", NOW - 900, 5),
            ],
            &c,
        )
        .unwrap();
    assert_eq!((r.accepted, r.inferred), (2, 1));
    assert_eq!(
        stages(&*s, L2),
        [
            st("Lead", "pending", false),
            st("Marketing Qualified Lead", "pending", false)
        ]
    );
    // Terminal stages need only the raw lead.
    let r = s
        .enqueue(&[change(L2 + 1, "unqualified", NOW - 100, 6)], &c)
        .unwrap();
    assert_eq!((r.accepted, r.inferred), (1, 1));
}

fn hold_policy_waits_for_earlier_stages(b: &dyn Backend) {
    let mut s = b.open();
    let cfg = config();
    let c = ctx(&cfg, MissingStages::Hold);
    let r = s.enqueue(&[change(L1, "mql", NOW - 100, 2)], &c).unwrap();
    assert_eq!((r.accepted, r.held), (0, 1));
    assert_eq!(r.items, [ItemOutcome::Held]);
    assert!(
        s.claim(&cfg.dataset_id, 10, 60, NOW).unwrap().is_empty(),
        "held entries are not sent"
    );
    let r = s.enqueue(&[change(L1, "new", NOW - 200, 3)], &c).unwrap();
    assert_eq!((r.accepted, r.released), (1, 1));
    assert_eq!(
        stages(&*s, L1),
        [
            st("Lead", "pending", false),
            st("Marketing Qualified Lead", "pending", false)
        ]
    );
    // Held and released within one batch.
    let r = s
        .enqueue(
            &[
                change(L2, "mql", NOW - 100, 4),
                change(L2, "new", NOW - 200, 5),
            ],
            &c,
        )
        .unwrap();
    assert_eq!((r.accepted, r.held, r.released), (1, 1, 1));
    assert_eq!(s.status(NOW).unwrap().by_state["pending"], 4);
    // Held past the deadline: expired, never sent.
    s.enqueue(&[change(L2 + 1, "mql", NOW - 100, 6)], &c)
        .unwrap();
    assert_eq!(s.expire_due(NOW + 8 * 86_400).unwrap(), 5);
    assert_eq!(s.status(NOW).unwrap().by_state["expired"], 5);
}

fn reject_policy_quarantines_with_a_reason(b: &dyn Backend) {
    let mut s = b.open();
    let cfg = config();
    let c = ctx(&cfg, MissingStages::Reject);
    let r = s
        .enqueue(&[change(L1, "opportunity", NOW - 100, 7)], &c)
        .unwrap();
    assert_eq!((r.accepted, r.rejected), (0, 1));
    assert_eq!(r.rejected_by_rule["funnel.missing_stages"], 1);
    // Re-import: still rejected, stored once.
    let r = s
        .enqueue(&[change(L1, "opportunity", NOW - 100, 7)], &c)
        .unwrap();
    assert_eq!(r.rejected, 1);
    assert_eq!(
        s.status(NOW).unwrap().rejected_by_rule["funnel.missing_stages"],
        1
    );
    assert_eq!(total(&*s), 0);
}

fn rejected_rows_are_quarantined_once(b: &dyn Backend) {
    let mut s = b.open();
    let cfg = config();
    let bad = Incoming::Rejected {
        origin: Origin::new("x.csv", 9),
        fingerprint: "ab".repeat(32),
        violations: vec![Violation::new(
            "lead_id.scientific_notation",
            Some("lead_id"),
            "lead_id \"1.23E+15\" ...",
        )],
    };
    let c = ctx(&cfg, MissingStages::Fill);
    let r = s.enqueue(std::slice::from_ref(&bad), &c).unwrap();
    assert_eq!(
        (r.rejected, r.items.clone()),
        (1, vec![ItemOutcome::Rejected])
    );
    let r = s.enqueue(&[bad], &c).unwrap();
    assert_eq!(r.rejected, 1, "still rejected on a re-import");
    let st = s.status(NOW).unwrap();
    assert_eq!(
        st.rejected_by_rule["lead_id.scientific_notation"], 1,
        "stored once"
    );
}

fn claim_orders_by_deadline_keeps_lead_order_and_leases(b: &dyn Backend) {
    let mut s = b.open();
    let cfg = config();
    let c = ctx(&cfg, MissingStages::Fill);
    // L1: new (older) and mql; L2: new, most recent.
    s.enqueue(
        &[
            change(L1, "new", NOW - 5000, 2),
            change(L1, "mql", NOW - 4000, 3),
            change(L2, "new", NOW - 100, 4),
        ],
        &c,
    )
    .unwrap();
    let first = s.claim(&cfg.dataset_id, 10, 60, NOW).unwrap();
    let names: Vec<(u64, String)> = first
        .iter()
        .map(|e| {
            (
                e.event.user_data.lead_id.unwrap().get(),
                e.event.event_name.to_string(),
            )
        })
        .collect();
    // Deadline first; never L1's MQL while its Lead is not sent.
    assert_eq!(names, [(L1, "Lead".to_string()), (L2, "Lead".to_string())]);
    assert!(
        s.claim(&cfg.dataset_id, 10, 60, NOW).unwrap().is_empty(),
        "claimed entries are leased"
    );
    s.mark_sent(&[first[0].id], Some("trace-1"), NOW).unwrap();
    let next = s.claim(&cfg.dataset_id, 10, 60, NOW).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(&*next[0].event.event_name, "Marketing Qualified Lead");
    // A sender that dies: its lease runs out and the entries come back.
    let again = s.claim(&cfg.dataset_id, 10, 60, NOW + 61).unwrap();
    assert_eq!(again.len(), 2);
    // Released for a retry: not due before retry_at.
    s.release(&[again[0].id], NOW + 500, Some("HTTP 503"))
        .unwrap();
    assert!(s
        .claim(&cfg.dataset_id, 10, 60, NOW + 62)
        .unwrap()
        .iter()
        .all(|e| e.id != again[0].id));
    // The other entry's lease (taken at NOW + 61 for 60 s) ends first.
    assert_eq!(
        s.next_attempt_at(&cfg.dataset_id, NOW + 62).unwrap(),
        Some(NOW + 122)
    );
    // A claimed entry carries what a retry plan needs: its attempts so far
    // and its deadline; a release counts the attempt.
    assert_eq!((again[1].attempts, again[1].send_by), (0, first[1].send_by));
    let back = s.claim(&cfg.dataset_id, 10, 60, NOW + 500).unwrap();
    let retried = back.iter().find(|e| e.id == again[0].id);
    assert_eq!(
        retried.map(|e| e.attempts),
        Some(1),
        "due again at retry_at"
    );
    let st = s.status(NOW).unwrap();
    assert_eq!(st.by_state["sent"], 1);
    assert_eq!(st.last_sent_at, Some(NOW));
    assert_eq!(st.leads, 2);
}

/// Later stages come as soon as their earlier stage is sent, retries once
/// due, late arrivals with earlier deadlines, entries another handle
/// claimed and settled; nothing twice; claims in deadline-hour order.
fn claims_lose_nothing_behind_them(b: &dyn Backend) {
    let mut s = b.open();
    let cfg = config();
    let c = ctx(&cfg, MissingStages::Fill);
    let ds = &cfg.dataset_id;
    // 20 leads, each "new" then "mql" a minute later, ten minutes apart.
    let batch: Vec<Incoming> = (0..20u64)
        .flat_map(|i| {
            let at = NOW - 86_000 + i as i64 * 600;
            [
                change(L1 + i, "new", at, 2 * i + 2),
                change(L1 + i, "mql", at + 60, 2 * i + 3),
            ]
        })
        .collect();
    s.enqueue(&batch, &c).unwrap();
    let name = |e: &OutboxEntry| e.event.event_name.to_string();
    let first = s.claim(ds, 5, 600, NOW).unwrap();
    assert_eq!(first.len(), 5);
    assert!(
        first.iter().all(|e| name(e) == "Lead"),
        "MQLs wait for their Lead"
    );
    let hours: Vec<i64> = first.iter().map(|e| e.send_by / 3600).collect();
    assert!(hours.windows(2).all(|w| w[0] <= w[1]), "deadline first");
    let second = s.claim(ds, 5, 600, NOW).unwrap();
    assert!(second.iter().all(|e| name(e) == "Lead"));
    // The first lead's Lead is sent: its MQL, earliest deadline, comes first.
    s.mark_sent(&[first[0].id], None, NOW).unwrap();
    let third = s.claim(ds, 1, 600, NOW).unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(name(&third[0]), "Marketing Qualified Lead");
    assert_eq!(third[0].lead_key, first[0].lead_key);
    // A retry, and a late arrival with the earliest deadline of all.
    s.release(&[first[1].id], NOW + 100, Some("HTTP 503"))
        .unwrap();
    let late = s
        .enqueue(&[change(L1 + 1000, "new", NOW - 86_300, 99)], &c)
        .unwrap();
    assert_eq!(late.accepted, 1);
    // Another worker claims meanwhile, and settles its own.
    let mut other = b.open();
    let theirs = other.claim(ds, 3, 600, NOW).unwrap();
    assert_eq!(theirs.len(), 3);
    let their_ids: Vec<i64> = theirs.iter().map(|e| e.id).collect();
    other.mark_sent(&their_ids, None, NOW + 101).unwrap();
    let mut seen: Vec<i64> = [&first, &second, &third]
        .iter()
        .flat_map(|b| b.iter().map(|e| e.id))
        .filter(|&id| id != first[1].id)
        .collect();
    s.mark_sent(&seen, None, NOW + 101).unwrap();
    seen.extend(&their_ids);
    loop {
        let e = s.claim(ds, 4, 600, NOW + 101).unwrap();
        if e.is_empty() {
            break;
        }
        let ids: Vec<i64> = e.iter().map(|e| e.id).collect();
        s.mark_sent(&ids, None, NOW + 101).unwrap();
        seen.extend(ids);
    }
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "nothing claimed twice");
    let st = s.status(NOW + 101).unwrap();
    assert_eq!(seen.len(), 41, "40 + the late arrival; {:?}", st.by_state);
    assert_eq!(st.by_state["sent"], 41, "{:?}", st.by_state);
}

/// Three workers on threads, each with its own handle, claim and settle
/// concurrently: no entry is held by two at once, every entry is sent
/// exactly once, and no lead's later stage is claimed before its earlier
/// stage was sent.
fn workers_never_claim_the_same_entry(b: &dyn Backend) {
    let cfg = config();
    let leads = 150u64;
    {
        let mut s = b.open();
        let c = ctx(&cfg, MissingStages::Fill);
        let batch: Vec<Incoming> = (0..leads)
            .flat_map(|i| {
                let at = NOW - 80_000 + i as i64 * 97;
                [
                    change(L1 + i, "new", at, 3 * i + 2),
                    change(L1 + i, "mql", at + 30, 3 * i + 3),
                    change(L1 + i, "opportunity", at + 60, 3 * i + 4),
                ]
            })
            .collect();
        assert_eq!(s.enqueue(&batch, &c).unwrap().accepted, 3 * leads);
    }
    let log = std::sync::Mutex::new(Vec::<(usize, u64, String, String)>::new());
    let sent_order = std::sync::Mutex::new(HashMap::<String, Vec<String>>::new());
    std::thread::scope(|scope| {
        for w in 0..3usize {
            let (log, sent_order, cfg) = (&log, &sent_order, &cfg);
            let mut s = b.open();
            scope.spawn(move || {
                let mut idle = 0;
                while idle < 20 {
                    let batch = s.claim(&cfg.dataset_id, 7, 600, NOW).unwrap();
                    if batch.is_empty() {
                        idle += 1;
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                    idle = 0;
                    for e in &batch {
                        log.lock().unwrap().push((
                            w,
                            e.id as u64,
                            e.lead_key.clone(),
                            e.event.event_name.to_string(),
                        ));
                    }
                    {
                        // Record send order per lead before marking sent.
                        let mut o = sent_order.lock().unwrap();
                        for e in &batch {
                            o.entry(e.lead_key.clone())
                                .or_default()
                                .push(e.event.event_name.to_string());
                        }
                    }
                    // The request to Meta: the others claim meanwhile.
                    std::thread::sleep(std::time::Duration::from_millis(3));
                    let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
                    s.mark_sent(&ids, None, NOW).unwrap();
                }
            });
        }
    });
    let log = log.into_inner().unwrap();
    let ids: HashSet<u64> = log.iter().map(|l| l.1).collect();
    assert_eq!(log.len() as u64, 3 * leads, "every entry claimed once");
    assert_eq!(ids.len() as u64, 3 * leads);
    let workers: HashSet<usize> = log.iter().map(|l| l.0).collect();
    assert!(workers.len() >= 2, "the work was shared: {workers:?}");
    for (lead, order) in sent_order.into_inner().unwrap() {
        assert_eq!(
            order,
            ["Lead", "Marketing Qualified Lead", "Sales Opportunity"],
            "{lead}"
        );
    }
    let s = b.open();
    assert_eq!(s.status(NOW).unwrap().by_state["sent"], 3 * leads);
}

/// A worker whose lease ran out and was taken over cannot give the entry
/// back or settle it under its new holder; a sent mark for an entry taken
/// back but not yet claimed again still counts (it was sent).
fn a_lease_taken_over_belongs_to_its_new_holder(b: &dyn Backend) {
    let cfg = config();
    let ds = &cfg.dataset_id;
    let mut a = b.open();
    let mut other = b.open();
    a.enqueue(
        &[
            change(L1, "new", NOW - 100, 2),
            change(L2, "new", NOW - 90, 3),
        ],
        &ctx(&cfg, MissingStages::Fill),
    )
    .unwrap();
    let mine = a.claim(ds, 10, 60, NOW).unwrap();
    assert_eq!(mine.len(), 2);
    // A's lease runs out; B takes both.
    let theirs = other.claim(ds, 10, 60, NOW + 61).unwrap();
    assert_eq!(theirs.len(), 2);
    let ids: Vec<i64> = mine.iter().map(|e| e.id).collect();
    a.release(&ids, NOW + 1000, Some("late")).unwrap();
    a.unlease(&ids).unwrap();
    a.reject(&ids[..1], "late", None, NOW + 62).unwrap();
    assert_eq!(a.status(NOW).unwrap().by_state["sending"], 2, "still B's");
    assert!(other.claim(ds, 10, 60, NOW + 62).unwrap().is_empty());
    other.mark_sent(&ids, None, NOW + 63).unwrap();
    assert_eq!(a.status(NOW).unwrap().by_state["sent"], 2);
    // Taken back after B's lease ran out, not claimed since: A's sent mark
    // of what it did send counts.
    a.enqueue(
        &[change(L2 + 5, "new", NOW - 80, 4)],
        &ctx(&cfg, MissingStages::Fill),
    )
    .unwrap();
    let one = a.claim(ds, 10, 60, NOW + 100).unwrap();
    assert_eq!(one.len(), 1);
    assert!(other.claim(ds, 10, 60, NOW + 200).unwrap().len() == 1);
    other.unlease(&[one[0].id]).unwrap();
    a.mark_sent(&[one[0].id], None, NOW + 201).unwrap();
    assert_eq!(a.status(NOW).unwrap().by_state["sent"], 3);
}

/// What the sender records: Meta's rejection, expiry, test sends (never
/// "sent"), leases given back untouched, and dataset pauses.
fn delivery_outcomes_are_recorded(b: &dyn Backend) {
    let mut s = b.open();
    let cfg = config();
    let c = ctx(&cfg, MissingStages::Fill);
    let batch: Vec<Incoming> = (0..4)
        .map(|i| change(L1 + 100 + i, "new", NOW - 600, i + 2))
        .collect();
    s.enqueue(&batch, &c).unwrap();
    let ds = &cfg.dataset_id;
    let claimed = s.claim(ds, 10, 60, NOW).unwrap();
    let ids: Vec<i64> = claimed.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 4);
    let lead_of = |i: usize| claimed[i].event.user_data.lead_id.unwrap().get();
    s.record_test_send(&ids[..1], "TEST1", Some("tr"), NOW)
        .unwrap();
    s.reject(
        &ids[1..2],
        "code 100, subcode 2804036: Invalid parameter",
        Some("AbCdTrace"),
        NOW,
    )
    .unwrap();
    let h = s.lead(ds, lead_of(1)).unwrap().unwrap();
    assert_eq!(
        (
            h.stages[0].state.as_str(),
            h.stages[0].fbtrace_id.as_deref()
        ),
        ("quarantined", Some("AbCdTrace")),
        "Meta's trace is kept with the rejection"
    );
    s.expire(&ids[2..3], "code 100, subcode 2804003: too old", NOW)
        .unwrap();
    s.unlease(&ids[3..]).unwrap();
    let st = s.status(NOW).unwrap();
    assert_eq!(
        st.by_state.get("pending"),
        Some(&2),
        "test send and unleased are pending again"
    );
    assert_eq!(st.by_state.get("quarantined"), Some(&1));
    assert_eq!(st.by_state.get("expired"), Some(&1));
    assert_eq!(st.by_state.get("sent"), None);
    assert_eq!(st.test_sends, 1);
    assert_eq!(st.delivery_errors.len(), 2);
    let act = s.activity(NOW).unwrap();
    assert_eq!(act.latest_errors.len(), 2);
    assert!(act
        .latest_errors
        .iter()
        .any(|e| e.2.contains("fbtrace_id AbCdTrace")));
    // Match quality counts the events that can still reach Meta.
    assert_eq!(act.coverage.events, 2);
    assert_eq!(act.coverage.lead_id, 2);
    assert_eq!(act.coverage.matchable_histogram[1], 2);
    assert_eq!(st.match_quality, act.coverage);
    assert_eq!(
        act.settled_per_hour.iter().map(|h| h.2).sum::<u64>(),
        2,
        "quarantined + expired left the queue"
    );
    // Unleased entries count no attempt; both come back at once.
    let again = s.claim(ds, 10, 60, NOW).unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|e| e.attempts == 0));
    // Pause and resume.
    assert_eq!(s.paused(ds).unwrap(), None);
    s.set_paused(ds, Some("code 190: token revoked"), NOW)
        .unwrap();
    let p = s.paused(ds).unwrap().unwrap();
    assert_eq!(
        (p.reason.as_str(), p.since),
        ("code 190: token revoked", NOW)
    );
    assert_eq!(s.status(NOW).unwrap().paused.len(), 1);
    s.set_paused(ds, None, NOW + 5).unwrap();
    assert_eq!(s.paused(ds).unwrap(), None);
}

/// A dataset name keeps the dataset ID it was first used with; another ID
/// does not replace it; a deliberate rebind does, keeping the previous one.
fn datasets_stay_bound_to_their_first_id(b: &dyn Backend) {
    let mut s = b.open();
    let first = s
        .bind_dataset("default", "2780431635496611", NOW - 100)
        .unwrap();
    assert_eq!(
        (
            first.dataset_id.as_str(),
            first.bound_at,
            first.previous.clone()
        ),
        ("2780431635496611", NOW - 100, None)
    );
    let again = b
        .open()
        .bind_dataset("default", "999000111222333", NOW)
        .unwrap();
    assert_eq!(
        (again.dataset_id.as_str(), again.bound_at),
        ("2780431635496611", NOW - 100),
        "not replaced"
    );
    let before = s
        .rebind_dataset("default", "999000111222333", NOW + 10)
        .unwrap();
    assert_eq!(
        before.map(|b| b.dataset_id),
        Some("2780431635496611".to_string())
    );
    let now_bound = b
        .open()
        .bind_dataset("default", "999000111222333", NOW + 20)
        .unwrap();
    assert_eq!(now_bound.dataset_id, "999000111222333");
    assert_eq!(
        now_bound.previous,
        Some(("2780431635496611".to_string(), NOW + 10))
    );
    // Another name is bound on its own; a rebind of an unknown name binds it.
    assert_eq!(
        s.bind_dataset("eu", "111222333444555", NOW)
            .unwrap()
            .dataset_id,
        "111222333444555"
    );
    assert_eq!(s.rebind_dataset("new", "123", NOW).unwrap(), None);
}

/// The last poll of each source is in `status`: a failure with its message
/// and time, the last success kept; a later success clears the error.
fn source_polls_are_reported(b: &dyn Backend) {
    let mut s = b.open();
    s.record_poll("hubspot", None, NOW - 120).unwrap();
    s.record_poll(
        "hubspot",
        Some("source hubspot: the CRM refused the credentials (HTTP 401)"),
        NOW - 60,
    )
    .unwrap();
    s.record_poll("salesforce", None, NOW - 30).unwrap();
    let st = s.status(NOW).unwrap();
    let hub = &st.sources[0];
    assert_eq!(
        (hub.source.as_str(), hub.polled_at, hub.ok_at, hub.error_at),
        ("hubspot", NOW - 60, Some(NOW - 120), Some(NOW - 60))
    );
    assert!(hub.error.as_deref().unwrap().contains("HTTP 401"));
    assert_eq!(
        (
            st.sources[1].source.as_str(),
            st.sources[1].error.as_deref()
        ),
        ("salesforce", None)
    );
    s.record_poll("hubspot", None, NOW).unwrap();
    let st = b.open().status(NOW).unwrap();
    assert_eq!(
        (
            st.sources[0].ok_at,
            st.sources[0].error.as_deref(),
            st.sources[0].error_at
        ),
        (Some(NOW), None, None)
    );
}

/// A polled source's cursor moves with the rows it covers, in their
/// transaction; a plain enqueue leaves it alone.
fn source_cursor_moves_with_its_rows(b: &dyn Backend) {
    let mut s = b.open();
    let cfg = config();
    let c = ctx(&cfg, MissingStages::Fill);
    assert_eq!(s.cursor("crm-db").unwrap(), None);
    let r = s
        .enqueue_from(&[change(L1, "new", NOW - 60, 1)], &c, "crm-db", "17")
        .unwrap();
    assert_eq!(r.accepted, 1);
    assert_eq!(s.cursor("crm-db").unwrap().as_deref(), Some("17"));
    s.enqueue(&[change(L2, "new", NOW - 60, 2)], &c).unwrap();
    assert_eq!(s.cursor("crm-db").unwrap().as_deref(), Some("17"));
    s.enqueue_from(&[], &c, "crm-db", "18").unwrap();
    assert_eq!(s.cursor("crm-db").unwrap().as_deref(), Some("18"));
    assert_eq!(s.cursor("other").unwrap(), None);
}

/// Two datasets in one store: the same lead in each is two leads; claims,
/// pauses and retries of one never touch the other.
fn datasets_are_isolated(b: &dyn Backend) {
    let mut s = b.open();
    let a = config();
    let mut other = config();
    other.dataset_id = "999000111222333".into();
    s.enqueue(
        &[change(L1, "new", NOW - 60, 1)],
        &ctx(&a, MissingStages::Fill),
    )
    .unwrap();
    let sc = StageChange {
        lead_id: Some(LeadId::from_u64(L1).unwrap()),
        stage: "new".into(),
        changed_at: NOW - 60,
        origin: Origin::new("b.csv", 1),
        ..Default::default()
    };
    let p = prepare(&sc, &other, NOW).unwrap();
    let r = s
        .enqueue(
            &[Incoming::event(p, sc.origin, None, None)],
            &ctx(&other, MissingStages::Fill),
        )
        .unwrap();
    assert_eq!(
        r.accepted, 1,
        "the same lead in another dataset is new there"
    );
    assert_eq!(s.status(NOW).unwrap().leads, 2);
    s.set_paused(&a.dataset_id, Some("code 190"), NOW).unwrap();
    let theirs = s.claim(&other.dataset_id, 10, 60, NOW).unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].dataset_id, other.dataset_id);
    assert_eq!(s.paused(&other.dataset_id).unwrap(), None);
    s.release(&[theirs[0].id], NOW + 900, Some("HTTP 429"))
        .unwrap();
    let ours = s.claim(&a.dataset_id, 10, 60, NOW).unwrap();
    assert_eq!(
        ours.len(),
        1,
        "another dataset's retry does not hold this one"
    );
    assert_eq!(ours[0].dataset_id, a.dataset_id);
    assert_eq!(
        s.next_attempt_at(&a.dataset_id, NOW).unwrap(),
        Some(NOW + 61)
    );
    assert!(s.lead(&other.dataset_id, L1).unwrap().is_some());
}

/// The sender calls the store from async code, and drops it there: no
/// backend may block a tokio worker in a way tokio forbids (the
/// `postgres` client drives a runtime of its own).
fn works_inside_an_async_runtime(b: &dyn Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut s = b.open();
    rt.block_on(async move {
        let cfg = config();
        let r = s
            .enqueue(
                &[change(L1, "new", NOW - 60, 1)],
                &ctx(&cfg, MissingStages::Fill),
            )
            .unwrap();
        assert_eq!(r.accepted, 1);
        let c = s.claim(&cfg.dataset_id, 10, 60, NOW).unwrap();
        s.mark_sent(&[c[0].id], None, NOW).unwrap();
        assert_eq!(s.status(NOW).unwrap().by_state["sent"], 1);
        drop(s);
        let again = tokio::task::spawn(async {}).await;
        assert!(again.is_ok());
    });
}
