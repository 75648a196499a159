//! Reports from the SQLite outbox: the shared queries (`reports.rs`) over
//! this connection.

use super::SqliteOutbox;
use crate::reports::{self, Cell, Param, ReportDb, Row};
use crate::StoreError;
use rusqlite::types::{ToSql, ValueRef};

impl ReportDb for SqliteOutbox {
    fn rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let params: Vec<&dyn ToSql> = params
            .iter()
            .map(|p| match p {
                Param::Int(n) => n as &dyn ToSql,
                Param::Text(t) => t as &dyn ToSql,
            })
            .collect();
        let mut rows = stmt.query(&*params)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut cells = Vec::with_capacity(columns);
            for i in 0..columns {
                cells.push(match r.get_ref(i)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(n) => Cell::Int(n),
                    ValueRef::Real(f) => Cell::Int(f as i64),
                    ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}

reports::reports_from_queries!(SqliteOutbox);
