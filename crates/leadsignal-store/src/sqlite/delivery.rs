//! The sender's side of the SQLite outbox: claims (deadline hour first,
//! one stage per lead, through `walk.rs`) and settles.

use super::walk::Walk;
use super::SqliteOutbox;
use crate::model::*;
use crate::{Delivery, StoreError};
use rusqlite::{params, TransactionBehavior};
use std::collections::HashMap;

/// What a claim reads of an entry it keeps (`entry`).
const CLAIM_SELECT: &str =
    "SELECT o.id, o.dataset_id, l.lead_key, o.payload, o.send_by, o.attempts, o.inferred,
        o.stage, o.event_time, o.event_id
   FROM outbox o JOIN leads l ON l.id = o.lead";

/// What a claim looks at for each candidate: ID, lead, whether an earlier
/// stage of the lead is still unsent, deadline hour.
const CLAIM_PEEK: &str = "SELECT o.id, o.lead,
        EXISTS (SELECT 1 FROM outbox p
                 WHERE p.lead = o.lead AND p.state IN ('pending', 'sending', 'held')
                   AND p.id != o.id AND (p.event_time, p.stage_rank) < (o.event_time, o.stage_rank)),
        o.send_by / 3600
   FROM outbox o";

/// An entry that may be claimed now (`?1` dataset, `?2` now).
const CLAIMABLE: &str =
    "o.dataset_id = ?1 AND o.state = 'pending' AND o.next_attempt_at <= ?2 AND o.send_by >= ?2";

/// Claimable entries after position (`?3` deadline hour, `?4` row ID), in
/// claim order.
fn claim_scan() -> String {
    format!(
        "{CLAIM_PEEK} WHERE {CLAIMABLE}
           AND o.send_by / 3600 >= max(?2 / 3600, ?3) AND (o.send_by / 3600 > ?3 OR o.id > ?4)
         ORDER BY o.send_by / 3600, o.id"
    )
}

/// Leases that ran out (a sender died): claimable again.
const RETAKE_LEASES: &str = "UPDATE outbox SET state = 'pending', lease_until = NULL
  WHERE dataset_id = ?1 AND state = 'sending' AND lease_until < ?2";

/// Past the deadline, one statement per state so that each uses its
/// partial index (`?1` now).
const EXPIRE: [&str; 2] = [
    "UPDATE outbox SET state = 'expired', settled_at = ?1 WHERE state = 'pending' AND send_by / 3600 <= ?1 / 3600 AND send_by < ?1",
    "UPDATE outbox SET state = 'expired', settled_at = ?1 WHERE state = 'held' AND send_by < ?1",
];

/// Entry IDs as one statement parameter (`rarray(?n)`): one statement per
/// batch instead of one per entry.
fn id_array(ids: &[i64]) -> rusqlite::vtab::array::Array {
    std::rc::Rc::new(
        ids.iter()
            .copied()
            .map(rusqlite::types::Value::from)
            .collect(),
    )
}

/// What a claim keeps of the candidates it looks at.
struct Picked {
    /// Leads already in this claim.
    leads: std::collections::HashSet<i64>,
    /// Entries to claim, in claim order.
    kept: Vec<i64>,
    /// Candidates for the next claim (a second stage of a lead already in
    /// this one that its first does not hold back).
    later: Vec<i64>,
}

impl Picked {
    fn with_capacity(n: usize) -> Picked {
        Picked {
            leads: std::collections::HashSet::with_capacity(n),
            kept: Vec::with_capacity(n),
            later: Vec::new(),
        }
    }

    /// Keeps, passes over (`blocked`: an earlier stage is unsent), or
    /// leaves for later one candidate.
    fn look(&mut self, walk: &mut Walk, id: i64, lead: i64, blocked: bool) {
        if blocked {
            walk.pass(id, lead);
        } else if self.leads.insert(lead) {
            self.kept.push(id);
        } else {
            self.later.push(id);
        }
    }
}

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClaimedRow> {
    Ok(ClaimedRow {
        id: r.get(0)?,
        dataset_id: r.get(1)?,
        lead_key: r.get(2)?,
        payload: r.get(3)?,
        send_by: r.get(4)?,
        attempts: r.get(5)?,
        inferred: r.get::<_, i64>(6)? != 0,
        stage: r.get(7)?,
        event_time: r.get(8)?,
        event_id: r.get(9)?,
    })
}

