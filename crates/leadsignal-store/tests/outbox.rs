//! The SQLite outbox against its contract: idempotent enqueue, funnel
//! policies, quarantine, claiming order and leases, expiry, status.

use leadsignal_core::sample::config;
use leadsignal_core::{prepare, LeadId, Origin, PrepareConfig, StageChange, Violation};
use leadsignal_store::*;

/// 2026-11-21T12:00:00Z
const NOW: i64 = 1_795_262_400;

fn store() -> (tempfile::TempDir, SqliteOutbox) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteOutbox::open(dir.path().join("o.db").to_str().unwrap()).unwrap();
    (dir, s)
}

fn change(lead: u64, stage: &str, at: i64, line: u64) -> Incoming {
    let sc = StageChange {
        lead_id: Some(LeadId::from_u64(lead).unwrap()),
        stage: stage.into(),
        changed_at: at,
        origin: Origin::new("t.csv", line),
        ..Default::default()
    };
    let p = prepare(&sc, &config(), NOW).unwrap();
    Incoming::event(p, sc.origin, None, None)
}

fn ctx(cfg: &PrepareConfig, missing: MissingStages) -> EnqueueContext<'_> {
    EnqueueContext {
        prepare: cfg,
        missing,
        now: NOW,
    }
}

fn stages(s: &SqliteOutbox) -> Vec<(String, String, i64)> {
    let mut st = s
        .connection()
        .prepare("SELECT stage, state, inferred FROM outbox ORDER BY event_time, stage_rank")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

const L1: u64 = 1_234_567_890_123_456;
const L2: u64 = 1_234_567_890_123_457;

#[test]
fn enqueue_is_idempotent() {
    let (_d, mut s) = store();
    let cfg = config();
    let batch = vec![
        change(L1, "new", NOW - 300, 2),
        change(L1, "mql", NOW - 200, 3),
        change(L2, "new", NOW - 100, 4),
    ];
    let r = s.enqueue(&batch, &ctx(&cfg, MissingStages::Fill)).unwrap();
    assert_eq!((r.accepted, r.already_known, r.inferred), (3, 0, 0));
    let r = s.enqueue(&batch, &ctx(&cfg, MissingStages::Fill)).unwrap();
    assert_eq!((r.accepted, r.already_known), (0, 3));
    let n: i64 = s
        .connection()
        .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
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
}

#[test]
fn repeated_and_backwards_stage_changes_add_nothing() {
    let (_d, mut s) = store();
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
}

#[test]
fn fill_policy_infers_missing_earlier_stages_in_order() {
    let (_d, mut s) = store();
    let cfg = config();
    let r = s
        .enqueue(
            &[change(L1, "won", NOW - 100, 2)],
            &ctx(&cfg, MissingStages::Fill),
        )
        .unwrap();
    assert_eq!((r.accepted, r.inferred), (1, 3));
    assert_eq!(
        stages(&s),
        [
            ("Lead".into(), "pending".into(), 1),
            ("Marketing Qualified Lead".into(), "pending".into(), 1),
            ("Sales Opportunity".into(), "pending".into(), 1),
            ("Converted".into(), "pending".into(), 0)
        ]
    );
    // The real "new" arriving later replaces the inferred one (earlier time, real ID).
    let r = s
        .enqueue(
            &[change(L1, "new", NOW - 3000, 3)],
            &ctx(&cfg, MissingStages::Fill),
        )
        .unwrap();
    assert_eq!((r.accepted, r.already_known), (1, 0));
    let (t, inferred): (i64, i64) = s
        .connection()
        .query_row(
            "SELECT event_time, inferred FROM outbox WHERE stage = 'Lead'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((t, inferred), (NOW - 3000, 0));
    // Terminal stages need only the raw lead.
    let r = s
        .enqueue(
            &[change(L2, "unqualified", NOW - 100, 4)],
            &ctx(&cfg, MissingStages::Fill),
        )
        .unwrap();
    assert_eq!((r.accepted, r.inferred), (1, 1));
}

#[test]
fn hold_policy_waits_for_earlier_stages() {
    let (_d, mut s) = store();
    let cfg = config();
    let c = ctx(&cfg, MissingStages::Hold);
    let r = s.enqueue(&[change(L1, "mql", NOW - 100, 2)], &c).unwrap();
    assert_eq!((r.accepted, r.held), (0, 1));
    assert!(
        s.claim(&cfg.dataset_id, 10, 60, NOW).unwrap().is_empty(),
        "held entries are not sent"
    );
    let r = s.enqueue(&[change(L1, "new", NOW - 200, 3)], &c).unwrap();
    assert_eq!((r.accepted, r.released), (1, 1));
    assert_eq!(
        stages(&s),
        [
            ("Lead".into(), "pending".into(), 0),
            ("Marketing Qualified Lead".into(), "pending".into(), 0)
        ]
    );
    // Held past the deadline: expired, never sent.
    s.enqueue(&[change(L2, "mql", NOW - 100, 4)], &c).unwrap();
    assert_eq!(s.expire_due(NOW + 8 * 86_400).unwrap(), 3);
}

#[test]
fn reject_policy_quarantines_with_a_reason() {
    let (_d, mut s) = store();
    let cfg = config();
    let c = ctx(&cfg, MissingStages::Reject);
    let r = s
        .enqueue(&[change(L1, "opportunity", NOW - 100, 7)], &c)
        .unwrap();
    assert_eq!((r.accepted, r.rejected), (0, 1));
    let (line, rule, msg): (i64, String, String) = s
        .connection()
        .query_row("SELECT line, rule, message FROM quarantine", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((line, rule.as_str()), (7, "funnel.missing_stages"));
    assert!(msg.contains("Lead, Marketing Qualified Lead"), "{msg}");
    // Re-import: still rejected, stored once.
    let r = s
        .enqueue(&[change(L1, "opportunity", NOW - 100, 7)], &c)
        .unwrap();
    assert_eq!(r.rejected, 1);
    let n: i64 = s
        .connection()
        .query_row("SELECT count(*) FROM quarantine", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn rejected_rows_are_quarantined_once_without_raw_values() {
    let (_d, mut s) = store();
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
    let r = s
        .enqueue(std::slice::from_ref(&bad), &ctx(&cfg, MissingStages::Fill))
        .unwrap();
    assert_eq!(r.rejected, 1);
    let r = s.enqueue(&[bad], &ctx(&cfg, MissingStages::Fill)).unwrap();
    assert_eq!(r.rejected, 1, "still rejected on a re-import");
    let n: i64 = s
        .connection()
        .query_row("SELECT count(*) FROM quarantine", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "stored once");
    let st = s.status(NOW).unwrap();
    assert_eq!(st.rejected_by_rule["lead_id.scientific_notation"], 1);
}

#[test]
fn claim_orders_by_deadline_keeps_lead_order_and_leases() {
    let (_d, mut s) = store();
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
    let st = s.status(NOW).unwrap();
    assert_eq!(st.by_state["sent"], 1);
    assert_eq!(st.last_sent_at, Some(NOW));
    assert_eq!(st.leads, 2);
}

/// Claims resume where the last stopped (walk.rs). Whatever it passed over
/// or left behind must still come: later stages as soon as their earlier
/// stage is sent, retries once due, late arrivals with earlier deadlines,
/// and entries a second process on the same file touched.
#[test]
fn claims_resume_and_lose_nothing_behind_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let mut s = SqliteOutbox::open(path.to_str().unwrap()).unwrap();
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
    let second = s.claim(ds, 5, 600, NOW).unwrap();
    assert!(second.iter().all(|e| name(e) == "Lead"));
    // The first lead's Lead is sent: its MQL, passed over, comes first.
    s.mark_sent(&[first[0].id], None, NOW).unwrap();
    let third = s.claim(ds, 1, 600, NOW).unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(name(&third[0]), "Marketing Qualified Lead");
    assert_eq!(third[0].lead_key, first[0].lead_key);
    // A retry of an entry far behind the walk, and a late arrival with the
    // earliest deadline of all: both come once the walk reaches the end.
    s.release(&[first[1].id], NOW + 100, Some("HTTP 503"))
        .unwrap();
    let late = s
        .enqueue(&[change(L1 + 1000, "new", NOW - 86_300, 99)], &c)
        .unwrap();
    assert_eq!(late.accepted, 1);
    // Another process claims on the same file meanwhile.
    let mut other = SqliteOutbox::open(path.to_str().unwrap()).unwrap();
    let theirs = other.claim(ds, 3, 600, NOW).unwrap();
    assert_eq!(theirs.len(), 3);
    // Send everything claimed so far except the retry, then keep claiming.
    let mut seen: Vec<i64> = [&first, &second, &third]
        .iter()
        .flat_map(|b| b.iter().map(|e| e.id))
        .filter(|&id| id != first[1].id)
        .collect();
    s.mark_sent(&seen, None, NOW + 101).unwrap();
    // Each process settles its own leases; the other's are left alone.
    let their_ids: Vec<i64> = theirs.iter().map(|e| e.id).collect();
    s.release(&their_ids, NOW + 101, Some("not mine")).unwrap();
    assert_eq!(s.status(NOW + 101).unwrap().by_state["sending"], 3);
    other.mark_sent(&their_ids, None, NOW + 101).unwrap();
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
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "nothing claimed twice");
    let st = s.status(NOW + 101).unwrap();
    assert_eq!(
        seen.len(),
        41,
        "every entry claimed: 40 + the late arrival; {:?}",
        st.by_state
    );
    let st = s.status(NOW + 101).unwrap();
    assert_eq!(st.by_state["sent"], 41, "{:?}", st.by_state);
}

/// The due index is keyed by the deadline's hour; claims must still come
/// out in exact deadline order, within an hour and across hours, whatever
/// the order of arrival, and expiry must still be exact to the second.
#[test]
fn claims_come_by_deadline_hour_then_arrival() {
    let (_d, mut s) = store();
    let cfg = config();
    let c = ctx(&cfg, MissingStages::Fill);
    // Times (seconds before NOW) chosen to straddle hour boundaries of the
    // deadline, inserted in scrambled order, one lead each.
    let ago = [3_000, 7_300, 5, 3_599, 3_601, 90_000, 1, 7_199];
    let batch: Vec<Incoming> = ago
        .iter()
        .enumerate()
        .map(|(i, a)| change(L1 + 10 + i as u64, "new", NOW - a, i as u64 + 2))
        .collect();
    s.enqueue(&batch, &c).unwrap();
    // One at a time, so that every claim resumes where the last stopped.
    let mut claimed = Vec::new();
    loop {
        let e = s.claim(&cfg.dataset_id, 1, 60, NOW).unwrap();
        if e.is_empty() {
            break;
        }
        claimed.extend(e);
    }
    assert_eq!(claimed.len(), ago.len());
    let key = |e: &leadsignal_store::OutboxEntry| (e.send_by / 3600, e.id);
    let keys: Vec<(i64, i64)> = claimed.iter().map(key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "deadline hour first, then arrival");
    // Expiry stays exact to the second: one second after the earliest
    // deadline expires that one only.
    let mut deadlines: Vec<i64> = claimed.iter().map(|e| e.send_by).collect();
    deadlines.sort();
    let (_d2, mut s2) = store();
    s2.enqueue(&batch, &c).unwrap();
    assert_eq!(s2.expire_due(deadlines[0] + 1).unwrap(), 1);
    assert_eq!(
        s2.expire_due(deadlines[1]).unwrap(),
        0,
        "the deadline itself is still in time"
    );
}

#[test]
fn schema_version_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let s = SqliteOutbox::open(path.to_str().unwrap()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SqliteOutbox::SCHEMA_VERSION);
    s.connection()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    drop(s);
    let e = SqliteOutbox::open(path.to_str().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("schema version 99"), "{e}");
    assert!(open("mysql://x")
        .err()
        .unwrap()
        .to_string()
        .contains("unsupported store.url"));
}

/// What the sender records: Meta's rejection, expiry, test sends (never
/// "sent"), leases given back untouched, and dataset pauses.
#[test]
fn delivery_outcomes_are_recorded() {
    let (_d, mut s) = store();
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
    s.record_test_send(&ids[..1], "TEST1", Some("tr"), NOW)
        .unwrap();
    s.reject(
        &ids[1..2],
        "code 100, subcode 2804036: Invalid parameter",
        Some("AbCdTrace"),
        NOW,
    )
    .unwrap();
    let trace: Option<String> = s
        .connection()
        .query_row(
            "SELECT fbtrace_id FROM outbox WHERE id = ?1",
            [ids[1]],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        trace.as_deref(),
        Some("AbCdTrace"),
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

/// A polled source's cursor moves with the rows it covers, in their
/// transaction; a plain enqueue leaves it alone.
#[test]
fn source_cursor_moves_with_its_rows() {
    let (_d, mut s) = store();
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
