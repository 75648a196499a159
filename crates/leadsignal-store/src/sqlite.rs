//! The SQLite outbox: one file, WAL mode, versioned schema.

use crate::checkpoint::Checkpointer;
use crate::model::*;
use crate::plan::{leads_of, plan, rank, stage_index, Known, LeadSpec, LoadedLead, Plan, Update};
use crate::recover::{self, IndexKey};
use crate::walk::Walk;
use crate::{Outbox, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;

/// Schema migrations, in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE leads (
    id          INTEGER PRIMARY KEY,
    dataset_id  TEXT NOT NULL,
    lead_key    TEXT NOT NULL,           -- lead_id:<n> | crm_id:<id> | <key>:<sha256>
    lead_id     INTEGER,                 -- Meta lead ID, when known
    crm_id      TEXT,
    created_at  INTEGER,                 -- lead creation (Unix s), when known
    first_seen  INTEGER NOT NULL,
    UNIQUE (dataset_id, lead_key)
);
-- A CRM webhook names a lead by its CRM record ID only: find its lead ID.
CREATE INDEX leads_crm ON leads (dataset_id, crm_id) WHERE crm_id IS NOT NULL AND lead_id IS NOT NULL;
-- Where stage changes came from (file paths, endpoints), stored once.
CREATE TABLE sources (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    lead            INTEGER NOT NULL REFERENCES leads(id),
    dataset_id      TEXT NOT NULL,
    stage           TEXT NOT NULL,       -- event_name
    stage_rank      INTEGER NOT NULL,    -- funnel position; 10000 for unmapped stages
    event_time      INTEGER NOT NULL,
    event_id        TEXT NOT NULL,
    payload         BLOB NOT NULL,       -- the ServerEvent (codec.rs): hashed data only
    send_by         INTEGER NOT NULL,    -- event_time + 7 days - margin
    state           TEXT NOT NULL,       -- pending|held|sending|sent|failed|expired|quarantined
    inferred        INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    lease_until     INTEGER,
    lease_token     INTEGER,             -- the process holding the lease
    last_error      TEXT,
    fbtrace_id      TEXT,
    sent_at         INTEGER,
    settled_at      INTEGER,             -- when it left the queue (sent, quarantined, expired)
    source          INTEGER NOT NULL REFERENCES sources(id),
    line            INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (lead, stage)                 -- one event per stage per lead
);
-- Claiming walks pending entries by deadline; a partial index keeps it small.
-- Keyed by the deadline's hour, not the deadline itself: an import's rows
-- then land at the end of a few hour ranges instead of all over the index,
-- which cuts the bytes a bulk import writes by a third. Within an hour the
-- index is in row ID order, which is arrival order; each enqueue batch
-- appends its rows sorted by deadline hour (Tx::write), so a claim's rows
-- come in runs of neighbours.
CREATE INDEX outbox_due ON outbox (send_by / 3600) WHERE state = 'pending';
-- Leases to take back and held entries to expire: few rows, small indexes.
CREATE INDEX outbox_leased ON outbox (lease_until) WHERE state = 'sending';
CREATE INDEX outbox_held ON outbox (send_by) WHERE state = 'held';
CREATE TABLE quarantine (
    id           INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    line         INTEGER NOT NULL,
    fingerprint  TEXT NOT NULL,          -- SHA-256 of the raw row: dedup without keeping it
    rule         TEXT NOT NULL,
    field        TEXT NOT NULL DEFAULT '',
    message      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (source, fingerprint, rule, field)
);
"#,
    r#"
-- Sends to Meta's Test Events: never mark the production entry as sent.
CREATE TABLE test_sends (
    id               INTEGER PRIMARY KEY,
    outbox_id        INTEGER NOT NULL REFERENCES outbox(id),
    test_event_code  TEXT NOT NULL,
    fbtrace_id       TEXT,
    sent_at          INTEGER NOT NULL
);
-- Per-dataset delivery state: paused on a token or permission problem.
CREATE TABLE datasets (
    dataset_id     TEXT PRIMARY KEY,
    paused_reason  TEXT,                 -- NULL when delivering
    paused_at      INTEGER
);
-- How far a polled source (a CRM database) has been read: moved in the
-- same transaction as the rows it covers.
CREATE TABLE source_cursors (
    source  TEXT PRIMARY KEY,
    cursor  TEXT NOT NULL
);
"#,
    r#"
