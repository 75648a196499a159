//! The sender's side of the PostgreSQL outbox: claims with `FOR UPDATE
//! SKIP LOCKED`, settles that only touch entries this process's lease
//! token still holds.

use super::PgOutbox;
use crate::model::*;
use crate::{Delivery, StoreError};
use std::collections::{HashMap, HashSet};

/// Pending entries of dataset `$1` claimable at `$2` whose lead has no
/// earlier stage still unsent, deadline first; locked, skipping rows other
/// workers are claiming; at most `$3`.
const CLAIM_PICK: &str = "SELECT o.id, o.lead FROM outbox o
  WHERE o.dataset_id = $1 AND o.state = 'pending' AND o.next_attempt_at <= $2 AND o.send_by >= $2
    AND NOT EXISTS (SELECT 1 FROM outbox p
                     WHERE p.lead = o.lead AND p.state IN ('pending', 'sending', 'held')
                       AND p.id <> o.id AND (p.event_time, p.stage_rank) < (o.event_time, o.stage_rank))
  ORDER BY o.send_by, o.id
  LIMIT $3
  FOR UPDATE OF o SKIP LOCKED";

/// Leases that ran out (a worker died): claimable again.
const RETAKE_LEASES: &str =
    "UPDATE outbox SET state = 'pending', lease_until = NULL, lease_token = NULL
  WHERE dataset_id = $1 AND state = 'sending' AND lease_until < $2";

impl Delivery for PgOutbox {
    fn claim(
        &mut self,
        dataset_id: &str,
        limit: usize,
        lease_secs: i64,
        now: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let token = self.token;
        let rows = self.tx(|tx| {
            tx.execute(RETAKE_LEASES, &[&dataset_id, &now])?;
            // Two stages of one lead that hold back neither (same time,
            // both outside the funnel) go one per claim: the rest stay.
            let mut leads = HashSet::new();
            let kept: Vec<i64> = tx
                .query(CLAIM_PICK, &[&dataset_id, &now, &(limit as i64)])?
                .into_iter()
                .filter(|r| leads.insert(r.get::<_, i64>(1)))
                .map(|r| r.get(0))
                .collect();
            if kept.is_empty() {
                return Ok(Vec::new());
            }
            let mut rows: Vec<ClaimedRow> = tx
                .query(
                    "UPDATE outbox o SET state = 'sending', lease_until = $2, lease_token = $3
                       FROM leads l WHERE o.id = ANY($1) AND l.id = o.lead
                     RETURNING o.id, o.dataset_id, l.lead_key, o.payload, o.send_by, o.attempts, o.inferred,
                               o.stage, o.event_time, o.event_id",
                    &[&kept, &(now + lease_secs), &token],
                )?
                .into_iter()
                .map(|r| ClaimedRow {
                    id: r.get(0),
                    dataset_id: r.get(1),
                    lead_key: r.get(2),
                    payload: r.get(3),
                    send_by: r.get(4),
                    attempts: r.get(5),
                    inferred: r.get(6),
                    stage: r.get(7),
                    event_time: r.get(8),
                    event_id: r.get(9),
                })
                .collect();
            let position: HashMap<i64, usize> = kept.iter().enumerate().map(|(i, &id)| (id, i)).collect();
            rows.sort_by_key(|r| position[&r.id]);
            Ok(rows)
        })?;
        rows.into_iter().map(ClaimedRow::into_entry).collect()
    }

    fn mark_sent(
        &mut self,
        ids: &[i64],
        fbtrace_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let token = self.token;
        // Ours, or taken back after our lease ran out and not claimed by
        // anyone since: it was sent, so it is not sent again. An entry
        // another worker holds now is left to it.
        self.exec(
                "UPDATE outbox SET state = 'sent', sent_at = $2, settled_at = $2, fbtrace_id = $3,
                        attempts = attempts + 1, lease_until = NULL, lease_token = NULL
                  WHERE id = ANY($1) AND ((state = 'sending' AND lease_token = $4) OR state = 'pending')",
                &[&ids, &now, &fbtrace_id, &token],
            )
    }

