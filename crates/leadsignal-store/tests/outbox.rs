//! What only the SQLite outbox promises beyond the shared contract
//! (`conformance.rs`): quarantine records as stored, claims in deadline-hour
//! then arrival order (row IDs), schema versions, checkpoints on a second
//! thread.

mod backends;

use backends::{change, ctx, NOW};
use leadsignal_core::sample::config;

use leadsignal_store::*;

fn store() -> (tempfile::TempDir, SqliteOutbox) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteOutbox::open(dir.path().join("o.db").to_str().unwrap()).unwrap();
    (dir, s)
}

const L1: u64 = 1_234_567_890_123_456;

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

/// A bulk import's pages are copied back into the database file by the
/// checkpoint thread once enough rows came in, not left in the log for the
/// writer's own checkpoint (which runs only past 8192 pages, 128 MiB).
#[test]
fn bulk_enqueues_are_checkpointed_on_another_thread() {
    let (d, mut s) = store();
    let cfg = config();
    let c = ctx(&cfg, MissingStages::Fill);
    let file = d.path().join("o.db");
    let size = || std::fs::metadata(&file).unwrap().len();
    let batch = |first: u64| -> Vec<Incoming> {
        (first..first + 30_000)
            .map(|i| change(L1 + i, "lead", NOW - 100, i))
            .collect()
    };
    s.enqueue(&batch(0), &c).unwrap();
    s.flush_checkpoints();
    // 30,000 rows (about 1,000 pages) are still only in the log.
    assert!(size() < 1 << 20, "database file {} bytes", size());
    s.enqueue(&batch(30_000), &c).unwrap();
    s.flush_checkpoints();
    // Past 50,000 rows the checkpointer copied them into the file.
    assert!(size() > 16 << 20, "database file {} bytes", size());
    // And a second connection reads them all.
    let other = rusqlite::Connection::open(&file).unwrap();
    let n: i64 = other
        .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 60_000);
}
