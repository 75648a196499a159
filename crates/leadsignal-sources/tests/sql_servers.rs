//! SQL sources against real database servers (the machine's PostgreSQL and
//! MariaDB on 127.0.0.1): a CRM schema with a leads table and a stage
//! history table, read after a cursor, then again after new rows arrive.
//! Without a server the tests say so on stderr and pass, unless
//! `LEADSIGNAL_REQUIRE_DB=1` (CI), where they fail.

use leadsignal_sources::sql::SqlSource;

fn required() -> bool {
    std::env::var("LEADSIGNAL_REQUIRE_DB").is_ok_and(|v| v == "1")
}

fn skip(test: &str, what: &str, url: &str, e: &dyn std::fmt::Display) {
    if required() {
        panic!("LEADSIGNAL_REQUIRE_DB=1 but {what} at {url} is unreachable: {e}");
    }
    eprintln!(
        "SKIPPED {test}: no {what} at {url} ({e}); set LEADSIGNAL_REQUIRE_DB=1 to fail instead"
    );
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), fastrand::u32(..))
}

/// The query a CRM integration would write: each stage change with its lead.
const QUERY: &str =
    "SELECT h.id AS seq, l.fb_lead_id, l.id AS crm_id, h.stage, h.changed_at, l.email, l.phone
   FROM stage_history h JOIN leads l ON l.id = h.lead_id
  WHERE h.id > :cursor ORDER BY h.id";

fn source(url: String, query: &str, cursor_column: &str) -> SqlSource {
    SqlSource {
        name: "crm-db".into(),
        url,
        query: query.into(),
        cursor_column: cursor_column.into(),
        columns: [("lead_id".to_string(), "fb_lead_id".to_string())].into(),
    }
}

/// What every server must give for the same CRM rows.
fn check_reads(s: &SqlSource, add_more: impl FnOnce()) {
    let p = s.poll("0", 2).unwrap();
    assert_eq!(p.rows.len(), 2, "at most the limit");
    assert_eq!(p.cursor.as_deref(), Some("11"));
    let r = p.rows[0].record.as_ref().unwrap();
    assert_eq!(
        r.lead_id.as_ref().unwrap().text().as_deref(),
        Some("1234567890123456789"),
        "a 19-digit lead ID stays exact"
    );
    assert_eq!(r.crm_id.as_ref().unwrap().text().as_deref(), Some("1"));
    assert_eq!(r.stage.as_ref().unwrap().text().as_deref(), Some("new"));
    let at = r.changed_at.as_ref().expect("changed_at read");
    assert!(format!("{at:?}").contains("2026-11-20"), "{at:?}");
    assert_eq!(
        p.rows[1]
            .record
            .as_ref()
            .unwrap()
            .stage
            .as_ref()
            .unwrap()
            .text()
            .as_deref(),
        Some("mql")
    );
    let p = s.poll("11", 100).unwrap();
    assert_eq!(p.rows.len(), 1);
    let r = p.rows[0].record.as_ref().unwrap();
    assert!(r.email.is_none() && r.phone.is_none(), "NULL is absent");
    assert_eq!(p.cursor.as_deref(), Some("12"));
    assert!(s.poll("12", 100).unwrap().rows.is_empty());
    add_more();
    let p = s.poll("12", 100).unwrap();
    assert_eq!(p.rows.len(), 2, "only the rows added since");
    assert_eq!(p.cursor.as_deref(), Some("14"));
    // Same rows, same fingerprints: a re-read is recognized.
    assert_eq!(
        s.poll("0", 1).unwrap().rows[0].fingerprint,
        s.poll("0", 1).unwrap().rows[0].fingerprint
    );
}

