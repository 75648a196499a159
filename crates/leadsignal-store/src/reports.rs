//! The report queries (`Reports`: status, one lead, activity, a CRM
//! record's lead ID), written once for both backends. A backend gives
//! [`ReportDb::rows`]: a statement's rows as [`Cell`]s; the SQL here is
//! the dialect both SQLite and PostgreSQL read (placeholders `?N`, which
//! the PostgreSQL backend writes `$N`; booleans read through `CASE WHEN`).
//! Report reads are not on the delivery path: materializing rows costs
//! nothing that matters next to the scans themselves.

use crate::model::*;
use crate::recover;
use crate::StoreError;

/// A statement parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    /// An integer.
    Int(i64),
    /// A text value.
    Text(&'a str),
}

/// A value of a report row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// SQL NULL.
    Null,
    /// An integer (booleans as 0 and 1).
    Int(i64),
    /// A text value.
    Text(String),
    /// Bytes (stored payloads).
    Bytes(Vec<u8>),
}

/// One row of a report query.
pub(crate) struct Row(pub(crate) Vec<Cell>);

impl Row {
    fn take(&mut self, i: usize) -> Cell {
        std::mem::replace(&mut self.0[i], Cell::Null)
    }

    fn opt_int(&self, i: usize) -> Option<i64> {
        match self.0[i] {
            Cell::Int(n) => Some(n),
            _ => None,
        }
    }

    fn int(&self, i: usize) -> i64 {
        self.opt_int(i).unwrap_or(0)
    }

    fn count(&self, i: usize) -> u64 {
        self.int(i).max(0) as u64
    }

    fn opt_text(&mut self, i: usize) -> Option<String> {
        match self.take(i) {
            Cell::Text(t) => Some(t),
            _ => None,
        }
    }

    fn text(&mut self, i: usize) -> String {
        self.opt_text(i).unwrap_or_default()
    }

    fn bytes(&self, i: usize) -> &[u8] {
        match &self.0[i] {
            Cell::Bytes(b) => b,
            _ => &[],
        }
    }
}

/// What a backend gives the report queries.
pub(crate) trait ReportDb {
    /// The rows of `sql` (placeholders `?1`, `?2`, ...) with `params`.
    fn rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError>;

