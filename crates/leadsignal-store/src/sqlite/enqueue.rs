//! Writers' side of the SQLite outbox: a batch planned (`plan.rs`) and
//! written in one transaction, lead index entries buffered.

use super::{SqliteOutbox, INDEX_FLUSH, INDEX_FLUSH_SECS};
use crate::model::*;
use crate::plan::{leads_of, plan, rank, stage_index, Known, LeadSpec, LoadedLead, Plan, Update};
use crate::recover::{self, IndexKey};
use crate::{Enqueue, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// The binding of dataset name `name`, if any.
fn binding_of(c: &rusqlite::Connection, name: &str) -> Result<Option<DatasetBinding>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT dataset_id, bound_at, previous_id, rebound_at FROM dataset_bindings WHERE name = ?1",
    )?
    .query_row([name], |r| {
        let previous: Option<String> = r.get(2)?;
        let rebound: Option<i64> = r.get(3)?;
        Ok(DatasetBinding {
            name: name.to_string(),
            dataset_id: r.get(0)?,
            bound_at: r.get(1)?,
            previous: previous.zip(rebound),
        })
    })
    .optional()?)
}

/// A source's last poll (`?3`: its error, NULL when it worked).
const RECORD_POLL: &str = "INSERT INTO source_health (source, polled_at, ok_at, error, error_at)
     VALUES (?1, ?2, CASE WHEN ?3 IS NULL THEN ?2 END, ?3, CASE WHEN ?3 IS NULL THEN NULL ELSE ?2 END)
     ON CONFLICT (source) DO UPDATE SET polled_at = excluded.polled_at,
        ok_at = COALESCE(excluded.ok_at, source_health.ok_at), error = excluded.error, error_at = excluded.error_at";

/// Adds a lead unless the dataset has it.
const INSERT_LEAD: &str =
    "INSERT OR IGNORE INTO leads (dataset_id, lead_key, lead_id, crm_id, created_at, first_seen)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// `?15`: the reason of a row stored as expired (too old on arrival).
const INSERT_EVENT: &str = "INSERT INTO outbox (lead, dataset_id, stage, stage_rank, event_time, event_id, payload, send_by,
                         state, inferred, next_attempt_at, source, line, created_at, settled_at, last_error, recovered)
     VALUES (?1, ?13, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?14, ?10, ?11, ?12,
             CASE ?8 WHEN 'expired' THEN ?12 END, CASE ?8 WHEN 'expired' THEN ?15 END, ?16)";

/// One enqueue batch, inside its transaction.
struct Tx<'a> {
    tx: &'a Connection,
    /// Reused buffer for encoded payloads.
    payload: Vec<u8>,
    /// The last source looked up, and its ID (batches come from one source).
    source: Option<(String, i64)>,
    /// The batch's dataset.
    dataset: &'a str,
    /// The batch's time (Unix seconds).
    now: i64,
}

