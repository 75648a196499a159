//! Reports from the PostgreSQL outbox: the shared queries (`reports.rs`)
//! over this connection, `?N` placeholders written `$N`.

use super::PgOutbox;
use crate::reports::{self, Cell, Param, ReportDb, Row};
use crate::StoreError;
use postgres::types::{ToSql, Type};

/// `sql` with PostgreSQL's placeholders (`?1` → `$1`).
fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// A cell of column `i` by its PostgreSQL type.
fn cell(r: &postgres::Row, i: usize) -> Result<Cell, StoreError> {
    let ty = r.columns()[i].type_();
    let cell = match *ty {
        Type::INT8 => r.get::<_, Option<i64>>(i).map(Cell::Int),
        Type::INT4 => r.get::<_, Option<i32>>(i).map(|n| Cell::Int(n.into())),
        Type::INT2 => r.get::<_, Option<i16>>(i).map(|n| Cell::Int(n.into())),
        Type::BOOL => r.get::<_, Option<bool>>(i).map(|b| Cell::Int(b.into())),
        Type::TEXT | Type::VARCHAR | Type::NAME => r.get::<_, Option<String>>(i).map(Cell::Text),
        Type::BYTEA => r.get::<_, Option<Vec<u8>>>(i).map(Cell::Bytes),
        _ => {
            return Err(StoreError::Db {
                backend: "PostgreSQL",
                source: format!(
                    "a report column of type {ty} (a bug: reports read integers, text and bytes)"
                )
                .into(),
            })
        }
    };
    Ok(cell.unwrap_or(Cell::Null))
}

impl ReportDb for PgOutbox {
    fn rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let sql = dollar_placeholders(sql);
        let owned: Vec<Box<dyn ToSql + Sync + Send>> = params
            .iter()
            .map(|p| -> Box<dyn ToSql + Sync + Send> {
                match p {
                    Param::Int(n) => Box::new(*n),
                    Param::Text(t) => Box::new(t.to_string()),
                }
            })
            .collect();
        self.db(|c| {
            let refs: Vec<&(dyn ToSql + Sync)> = owned
                .iter()
                .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                .collect();
            c.query(&sql, &refs)?
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| cell(r, i))
                        .collect::<Result<_, _>>()
                        .map(Row)
                })
                .collect()
        })
    }
}

reports::reports_from_queries!(PgOutbox);

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_become_dollars() {
        assert_eq!(
            super::dollar_placeholders("a = ?1 AND b <= ?12 AND c = '?'"),
            "a = $1 AND b <= $12 AND c = '?'"
        );
    }
}