#[test]
fn postgres_crm_schema() {
    let base = std::env::var("LEADSIGNAL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut c = match postgres::Client::connect(&base, postgres::NoTls) {
        Ok(c) => c,
        Err(e) => return skip("postgres_crm_schema", "PostgreSQL", &base, &e),
    };
    let schema = unique("ls_crm");
    c.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.leads (id BIGINT PRIMARY KEY, fb_lead_id NUMERIC(20) NOT NULL, email TEXT, phone VARCHAR(32));
         CREATE TABLE {schema}.stage_history (id BIGSERIAL PRIMARY KEY, lead_id BIGINT REFERENCES {schema}.leads(id),
                                              stage TEXT NOT NULL, changed_at TIMESTAMPTZ NOT NULL);
         INSERT INTO {schema}.leads VALUES (1, 1234567890123456789, 'Jane@Example.com', '+1 650 555 0100'), (2, 1234567890123456790, NULL, NULL);
         INSERT INTO {schema}.stage_history (id, lead_id, stage, changed_at) VALUES
            (10, 1, 'new', '2026-11-20 10:00:00+00'), (11, 1, 'mql', '2026-11-20 12:00:00+00'), (12, 2, 'new', '2026-11-20 13:00:00+01');"
    ))
    .unwrap();
    let url = format!("{base}?options=-csearch_path%3D{schema}");
    // NUMERIC has no plain form: the source says which cast fixes it.
    let e = source(url.clone(), QUERY, "seq")
        .poll("0", 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("fb_lead_id") && e.contains("::text"), "{e}");
    let query = QUERY.replace("l.fb_lead_id", "l.fb_lead_id::text AS fb_lead_id");
    let s = source(url.clone(), &query, "seq");
    check_reads(&s, || {
        c.batch_execute(&format!(
            "INSERT INTO {schema}.stage_history (id, lead_id, stage, changed_at) VALUES
                (13, 2, 'mql', '2026-11-21 09:00:00+00'), (14, 1, 'opportunity', '2026-11-21 10:00:00+00')"
        ))
        .unwrap();
    });
    // A timestamp cursor: bound as text, converted by the server.
    let by_time = source(
        url,
        &query.replace("h.id AS seq", "h.changed_at AS seq").replace(
            "h.id > :cursor ORDER BY h.id",
            "h.changed_at > :cursor ORDER BY h.changed_at",
        ),
        "seq",
    );
    let p = by_time.poll("2026-11-20T11:00:00Z", 100).unwrap();
    assert_eq!(
        p.rows.len(),
        4,
        "12:00Z, 13:00+01 (= 12:00Z), and the two of the 21st"
    );
    assert_eq!(p.cursor.as_deref(), Some("2026-11-21T10:00:00Z"));
    assert!(by_time
        .poll(p.cursor.as_deref().unwrap(), 100)
        .unwrap()
        .rows
        .is_empty());
    c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

#[test]
fn mariadb_crm_schema() {
    let base = std::env::var("LEADSIGNAL_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let mut c = match mysql::Conn::new(mysql::Opts::from_url(&base).unwrap()) {
        Ok(c) => c,
        Err(e) => return skip("mariadb_crm_schema", "MariaDB/MySQL", &base, &e),
    };
    use mysql::prelude::Queryable;
    let db = unique("ls_crm");
    c.query_drop(format!("CREATE DATABASE {db}")).unwrap();
    c.query_drop(format!(
        "CREATE TABLE {db}.leads (id BIGINT PRIMARY KEY, fb_lead_id BIGINT UNSIGNED NOT NULL, email VARCHAR(200), phone VARCHAR(32))"
    ))
    .unwrap();
    c.query_drop(format!(
        "CREATE TABLE {db}.stage_history (id BIGINT AUTO_INCREMENT PRIMARY KEY, lead_id BIGINT, stage VARCHAR(64) NOT NULL,
                                          changed_at DATETIME NOT NULL, FOREIGN KEY (lead_id) REFERENCES {db}.leads(id))"
    ))
    .unwrap();
    c.query_drop(format!(
        "INSERT INTO {db}.leads VALUES (1, 1234567890123456789, 'Jane@Example.com', '+1 650 555 0100'), (2, 1234567890123456790, NULL, NULL)"
    ))
    .unwrap();
    c.query_drop(format!(
        "INSERT INTO {db}.stage_history (id, lead_id, stage, changed_at) VALUES
            (10, 1, 'new', '2026-11-20 10:00:00'), (11, 1, 'mql', '2026-11-20 12:00:00'), (12, 2, 'new', '2026-11-20 13:00:00')"
    ))
    .unwrap();
    let url = base.replacen("/test", &format!("/{db}"), 1);
    let s = source(url.replacen("mysql://", "mariadb://", 1), QUERY, "seq");
    check_reads(&s, || {
        c.query_drop(format!(
            "INSERT INTO {db}.stage_history (id, lead_id, stage, changed_at) VALUES
                (13, 2, 'mql', '2026-11-21 09:00:00'), (14, 1, 'opportunity', '2026-11-21 10:00:00')"
        ))
        .unwrap();
    });
    let bad = source(url, "SELECT * FROM nope WHERE id > :cursor", "seq");
    let e = bad.poll("0", 1).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
    c.query_drop(format!("DROP DATABASE {db}")).unwrap();
}
