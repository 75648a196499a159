//! Stage changes read straight from a CRM's database (SQLite, PostgreSQL,
//! MySQL/MariaDB): a query with a `:cursor` parameter (bound, never spliced
//! into the SQL), polled; each result row is one stage-change record, its
//! columns named like the record's fields (or mapped), and the cursor
//! column says how far the rows go.
//!
//! The caller stores the rows and the new cursor in one transaction
//! (`Outbox::enqueue_from`), so a crash between reading and storing neither
//! loses nor repeats anything. The cursor column must increase strictly
//! from row to row (a stage-history ID, say): rows after the last one read
//! are those with a greater cursor.

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
    /// `sqlite:///path/to/crm.db`, `postgres://user@host/db`,
    /// `mysql://user:password@host/db` (or `mariadb://`).
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
    /// The URL names a database leadsignal cannot read.
    #[error(
        "source {name}: unsupported database URL {url} (use sqlite://, postgres:// or mysql://)"
    )]
    Unsupported {
        /// The source's name.
        name: String,
        /// URL, its password hidden.
        url: String,
    },
    /// The query does not use `:cursor`.
    #[error("source {0}: the query must use :cursor (e.g. WHERE h.id > :cursor ORDER BY h.id)")]
    NoCursor(String),
    /// The database answered with an error.
    #[error("source {name}: {message}")]
    Database {
        /// The source's name.
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

/// Result rows as read by a driver: column names, and each row's values
/// (`None` for NULL).
struct Table {
    names: Vec<String>,
    rows: Vec<Vec<Option<Value>>>,
}

/// Where `:cursor` occurs in `query` as a parameter (not `::cursor`, not
/// `:cursor_x`).
fn cursor_marks(query: &str) -> Vec<usize> {
    let b = query.as_bytes();
    query
        .match_indices(":cursor")
        .map(|(i, _)| i)
        .filter(|&i| {
            (i == 0 || b[i - 1] != b':')
                && b.get(i + ":cursor".len())
                    .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
        })
        .collect()
}

/// `query` with each `:cursor` parameter written as `with`.
fn rewrite_cursor(query: &str, with: &str) -> String {
    let mut out = String::with_capacity(query.len() + 8);
    let mut last = 0;
    for i in cursor_marks(query) {
        out.push_str(&query[last..i]);
        out.push_str(with);
        last = i + ":cursor".len();
    }
    out.push_str(&query[last..]);
    out
}

impl SqlSource {
    /// Reads the rows after `cursor` (at most `limit`).
    pub fn poll(&self, cursor: &str, limit: usize) -> Result<Poll, SqlError> {
        if cursor_marks(&self.query).is_empty() {
            return Err(SqlError::NoCursor(self.name.clone()));
        }
        let scheme = self.url.split("://").next().unwrap_or("");
        let table = match scheme {
            "sqlite" => self.read_sqlite(&self.url["sqlite://".len()..], cursor, limit),
            // The PostgreSQL client drives a runtime of its own, which may
            // not start inside another (serve polls from one): its own thread.
            "postgres" | "postgresql" => std::thread::scope(|s| {
                s.spawn(|| self.read_postgres(cursor, limit))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            }),
            "mysql" | "mariadb" => self.read_mysql(cursor, limit),
            _ => {
                return Err(SqlError::Unsupported {
                    name: self.name.clone(),
                    url: leadsignal_core::redact::redact_url(&self.url),
                })
            }
        }
        .map_err(|message| SqlError::Database {
            name: self.name.clone(),
            message,
        })?;
        let Some(at) = table.names.iter().position(|n| *n == self.cursor_column) else {
            return Err(SqlError::NoCursorColumn(
                self.name.clone(),
                self.cursor_column.clone(),
            ));
        };
        let mut out = Vec::with_capacity(table.rows.len());
        let mut last = None;
        for values in table.rows {
            let mut object = Map::new();
            let mut raw = Vec::new();
            for (i, (name, v)) in table.names.iter().zip(values).enumerate() {
                let Some(v) = v else { continue };
                raw.extend_from_slice(name.as_bytes());
                raw.push(0);
                raw.extend_from_slice(v.to_string().as_bytes());
                raw.push(0);
                if i == at {
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
                warnings: Vec::new(),
            });
        }
        Ok(Poll {
            rows: out,
            cursor: last,
        })
    }

    fn read_sqlite(&self, path: &str, cursor: &str, limit: usize) -> Result<Table, String> {
        let e = |e: rusqlite::Error| e.to_string();
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(e)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(e)?;
        let mut stmt = conn.prepare(&self.query).map_err(e)?;
        let names: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        // An integer cursor compares as an integer, anything else as text.
        let bound: rusqlite::types::Value = match cursor.parse::<i64>() {
            Ok(i) => i.into(),
            Err(_) => cursor.to_string().into(),
        };
        let mut rows = stmt
            .query(rusqlite::named_params! {":cursor": bound})
            .map_err(e)?;
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(row) = rows.next().map_err(e)? else {
                break;
            };
            let mut values = Vec::with_capacity(names.len());
            for i in 0..names.len() {
                values.push(match row.get_ref(i).map_err(e)? {
                    rusqlite::types::ValueRef::Integer(n) => Some(Value::from(n)),
                    rusqlite::types::ValueRef::Real(f) => Some(Value::from(f)),
                    rusqlite::types::ValueRef::Text(t) => {
                        Some(Value::String(String::from_utf8_lossy(t).into_owned()))
                    }
                    rusqlite::types::ValueRef::Null | rusqlite::types::ValueRef::Blob(_) => None,
                });
            }
            out.push(values);
        }
        Ok(Table { names, rows: out })
    }

    fn read_postgres(&self, cursor: &str, limit: usize) -> Result<Table, String> {
        use postgres::fallible_iterator::FallibleIterator;
        use postgres::types::{ToSql, Type};
        let e = |e: postgres::Error| e.to_string();
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).map_err(e)?;
        let mut tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .map_err(e)?;
        let mut stmt = tx.prepare(&rewrite_cursor(&self.query, "$1")).map_err(e)?;
        // The cursor as the type the query compares it with; types without
        // a plain Rust form are bound as text and converted by the server.
        let (int8, int4, int2);
        let param: &(dyn ToSql + Sync) = match stmt.params().first() {
            Some(t) if *t == Type::INT8 => {
                int8 = cursor
                    .parse::<i64>()
                    .map_err(|_| format!("cursor {cursor:?} is not an integer"))?;
                &int8
            }
            Some(t) if *t == Type::INT4 => {
                int4 = cursor
                    .parse::<i32>()
                    .map_err(|_| format!("cursor {cursor:?} is not an integer"))?;
                &int4
            }
            Some(t) if *t == Type::INT2 => {
                int2 = cursor
                    .parse::<i16>()
                    .map_err(|_| format!("cursor {cursor:?} is not an integer"))?;
                &int2
            }
            Some(t) if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(t) => &cursor,
            Some(t) => {
                let cast = format!("(($1)::text)::{}", t.name());
                stmt = tx.prepare(&rewrite_cursor(&self.query, &cast)).map_err(e)?;
                &cursor
            }
            None => return Err("the query has no parameter".into()),
        };
        let names: Vec<String> = stmt
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let mut rows = tx.query_raw(&stmt, [param]).map_err(e)?;
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(row) = rows.next().map_err(e)? else {
                break;
            };
            out.push(
                (0..names.len())
                    .map(|i| pg_value(&row, i))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        Ok(Table { names, rows: out })
    }

    fn read_mysql(&self, cursor: &str, limit: usize) -> Result<Table, String> {
        use mysql::prelude::Queryable;
        let e = |e: mysql::Error| e.to_string();
        let url = match self.url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => self.url.clone(),
        };
        let opts = mysql::Opts::from_url(&url).map_err(|e| e.to_string())?;
        let mut conn = mysql::Conn::new(opts).map_err(e)?;
        let bound = match cursor.parse::<i64>() {
            Ok(i) => mysql::Value::Int(i),
            Err(_) => mysql::Value::from(cursor),
        };
        let mut result = conn
            .exec_iter(
                rewrite_cursor(&self.query, "?"),
                vec![bound; cursor_marks(&self.query).len()],
            )
            .map_err(e)?;
        let names: Vec<String> = result
            .columns()
            .as_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        let mut out = Vec::new();
        for row in result.by_ref() {
            if out.len() == limit {
                break;
            }
            let row = row.map_err(e)?;
            out.push(
                (0..names.len())
                    .map(|i| row.as_ref(i).and_then(mysql_value))
                    .collect(),
            );
        }
        Ok(Table { names, rows: out })
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
        for field in leadsignal_core::record_fields() {
            if let Some(v) = row.remove(*field) {
                fields.entry(field.to_string()).or_insert(v);
            }
        }
        StageChangeRecord::deserialize(&Value::Object(fields))
            .map_err(|e| vec![Violation::new("sql.field", None, e.to_string())])
    }
}

