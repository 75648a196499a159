//! `[[sources]]` of kind `sql`: `leadsignal sync` reads a CRM's SQLite
//! database after the stored cursor, stores rows and cursor together, and
//! delivers; a second run reads only what was added since.

use leadsignal_sandbox::{self as sandbox, SandboxConfig};
use serde_json::Value;
use std::process::Command;

const DATASET: &str = "2780431635496611";
const TOKEN: &str = "EAAsql-source-token";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_reads_a_crm_database_after_its_cursor() {
    let sb = sandbox::start(SandboxConfig::single(DATASET, TOKEN))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let crm_path = dir.path().join("crm.db");
    let crm = rusqlite::Connection::open(&crm_path).unwrap();
    crm.execute_batch(
        "CREATE TABLE leads (id INTEGER PRIMARY KEY, meta_lead_id TEXT, email TEXT, phone TEXT);
         CREATE TABLE stage_history (id INTEGER PRIMARY KEY, lead_id INTEGER REFERENCES leads(id),
                                     status TEXT NOT NULL, changed_at INTEGER NOT NULL);",
    )
    .unwrap();
    let t = now() - 3600;
    crm.execute_batch(&format!(
        "INSERT INTO leads VALUES (1, '1234567890123456', 'Ann@Example.com', '+1 650 555 1212'),
                                  (2, '1234567890123457', NULL, NULL);
         INSERT INTO stage_history VALUES (1, 1, 'new', {t}), (2, 1, 'mql', {}), (3, 2, 'new', {});",
        t + 60,
        t + 120
    ))
    .unwrap();
    let cfg = format!(
        "[meta]\ndataset_id = \"{DATASET}\"\naccess_token = \"{TOKEN}\"\ngraph_url = \"{}\"\n[crm]\nname = \"In-house CRM\"\n\
         [normalize]\ndefault_country = \"US\"\n[store]\nurl = \"sqlite://{}\"\n\
         [[sources]]\nname = \"crm-db\"\nkind = \"sql\"\nurl = \"sqlite://{}\"\n\
         query = \"SELECT h.id AS cursor, l.meta_lead_id AS lead_id, l.id AS crm_id, h.status AS stage, h.changed_at, l.email, l.phone FROM stage_history h JOIN leads l ON l.id = h.lead_id WHERE h.id > :cursor ORDER BY h.id\"\n",
        sb.url(),
        dir.path().join("outbox.db").display(),
        crm_path.display()
    );
    std::fs::write(dir.path().join("leadsignal.toml"), cfg).unwrap();
    let sync = || {
        let d = dir.path().to_path_buf();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut c = Command::new(env!("CARGO_BIN_EXE_leadsignal"));
                for (k, _) in std::env::vars() {
                    if k.starts_with("LEADSIGNAL_") {
                        c.env_remove(k);
                    }
                }
                let out = c.current_dir(d).args(["sync", "--json"]).output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                serde_json::from_slice::<Value>(&out.stdout).unwrap()
            })
            .await
            .unwrap()
        }
    };
    let first = sync().await;
    assert_eq!(first["sources"][0]["rows"], 3, "{first}");
    assert_eq!(first["sources"][0]["store"]["accepted"], 3, "{first}");
    assert_eq!(first["sources"][0]["cursor"], "3");
    assert_eq!(first["send"]["accepted"], 3, "{first}");
    // Nothing new: nothing read.
    let again = sync().await;
    assert_eq!(again["sources"][0]["rows"], 0, "{again}");
    // Two more stage changes in the CRM: only those are read.
    crm.execute_batch(&format!(
        "INSERT INTO stage_history VALUES (4, 2, 'mql', {}), (5, 1, 'opportunity', {});",
        t + 180,
        t + 240
    ))
    .unwrap();
    let third = sync().await;
    assert_eq!(third["sources"][0]["rows"], 2, "{third}");
    assert_eq!(third["sources"][0]["cursor"], "5");
    assert_eq!(third["send"]["accepted"], 2, "{third}");
    assert_eq!(sb.stats().distinct_event_ids, 5);
    // The cursor is stored with the rows it covers.
    let outbox = rusqlite::Connection::open(dir.path().join("outbox.db")).unwrap();
    let cursor: String = outbox
        .query_row(
            "SELECT cursor FROM source_cursors WHERE source = 'crm-db'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(cursor, "5");
}

