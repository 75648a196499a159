//! The PostgreSQL outbox (`store.url = "postgres://..."`): several
//! leadsignal processes, on several machines, share one database.
//!
//! What differs from SQLite: claims lock the rows they take with
//! `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same
//! entry; a lease belongs to the process that took it (`lease_token`), so
//! a worker whose lease ran out and was taken over cannot settle or give
//! back the entry another worker now holds; per-lead stage order holds
//! across workers because a stage is claimable only once every earlier
//! stage of its lead has left the queue (committed). Enqueue locks the
//! batch's leads (upsert, in key order) so that two workers enqueueing the
//! same lead serialize, and writes each table with one multi-row statement.

use crate::model::*;
use crate::plan::{
    leads_of, plan, rank, stage_index, Known, LeadSpec, LoadedLead, Plan, RowEvent, Update,
};
use crate::recover::{self, IndexKey};
use crate::{Outbox, StoreError};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Transaction};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Schema migrations, in order; `leadsignal_schema.version` is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("pg_schema.sql"),
    include_str!("pg_schema_2.sql"),
];

/// Serializes migrations of workers starting together (any number, fixed).
const MIGRATION_LOCK: i64 = 0x6c65_6164_7369_676e;

/// Attempts of a transaction that lost a deadlock or a serialization race.
const TX_ATTEMPTS: usize = 5;

/// The PostgreSQL outbox.
pub struct PgOutbox {
    /// `None` only while being dropped.
    client: Mutex<Option<Client>>,
    /// This process's leases (random): settling checks it.
    token: i64,
}

/// Runs `f` where a blocking client may run: on a scoped thread when
/// called from inside a tokio runtime (the `postgres` client drives its
/// own runtime, which may not be started from inside another), directly
/// otherwise.
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Whether a transaction may simply be run again.
fn retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Postgres(p) if matches!(
        p.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    ))
}

impl PgOutbox {
    /// Connects to `url` (a libpq-style URL or key=value string) and applies
    /// migrations. Tables go to the connection's `search_path` schema
    /// (`?options=-csearch_path%3Dname` picks one).
    pub fn open(url: &str) -> Result<PgOutbox, StoreError> {
        off_runtime(|| {
            let client = Client::connect(url, NoTls).map_err(|e| StoreError::Connect {
                url: crate::redact_url(url),
                message: e.to_string(),
            })?;
            let mut token = fastrand::i64(1..);
            if token == 0 {
                token = 1;
            }
            let s = PgOutbox {
                client: Mutex::new(Some(client)),
                token,
            };
            s.migrate()?;
            Ok(s)
        })
    }