/// One PostgreSQL value as JSON (`None` for NULL); types without a natural
/// form are refused with the cast that fixes it.
fn pg_value(row: &postgres::Row, i: usize) -> Result<Option<Value>, String> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
    use postgres::types::Type;
    let e = |e: postgres::Error| e.to_string();
    let column = &row.columns()[i];
    let t = column.type_();
    Ok(match *t {
        Type::BOOL => row.try_get::<_, Option<bool>>(i).map_err(e)?.map(Value::from),
        Type::INT2 => row.try_get::<_, Option<i16>>(i).map_err(e)?.map(Value::from),
        Type::INT4 => row.try_get::<_, Option<i32>>(i).map_err(e)?.map(Value::from),
        Type::INT8 => row.try_get::<_, Option<i64>>(i).map_err(e)?.map(Value::from),
        Type::FLOAT4 => row.try_get::<_, Option<f32>>(i).map_err(e)?.map(|f| Value::from(f64::from(f))),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i).map_err(e)?.map(Value::from),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            row.try_get::<_, Option<String>>(i).map_err(e)?.map(Value::from)
        }
        Type::TIMESTAMPTZ => row
            .try_get::<_, Option<DateTime<Utc>>>(i)
            .map_err(e)?
            .map(|t| Value::from(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))),
        Type::TIMESTAMP => row
            .try_get::<_, Option<NaiveDateTime>>(i)
            .map_err(e)?
            .map(|t| Value::from(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())),
        Type::DATE => row
            .try_get::<_, Option<NaiveDate>>(i)
            .map_err(e)?
            .map(|d| Value::from(d.format("%Y-%m-%d").to_string())),
        _ => {
            return Err(format!(
                "column {name:?} has type {t}, which leadsignal does not read: cast it in the query ({name}::text)",
                name = column.name()
            ))
        }
    })
}