impl Delivery for SqliteOutbox {
    fn claim(
        &mut self,
        dataset_id: &str,
        limit: usize,
        lease_secs: i64,
        now: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.bookkeeping()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(RETAKE_LEASES)?
            .execute(params![dataset_id, now])?;
        // Walk pending entries in claim order from where the last claim
        // stopped (walk.rs). An entry with an earlier stage of its lead
        // still unsent is passed over and looked at again when that stage
        // leaves the queue. Stages of a lead that hold back neither (same
        // time, both outside the funnel) go one per claim.
        let mut walk = self.walks.remove(dataset_id).unwrap_or_default();
        let mut pick = Picked::with_capacity(limit);
        let recheck = std::mem::take(&mut walk.recheck);
        if !recheck.is_empty() {
            let mut by_id = tx.prepare_cached(&format!(
                "{CLAIM_PEEK} WHERE o.id IN rarray(?3) AND {CLAIMABLE} ORDER BY o.send_by / 3600, o.id"
            ))?;
            let mut found = by_id.query(params![dataset_id, now, id_array(&recheck)])?;
            while let Some(r) = found.next()? {
                pick.look(&mut walk, r.get(0)?, r.get(1)?, r.get(2)?);
            }
        }
        {
            let mut scan = tx.prepare_cached(&claim_scan())?;
            let mut restarted = false;
            loop {
                let (hour, id) = walk.after.unwrap_or((i64::MIN, i64::MIN));
                let mut found = scan.query(params![dataset_id, now, hour, id])?;
                let mut at_end = false;
                while pick.kept.len() < limit {
                    let Some(r) = found.next()? else {
                        at_end = true;
                        break;
                    };
                    let id: i64 = r.get(0)?;
                    walk.after = Some((r.get(3)?, id));
                    pick.look(&mut walk, id, r.get(1)?, r.get(2)?);
                }
                // The end of the queue: one new pass from the front, which
                // also finds retries that came due and late arrivals.
                if !at_end || restarted || walk.after.is_none() {
                    break;
                }
                walk.restart();
                restarted = true;
            }
        }
        // More than `limit` when the rechecks alone were more: the rest wait.
        let Picked {
            mut kept, later, ..
        } = pick;
        if kept.len() > limit {
            walk.recheck.extend(kept.drain(limit..));
        }
        walk.recheck.extend(later);
        self.walks.insert(dataset_id.to_string(), walk);
        let mut rows = tx
            .prepare_cached(&format!("{CLAIM_SELECT} WHERE o.id IN rarray(?1)"))?
            .query_map([id_array(&kept)], entry)?
            .collect::<Result<Vec<_>, _>>()?;
        // In claim order.
        let position: HashMap<i64, usize> =
            kept.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        rows.sort_by_key(|r| position[&r.id]);
        tx.prepare_cached(
            "UPDATE outbox SET state = 'sending', lease_until = ?2, lease_token = ?3 WHERE id IN rarray(?1)",
        )?
        .execute(params![id_array(&kept), now + lease_secs, self.token])?;
        let out = rows
            .into_iter()
            .map(ClaimedRow::into_entry)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        Ok(out)
    }

    fn mark_sent(
        &mut self,
        ids: &[i64],
        fbtrace_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        // `lease_until` stays: only `sending` rows are read by it, and a row
        // that keeps its size is rewritten in place. Ours, or taken back
        // after our lease ran out and not claimed since: it was sent, so it
        // is not sent again; an entry another process holds is left to it.
        let token = self.token;
        self.settle(
            "UPDATE outbox SET state = 'sent', sent_at = ?2, settled_at = ?2, fbtrace_id = ?3, attempts = attempts + 1
              WHERE id IN rarray(?1) AND ((state = 'sending' AND lease_token = ?4) OR state = 'pending') RETURNING lead",
            params![id_array(ids), now, fbtrace_id, token],
        )
    }

    fn release(
        &mut self,
        ids: &[i64],
        retry_at: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.bookkeeping()?;
        self.conn
            .prepare_cached(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?2, last_error = ?3, lease_until = NULL,
                        attempts = attempts + 1
                  WHERE id IN rarray(?1) AND state = 'sending' AND lease_token = ?4",
            )?
            .execute(params![id_array(ids), retry_at, error, self.token])?;
        Ok(())
    }

    fn leave_queue(
        &mut self,
        ids: &[i64],
        state: State,
        reason: &str,
        fbtrace_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let token = self.token;
        self.settle(
            "UPDATE outbox SET state = ?2, last_error = ?3, fbtrace_id = coalesce(?4, fbtrace_id),
                    lease_until = NULL, attempts = attempts + 1, settled_at = ?5
              WHERE id IN rarray(?1) AND state = 'sending' AND lease_token = ?6 RETURNING lead",
            params![
                id_array(ids),
                state.as_str(),
                reason,
                fbtrace_id,
                now,
                token
            ],
        )
    }

