//! The SQLite outbox: one file, WAL mode, versioned schema
//! (`schema_N.sql`, applied in order; `PRAGMA user_version` is the number
//! applied). By concern: `enqueue.rs` (writers), `delivery.rs` (the
//! sender's claims and settles), `reports.rs` (status, leads, activity),
//! `walk.rs` (where the last claim stopped), `checkpoint.rs` (the log
//! copied back on a second thread).

mod checkpoint;
mod delivery;
mod enqueue;
mod reports;
mod walk;

use crate::StoreError;
use checkpoint::Checkpointer;
use rusqlite::{Connection, TransactionBehavior};
use std::collections::HashMap;
use walk::Walk;

/// Schema migrations, in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("schema_1.sql"),
    include_str!("schema_2.sql"),
    include_str!("schema_3.sql"),
    include_str!("schema_4.sql"),
    include_str!("schema_5.sql"),
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