impl Tx<'_> {
    /// The ID of source `name`, registering it if new.
    fn source_id(&mut self, name: &str) -> Result<i64, StoreError> {
        if let Some((n, id)) = &self.source {
            if n == name {
                return Ok(*id);
            }
        }
        self.tx
            .prepare_cached("INSERT OR IGNORE INTO sources (name) VALUES (?1)")?
            .execute([name])?;
        let id: i64 = self
            .tx
            .prepare_cached("SELECT id FROM sources WHERE name = ?1")?
            .query_row([name], |r| r.get(0))?;
        self.source = Some((name.to_string(), id));
        Ok(id)
    }

    /// Finds or creates the batch's leads, with the stages they have.
    fn load_leads(&mut self, specs: &[LeadSpec<'_>]) -> Result<Vec<LoadedLead>, StoreError> {
        use std::fmt::Write as _;
        let mut insert = self.tx.prepare_cached(INSERT_LEAD)?;
        let mut out = Vec::with_capacity(specs.len());
        let mut key = String::with_capacity(80);
        for spec in specs {
            key.clear();
            write!(key, "{}", spec.key).expect("writing to a String");
            let inserted = insert.execute(params![
                self.dataset,
                key,
                spec.lead_id,
                spec.crm_id,
                spec.created_at,
                self.now
            ])?;
            if inserted == 1 {
                out.push(LoadedLead {
                    id: self.tx.last_insert_rowid(),
                    known: Vec::new(),
                });
                continue;
            }
            let id: i64 = self
                .tx
                .prepare_cached("SELECT id FROM leads WHERE dataset_id = ?1 AND lead_key = ?2")?
                .query_row(params![self.dataset, &key], |r| r.get(0))?;
            self.tx
                .prepare_cached(
                    "UPDATE leads SET crm_id = coalesce(crm_id, ?2), created_at = coalesce(created_at, ?3),
                                      lead_id = coalesce(lead_id, ?4) WHERE id = ?1",
                )?
                .execute(params![id, spec.crm_id, spec.created_at, spec.lead_id])?;
            let known = self
                .tx
                .prepare_cached(
                    "SELECT id, stage, stage_rank, inferred, state FROM outbox WHERE lead = ?1",
                )?
                .query_map([id], |r| {
                    let state: String = r.get(4)?;
                    Ok(Known {
                        row: r.get(0)?,
                        stage: r.get::<_, String>(1)?.into(),
                        index: stage_index(r.get(2)?),
                        inferred: r.get::<_, i64>(3)? != 0,
                        state: State::parse(&state).unwrap_or(State::Failed),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            out.push(LoadedLead { id, known });
        }
        Ok(out)
    }

    /// The lead index's entries for `keys` (recover.rs).
    fn load_index(
        &mut self,
        keys: &[IndexKey],
    ) -> Result<Vec<(IndexKey, i64, Option<i64>)>, StoreError> {
        let mut out = Vec::new();
        if keys.is_empty() {
            return Ok(out);
        }
        let mut q = self
            .tx
            .prepare_cached("SELECT lead_id, created_at FROM lead_index WHERE key = ?1")?;
        for k in keys {
            let key = recover::db_key(self.dataset, k);
            let rows = q.query_map([key], |r| Ok((r.get(0)?, r.get(1)?)))?;
            for row in rows {
                let (id, created) = row?;
                out.push((*k, id, created));
            }
        }
        Ok(out)
    }

    /// Writes waiting lead index entries (database keys), in key order,
    /// and empties `entries`. An entry already there is left as it is.
    fn write_index(
        &mut self,
        entries: &mut Vec<(i64, i64, Option<i64>)>,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        entries.sort_unstable();
        entries.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        // 100 entries per statement: a statement's cost is per execution.
        const ROWS: usize = 100;
        let many = format!(
            "INSERT OR IGNORE INTO lead_index (key, lead_id, created_at) VALUES {}",
            vec!["(?, ?, ?)"; ROWS].join(", ")
        );
        let mut chunks = entries.chunks_exact(ROWS);
        let mut q = self.tx.prepare_cached(&many)?;
        for chunk in chunks.by_ref() {
            let values: Vec<&dyn rusqlite::ToSql> = chunk
                .iter()
                .flat_map(|(k, id, c)| [k as &dyn rusqlite::ToSql, id, c])
                .collect();
            q.execute(values.as_slice())?;
        }
        let mut one = self.tx.prepare_cached(
            "INSERT OR IGNORE INTO lead_index (key, lead_id, created_at) VALUES (?1, ?2, ?3)",
        )?;
        for (key, id, created) in chunks.remainder() {
            one.execute(params![key, id, created])?;
        }
        entries.clear();
        Ok(())
    }

    /// Writes what the planner decided.
    fn write(&mut self, plan: &Plan<'_>) -> Result<(), StoreError> {
        {
            let mut q = self.tx.prepare_cached(
                "INSERT OR IGNORE INTO quarantine (source, line, fingerprint, rule, field, message, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for r in &plan.quarantine {
                q.execute(params![
                    r.origin.source,
                    r.origin.line as i64,
                    r.fingerprint,
                    r.rule,
                    r.field,
                    r.message,
                    self.now
                ])?;
            }
        }
        // New rows are appended (row IDs ascending) in claim order: deadline
        // hour, then the plan's order. Appending is the cheapest insert, and
        // a claim (deadline hour first) then finds its rows in runs of
        // neighbours, one run per enqueue batch, instead of one page per
        // event: leasing and marking sent rewrite few pages.
        let mut order: Vec<usize> = (0..plan.inserts.len()).collect();
        order.sort_by_key(|&i| deadline_hour(plan.inserts[i].event.prepared().send_by));
        let mut insert = self.tx.prepare_cached(INSERT_EVENT)?;
        for row in order.into_iter().map(|i| &plan.inserts[i]) {
            let p = row.event.prepared();
            let e = &p.event;
            let source = self.source_id(&row.origin.source)?;
            let bytes = row.event.payload(&mut self.payload);
            insert.execute(params![
                row.lead,
                &*e.event_name,
                rank(p.stage),
                e.event_time,
                e.event_id.as_str(),
                bytes,
                p.send_by,
                row.state.as_str(),
                row.inferred as i64,
                source,
                row.origin.line as i64,
                self.now,
                self.dataset,
                row.not_before,
                EXPIRED_ON_ARRIVAL,
                row.recovered
            ])?;
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
                    let source = self.source_id(&origin.source)?;
                    let mut buf = Vec::new();
                    self.tx
                        .prepare_cached(
                            "UPDATE outbox SET event_time = ?2, event_id = ?3, payload = ?4, send_by = ?5,
                                    inferred = 0, source = ?6, line = ?7,
                                    state = CASE WHEN ?8 THEN 'expired' ELSE state END,
                                    settled_at = CASE WHEN ?8 THEN ?9 ELSE settled_at END,
                                    last_error = CASE WHEN ?8 THEN ?10 ELSE last_error END,
                                    recovered = ?11
                              WHERE id = ?1",
                        )?
                        .execute(params![
                            row,
                            e.event_time,
                            e.event_id.as_str(),
                            event.payload(&mut buf),
                            prepared.send_by,
                            source,
                            origin.line as i64,
                            expired,
                            self.now,
                            EXPIRED_ON_ARRIVAL,
                            recovered
                        ])?;
                }
                Update::Release { row } => {
                    self.tx
                        .prepare_cached(
                            "UPDATE outbox SET state = 'pending' WHERE id = ?1 AND state = 'held'",
                        )?
                        .execute([row])?;
                }
            }
        }
        Ok(())
    }
}

/// The hour a deadline falls in: claim order's first key, as `outbox_due`
/// computes it (`send_by / 3600`, SQLite's integer division).
fn deadline_hour(send_by: i64) -> i64 {
    send_by / 3600
}

impl SqliteOutbox {
    /// Writes the waiting lead index entries in their own transaction.
    pub fn flush_index(&mut self) -> Result<(), StoreError> {
        if self.index.entries.is_empty() {
            return Ok(());
        }
        self.durable()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        Tx {
            tx: &tx,
            payload: Vec::new(),
            source: None,
            dataset: "",
            now: 0,
        }
        .write_index(&mut self.index.entries)?;
        tx.commit()?;
        self.index.since = None;
        Ok(())
    }
}

impl Enqueue for SqliteOutbox {
    fn enqueue_with_cursor(
        &mut self,
        batch: &[Incoming],
        ctx: &EnqueueContext<'_>,
        cursor: Option<(&str, &str)>,
    ) -> Result<EnqueueReport, StoreError> {
        self.durable()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;

        let mut t = Tx {
            tx: &tx,
            payload: Vec::with_capacity(512),
            source: None,
            dataset: &ctx.prepare.dataset_id,
            now: ctx.now,
        };
        let wanted = recover::wanted(batch);
        if !wanted.is_empty() {
            t.write_index(&mut self.index.entries)?;
        }
        let found = t.load_index(&wanted)?;
        let recoveries = recover::recover(batch, &found);
        let specs = leads_of(batch, &recoveries);
        let leads = t.load_leads(&specs)?;
        let plan = plan(batch, ctx, &specs, leads, &recoveries);
        t.write(&plan)?;
        // Every event with a lead ID (a re-import after a crash brings back
        // what was not written); the same entry again is left as it is.
        let dataset = t.dataset;
        let entries = recover::entries(batch, |_| true);
        if !entries.is_empty() {
            self.index.since.get_or_insert_with(std::time::Instant::now);
        }
        self.index.entries.extend(
            entries
                .iter()
                .map(|(k, id, c)| (recover::db_key(dataset, k), *id, *c)),
        );
        let due = self
            .index
            .since
            .is_some_and(|t| t.elapsed() >= std::time::Duration::from_secs(INDEX_FLUSH_SECS));
        if self.index.entries.len() >= INDEX_FLUSH || due {
            t.write_index(&mut self.index.entries)?;
        }
        if self.index.entries.is_empty() {
            self.index.since = None;
        }
        let inserted = plan.inserts.len();
        let report = plan.report;
        drop(t);
        if let Some((source, value)) = cursor {
            tx.prepare_cached(
                "INSERT INTO source_cursors (source, cursor) VALUES (?1, ?2)
                 ON CONFLICT (source) DO UPDATE SET cursor = ?2",
            )?
            .execute([source, value])?;
        }
        tx.commit()?;
        self.committed(inserted);
        Ok(report)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.flush_index()
    }

    fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT cursor FROM source_cursors WHERE source = ?1")?
            .query_row([source], |r| r.get(0))
            .optional()?)
    }

    fn record_poll(
        &mut self,
        source: &str,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(RECORD_POLL)?
            .execute(params![source, now, error])?;
        Ok(())
    }

    fn bind_dataset(
        &mut self,
        name: &str,
        dataset_id: &str,
        now: i64,
    ) -> Result<DatasetBinding, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO dataset_bindings (name, dataset_id, bound_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![name, dataset_id, now])?;
        Ok(binding_of(&self.conn, name)?.expect("just inserted or there"))
    }

    fn rebind_dataset(
        &mut self,
        name: &str,
        dataset_id: &str,
        now: i64,
    ) -> Result<Option<DatasetBinding>, StoreError> {
        let tx = self.conn.transaction()?;
        let before = binding_of(&tx, name)?;
        tx.execute(
            "INSERT INTO dataset_bindings (name, dataset_id, bound_at, previous_id, rebound_at)
             VALUES (?1, ?2, ?3, ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE ?3 END)
             ON CONFLICT (name) DO UPDATE SET dataset_id = excluded.dataset_id, bound_at = excluded.bound_at,
                previous_id = excluded.previous_id, rebound_at = excluded.rebound_at",
            params![name, dataset_id, now, before.as_ref().map(|b| b.dataset_id.clone())],
        )?;
        tx.commit()?;
        Ok(before)
    }

    fn refresh(&mut self, batch: &[Incoming], dataset_id: &str) -> Result<u64, StoreError> {
        self.durable()?;
        let tx = self.conn.transaction()?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE outbox SET payload = ?3, next_attempt_at = 0
                  WHERE lead = (SELECT id FROM leads WHERE dataset_id = ?1 AND lead_key = ?2)
                    AND stage = ?4 AND event_time = ?5 AND state = 'pending'",
            )?;
            for item in batch {
                if let Incoming::Event {
                    prepared, payload, ..
                } = item
                {
                    let e = &prepared.event;
                    n += stmt.execute(params![
                        dataset_id,
                        prepared.lead_key.to_string(),
                        payload.as_bytes(),
                        &*e.event_name,
                        e.event_time
                    ])? as u64;
                }
            }
        }
        // The form answers a lead's refresh brings go into the lead index.
        Tx {
            tx: &tx,
            payload: Vec::new(),
            source: None,
            dataset: dataset_id,
            now: 0,
        }
        .write_index(
            &mut recover::entries(batch, |_| true)
                .iter()
                .map(|(k, id, c)| (recover::db_key(dataset_id, k), *id, *c))
                .collect(),
        )?;
        tx.commit()?;
        Ok(n)
    }
}