-- The leads Meta generated, by the SHA-256 of their e-mails and phones
-- (recover.rs): a stage change that lost its lead ID gets it back.
CREATE TABLE lead_index (
    key         INTEGER NOT NULL,        -- recover::db_key(dataset, e-mail or phone digest)
    lead_id     INTEGER NOT NULL,
    created_at  INTEGER,
    PRIMARY KEY (key, lead_id)
) WITHOUT ROWID;
-- Sent with a lead ID recovered from the index.
ALTER TABLE outbox ADD COLUMN recovered INTEGER NOT NULL DEFAULT 0;
"#,
];

/// The embedded outbox.
pub struct SqliteOutbox {
    /// Copies committed pages back into the file on its own thread, once
    /// an enqueue has written enough (started by the first such enqueue).
    /// Declared first: stopped before the connection closes.
    checkpointer: Option<Checkpointer>,
    /// Rows inserted since the checkpointer was last nudged.
    unnudged: usize,
    conn: Connection,
    path: String,
    /// Each dataset's walk through its queue (see `walk.rs`).
    walks: HashMap<String, Walk>,
    /// This process's leases (random): settling checks it, so that an
    /// entry whose lease ran out and another process took is left to it.
    token: i64,
    /// Lead index entries not written yet (see [`INDEX_FLUSH`]).
    index: IndexBuffer,
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

impl SqliteOutbox {
    /// Match quality of the last 7 days' sendable events (model.rs).
    fn coverage(&self, now: i64) -> Result<Coverage, StoreError> {
        let mut cov = Coverage::new();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, payload, stage, event_time, event_id, recovered FROM outbox
              WHERE {COVERAGE_ROWS} ?1 ORDER BY id DESC LIMIT {COVERAGE_EVENTS}"
        ))?;
        let mut rows = stmt.query([now - 7 * 86_400])?;
        while let Some(r) = rows.next()? {
            let (id, payload, stage, event_time, event_id): (i64, Vec<u8>, String, i64, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
            let recovered: i64 = r.get(5)?;
            cov.add(
                &decode_stored(id, &payload, &stage, event_time, &event_id)?,
                recovered != 0,
            );
        }
        Ok(cov)
    }
}

impl Drop for SqliteOutbox {
    /// Waiting lead index entries are written before the store closes.
    fn drop(&mut self) {
        if let Err(e) = self.flush_index() {
            eprintln!("leadsignal: the lead index could not be completed ({e}); importing the same rows again completes it");
        }
    }
}

/// Lead index entries waiting to be written: (database key, lead ID,
/// creation time), and since when.
#[derive(Default)]
struct IndexBuffer {
    entries: Vec<(i64, i64, Option<i64>)>,
    since: Option<std::time::Instant>,
}

/// Lead index entries are written together, in key order, once this many
/// wait, after [`INDEX_FLUSH_SECS`], before a batch looks the index up, and
/// when the store is closed: an entry's place in the index is random (a
/// digest), so writing each batch's entries would rewrite most of the
/// index's pages every batch (an import of 10^6 rows wrote 1.3 GB more).
/// An entry lost to a crash comes back when its row is imported again.
const INDEX_FLUSH: usize = 200_000;

/// The longest an index entry waits (`serve`'s trickle of webhook leads).
const INDEX_FLUSH_SECS: u64 = 30;

/// Rows enqueued between two nudges of the checkpointer (`checkpoint.rs`):
/// about 1,500 pages, so that a bulk import is copied back as it goes
/// while a trickle of small batches (`serve`) does not cost a checkpoint
/// (and its fsyncs) each.
const NUDGE_ROWS: usize = 50_000;

/// Adds a lead unless the dataset has it.
const INSERT_LEAD: &str =
    "INSERT OR IGNORE INTO leads (dataset_id, lead_key, lead_id, crm_id, created_at, first_seen)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// `?15`: the reason of a row stored as expired (too old on arrival).