    /// The schema version this program writes.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Runs `f` with the connection (see [`off_runtime`]).
    fn db<R: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, StoreError> + Send,
    ) -> Result<R, StoreError> {
        off_runtime(|| {
            let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
            f(c.as_mut().expect("the connection is only taken by drop"))
        })
    }

    /// Runs one statement without results.
    fn exec(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<(), StoreError> {
        self.db(|c| {
            c.execute(sql, params)?;
            Ok(())
        })
    }

    /// Runs `f` in a transaction, again when it lost a deadlock.
    fn tx<R: Send>(
        &self,
        f: impl Fn(&mut Transaction<'_>) -> Result<R, StoreError> + Send + Sync,
    ) -> Result<R, StoreError> {
        self.db(|c| {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let mut tx = c.transaction()?;
                let r = f(&mut tx).and_then(|r| {
                    tx.commit()?;
                    Ok(r)
                });
                match r {
                    Err(e) if attempt < TX_ATTEMPTS && retryable(&e) => continue,
                    r => return r,
                }
            }
        })
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.db(|c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS leadsignal_schema (version BIGINT NOT NULL)",
            )?;
            let found: i64 = match tx.query_opt("SELECT version FROM leadsignal_schema", &[])? {
                Some(r) => r.get(0),
                None => {
                    tx.execute("INSERT INTO leadsignal_schema (version) VALUES (0)", &[])?;
                    0
                }
            };
            if found > Self::SCHEMA_VERSION {
                return Err(StoreError::SchemaTooNew {
                    path: "the PostgreSQL outbox".into(),
                    found,
                    known: Self::SCHEMA_VERSION,
                });
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
                tx.batch_execute(sql)?;
                tx.execute(
                    "UPDATE leadsignal_schema SET version = $1",
                    &[&(i as i64 + 1)],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.db(|c| {
            Ok(c.query_one("SELECT version FROM leadsignal_schema", &[])?
                .get(0))
        })
    }

    /// Runs `sql` (statements without results) for tests and diagnostics.
    pub fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        self.db(|c| Ok(c.batch_execute(sql)?))
    }
}

impl Drop for PgOutbox {
    /// Closing the connection blocks on the client's runtime too: off any
    /// tokio runtime, like every call.
    fn drop(&mut self) {
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(c) = client {
            off_runtime(move || drop(c));
        }
    }
}

/// Finds or creates the batch's leads (locking them until commit), with
/// the stages they have.
fn load_leads(
    tx: &mut Transaction<'_>,
    dataset: &str,
    specs: &[LeadSpec<'_>],
    now: i64,
) -> Result<Vec<LoadedLead>, StoreError> {
    let keys: Vec<String> = specs.iter().map(|s| s.key.to_string()).collect();
    let lead_ids: Vec<Option<i64>> = specs.iter().map(|s| s.lead_id).collect();
    let crm_ids: Vec<Option<&str>> = specs.iter().map(|s| s.crm_id).collect();
    let created: Vec<Option<i64>> = specs.iter().map(|s| s.created_at).collect();
    // In key order: two batches locking the same leads take them in the
    // same order (no deadlock between them).
    let rows = tx.query(
        "INSERT INTO leads (dataset_id, lead_key, lead_id, crm_id, created_at, first_seen)
         SELECT $1, k, i, c, t, $2
           FROM unnest($3::text[], $4::bigint[], $5::text[], $6::bigint[]) AS u(k, i, c, t)
          ORDER BY k
         ON CONFLICT (dataset_id, lead_key) DO UPDATE
            SET crm_id = coalesce(leads.crm_id, EXCLUDED.crm_id),
                created_at = coalesce(leads.created_at, EXCLUDED.created_at),
                lead_id = coalesce(leads.lead_id, EXCLUDED.lead_id)
         RETURNING id, lead_key, xmax = 0",
        &[&dataset, &now, &keys, &lead_ids, &crm_ids, &created],
    )?;
    let mut found: HashMap<String, (i64, bool)> = HashMap::with_capacity(rows.len());
    for r in rows {
        found.insert(r.get(1), (r.get(0), r.get(2)));
    }
    let existing: Vec<i64> = found
        .values()
        .filter(|(_, inserted)| !inserted)
        .map(|(id, _)| *id)
        .collect();
    let mut known: HashMap<i64, Vec<Known>> = HashMap::new();
    if !existing.is_empty() {
        for r in tx.query(
            "SELECT lead, id, stage, stage_rank, inferred, state FROM outbox WHERE lead = ANY($1)",
            &[&existing],
        )? {
            let state: String = r.get(5);
            known.entry(r.get(0)).or_default().push(Known {
                row: r.get(1),
                stage: r.get::<_, String>(2).into(),
                index: stage_index(r.get(3)),
                inferred: r.get(4),
                state: State::parse(&state).unwrap_or(State::Failed),
            });
        }
    }
    keys.iter()
        .map(|k| {
            let (id, _) = found.get(k).copied().ok_or_else(|| StoreError::Corrupt {
                id: 0,
                message: format!("lead {k} was not returned by its upsert"),
            })?;
            Ok(LoadedLead {
                id,
                known: known.remove(&id).unwrap_or_default(),
            })
        })
        .collect()
}

/// Match quality of the last 7 days' sendable events (model.rs).
fn coverage(c: &mut postgres::Client, now: i64) -> Result<Coverage, StoreError> {
    let mut cov = Coverage::new();
    for r in c.query(
        &format!(
            "SELECT id, payload, stage, event_time, event_id, recovered FROM outbox
              WHERE {COVERAGE_ROWS} $1 ORDER BY id DESC LIMIT {COVERAGE_EVENTS}"
        ),
        &[&(now - 7 * 86_400)],
    )? {
        let payload: &[u8] = r.get(1);
        cov.add(
            &decode_stored(r.get(0), payload, r.get(2), r.get(3), r.get(4))?,
            r.get(5),
        );
    }
    Ok(cov)
}

/// The lead index's entries for `keys` (recover.rs).
fn load_index(
    tx: &mut Transaction<'_>,
    dataset: &str,
    keys: &[IndexKey],
) -> Result<Vec<(IndexKey, i64, Option<i64>)>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let by_key: HashMap<i64, &IndexKey> = keys
        .iter()
        .map(|k| (recover::db_key(dataset, k), k))
        .collect();
    let db_keys: Vec<i64> = by_key.keys().copied().collect();
    let mut out = Vec::new();
    for r in tx.query(
        "SELECT key, lead_id, created_at FROM lead_index WHERE key = ANY($1)",
        &[&db_keys],
    )? {
        if let Some(k) = by_key.get(&r.get::<_, i64>(0)) {
            out.push((**k, r.get(1), r.get(2)));
        }
    }
    Ok(out)
}

/// Adds the batch's leads to the lead index.
fn write_index(
    tx: &mut Transaction<'_>,
    dataset: &str,
    entries: &[(IndexKey, i64, Option<i64>)],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    // Sorted by key: two batches writing the same entries lock them in the
    // same order.
    let mut rows: Vec<(i64, i64, Option<i64>)> = entries
        .iter()
        .map(|(k, id, c)| (recover::db_key(dataset, k), *id, *c))
        .collect();
    rows.sort_unstable();
    rows.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let keys: Vec<i64> = rows.iter().map(|e| e.0).collect();
    let ids: Vec<i64> = rows.iter().map(|e| e.1).collect();
    let created: Vec<Option<i64>> = rows.iter().map(|e| e.2).collect();
    tx.execute(
        "INSERT INTO lead_index (key, lead_id, created_at)
         SELECT k, i, c FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(k, i, c)
         ON CONFLICT (key, lead_id)
            DO UPDATE SET created_at = coalesce(lead_index.created_at, EXCLUDED.created_at)",
        &[&keys, &ids, &created],
    )?;
    Ok(())
}

/// Writes what the planner decided: one statement per table.
fn write(
    tx: &mut Transaction<'_>,
    dataset: &str,
    now: i64,
    plan: &Plan<'_>,
) -> Result<(), StoreError> {
    if !plan.quarantine.is_empty() {
        let q = &plan.quarantine;
        let sources: Vec<&str> = q.iter().map(|r| &*r.origin.source).collect();
        let lines: Vec<i64> = q.iter().map(|r| r.origin.line as i64).collect();
        let fps: Vec<&str> = q.iter().map(|r| &*r.fingerprint).collect();
        let rules: Vec<&str> = q.iter().map(|r| r.rule).collect();
        let fields: Vec<&str> = q.iter().map(|r| r.field).collect();
        let messages: Vec<&str> = q.iter().map(|r| &*r.message).collect();
        tx.execute(
            "INSERT INTO quarantine (source, line, fingerprint, rule, field, message, created_at)
             SELECT s, l, f, r, fi, m, $7
               FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(s, l, f, r, fi, m)
             ON CONFLICT (source, fingerprint, rule, field) DO NOTHING",
            &[&sources, &lines, &fps, &rules, &fields, &messages, &now],
        )?;
    }
    let source_ids = source_ids(tx, plan)?;
    let source_of = |name: &str| source_ids.get(name).copied().unwrap_or(0);
    if !plan.inserts.is_empty() {
        let rows = &plan.inserts;
        // Events made here (inferred, recovered) are encoded here; the
        // others came encoded.
        let encoded: Vec<Option<Vec<u8>>> = rows
            .iter()
            .map(|r| match &r.event {
                RowEvent::Owned(p) => Some(crate::codec::encode(&p.event)),
                RowEvent::Given(..) => None,
            })
            .collect();
        let payloads: Vec<&[u8]> = rows
            .iter()
            .zip(&encoded)
            .map(|(r, e)| match (&r.event, e) {
                (RowEvent::Given(_, p), _) => p.as_bytes(),
                (_, Some(e)) => e.as_slice(),
                (_, None) => &[],
            })
            .collect();
        let prepared: Vec<&leadsignal_core::Prepared> =
            rows.iter().map(|r| r.event.prepared()).collect();
        let leads: Vec<i64> = rows.iter().map(|r| r.lead).collect();
        let stages: Vec<&str> = prepared.iter().map(|p| &*p.event.event_name).collect();
        let ranks: Vec<i64> = prepared.iter().map(|p| rank(p.stage)).collect();
        let times: Vec<i64> = prepared.iter().map(|p| p.event.event_time).collect();
        let event_ids: Vec<&str> = prepared.iter().map(|p| p.event.event_id.as_str()).collect();
        let send_by: Vec<i64> = prepared.iter().map(|p| p.send_by).collect();
        let states: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
        let inferred: Vec<bool> = rows.iter().map(|r| r.inferred).collect();
        let not_before: Vec<i64> = rows.iter().map(|r| r.not_before).collect();
        let sources: Vec<i64> = rows.iter().map(|r| source_of(&r.origin.source)).collect();
        let lines: Vec<i64> = rows.iter().map(|r| r.origin.line as i64).collect();
        let recovered: Vec<bool> = rows.iter().map(|r| r.recovered).collect();
        tx.execute(
            "INSERT INTO outbox (lead, dataset_id, stage, stage_rank, event_time, event_id, payload, send_by,
                                 state, inferred, next_attempt_at, source, line, created_at, settled_at, last_error,
                                 recovered)
             SELECT le, $1, st, ra, et, ei, pa, sb, sa, inf, nb, so, li, $2,
                    CASE sa WHEN 'expired' THEN $2::bigint END, CASE sa WHEN 'expired' THEN $15::text END, rec
               FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::bytea[],
                           $9::bigint[], $10::text[], $11::bool[], $12::bigint[], $13::bigint[], $14::bigint[],
                           $16::bool[])
                    WITH ORDINALITY AS u(le, st, ra, et, ei, pa, sb, sa, inf, nb, so, li, rec, n)
              ORDER BY n",
            &[
                &dataset, &now, &leads, &stages, &ranks, &times, &event_ids, &payloads, &send_by, &states,
                &inferred, &not_before, &sources, &lines, &EXPIRED_ON_ARRIVAL, &recovered,
            ],
        )?;
    }
    for u in &plan.updates {
        match u {
            Update::Replace {
                row,
                expired,
                event,
                recovered,
                origin,
            } => {
                let prepared = event.prepared();
                let e = &prepared.event;
                let mut buf = Vec::new();
                tx.execute(
                    "UPDATE outbox SET event_time = $2, event_id = $3, payload = $4, send_by = $5,
                            inferred = false, source = $6, line = $7,
                            state = CASE WHEN $8 THEN 'expired' ELSE state END,
                            settled_at = CASE WHEN $8 THEN $9::bigint ELSE settled_at END,
                            last_error = CASE WHEN $8 THEN $10::text ELSE last_error END,
                            recovered = $11
                      WHERE id = $1",
                    &[
                        row,
                        &e.event_time,
                        &e.event_id.as_str(),
                        &event.payload(&mut buf),
                        &prepared.send_by,
                        &source_of(&origin.source),
                        &(origin.line as i64),
                        expired,
                        &now,
                        &EXPIRED_ON_ARRIVAL,
                        recovered,
                    ],
                )?;
            }
            Update::Release { row } => {
                tx.execute(
                    "UPDATE outbox SET state = 'pending' WHERE id = $1 AND state = 'held'",
                    &[row],
                )?;
            }
        }
    }
    Ok(())
}

