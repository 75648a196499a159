//! `leadsignal import` as a process: idempotent re-import, rejects file,
//! JSON summary, status, and crash safety (kill -9 at random moments).

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The tests' clock: 2026-11-21T12:00:00Z.
const NOW: i64 = 1_795_262_400;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!(
            "[meta]\ndataset_id = \"2780431635496611\"\n[crm]\nname = \"HubSpot\"\n[normalize]\ndefault_country = \"US\"\n[store]\nurl = \"sqlite://{}\"\n",
            dir.path().join("outbox.db").display()
        );
        std::fs::write(dir.path().join("leadsignal.toml"), cfg).unwrap();
        Env { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_leadsignal"));
        c.current_dir(self.dir.path())
            .args(args)
            .arg("--now")
            .arg(NOW.to_string());
        for (k, _) in std::env::vars() {
            if k.starts_with("LEADSIGNAL_") {
                c.env_remove(k);
            }
        }
        c
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.cmd(args).output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into(),
            String::from_utf8_lossy(&o.stderr).into(),
        )
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path("outbox.db")).unwrap()
    }
}

/// A CSV of `leads` leads with 1 to 4 stages each, plus every `bad`-th row broken.
fn write_csv(path: &Path, leads: u64, bad: u64) -> u64 {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(w, "lead_id,stage,changed_at,email,phone,city,country").unwrap();
    let mut rows = 0;
    for lead in 0..leads {
        for (i, stage) in ["new", "mql", "opportunity", "won"]
            .iter()
            .take(1 + (lead % 4) as usize)
            .enumerate()
        {
            rows += 1;
            // A bad row: a lead ID Excel mangled, and nothing else that
            // identifies the lead.
            if bad > 0 && rows % bad == 0 {
                writeln!(
                    w,
                    "1.23457E+15,{stage},{},,,Austin {lead},US",
                    NOW - 86_400 + i as i64 * 60
                )
                .unwrap();
                continue;
            }
            let id = 1_000_000_000_000_000 + lead;
            writeln!(
                w,
                "{id},{stage},{},p{lead}@example.com,(650) 555-{:04},Austin,US",
                NOW - 86_400 + i as i64 * 60,
                lead % 10_000
            )
            .unwrap();
        }
    }
    rows
}