const INSERT_EVENT: &str = "INSERT INTO outbox (lead, dataset_id, stage, stage_rank, event_time, event_id, payload, send_by,
                         state, inferred, next_attempt_at, source, line, created_at, settled_at, last_error, recovered)
     VALUES (?1, ?13, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?14, ?10, ?11, ?12,
             CASE ?8 WHEN 'expired' THEN ?12 END, CASE ?8 WHEN 'expired' THEN ?15 END, ?16)";

impl SqliteOutbox {
    /// Delivery bookkeeping (leases, sent marks, retries) commits with
    /// `synchronous = NORMAL`: in WAL mode that survives any crash of the
    /// process (kill -9); a power cut may undo the last marks, and then an
    /// event is sent again with the same `event_id`, which Meta
    /// deduplicates. Accepting input (`enqueue`) stays `FULL`: nothing
    /// accepted is ever lost.
    fn bookkeeping(&mut self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Claims and sent marks touch rows all over the table: checkpoint
        // less often, so that a page changed by both is copied back once.
        self.conn.pragma_update(None, "wal_autocheckpoint", 8192)?;
        Ok(())
    }

    /// Back to `FULL` (see [`SqliteOutbox::bookkeeping`]). Imports insert at
    /// the end of many deadline-hour ranges of the due index, so the same
    /// pages change in many transactions: checkpointing every 128 MiB of WAL
    /// instead of 16 MiB copies each back fewer times (measured when the
    /// table itself was in hour ranges: 2.65 → 2.23 GB written per 10⁶ rows,
    /// 140k → 157k rows/s). Most of that copying is done beforehand by the
    /// checkpoint thread (`checkpoint.rs`).
    fn durable(&mut self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "wal_autocheckpoint", 8192)?;
        Ok(())
    }

    /// Runs `sql`, an update of leased entries out of the queue that returns
    /// their leads, in one transaction; then the walks look again at what
    /// waited behind them.
    fn settle(&mut self, sql: &str, params: impl rusqlite::Params) -> Result<(), StoreError> {
        self.bookkeeping()?;
        let tx = self.conn.transaction()?;
        let leads = tx
            .prepare_cached(sql)?
            .query_map(params, |r| r.get(0))?
            .collect::<Result<Vec<i64>, _>>()?;
        tx.commit()?;
        self.left_queue(&leads);
        Ok(())
    }

    /// Stages of these leads left the queue: the entries the walks passed
    /// over behind them are looked at again.
    fn left_queue(&mut self, leads: &[i64]) {
        for walk in self.walks.values_mut() {
            for &lead in leads {
                walk.left_queue(lead);
            }
        }
    }

    /// `rows` new rows were committed: past [`NUDGE_ROWS`] since the last
    /// time, the checkpointer copies them back into the file.
    fn committed(&mut self, rows: usize) {
        self.unnudged += rows;
        if self.unnudged < NUDGE_ROWS {
            return;
        }
        self.unnudged = 0;
        if self.checkpointer.is_none() {
            self.checkpointer = Checkpointer::start(&self.path);
        }
        if let Some(c) = &self.checkpointer {
            c.nudge();
        }
    }

    /// Waits until the checkpointer has copied back what was committed so
    /// far (tests; a no-op before any large enqueue).
    pub fn flush_checkpoints(&self) {
        if let Some(c) = &self.checkpointer {
            c.flush();
        }
    }

    /// Opens (creating if needed) the outbox at `path` and applies migrations.
    pub fn open(path: &str) -> Result<SqliteOutbox, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Takes effect when the database is created (before WAL is enabled).
        conn.pragma_update(None, "page_size", 16_384)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a committed transaction survives power loss, not only a crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Not enforced: rows point only to leads and sources written in the
        // same transaction, and nothing is ever deleted; the two lookups per
        // row cost an import 3-4% (as on PostgreSQL, which declares none).
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        // A page cache large enough for bulk imports (16 MiB, bounded).
        conn.pragma_update(None, "cache_size", -16_384)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        rusqlite::vtab::array::load_module(&conn)?;
        let mut store = SqliteOutbox {
            checkpointer: None,
            unnudged: 0,
            conn,
            path: path.to_string(),
            walks: HashMap::new(),
            token: fastrand::i64(1..),
            index: IndexBuffer::default(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The schema version this program writes.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    fn migrate(&mut self) -> Result<(), StoreError> {
        let found: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > Self::SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path: self.path.clone(),
                found,
                known: Self::SCHEMA_VERSION,
            });
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Direct access for tests and diagnostics.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

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

impl Outbox for SqliteOutbox {
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

    fn lead_id_of(&self, dataset_id: &str, crm_id: &str) -> Result<Option<u64>, StoreError> {
        let id: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT lead_id FROM leads WHERE dataset_id = ?1 AND crm_id = ?2
                   AND crm_id IS NOT NULL AND lead_id IS NOT NULL LIMIT 1",
            )?
            .query_row(params![dataset_id, crm_id], |r| r.get(0))
            .optional()?;
        if let Some(i) = id {
            return Ok(Some(i as u64));
        }
        // The record's e-mail or phone, as one of its events has them, in
        // the lead index (recover.rs).
        let event = self
            .conn
            .prepare_cached(
                "SELECT o.id, o.payload, o.stage, o.event_time, o.event_id FROM outbox o
                   JOIN leads l ON l.id = o.lead
                  WHERE l.dataset_id = ?1 AND l.crm_id = ?2 ORDER BY o.id LIMIT 1",
            )?
            .query_row(params![dataset_id, crm_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .optional()?;
        let Some((row, payload, stage, time, event_id)) = event else {
            return Ok(None);
        };
        let e = decode_stored(row, &payload, &stage, time, &event_id)?;
        let mut ids = Vec::new();
        let mut q = self
            .conn
            .prepare_cached("SELECT lead_id FROM lead_index WHERE key = ?1")?;
        for k in recover::event_keys(&e) {
            for id in q.query_map([recover::db_key(dataset_id, &k)], |r| r.get(0))? {
                ids.push(id?);
            }
        }
        Ok(recover::unique(ids))
    }

    fn lead(&self, dataset_id: &str, lead_id: u64) -> Result<Option<LeadHistory>, StoreError> {
        let c = &self.conn;
        let row = c
            .prepare_cached(
                "SELECT id, crm_id, created_at, first_seen FROM leads WHERE dataset_id = ?1 AND lead_key = ?2",
            )?
            .query_row(params![dataset_id, format!("lead_id:{lead_id}")], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            });
        let (id, crm_id, created_at, first_seen) = match row {
            Ok(r) => r,
            Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let stages = c
            .prepare_cached(
                "SELECT stage, event_time, event_id, state, inferred, attempts, send_by, sent_at, fbtrace_id, last_error
                   FROM outbox WHERE lead = ?1 ORDER BY event_time, stage_rank",
            )?
            .query_map([id], |r| {
                Ok(StageEntry {
                    stage: r.get(0)?,
                    event_time: r.get(1)?,
                    event_id: r.get(2)?,
                    state: r.get(3)?,
                    inferred: r.get::<_, i64>(4)? != 0,
                    attempts: r.get(5)?,
                    send_by: r.get(6)?,
                    sent_at: r.get(7)?,
                    fbtrace_id: r.get(8)?,
                    last_error: r.get(9)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(LeadHistory {
            dataset_id: dataset_id.to_string(),
            lead_id,
            crm_id,
            created_at,
            first_seen,
            stages,
        }))
    }

    fn activity(&self, now: i64) -> Result<Activity, StoreError> {
        let c = &self.conn;
        let settled_per_hour = c
            .prepare_cached(
                "SELECT settled_at / 3600 * 3600, state, count(*) FROM outbox
                  WHERE settled_at >= ?1 GROUP BY 1, 2 ORDER BY 1, 2",
            )?
            .query_map([now - 7 * 86_400], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        // Unsent entries within 24 hours of their deadline, by state's index.
        let mut near = Vec::new();
        let mut count = 0u64;
        for state in ["pending", "held", "sending"] {
            let mut stmt = c.prepare_cached(
                "SELECT o.stage, o.send_by, l.lead_key FROM outbox o JOIN leads l ON l.id = o.lead
                  WHERE o.state = ?1 AND o.send_by / 3600 <= (?2 + 86400) / 3600 AND o.send_by <= ?2 + 86400
                  ORDER BY o.send_by LIMIT 20",
            )?;
            near.extend(
                stmt.query_map(params![state, now], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<Vec<(String, i64, String)>, _>>()?,
            );
            count += c
                .prepare_cached(
                    "SELECT count(*) FROM outbox WHERE state = ?1 AND send_by / 3600 <= (?2 + 86400) / 3600 AND send_by <= ?2 + 86400",
                )?
                .query_row(params![state, now], |r| r.get::<_, i64>(0))? as u64;
        }
        near.sort_by_key(|n| n.1);
        near.truncate(20);
        let latest_errors = c
            .prepare_cached(
                "SELECT stage, state, last_error, fbtrace_id FROM outbox
                  WHERE state IN ('quarantined', 'expired', 'failed') AND last_error IS NOT NULL
                  ORDER BY id DESC LIMIT 20",
            )?
            .query_map([], |r| {
                let error: String = r.get(2)?;
                let trace: Option<String> = r.get(3)?;
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    match trace {
                        Some(t) => format!("{error} (fbtrace_id {t})"),
                        None => error,
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Activity {
            settled_per_hour,
            near_cutoff: near,
            near_cutoff_count: count,
            latest_errors,
            coverage: self.coverage(now)?,
        })
    }

    fn status(&self, now: i64) -> Result<Status, StoreError> {
        let c = &self.conn;
        let mut s = Status::default();
        let mut stmt = c.prepare(
            "SELECT stage, state, count(*), sum(inferred) FROM outbox GROUP BY stage, state",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (stage, state, n, inferred) = row?;
            s.count(stage, state, n as u64, inferred as u64);
        }
        let (oldest, next_deadline): (Option<i64>, Option<i64>) = c.query_row(
            "SELECT min(event_time), min(send_by) FROM outbox WHERE state IN ('pending', 'held', 'sending')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        s.oldest_pending_event_time = oldest;
        s.seconds_to_next_expiry = next_deadline.map(|d| d - now);
        s.last_sent_at = c.query_row("SELECT max(sent_at) FROM outbox", [], |r| r.get(0))?;
        s.oldest_expired_event_time = c.query_row(
            "SELECT min(event_time) FROM outbox WHERE state = 'expired'",
            [],
            |r| r.get(0),
        )?;
        s.match_quality = self.coverage(now)?;
        s.sent_with_recovered_lead_id = c.query_row(
            "SELECT count(*) FROM outbox WHERE recovered = 1 AND state = 'sent'",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64;
        let mut stmt = c.prepare("SELECT rule, count(*) FROM quarantine GROUP BY rule")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (rule, n) = row?;
            s.rejected_by_rule.insert(rule, n as u64);
        }
        s.leads = c.query_row("SELECT count(*) FROM leads", [], |r| r.get::<_, i64>(0))? as u64;
        s.test_sends = c.query_row("SELECT count(*) FROM test_sends", [], |r| {
            r.get::<_, i64>(0)
        })? as u64;
        let mut stmt = c.prepare(
            "SELECT dataset_id, paused_reason, paused_at FROM datasets WHERE paused_reason IS NOT NULL ORDER BY dataset_id",
        )?;
        for row in stmt.query_map([], |r| {
            Ok(Paused {
                dataset_id: r.get(0)?,
                reason: r.get(1)?,
                since: r.get(2)?,
            })
        })? {
            s.paused.push(row?);
        }
        let mut stmt = c.prepare(
            "SELECT last_error, count(*) FROM outbox WHERE state IN ('quarantined', 'expired') AND last_error IS NOT NULL
              GROUP BY last_error ORDER BY count(*) DESC LIMIT 20",
        )?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (e, n) = row?;
            s.delivery_errors.push((e, n as u64));
        }
        s.check_upload_cadence(now);
        Ok(s)
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