/// The IDs of the sources the plan's rows come from, registering new ones.
fn source_ids(
    tx: &mut Transaction<'_>,
    plan: &Plan<'_>,
) -> Result<HashMap<String, i64>, StoreError> {
    let mut names: Vec<&str> = plan
        .inserts
        .iter()
        .map(|r| &*r.origin.source)
        .chain(plan.updates.iter().filter_map(|u| match u {
            Update::Replace { origin, .. } => Some(&*origin.source),
            Update::Release { .. } => None,
        }))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    tx.execute(
        "INSERT INTO sources (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING",
        &[&names],
    )?;
    Ok(tx
        .query(
            "SELECT name, id FROM sources WHERE name = ANY($1)",
            &[&names],
        )?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

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

impl Outbox for PgOutbox {
    fn enqueue_with_cursor(
        &mut self,
        batch: &[Incoming],
        ctx: &EnqueueContext<'_>,
        cursor: Option<(&str, &str)>,
    ) -> Result<EnqueueReport, StoreError> {
        self.tx(|tx| {
            let dataset = &*ctx.prepare.dataset_id;
            let found = load_index(tx, dataset, &recover::wanted(batch))?;
            let recoveries = recover::recover(batch, &found);
            let specs = leads_of(batch, &recoveries);
            let leads = load_leads(tx, dataset, &specs, ctx.now)?;
            let new: std::collections::HashSet<&leadsignal_core::LeadKey> = specs
                .iter()
                .zip(&leads)
                .filter(|(_, l)| l.known.is_empty())
                .map(|(s, _)| s.key)
                .collect();
            let plan = plan(batch, ctx, &specs, leads, &recoveries);
            write(tx, dataset, ctx.now, &plan)?;
            write_index(tx, dataset, &recover::entries(batch, |k| new.contains(k)))?;
            if let Some((source, value)) = cursor {
                tx.execute(
                    "INSERT INTO source_cursors (source, cursor) VALUES ($1, $2)
                     ON CONFLICT (source) DO UPDATE SET cursor = EXCLUDED.cursor",
                    &[&source, &value],
                )?;
            }
            Ok(plan.report)
        })
    }

    fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        self.db(|c| {
            Ok(c.query_opt(
                "SELECT cursor FROM source_cursors WHERE source = $1",
                &[&source],
            )?
            .map(|r| r.get(0)))
        })
    }

    fn refresh(&mut self, batch: &[Incoming], dataset_id: &str) -> Result<u64, StoreError> {
        self.tx(|tx| {
            let stmt = tx.prepare(
                "UPDATE outbox SET payload = $3, next_attempt_at = 0
                  WHERE lead = (SELECT id FROM leads WHERE dataset_id = $1 AND lead_key = $2)
                    AND stage = $4 AND event_time = $5 AND state = 'pending'",
            )?;
            let mut n = 0;
            for item in batch {
                if let Incoming::Event {
                    prepared, payload, ..
                } = item
                {
                    let e = &prepared.event;
                    n += tx.execute(
                        &stmt,
                        &[
                            &dataset_id,
                            &prepared.lead_key.to_string(),
                            &payload.as_bytes(),
                            &&*e.event_name,
                            &e.event_time,
                        ],
                    )?;
                }
            }
            // The form answers a lead's refresh brings go into the lead index.
            write_index(tx, dataset_id, &recover::entries(batch, |_| true))?;
            Ok(n)
        })
    }

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

    fn lead_id_of(&self, dataset_id: &str, crm_id: &str) -> Result<Option<u64>, StoreError> {
        self.db(|c| {
            if let Some(r) = c.query_opt(
                "SELECT lead_id FROM leads WHERE dataset_id = $1 AND crm_id = $2
                   AND crm_id IS NOT NULL AND lead_id IS NOT NULL LIMIT 1",
                &[&dataset_id, &crm_id],
            )? {
                return Ok(Some(r.get::<_, i64>(0) as u64));
            }
            // The record's e-mail or phone, as one of its events has them,
            // in the lead index (recover.rs).
            let Some(r) = c.query_opt(
                "SELECT o.id, o.payload, o.stage, o.event_time, o.event_id FROM outbox o
                   JOIN leads l ON l.id = o.lead
                  WHERE l.dataset_id = $1 AND l.crm_id = $2 ORDER BY o.id LIMIT 1",
                &[&dataset_id, &crm_id],
            )?
            else {
                return Ok(None);
            };
            let payload: &[u8] = r.get(1);
            let e = decode_stored(r.get(0), payload, r.get(2), r.get(3), r.get(4))?;
            let keys: Vec<i64> = recover::event_keys(&e)
                .iter()
                .map(|k| recover::db_key(dataset_id, k))
                .collect();
            let ids = c
                .query(
                    "SELECT lead_id FROM lead_index WHERE key = ANY($1)",
                    &[&keys],
                )?
                .iter()
                .map(|r| r.get::<_, i64>(0))
                .collect::<Vec<_>>();
            Ok(recover::unique(ids))
        })
    }

    fn lead(&self, dataset_id: &str, lead_id: u64) -> Result<Option<LeadHistory>, StoreError> {
        self.db(|c| {
            let Some(row) = c.query_opt(
                "SELECT id, crm_id, created_at, first_seen FROM leads WHERE dataset_id = $1 AND lead_key = $2",
                &[&dataset_id, &format!("lead_id:{lead_id}")],
            )?
            else {
                return Ok(None);
            };
            let id: i64 = row.get(0);
            let stages = c
                .query(
                    "SELECT stage, event_time, event_id, state, inferred, attempts, send_by, sent_at, fbtrace_id, last_error
                       FROM outbox WHERE lead = $1 ORDER BY event_time, stage_rank",
                    &[&id],
                )?
                .into_iter()
                .map(|r| StageEntry {
                    stage: r.get(0),
                    event_time: r.get(1),
                    event_id: r.get(2),
                    state: r.get(3),
                    inferred: r.get(4),
                    attempts: r.get(5),
                    send_by: r.get(6),
                    sent_at: r.get(7),
                    fbtrace_id: r.get(8),
                    last_error: r.get(9),
                })
                .collect();
            Ok(Some(LeadHistory {
                dataset_id: dataset_id.to_string(),
                lead_id,
                crm_id: row.get(1),
                created_at: row.get(2),
                first_seen: row.get(3),
                stages,
            }))
        })
    }

    fn activity(&self, now: i64) -> Result<Activity, StoreError> {
        self.db(|c| {
            let settled_per_hour = c
                .query(
                    "SELECT settled_at / 3600 * 3600, state, count(*) FROM outbox
                      WHERE settled_at >= $1 GROUP BY 1, 2 ORDER BY 1, 2",
                    &[&(now - 7 * 86_400)],
                )?
                .into_iter()
                .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64))
                .collect();
            let cutoff = now + 86_400;
            let near_cutoff = c
                .query(
                    "SELECT o.stage, o.send_by, l.lead_key FROM outbox o JOIN leads l ON l.id = o.lead
                      WHERE o.state IN ('pending', 'held', 'sending') AND o.send_by <= $1
                      ORDER BY o.send_by LIMIT 20",
                    &[&cutoff],
                )?
                .into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            let near_cutoff_count = c
                .query_one(
                    "SELECT count(*) FROM outbox WHERE state IN ('pending', 'held', 'sending') AND send_by <= $1",
                    &[&cutoff],
                )?
                .get::<_, i64>(0) as u64;
            let latest_errors = c
                .query(
                    "SELECT stage, state, last_error, fbtrace_id FROM outbox
                      WHERE state IN ('quarantined', 'expired', 'failed') AND last_error IS NOT NULL
                      ORDER BY settled_at DESC NULLS LAST, id DESC LIMIT 20",
                    &[],
                )?
                .into_iter()
                .map(|r| {
                    let error: String = r.get(2);
                    let trace: Option<String> = r.get(3);
                    let text = match trace {
                        Some(t) => format!("{error} (fbtrace_id {t})"),
                        None => error,
                    };
                    (r.get(0), r.get(1), text)
                })
                .collect();
            let coverage = coverage(c, now)?;
            Ok(Activity {
                settled_per_hour,
                near_cutoff,
                near_cutoff_count,
                latest_errors,
                coverage,
            })
        })
    }

    fn status(&self, now: i64) -> Result<Status, StoreError> {
        self.db(|c| {
            let mut s = Status::default();
            for r in c.query(
                "SELECT stage, state, count(*), count(*) FILTER (WHERE inferred) FROM outbox GROUP BY stage, state",
                &[],
            )? {
                s.count(r.get(0), r.get(1), r.get::<_, i64>(2) as u64, r.get::<_, i64>(3) as u64);
            }
            let r = c.query_one(
                "SELECT min(event_time), min(send_by) FROM outbox WHERE state IN ('pending', 'held', 'sending')",
                &[],
            )?;
            s.oldest_pending_event_time = r.get(0);
            s.seconds_to_next_expiry = r.get::<_, Option<i64>>(1).map(|d| d - now);
            s.last_sent_at = c.query_one("SELECT max(sent_at) FROM outbox", &[])?.get(0);
            s.oldest_expired_event_time = c
                .query_one("SELECT min(event_time) FROM outbox WHERE state = 'expired'", &[])?
                .get(0);
            s.match_quality = coverage(c, now)?;
            s.sent_with_recovered_lead_id = c
                .query_one(
                    "SELECT count(*) FROM outbox WHERE recovered AND state = 'sent'",
                    &[],
                )?
                .get::<_, i64>(0) as u64;
            for r in c.query("SELECT rule, count(*) FROM quarantine GROUP BY rule", &[])? {
                s.rejected_by_rule.insert(r.get(0), r.get::<_, i64>(1) as u64);
            }
            s.leads = c.query_one("SELECT count(*) FROM leads", &[])?.get::<_, i64>(0) as u64;
            s.test_sends = c.query_one("SELECT count(*) FROM test_sends", &[])?.get::<_, i64>(0) as u64;
            for r in c.query(
                "SELECT dataset_id, paused_reason, paused_at FROM datasets WHERE paused_reason IS NOT NULL ORDER BY dataset_id",
                &[],
            )? {
                s.paused.push(Paused {
                    dataset_id: r.get(0),
                    reason: r.get(1),
                    since: r.get(2),
                });
            }
            for r in c.query(
                "SELECT last_error, count(*) FROM outbox WHERE state IN ('quarantined', 'expired') AND last_error IS NOT NULL
                  GROUP BY last_error ORDER BY count(*) DESC LIMIT 20",
                &[],
            )? {
                s.delivery_errors.push((r.get(0), r.get::<_, i64>(1) as u64));
            }
            s.check_upload_cadence(now);
            Ok(s)
        })
    }
}