    /// The one row of an aggregate.
    fn one(&self, sql: &str, params: &[Param<'_>]) -> Result<Row, StoreError> {
        let mut rows = self.rows(sql, params)?;
        Ok(if rows.is_empty() {
            Row(Vec::new())
        } else {
            rows.swap_remove(0)
        })
    }
}

/// `Reports` for a backend that is a [`ReportDb`]: every report is the
/// shared query over its rows.
macro_rules! reports_from_queries {
    ($backend:ty) => {
        impl $crate::Reports for $backend {
            fn status(&self, now: i64) -> Result<$crate::Status, $crate::StoreError> {
                $crate::reports::status(self, now)
            }

            fn lead_id_of(
                &self,
                dataset_id: &str,
                crm_id: &str,
            ) -> Result<Option<u64>, $crate::StoreError> {
                $crate::reports::lead_id_of(self, dataset_id, crm_id)
            }

            fn lead(
                &self,
                dataset_id: &str,
                lead_id: u64,
            ) -> Result<Option<$crate::LeadHistory>, $crate::StoreError> {
                $crate::reports::lead(self, dataset_id, lead_id)
            }

            fn activity(&self, now: i64) -> Result<$crate::Activity, $crate::StoreError> {
                $crate::reports::activity(self, now)
            }
        }
    };
}
pub(crate) use reports_from_queries;

/// States of entries still to be sent.
const UNSENT: [&str; 3] = ["pending", "held", "sending"];

/// The figures of `Reports::status`.
pub(crate) fn status(db: &(impl ReportDb + ?Sized), now: i64) -> Result<Status, StoreError> {
    let mut s = Status::default();
    for mut r in db.rows(
        "SELECT stage, state, count(*), sum(CASE WHEN inferred THEN 1 ELSE 0 END) FROM outbox GROUP BY stage, state",
        &[],
    )? {
        let (n, inferred) = (r.count(2), r.count(3));
        s.count(r.text(0), r.text(1), n, inferred);
    }
    let r = db.one(
        "SELECT min(event_time), min(send_by) FROM outbox WHERE state IN ('pending', 'held', 'sending')",
        &[],
    )?;
    s.oldest_pending_event_time = r.opt_int(0);
    s.seconds_to_next_expiry = r.opt_int(1).map(|d| d - now);
    s.last_sent_at = db.one("SELECT max(sent_at) FROM outbox", &[])?.opt_int(0);
    s.oldest_expired_event_time = db
        .one(
            "SELECT min(event_time) FROM outbox WHERE state = 'expired'",
            &[],
        )?
        .opt_int(0);
    s.match_quality = coverage(db, now)?;
    s.sent_with_recovered_lead_id = db
        .one(
            "SELECT count(*) FROM outbox WHERE recovered AND state = 'sent'",
            &[],
        )?
        .count(0);
    for mut r in db.rows("SELECT rule, count(*) FROM quarantine GROUP BY rule", &[])? {
        let n = r.count(1);
        s.rejected_by_rule.insert(r.text(0), n);
    }
    s.leads = db.one("SELECT count(*) FROM leads", &[])?.count(0);
    s.test_sends = db.one("SELECT count(*) FROM test_sends", &[])?.count(0);
    for mut r in db.rows(
        "SELECT dataset_id, paused_reason, paused_at FROM datasets WHERE paused_reason IS NOT NULL ORDER BY dataset_id",
        &[],
    )? {
        s.paused.push(Paused {
            dataset_id: r.text(0),
            reason: r.text(1),
            since: r.int(2),
        });
    }
    for mut r in db.rows(
        "SELECT source, polled_at, ok_at, error, error_at FROM source_health ORDER BY source",
        &[],
    )? {
        s.sources.push(SourceHealth {
            source: r.text(0),
            polled_at: r.int(1),
            ok_at: r.opt_int(2),
            error: r.opt_text(3),
            error_at: r.opt_int(4),
        });
    }
    for mut r in db.rows(
        "SELECT last_error, count(*) FROM outbox WHERE state IN ('quarantined', 'expired') AND last_error IS NOT NULL
          GROUP BY last_error ORDER BY count(*) DESC LIMIT 20",
        &[],
    )? {
        let n = r.count(1);
        s.delivery_errors.push((r.text(0), n));
    }
    s.check_upload_cadence(now);
    Ok(s)
}

/// Match quality of the last 7 days' sendable events (model.rs).
pub(crate) fn coverage(db: &(impl ReportDb + ?Sized), now: i64) -> Result<Coverage, StoreError> {
    let mut cov = Coverage::new();
    for mut r in db.rows(
        &format!(
            "SELECT id, payload, stage, event_time, event_id, CASE WHEN recovered THEN 1 ELSE 0 END FROM outbox
              WHERE {COVERAGE_ROWS} ?1 ORDER BY id DESC LIMIT {COVERAGE_EVENTS}"
        ),
        &[Param::Int(now - 7 * 86_400)],
    )? {
        let (stage, event_id) = (r.text(2), r.text(4));
        let e = decode_stored(r.int(0), r.bytes(1), &stage, r.int(3), &event_id)?;
        cov.add(&e, r.int(5) != 0);
    }
    Ok(cov)
}

/// The figures of `Reports::activity`.
pub(crate) fn activity(db: &(impl ReportDb + ?Sized), now: i64) -> Result<Activity, StoreError> {
    let settled_per_hour = db
        .rows(
            "SELECT settled_at / 3600 * 3600, state, count(*) FROM outbox
              WHERE settled_at >= ?1 GROUP BY 1, 2 ORDER BY 1, 2",
            &[Param::Int(now - 7 * 86_400)],
        )?
        .into_iter()
        .map(|mut r| (r.int(0), r.text(1), r.count(2)))
        .collect();
    // Unsent entries within 24 hours of their deadline, one state at a
    // time (each state's partial index, keyed by the deadline's hour).
    let cutoff = now + 86_400;
    let (mut near, mut near_count) = (Vec::new(), 0u64);
    for state in UNSENT {
        let params = [
            Param::Text(state),
            Param::Int(cutoff / 3600),
            Param::Int(cutoff),
        ];
        near.extend(
            db.rows(
                "SELECT o.stage, o.send_by, l.lead_key FROM outbox o JOIN leads l ON l.id = o.lead
                  WHERE o.state = ?1 AND o.send_by / 3600 <= ?2 AND o.send_by <= ?3
                  ORDER BY o.send_by LIMIT 20",
                &params,
            )?
            .into_iter()
            .map(|mut r| (r.text(0), r.int(1), r.text(2))),
        );
        near_count += db
            .one(
                "SELECT count(*) FROM outbox WHERE state = ?1 AND send_by / 3600 <= ?2 AND send_by <= ?3",
                &params,
            )?
            .count(0);
    }
    near.sort_by_key(|n| n.1);
    near.truncate(20);
    let latest_errors = db
        .rows(
            "SELECT stage, state, last_error, fbtrace_id FROM outbox
              WHERE state IN ('quarantined', 'expired', 'failed') AND last_error IS NOT NULL
              ORDER BY settled_at DESC NULLS LAST, id DESC LIMIT 20",
            &[],
        )?
        .into_iter()
        .map(|mut r| {
            let error = r.text(2);
            let text = match r.opt_text(3) {
                Some(t) => format!("{error} (fbtrace_id {t})"),
                None => error,
            };
            (r.text(0), r.text(1), text)
        })
        .collect();
    Ok(Activity {
        settled_per_hour,
        near_cutoff: near,
        near_cutoff_count: near_count,
        latest_errors,
        coverage: coverage(db, now)?,
    })
}

/// One lead, as `Reports::lead` gives it.
pub(crate) fn lead(
    db: &(impl ReportDb + ?Sized),
    dataset_id: &str,
    lead_id: u64,
) -> Result<Option<LeadHistory>, StoreError> {
    let key = format!("lead_id:{lead_id}");
    let Some(mut row) = db
        .rows(
            "SELECT id, crm_id, created_at, first_seen FROM leads WHERE dataset_id = ?1 AND lead_key = ?2",
            &[Param::Text(dataset_id), Param::Text(&key)],
        )?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let stages = db
        .rows(
            "SELECT stage, event_time, event_id, state, CASE WHEN inferred THEN 1 ELSE 0 END, attempts, send_by,
                    sent_at, fbtrace_id, last_error
               FROM outbox WHERE lead = ?1 ORDER BY event_time, stage_rank",
            &[Param::Int(row.int(0))],
        )?
        .into_iter()
        .map(|mut r| StageEntry {
            stage: r.text(0),
            event_time: r.int(1),
            event_id: r.text(2),
            state: r.text(3),
            inferred: r.int(4) != 0,
            attempts: r.int(5),
            send_by: r.int(6),
            sent_at: r.opt_int(7),
            fbtrace_id: r.opt_text(8),
            last_error: r.opt_text(9),
        })
        .collect();
    Ok(Some(LeadHistory {
        dataset_id: dataset_id.to_string(),
        lead_id,
        crm_id: row.opt_text(1),
        created_at: row.opt_int(2),
        first_seen: row.int(3),
        stages,
    }))
}

/// `Reports::lead_id_of`: the record's own lead ID, else the one lead the
/// lead index gives its e-mail or phone (as one of its events has them).
pub(crate) fn lead_id_of(
    db: &(impl ReportDb + ?Sized),
    dataset_id: &str,
    crm_id: &str,
) -> Result<Option<u64>, StoreError> {
    let params = [Param::Text(dataset_id), Param::Text(crm_id)];
    if let Some(id) = db
        .rows(
            "SELECT lead_id FROM leads WHERE dataset_id = ?1 AND crm_id = ?2
               AND crm_id IS NOT NULL AND lead_id IS NOT NULL LIMIT 1",
            &params,
        )?
        .first()
        .and_then(|r| r.opt_int(0))
    {
        return Ok(Some(id as u64));
    }
    let Some(mut r) = db
        .rows(
            "SELECT o.id, o.payload, o.stage, o.event_time, o.event_id FROM outbox o
               JOIN leads l ON l.id = o.lead
              WHERE l.dataset_id = ?1 AND l.crm_id = ?2 ORDER BY o.id LIMIT 1",
            &params,
        )?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let (stage, event_id) = (r.text(2), r.text(4));
    let e = decode_stored(r.int(0), r.bytes(1), &stage, r.int(3), &event_id)?;
    let mut ids = Vec::new();
    for k in recover::event_keys(&e) {
        let key = recover::db_key(dataset_id, &k);
        for r in db.rows(
            "SELECT lead_id FROM lead_index WHERE key = ?1",
            &[Param::Int(key)],
        )? {
            ids.push(r.int(0));
        }
    }
    Ok(recover::unique(ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_by_kind_and_null() {
        let mut r = Row(vec![
            Cell::Int(3),
            Cell::Null,
            Cell::Text("x".into()),
            Cell::Bytes(vec![1]),
        ]);
        assert_eq!((r.int(0), r.opt_int(1), r.count(1)), (3, None, 0));
        assert_eq!((r.opt_text(1), r.text(2)), (None, "x".to_string()));
        assert_eq!(r.text(2), "", "taken once");
        assert_eq!(r.bytes(3), [1]);
    }
}
