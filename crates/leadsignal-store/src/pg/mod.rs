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
//!
//! By concern: `enqueue.rs` (writers), `delivery.rs` (the sender's claims
//! and settles), `reports.rs` (status, leads, activity); the schema is
//! `schema_N.sql`, applied in order (`leadsignal_schema.version`).

mod delivery;
mod enqueue;
mod reports;

use crate::StoreError;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Transaction};
use std::sync::Mutex;

/// Schema migrations, in order; `leadsignal_schema.version` is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("schema_1.sql"),
    include_str!("schema_2.sql"),
    include_str!("schema_3.sql"),
    include_str!("schema_4.sql"),
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
    let StoreError::Db { source, .. } = e else {
        return false;
    };
    matches!(
        source.downcast_ref::<postgres::Error>().and_then(postgres::Error::code),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
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
