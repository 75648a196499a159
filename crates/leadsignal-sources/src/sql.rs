//! Stage changes read straight from a CRM's database: a query with a
//! `:cursor` parameter (bound, never spliced into the SQL), polled; each
//! result row is one stage-change record, its columns named like the record's
//! fields (or mapped), and the cursor column says how far the rows go.
//!
//! The caller stores the rows and the new cursor in one transaction
//! (`Outbox::enqueue_from`), so a crash between reading and storing neither
//! loses nor repeats anything. SQLite databases today; PostgreSQL and
//! MySQL/MariaDB are refused with a clear error until their drivers land.

use crate::SourceRow;
use leadsignal_core::{Origin, Sha256, StageChangeRecord, Violation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A polled SQL source.
#[derive(Debug, Clone)]
pub struct SqlSource {
    /// Name (positions and the stored cursor use it).
    pub name: String,
    /// `sqlite:///path/to/crm.db` (or `sqlite://relative.db`).
    pub url: String,
    /// The query: must use `:cursor` and order by the cursor column.
    pub query: String,
    /// The result column holding each row's cursor value.
    pub cursor_column: String,
    /// Record field → result column, for columns not named like the field.
    pub columns: BTreeMap<String, String>,
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The URL names a database leadsignal cannot read (yet).
    #[error("source {name}: unsupported database URL {url} (sqlite:// is supported; postgres:// and mysql:// are not yet)")]
    Unsupported {
        /// Source.
        name: String,
        /// URL, as configured.
        url: String,
    },
    /// The query does not use `:cursor`.
    #[error("source {0}: the query must use :cursor (e.g. WHERE h.id > :cursor ORDER BY h.id)")]
    NoCursor(String),
    /// The database answered with an error.
    #[error("source {name}: {message}")]
    Database {
        /// Source.
        name: String,
        /// The driver's message.
        message: String,
    },
    /// A row lacks the cursor column.
    #[error("source {0}: the result has no cursor column {1:?}")]
    NoCursorColumn(String, String),
}

/// One poll: the rows read and the cursor after the last of them.
#[derive(Debug)]
pub struct Poll {
    /// Rows, in the query's order, numbered from 1 within the poll.
    pub rows: Vec<SourceRow>,
    /// The cursor value of the last row (`None` when nothing new).
    pub cursor: Option<String>,
}

impl SqlSource {
    /// Reads the rows after `cursor` (at most `limit`).
    pub fn poll(&self, cursor: &str, limit: usize) -> Result<Poll, SqlError> {
        if !self.query.contains(":cursor") {
            return Err(SqlError::NoCursor(self.name.clone()));
        }
        let Some(path) = self.url.strip_prefix("sqlite://") else {
            return Err(SqlError::Unsupported {
                name: self.name.clone(),
                url: self.url.clone(),
            });
        };
        let db = |e: rusqlite::Error| SqlError::Database {
            name: self.name.clone(),
            message: e.to_string(),
        };
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        let mut stmt = conn.prepare(&self.query).map_err(db)?;
        let names: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        if !names.contains(&self.cursor_column) {
            return Err(SqlError::NoCursorColumn(
                self.name.clone(),
                self.cursor_column.clone(),
            ));
        }
        // An integer cursor compares as an integer, anything else as text.
        let bound: rusqlite::types::Value = match cursor.parse::<i64>() {
            Ok(i) => i.into(),
            Err(_) => cursor.to_string().into(),
        };
        let mut rows = stmt
            .query(rusqlite::named_params! {":cursor": bound})
            .map_err(db)?;
        let mut out = Vec::new();
        let mut last = None;
        while out.len() < limit {
            let Some(row) = rows.next().map_err(db)? else {
                break;
            };
            let mut object = Map::new();
            let mut raw = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let v = match row.get_ref(i).map_err(db)? {
                    rusqlite::types::ValueRef::Integer(n) => Value::from(n),
                    rusqlite::types::ValueRef::Real(f) => Value::from(f),
                    rusqlite::types::ValueRef::Text(t) => {
                        Value::String(String::from_utf8_lossy(t).into_owned())
                    }
                    rusqlite::types::ValueRef::Null | rusqlite::types::ValueRef::Blob(_) => {
                        continue
                    }
                };
                raw.extend_from_slice(name.as_bytes());
                raw.push(0);
                raw.extend_from_slice(v.to_string().as_bytes());
                raw.push(0);
                if *name == self.cursor_column {
                    last = Some(match &v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                }
                object.insert(name.clone(), v);
            }
            out.push(SourceRow {
                origin: Origin::new(self.name.as_str(), out.len() as u64 + 1),
                fingerprint: Sha256::of_bytes(&raw),
                record: self.record(object),
            });
        }
        Ok(Poll {
            rows: out,
            cursor: last,
        })
    }

    /// The record of one result row (column → value): mapped columns, then
    /// columns named like record fields; the cursor column and others are
    /// not fields.
    pub fn record(&self, mut row: Map<String, Value>) -> Result<StageChangeRecord, Vec<Violation>> {
        let mut fields = Map::new();
        for (field, column) in &self.columns {
            if let Some(v) = row.remove(column) {
                fields.insert(field.clone(), v);
            }
        }
        for field in leadsignal_core::RECORD_FIELDS {
            if let Some(v) = row.remove(*field) {
                fields.entry(field.to_string()).or_insert(v);
            }
        }
        StageChangeRecord::deserialize(&Value::Object(fields))
            .map_err(|e| vec![Violation::new("sql.field", None, e.to_string())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crm() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crm.db");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE leads (id INTEGER PRIMARY KEY, fb_lead_id TEXT, email TEXT);
             CREATE TABLE stage_history (id INTEGER PRIMARY KEY, lead INTEGER, stage TEXT, changed_at TEXT);
             INSERT INTO leads VALUES (1, '1234567890123456', 'a@example.com'), (2, '1234567890123457', NULL);
             INSERT INTO stage_history VALUES (10, 1, 'new', '2026-11-20T10:00:00Z'),
                                              (11, 1, 'mql', '2026-11-20T12:00:00Z'),
                                              (12, 2, 'new', '2026-11-20T13:00:00Z');",
        )
        .unwrap();
        (dir, format!("sqlite://{}", path.display()))
    }

    fn source(url: String) -> SqlSource {
        SqlSource {
            name: "crm-db".into(),
            url,
            query:
                "SELECT h.id AS cursor, l.fb_lead_id, l.id AS crm_id, h.stage, h.changed_at, l.email
                      FROM stage_history h JOIN leads l ON l.id = h.lead
                     WHERE h.id > :cursor ORDER BY h.id"
                    .into(),
            cursor_column: "cursor".into(),
            columns: [("lead_id".to_string(), "fb_lead_id".to_string())].into(),
        }
    }

    #[test]
    fn polls_after_the_cursor_with_mapped_columns() {
        let (_d, url) = crm();
        let s = source(url);
        let p = s.poll("0", 2).unwrap();
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.cursor.as_deref(), Some("11"));
        let r = p.rows[0].record.as_ref().unwrap();
        assert_eq!(
            r.lead_id.as_ref().unwrap().text().as_deref(),
            Some("1234567890123456")
        );
        assert_eq!(r.crm_id.as_ref().unwrap().text().as_deref(), Some("1"));
        assert_eq!(p.rows[1].origin.line, 2);
        let p = s.poll("11", 100).unwrap();
        assert_eq!(p.rows.len(), 1);
        assert!(
            p.rows[0].record.as_ref().unwrap().email.is_none(),
            "NULL is absent"
        );
        assert_eq!(p.cursor.as_deref(), Some("12"));
        let p = s.poll("12", 100).unwrap();
        assert!(p.rows.is_empty() && p.cursor.is_none());
    }

    #[test]
    fn clear_errors() {
        let (_d, url) = crm();
        let mut s = source(url.clone());
        s.query = "SELECT 1".into();
        assert!(s.poll("0", 1).unwrap_err().to_string().contains(":cursor"));
        let mut s = source("postgres://crm@127.0.0.1/crm".into());
        s.query = "SELECT 1 WHERE 1 > :cursor".into();
        assert!(s
            .poll("0", 1)
            .unwrap_err()
            .to_string()
            .contains("unsupported database URL"));
        let mut s = source(url.clone());
        s.cursor_column = "nope".into();
        assert!(s
            .poll("0", 1)
            .unwrap_err()
            .to_string()
            .contains("no cursor column"));
        let mut s = source(url);
        s.query = "SELECT * FROM missing WHERE id > :cursor".into();
        assert!(s.poll("0", 1).unwrap_err().to_string().contains("missing"));
    }
}