fn summary(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn import_twice_adds_nothing_the_second_time() {
    let env = Env::new();
    let csv = env.path("export.csv");
    let rows = write_csv(&csv, 300, 50);
    let (code, out, err) = env.run(&[
        "import",
        csv.to_str().unwrap(),
        "--json",
        "--rejects",
        "rejects.csv",
    ]);
    assert_eq!(code, 1, "rows were rejected: {err}");
    let s = summary(&out);
    assert_eq!(s["rows"], rows);
    let rejected = s["rejected"].as_u64().unwrap();
    assert_eq!(rejected, rows / 50);
    assert_eq!(
        s["rejected_by_rule"]["lead_id.scientific_notation"],
        rejected
    );
    let accepted = s["accepted"].as_u64().unwrap();
    assert_eq!(accepted + rejected, rows, "every row is stored or rejected");
    // --rejects lists positions and reasons, never a contact value.
    let rejects = std::fs::read_to_string(env.path("rejects.csv")).unwrap();
    assert_eq!(rejects.lines().count() as u64, rejected + 1);
    assert!(rejects.starts_with("source,line,field,rule,message"));
    assert!(!rejects.contains("@example.com") && !rejects.contains("555-"));

    let (code, out, _) = env.run(&["import", csv.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1, "the bad rows are still bad");
    let s2 = summary(&out);
    assert_eq!(s2["accepted"], 0);
    assert_eq!(s2["inferred"], 0);
    assert_eq!(
        s2["already_known"].as_u64().unwrap() + s2["rejected"].as_u64().unwrap(),
        rows
    );
    let events: i64 = env
        .db()
        .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    let quarantined: i64 = env
        .db()
        .query_row("SELECT count(DISTINCT line) FROM quarantine", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(events as u64, accepted + s["inferred"].as_u64().unwrap());
    assert_eq!(quarantined as u64, rejected);
    // No raw contact data in the database.
    let payloads: Vec<Vec<u8>> = env
        .db()
        .prepare("SELECT payload FROM outbox")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let has = |p: &[u8], needle: &[u8]| p.windows(needle.len()).any(|w| w == needle);
    assert!(payloads
        .iter()
        .all(|p| !has(p, b"@example.com") && !has(p, b"(650)") && !has(p, b"1650555")));

    let (code, out, _) = env.run(&["status", "--json"]);
    assert_eq!(code, 0);
    let st = summary(&out);
    assert_eq!(st["by_state"]["pending"], events);
    assert_eq!(
        st["rejected_by_rule"]["lead_id.scientific_notation"],
        rejected
    );
    let (_, text, _) = env.run(&["status"]);
    assert!(
        text.contains("last successful upload: never") && text.contains("expires in"),
        "{text}"
    );
}

#[test]
fn status_without_an_outbox_says_so_and_creates_nothing() {
    let env = Env::new();
    let (code, _, err) = env.run(&["status"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("there is no outbox at") && err.contains("leadsignal import"),
        "{err}"
    );
    assert!(!env.path("outbox.db").exists());
}

#[test]
fn import_needs_dataset_and_crm_name() {
    let env = Env::new();
    std::fs::write(env.path("leadsignal.toml"), "[crm]\nname = \"X\"\n").unwrap();
    let (code, _, err) = env.run(&["import", "x.csv"]);
    assert_eq!(code, 2);
    assert!(err.contains("dataset_id is not set"), "{err}");
}

#[test]
fn missing_stage_policy_from_config() {
    let env = Env::new();
    let cfg = std::fs::read_to_string(env.path("leadsignal.toml")).unwrap();
    std::fs::write(
        env.path("leadsignal.toml"),
        format!("{cfg}[funnel]\nmissing_stages = \"reject\"\n"),
    )
    .unwrap();
    let csv = env.path("won.csv");
    std::fs::write(
        &csv,
        format!(
            "lead_id,stage,changed_at\n1234567890123456,won,{}\n",
            NOW - 60
        ),
    )
    .unwrap();
    let (code, out, _) = env.run(&["import", csv.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    assert_eq!(
        summary(&out)["rejected_by_rule"]["funnel.missing_stages"],
        1
    );
}

/// Kill -9 `import` at random moments, re-run it, and compare the outbox
/// with a clean import of the same file: nothing lost, nothing twice.
#[test]
fn crash_at_random_moments_then_rerun_loses_nothing() {
    let clean = Env::new();
    let csv = clean.path("big.csv");
    write_csv(&csv, 6_000, 0);
    let started = Instant::now();
    let (code, _, err) = clean.run(&["import", csv.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let full = started.elapsed();
    let ids = |env: &Env| -> Vec<(String, String, i64)> {
        env.db()
            .prepare("SELECT event_id, stage, inferred FROM outbox ORDER BY event_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let expected = ids(&clean);
    assert!(expected.len() > 10_000);

    let crashed = Env::new();
    let committed = |env: &Env| -> usize {
        // Read-only, so that polling never creates the database itself.
        rusqlite::Connection::open_with_flags(
            env.path("outbox.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| c.query_row("SELECT count(*) FROM outbox", [], |r| r.get::<_, i64>(0)))
        .map_or(0, |n| n as usize)
    };
    let mut seed = Instant::now().elapsed().subsec_nanos() as u64 | 1;
    seed ^= seed << 13;
    seed ^= seed >> 7;
    let mut kills = Vec::new();
    let mut partial = 0;
    // An early kill at a random moment, then kills right after 20% and 50%
    // of the events were committed: at least those land mid-import.
    for target in [None, Some(0.2), Some(0.5)] {
        let mut child = crashed
            .cmd(&["import", csv.to_str().unwrap(), "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        match target {
            None => std::thread::sleep(full.mul_f64(0.05 + (seed % 300) as f64 / 1000.0)),
            Some(fraction) => {
                let want = (expected.len() as f64 * fraction) as usize;
                while committed(&crashed) < want
                    && child.try_wait().unwrap().is_none()
                    && started.elapsed() < std::time::Duration::from_secs(120)
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        kills.push((target, started.elapsed().as_millis()));
        // After every crash the database is consistent.
        let ok: String = crashed
            .db()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "kills {kills:?}");
        let n = ids(&crashed).len();
        if n > 0 && n < expected.len() {
            partial += 1;
        }
    }
    assert!(
        partial > 0,
        "no kill landed mid-import ({kills:?}); the test proved nothing"
    );
    let (code, _, err) = crashed.run(&["import", csv.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ids(&crashed), expected, "kills after {kills:?} ms");
}

#[test]
fn hubspot_preset_with_time_zone_from_config() {
    let env = Env::new();
    let cfg = std::fs::read_to_string(env.path("leadsignal.toml")).unwrap();
    std::fs::write(
        env.path("leadsignal.toml"),
        format!("{cfg}[import]\ntime_zone = \"America/New_York\"\n"),
    )
    .unwrap();
    let sample =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/presets/hubspot_contacts.csv");
    let (code, out, err) = env.run(&[
        "import",
        "--preset",
        "hubspot",
        sample.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 1, "{err}");
    let s = summary(&out);
    assert_eq!(
        (s["accepted"].as_u64(), s["rejected"].as_u64()),
        (Some(5), Some(1))
    );
    assert_eq!(s["rejected_by_rule"]["csv.no_stage_date"], 1);
    let stages: Vec<(String, i64)> = env
        .db()
        .prepare("SELECT stage, event_time FROM outbox ORDER BY lead, event_time")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        stages,
        [
            ("Lead".to_string(), 1_794_838_320),
            ("Marketing Qualified Lead".to_string(), 1_794_927_600),
            ("Sales Opportunity".to_string(), 1_795_030_200),
            ("Converted".to_string(), 1_795_211_100),
            ("Lead".to_string(), 1_795_093_200),
        ]
    );
    let (code, _, err) = env.run(&["validate", "--preset", "nope", "x.csv"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown import preset \"nope\""), "{err}");
}

#[test]
fn configured_columns_and_stage_dates_with_expired_history_in_status() {
    let env = Env::new();
    let cfg = std::fs::read_to_string(env.path("leadsignal.toml")).unwrap();
    // A home-grown CRM's export: candidate headers per field, a stage column
    // with its time, and two stage-date columns that add to it.
    std::fs::write(
        env.path("leadsignal.toml"),
        format!(
            "{cfg}[import]\ntime_zone = \"Europe/Paris\"\n\
             [import.columns]\ncrm_id = \"Ref\"\nlead_id = [\"FB Lead\", \"Facebook lead id\"]\nemail = [\"Mail\", \"E-mail\"]\nstage = \"Status\"\nchanged_at = \"Status changed\"\n\
             [import.stage_dates]\n\"Signed on\" = \"won\"\n\"Created\" = \"new\"\n"
        ),
    )
    .unwrap();
    let csv = env.path("crm.csv");
    std::fs::write(
        &csv,
        "Ref,Facebook lead id,E-mail,Status,Status changed,Signed on,Created\n\
         A-1,1054367891270001,ana@example.com,mql,2026-11-18 10:00,2026-11-20 17:30,2026-11-02 09:00\n\
         A-2,,bo@example.com,opportunity,2026-11-19 11:00,,2026-11-19 08:00\n",
    )
    .unwrap();
    let (code, out, err) = env.run(&["import", csv.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "expired history is not an error: {err}");
    let s = summary(&out);
    assert_eq!(
        (&s["rows"], &s["accepted"], &s["expired"], &s["inferred"]),
        (&2.into(), &4.into(), &1.into(), &2.into())
    );
    let stages: Vec<(String, i64, String)> = env
        .db()
        .prepare("SELECT stage, event_time, state FROM outbox ORDER BY lead, stage_rank")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // Paris local times (CET, UTC+1), computed apart with Python's zoneinfo.
    let s = |n: &str, t: i64, st: &str| (n.to_string(), t, st.to_string());
    assert_eq!(
        stages,
        [
            // created 19 days ago (expired, no stage inferred for it),
            // MQL, and "Opportunity" inferred before the win.
            s("Lead", 1_793_606_400, "expired"),
            s("Marketing Qualified Lead", 1_794_992_400, "pending"),
            s("Sales Opportunity", 1_795_192_200, "pending"),
            s("Converted", 1_795_192_200, "pending"),
            // created, then an opportunity: MQL inferred.
            s("Lead", 1_795_071_600, "pending"),
            s("Marketing Qualified Lead", 1_795_082_400, "pending"),
            s("Sales Opportunity", 1_795_082_400, "pending"),
        ]
    );
    let (code, out, _) = env.run(&["status"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("expired: 1, older than 7 days (oldest 2026-11-02 08:00 UTC)"),
        "{out}"
    );
}