    fn release(
        &mut self,
        ids: &[i64],
        retry_at: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let token = self.token;
        self.exec(
                "UPDATE outbox SET state = 'pending', next_attempt_at = $2, last_error = $3, lease_until = NULL,
                        lease_token = NULL, attempts = attempts + 1
                  WHERE id = ANY($1) AND state = 'sending' AND lease_token = $4",
                &[&ids, &retry_at, &error, &token],
            )
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
        self.exec(
                "UPDATE outbox SET state = $2, last_error = $3, fbtrace_id = coalesce($4, fbtrace_id),
                        lease_until = NULL, lease_token = NULL, attempts = attempts + 1, settled_at = $5
                  WHERE id = ANY($1) AND state = 'sending' AND lease_token = $6",
                &[&ids, &state.as_str(), &reason, &fbtrace_id, &now, &token],
            )
    }

    fn unlease(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        let token = self.token;
        self.exec(
            "UPDATE outbox SET state = 'pending', lease_until = NULL, lease_token = NULL
                  WHERE id = ANY($1) AND state = 'sending' AND lease_token = $2",
            &[&ids, &token],
        )
    }

    fn record_test_send(
        &mut self,
        ids: &[i64],
        test_event_code: &str,
        fbtrace_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let token = self.token;
        self.tx(|tx| {
            let back: Vec<i64> = tx
                .query(
                    "UPDATE outbox SET state = 'pending', lease_until = NULL, lease_token = NULL
                      WHERE id = ANY($1) AND state = 'sending' AND lease_token = $2 RETURNING id",
                    &[&ids, &token],
                )?
                .into_iter()
                .map(|r| r.get(0))
                .collect();
            tx.execute(
                "INSERT INTO test_sends (outbox_id, test_event_code, fbtrace_id, sent_at)
                 SELECT unnest($1::bigint[]), $2, $3, $4",
                &[&back, &test_event_code, &fbtrace_id, &now],
            )?;
            Ok(())
        })
    }

    fn next_attempt_at(&mut self, dataset_id: &str, now: i64) -> Result<Option<i64>, StoreError> {
        self.db(|c| {
            Ok(c.query_one(
                "SELECT min(t) FROM (
                    SELECT min(next_attempt_at) AS t FROM outbox
                     WHERE state = 'pending' AND dataset_id = $1 AND next_attempt_at > $2
                    UNION ALL
                    SELECT min(lease_until) + 1 FROM outbox WHERE state = 'sending' AND dataset_id = $1) m",
                &[&dataset_id, &now],
            )?
            .get(0))
        })
    }

    fn set_paused(
        &mut self,
        dataset_id: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let since = reason.map(|_| now);
        self.exec(
            "INSERT INTO datasets (dataset_id, paused_reason, paused_at) VALUES ($1, $2, $3)
                 ON CONFLICT (dataset_id) DO UPDATE SET paused_reason = $2, paused_at = $3",
            &[&dataset_id, &reason, &since],
        )
    }

    fn paused(&self, dataset_id: &str) -> Result<Option<Paused>, StoreError> {
        self.db(|c| {
            Ok(c.query_opt(
                "SELECT paused_reason, paused_at FROM datasets WHERE dataset_id = $1 AND paused_reason IS NOT NULL",
                &[&dataset_id],
            )?
            .map(|r| Paused {
                dataset_id: dataset_id.to_string(),
                reason: r.get(0),
                since: r.get(1),
            }))
        })
    }

    fn expire_due(&mut self, now: i64) -> Result<u64, StoreError> {
        self.tx(|tx| {
            Ok(tx.execute(
                "UPDATE outbox SET state = 'expired', settled_at = $1 WHERE state = 'pending' AND send_by < $1",
                &[&now],
            )? + tx.execute(
                "UPDATE outbox SET state = 'expired', settled_at = $1 WHERE state = 'held' AND send_by < $1",
                &[&now],
            )?)
        })
    }

    fn pending(&self, dataset_id: &str) -> Result<u64, StoreError> {
        self.db(|c| {
            Ok(c.query_one(
                "SELECT count(*) FROM outbox WHERE dataset_id = $1 AND state = 'pending'",
                &[&dataset_id],
            )?
            .get::<_, i64>(0) as u64)
        })
    }
}