    fn unlease(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        self.bookkeeping()?;
        self.conn
            .prepare_cached(
                "UPDATE outbox SET state = 'pending', lease_until = NULL
                  WHERE id IN rarray(?1) AND state = 'sending' AND lease_token = ?2",
            )?
            .execute(params![id_array(ids), self.token])?;
        // Back at once, wherever the walks are.
        for walk in self.walks.values_mut() {
            walk.recheck.extend_from_slice(ids);
        }
        Ok(())
    }

    fn record_test_send(
        &mut self,
        ids: &[i64],
        test_event_code: &str,
        fbtrace_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.bookkeeping()?;
        let tx = self.conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO test_sends (outbox_id, test_event_code, fbtrace_id, sent_at) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut back = tx.prepare_cached(
                "UPDATE outbox SET state = 'pending', lease_until = NULL
                  WHERE id = ?1 AND state = 'sending' AND lease_token = ?2",
            )?;
            for id in ids {
                if back.execute(params![id, self.token])? == 1 {
                    ins.execute(params![id, test_event_code, fbtrace_id, now])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn next_attempt_at(&mut self, dataset_id: &str, now: i64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT min(t) FROM (
                    SELECT min(next_attempt_at) AS t FROM outbox
                     WHERE state = 'pending' AND dataset_id = ?1 AND next_attempt_at > ?2
                    UNION ALL
                    SELECT min(lease_until) + 1 FROM outbox WHERE state = 'sending' AND dataset_id = ?1)",
            )?
            .query_row(params![dataset_id, now], |r| r.get(0))?)
    }

    fn set_paused(
        &mut self,
        dataset_id: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO datasets (dataset_id, paused_reason, paused_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (dataset_id) DO UPDATE SET paused_reason = ?2, paused_at = ?3",
            )?
            .execute(params![dataset_id, reason, reason.map(|_| now)])?;
        Ok(())
    }

    fn paused(&self, dataset_id: &str) -> Result<Option<Paused>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT paused_reason, paused_at FROM datasets WHERE dataset_id = ?1 AND paused_reason IS NOT NULL",
            )?
            .query_row([dataset_id], |r| {
                Ok(Paused {
                    dataset_id: dataset_id.to_string(),
                    reason: r.get(0)?,
                    since: r.get(1)?,
                })
            });
        match row {
            Ok(p) => Ok(Some(p)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn expire_due(&mut self, now: i64) -> Result<u64, StoreError> {
        self.bookkeeping()?;
        let tx = self.conn.transaction()?;
        let mut n = 0;
        for sql in EXPIRE {
            n += tx.prepare_cached(sql)?.execute([now])? as u64;
        }
        tx.commit()?;
        Ok(n)
    }

    fn pending(&self, dataset_id: &str) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM outbox WHERE dataset_id = ?1 AND state = 'pending'",
            )?
            .query_row([dataset_id], |r| r.get::<_, i64>(0))? as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The delivery path never scans the whole outbox: claiming (by
    /// position and by ID), taking back leases, expiring and the batch
    /// updates all use indexes.
    #[test]
    fn delivery_queries_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteOutbox::open(dir.path().join("o.db").to_str().unwrap()).unwrap();
        let plan = |sql: &str| -> String {
            let mut st = s
                .connection()
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let n = st.parameter_count();
            let mut params: Vec<rusqlite::types::Value> = vec![1i64.into(); n];
            if sql.contains("rarray(?1)") {
                params.remove(0);
                let ids = id_array(&[1, 2]);
                let mut all: Vec<&dyn rusqlite::ToSql> = vec![&ids];
                all.extend(params.iter().map(|v| v as &dyn rusqlite::ToSql));
                return st
                    .query_map(all.as_slice(), |r| r.get::<_, String>(3))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect::<Vec<_>>()
                    .join("; ");
            }
            st.query_map(rusqlite::params_from_iter(params), |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("; ")
        };
        let by_id = format!("{CLAIM_PEEK} WHERE o.id IN rarray(?3) AND {CLAIMABLE}");
        let read = format!("{CLAIM_SELECT} WHERE o.id IN rarray(?1)");
        let scan = claim_scan();
        let sent = "UPDATE outbox SET state = 'sent' WHERE id IN rarray(?1) AND state = 'sending' RETURNING lead";
        for sql in [
            &*scan,
            &by_id,
            &read,
            RETAKE_LEASES,
            EXPIRE[0],
            EXPIRE[1],
            sent,
        ] {
            let p = plan(sql);
            assert!(
                !p.contains("SCAN outbox")
                    && !p.contains("SCAN o ")
                    && !p.ends_with("SCAN o")
                    && !p.contains("SCAN p"),
                "{sql}\n=> {p}"
            );
            assert!(!p.contains("TEMP B-TREE"), "no sort: {sql}\n=> {p}");
        }
        assert!(
            plan(&scan).contains("USING INDEX outbox_due"),
            "{}",
            plan(&scan)
        );
    }
}
