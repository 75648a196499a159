//! The backends the conformance suite runs against: a fresh SQLite file,
//! and a fresh schema in the PostgreSQL database named by
//! `LEADSIGNAL_TEST_POSTGRES` (default: the machine's server on 127.0.0.1,
//! database `test`). Without a reachable server the PostgreSQL tests say so
//! on stderr and pass, unless `LEADSIGNAL_REQUIRE_DB=1` (CI), where they fail.

#![allow(dead_code)]

use leadsignal_core::sample::config;
use leadsignal_core::{prepare, LeadId, Origin, PrepareConfig, StageChange};
use leadsignal_store::{EnqueueContext, Incoming, MissingStages, Outbox, PgOutbox, SqliteOutbox};
use std::sync::atomic::{AtomicU32, Ordering};

/// The tests' clock: 2026-11-21T12:00:00Z.
pub const NOW: i64 = 1_795_262_400;

/// Lead `lead` reaching `stage` at `at`, from line `line` of `t.csv`,
/// prepared with the sample configuration.
pub fn change(lead: u64, stage: &str, at: i64, line: u64) -> Incoming {
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

/// An enqueue at `NOW` with policy `missing`.
pub fn ctx(cfg: &PrepareConfig, missing: MissingStages) -> EnqueueContext<'_> {
    EnqueueContext {
        prepare: cfg,
        missing,
        now: NOW,
    }
}

/// The default test server.
pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Where an outbox lives; `open` gives another connection to the same one.
pub trait Backend {
    /// A new handle on the store (another process, as far as leases go).
    fn open(&self) -> Box<dyn Outbox + Send>;
    /// Its name, for messages.
    fn name(&self) -> &'static str;
}

/// A fresh SQLite file.
pub struct Sqlite {
    dir: tempfile::TempDir,
}

impl Sqlite {
    /// A fresh store.
    pub fn new() -> Sqlite {
        Sqlite {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Its file.
    pub fn path(&self) -> String {
        self.dir.path().join("o.db").to_str().unwrap().to_string()
    }
}

impl Backend for Sqlite {
    fn open(&self) -> Box<dyn Outbox + Send> {
        Box::new(SqliteOutbox::open(&self.path()).unwrap())
    }
    fn name(&self) -> &'static str {
        "sqlite"
    }
}

/// A fresh schema in the test PostgreSQL database, dropped afterwards.
pub struct Postgres {
    base: String,
    schema: String,
}

static SCHEMAS: AtomicU32 = AtomicU32::new(0);

/// The test server's URL.
pub fn pg_url() -> String {
    std::env::var("LEADSIGNAL_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_PG.to_string())
}

/// Whether a missing database server fails the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("LEADSIGNAL_REQUIRE_DB").is_ok_and(|v| v == "1")
}

impl Postgres {
    /// A fresh schema, or `None` (with a message) when no server answers.
    pub fn new(test: &str) -> Option<Postgres> {
        let base = pg_url();
        let mut c = match postgres::Client::connect(&base, postgres::NoTls) {
            Ok(c) => c,
            Err(e) if !required() => {
                eprintln!(
                    "SKIPPED {test} on PostgreSQL: no server at {} ({e}); set LEADSIGNAL_TEST_POSTGRES, or LEADSIGNAL_REQUIRE_DB=1 to fail instead",
                    leadsignal_store::redact_url(&base)
                );
                return None;
            }
            Err(e) => {
                panic!("LEADSIGNAL_REQUIRE_DB=1 but PostgreSQL at {base} is unreachable: {e}")
            }
        };
        let schema = format!(
            "ls_test_{}_{}_{}",
            std::process::id(),
            SCHEMAS.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
        Some(Postgres { base, schema })
    }

    /// The store's URL (the schema chosen by `search_path`).
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.base, self.schema)
    }
}

impl Backend for Postgres {
    fn open(&self) -> Box<dyn Outbox + Send> {
        Box::new(PgOutbox::open(&self.url()).unwrap())
    }
    fn name(&self) -> &'static str {
        "postgres"
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.base, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema));
        }
    }
}

/// Defines each named test function (`fn(&dyn Backend)`) once per backend:
/// `sqlite::<name>` and `postgres::<name>`.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(&super::backends::Sqlite::new()) })*
        }
        mod postgres {
            $(#[test] fn $name() {
                if let Some(b) = super::backends::Postgres::new(stringify!($name)) {
                    super::$name(&b)
                }
            })*
        }
    };
}