/// One MySQL/MariaDB value (binary protocol) as JSON (`None` for NULL).
fn mysql_value(v: &mysql::Value) -> Option<Value> {
    use mysql::Value as V;
    Some(match v {
        V::NULL => return None,
        V::Bytes(b) => Value::from(String::from_utf8_lossy(b).into_owned()),
        V::Int(i) => Value::from(*i),
        V::UInt(u) => Value::from(*u),
        V::Float(f) => Value::from(f64::from(*f)),
        V::Double(d) => Value::from(*d),
        V::Date(y, mo, d, 0, 0, 0, 0) => Value::from(format!("{y:04}-{mo:02}-{d:02}")),
        V::Date(y, mo, d, h, mi, s, 0) => {
            Value::from(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}"))
        }
        V::Date(y, mo, d, h, mi, s, us) => Value::from(format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}"
        )),
        V::Time(neg, days, h, mi, s, _) => Value::from(format!(
            "{}{}:{mi:02}:{s:02}",
            if *neg { "-" } else { "" },
            u32::from(*h) + days * 24
        )),
    })
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
    fn cursor_parameter_is_found_and_rewritten() {
        let q =
            "SELECT x::cursor_t, :cursor_x, ':cursor' FROM t WHERE id > :cursor AND b < :cursor";
        assert_eq!(
            cursor_marks(q).len(),
            3,
            "the quoted one is a limitation, documented"
        );
        assert_eq!(
            rewrite_cursor("WHERE id > :cursor ORDER BY id", "$1"),
            "WHERE id > $1 ORDER BY id"
        );
        assert!(cursor_marks("WHERE a::cursor > 1 AND :cursorx").is_empty());
    }

    #[test]
    fn clear_errors() {
        let (_d, url) = crm();
        let mut s = source(url.clone());
        s.query = "SELECT 1".into();
        assert!(s.poll("0", 1).unwrap_err().to_string().contains(":cursor"));
        let mut s = source("oracle://crm:hunter2@127.0.0.1/crm".into());
        s.query = "SELECT 1 WHERE 1 > :cursor".into();
        let e = s.poll("0", 1).unwrap_err().to_string();
        assert!(e.contains("unsupported database URL"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
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