/// `serve` polling a CRM's PostgreSQL database into a PostgreSQL outbox:
/// both drivers called from the server's async tasks; new rows in the CRM
/// reach Meta within a few polls. Skipped (with a message) without the
/// machine's PostgreSQL, unless `LEADSIGNAL_REQUIRE_DB=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_polls_a_postgres_crm_into_a_postgres_outbox() {
    let base = std::env::var("LEADSIGNAL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let id = format!("{}_{}", std::process::id(), fastrand::u32(..));
    let (crm, store) = (format!("ls_crm_{id}"), format!("ls_store_{id}"));
    let t = now() - 3600;
    let setup = {
        let (base, crm, store) = (base.clone(), crm.clone(), store.clone());
        tokio::task::spawn_blocking(move || -> Result<postgres::Client, postgres::Error> {
            let mut c = postgres::Client::connect(&base, postgres::NoTls)?;
            c.batch_execute(&format!(
                "CREATE SCHEMA {store}; CREATE SCHEMA {crm};
                 CREATE TABLE {crm}.leads (id BIGINT PRIMARY KEY, meta_lead_id TEXT, email TEXT);
                 CREATE TABLE {crm}.stage_history (id BIGSERIAL PRIMARY KEY, lead_id BIGINT REFERENCES {crm}.leads(id),
                                                   status TEXT NOT NULL, changed_at TIMESTAMPTZ NOT NULL);
                 INSERT INTO {crm}.leads VALUES (1, '1234567890123456', 'Ann@Example.com'), (2, '1234567890123457', NULL);
                 INSERT INTO {crm}.stage_history (lead_id, status, changed_at) VALUES
                    (1, 'new', to_timestamp({t})), (1, 'mql', to_timestamp({})), (2, 'new', to_timestamp({}));",
                t + 60,
                t + 120
            ))?;
            Ok(c)
        })
        .await
        .unwrap()
    };
    let mut admin = match setup {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("LEADSIGNAL_REQUIRE_DB").is_ok_and(|v| v == "1") {
                panic!("LEADSIGNAL_REQUIRE_DB=1 but PostgreSQL at {base} is unreachable: {e}");
            }
            eprintln!("SKIPPED serve_polls_a_postgres_crm_into_a_postgres_outbox: no PostgreSQL at {base} ({e})");
            return;
        }
    };
    let sb = sandbox::start(SandboxConfig::single(DATASET, TOKEN))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.path().join("leadsignal.toml"),
        format!(
            "[meta]\ndataset_id = \"{DATASET}\"\naccess_token = \"{TOKEN}\"\ngraph_url = \"{}\"\n[crm]\nname = \"In-house CRM\"\n\
             [normalize]\ndefault_country = \"US\"\n[store]\nurl = \"{base}?options=-csearch_path%3D{store}\"\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\napi_token = \"t0ken-for-this-test\"\nflush_interval_ms = 100\n\
             [[sources]]\nname = \"crm-db\"\nkind = \"sql\"\nurl = \"{base}?options=-csearch_path%3D{crm}\"\npoll_secs = 1\n\
             query = \"SELECT h.id AS seq, l.meta_lead_id AS lead_id, l.id AS crm_id, h.status AS stage, h.changed_at, l.email FROM stage_history h JOIN leads l ON l.id = h.lead_id WHERE h.id > :cursor ORDER BY h.id\"\n\
             cursor_column = \"seq\"\n",
            sb.url()
        ),
    )
    .unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_leadsignal"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LEADSIGNAL_") {
            c.env_remove(k);
        }
    }
    let log = dir.path().join("serve.log");
    let mut child = c
        .current_dir(dir.path())
        .arg("serve")
        .env("LEADSIGNAL_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let wait_for = |n: u64| {
        let sb = &sb;
        let log = log.clone();
        async move {
            let t0 = std::time::Instant::now();
            while sb.stats().distinct_event_ids < n {
                assert!(
                    t0.elapsed() < std::time::Duration::from_secs(30),
                    "{} of {n} delivered: {}",
                    sb.stats().distinct_event_ids,
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    wait_for(3).await;
    let admin = tokio::task::spawn_blocking(move || {
        admin
            .batch_execute(&format!(
                "INSERT INTO {crm}.stage_history (lead_id, status, changed_at) VALUES
                    (2, 'mql', to_timestamp({})), (1, 'opportunity', to_timestamp({}));",
                t + 180,
                t + 240
            ))
            .unwrap();
        admin
    })
    .await
    .unwrap();
    wait_for(5).await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(sb.stats().distinct_event_ids, 5);
    assert_eq!(sb.stats().duplicate_event_ids, 0);
    let names: std::collections::BTreeSet<String> = sb
        .accepted()
        .iter()
        .map(|e| e.event_name.to_string())
        .collect();
    assert!(names.contains("Sales Opportunity"), "{names:?}");
    tokio::task::spawn_blocking(move || {
        let mut admin = admin;
        let _ = admin.batch_execute(&format!(
            "DROP SCHEMA {} CASCADE; DROP SCHEMA {} CASCADE",
            format_args!("ls_crm_{id}"),
            format_args!("ls_store_{id}")
        ));
    })
    .await
    .unwrap();
}
