//! `leadsignal send` as a process against the sandbox over HTTP on
//! 127.0.0.1: what needs a process boundary (exit statuses, `status`,
//! token revoked then renewed through the configuration, kill -9
//! mid-delivery, no secret in anything printed, logged or stored, `sync`,
//! the `sandbox` command). The sender's outcome classes, bisection, rate
//! limits and deadlines are tested in-process in
//! `crates/leadsignal-deliver/tests/deliver.rs`.

use leadsignal_sandbox::{self as sandbox, SandboxConfig, SandboxHandle};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const DATASET: &str = "2780431635496611";
const TOKEN: &str = "EAAtest-token-5ecret-1";
const NEW_TOKEN: &str = "EAAtest-token-5ecret-2";
const FIRST_LEAD: u64 = 1_000_000_000_000_000;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

struct Env {
    dir: tempfile::TempDir,
    url: String,
    token: String,
    delivery: String,
}

impl Env {
    fn new(sb: &SandboxHandle) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            url: sb.url(),
            token: TOKEN.into(),
            delivery: "batch_size = 100\nin_flight = 2\nretry_base_ms = 200\nretry_max_secs = 2\nmax_wait_secs = 30\n".into(),
        }
    }

    fn write_config(&self) {
        let cfg = format!(
            "[meta]\ndataset_id = \"{DATASET}\"\naccess_token = \"env:TEST_META_TOKEN\"\ngraph_url = \"{}\"\n[crm]\nname = \"HubSpot\"\n[normalize]\ndefault_country = \"US\"\n[store]\nurl = \"sqlite://{}\"\n[delivery]\n{}",
            self.url,
            self.dir.path().join("outbox.db").display(),
            self.delivery
        );
        std::fs::write(self.dir.path().join("leadsignal.toml"), cfg).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.write_config();
        let mut c = Command::new(env!("CARGO_BIN_EXE_leadsignal"));
        c.current_dir(self.dir.path()).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("LEADSIGNAL_") {
                c.env_remove(k);
            }
        }
        c.env("TEST_META_TOKEN", &self.token)
            .env("LEADSIGNAL_LOG", "info");
        c
    }

    /// Runs a command off the async runtime (the sandbox lives on it).
    async fn run(&self, args: &[&str]) -> Output {
        let mut c = self.cmd(args);
        let out = tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap();
        let log = self.path("all-output.log");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        f.write_all(&out.stdout).unwrap();
        f.write_all(&out.stderr).unwrap();
        out
    }

    async fn send_json(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["send", "--json"];
        args.extend_from_slice(extra);
        let o = self.run(&args).await;
        let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
            panic!(
                "no JSON: {}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        });
        (o.status.code().unwrap_or(-1), v)
    }

    /// Imports `leads` leads; lead i gets 1 + i % stages stages, the first
    /// `minutes_ago` minutes ago.
    async fn import(&self, leads: u64, stages: u64, minutes_ago: i64, extra: &[&str]) {
        let csv = self.path("leads.csv");
        let mut w = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
        writeln!(w, "lead_id,stage,changed_at,email,city,country").unwrap();
        let t0 = now() - minutes_ago * 60;
        for lead in 0..leads {
            for (i, stage) in ["new", "mql", "opportunity", "won"]
                .iter()
                .take(1 + (lead % stages) as usize)
                .enumerate()
            {
                writeln!(
                    w,
                    "{},{stage},{},p{lead}@example.com,Austin,US",
                    FIRST_LEAD + lead,
                    t0 + lead as i64 + i as i64 * 60
                )
                .unwrap();
            }
        }
        drop(w);
        let mut args = vec!["import", csv.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = self.run(&args).await;
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// Imports one "new" stage change of `lead`, `age` seconds old, as if
    /// the clock said `then` (to make events whose deadline is near now).
    async fn import_one_at(&self, lead: u64, age: i64, then: i64) {
        let csv = self.path(&format!("at-{lead}.csv"));
        let body = format!(
            "lead_id,stage,changed_at,email\n{lead},new,{},l{lead}@example.com\n",
            then - age
        );
        std::fs::write(&csv, body).unwrap();
        let o = self
            .run(&["import", csv.to_str().unwrap(), "--now", &then.to_string()])
            .await;
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    fn states(&self) -> HashMap<String, i64> {
        let db = rusqlite::Connection::open(self.path("outbox.db")).unwrap();
        let mut st = db
            .prepare("SELECT state, count(*) FROM outbox GROUP BY state")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

async fn sandbox_with(f: impl FnOnce(&mut SandboxConfig)) -> SandboxHandle {
    let mut cfg = SandboxConfig::single(DATASET, TOKEN);
    f(&mut cfg);
    sandbox::start(cfg).await.unwrap()
}

/// Every accepted event, by lead, in order: stages never out of order.
fn assert_stage_order(sb: &SandboxHandle) {
    let rank = |n: &str| {
        [
            "Lead",
            "Marketing Qualified Lead",
            "Sales Opportunity",
            "Converted",
        ]
        .iter()
        .position(|s| *s == n)
        .unwrap()
    };
    let mut last: HashMap<u64, usize> = HashMap::new();
    for a in sb.accepted().iter().filter(|a| a.test_event_code.is_none()) {
        let r = rank(&a.event_name);
        let prev = last.insert(a.lead_id.unwrap(), r);
        assert!(
            prev.is_none_or(|p| p < r),
            "lead {:?}: {} after rank {:?}",
            a.lead_id,
            a.event_name,
            prev
        );
    }
}

/// What a process shows of a run: the JSON report, the exit status
/// (1 when Meta rejected something), `status`, the quarantine row. The
/// sender's outcomes themselves are tested in-process in
/// `crates/leadsignal-deliver/tests/deliver.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_event_is_quarantined_and_the_exit_status_says_so() {
    let bad = FIRST_LEAD + 61;
    let sb = sandbox_with(|c| c.deleted_leads.push(bad)).await;
    let mut env = Env::new(&sb);
    env.delivery = "batch_size = 1000\nin_flight = 1\n".into();
    env.import(100, 2, 60, &[]).await; // 150 events, 2 of the bad lead
    let (code, r) = env.send_json(&[]).await;
    assert_eq!(code, 1, "rejections give exit status 1: {r}");
    assert_eq!(
        (r["accepted"].as_u64(), r["rejected"].as_u64()),
        (Some(148), Some(2))
    );
    let db = rusqlite::Connection::open(env.path("outbox.db")).unwrap();
    let (lead, err): (i64, String) = db
        .query_row(
            "SELECT l.lead_id, o.last_error FROM outbox o JOIN leads l ON l.id = o.lead WHERE o.state = 'quarantined'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(lead as u64, bad);
    assert!(err.contains("code 100, subcode 2804036"), "{err}");
    assert_stage_order(&sb);
    let o = env.run(&["status"]).await;
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("sent 148") && s.contains("last successful upload"),
        "{s}"
    );
    let (code, r) = env.send_json(&[]).await;
    assert_eq!(
        (code, r["accepted"].as_u64(), r["requests"].as_u64()),
        (0, Some(0), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_pauses_then_a_new_token_resumes() {
    let sb = sandbox_with(|c| c.faults.latency_ms = 20).await;
    let mut env = Env::new(&sb);
    env.delivery = "batch_size = 10\nin_flight = 1\n".into();
    env.import(200, 1, 60, &[]).await;
    // Revoke once 50 events are in.
    let watcher = {
        let sb_url = sb.url();
        tokio::spawn(async move {
            loop {
                let v: Value = reqwest::get(format!("{sb_url}/sandbox/stats"))
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if v["events_accepted"].as_u64().unwrap() >= 50 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let send = {
        let mut c = env.cmd(&["send", "--json"]);
        tokio::task::spawn_blocking(move || c.output().unwrap())
    };
    watcher.await.unwrap();
    sb.revoke_token(DATASET);
    let o = send.await.unwrap();
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(3), "{r}");
    assert!(r["paused"].as_str().unwrap().contains("code 190"));
    let sent_before = r["accepted"].as_u64().unwrap();
    assert!((50..200).contains(&sent_before));
    let states = env.states();
    assert_eq!(states.get("sent").copied().unwrap_or(0) as u64, sent_before);
    assert_eq!(
        states.get("pending").copied().unwrap_or(0) as u64,
        200 - sent_before,
        "nothing dropped or failed: {states:?}"
    );
    let o = env.run(&["status"]).await;
    assert!(String::from_utf8_lossy(&o.stdout).contains("DELIVERY PAUSED"));
    // Meta issues a new token; the old one still fails: stays paused.
    sb.set_token(DATASET, NEW_TOKEN);
    let (code, r) = env.send_json(&[]).await;
    assert_eq!((code, r["accepted"].as_u64()), (3, Some(0)));
    // The new token configured: the probe passes and delivery resumes.
    env.token = NEW_TOKEN.into();
    let (code, r) = env.send_json(&[]).await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["accepted"].as_u64().unwrap(), 200 - sent_before);
    assert_eq!(sb.stats().distinct_event_ids, 200);
    assert_eq!(sb.stats().duplicate_event_ids, 0);
    let o = env.run(&["status"]).await;
    assert!(!String::from_utf8_lossy(&o.stdout).contains("PAUSED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_event_code_never_marks_sent_nor_mixes() {
    let sb = sandbox_with(|_| {}).await;
    let env = Env::new(&sb);
    env.import(30, 1, 60, &[]).await;
    let (code, r) = env
        .send_json(&["--test-event-code", "TEST9", "--test-limit", "12"])
        .await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["test_sent"], 12);
    assert_eq!(env.states().get("pending"), Some(&30));
    assert_eq!(sb.stats().test_events_accepted, 12);
    let (code, r) = env.send_json(&[]).await;
    assert_eq!((code, r["accepted"].as_u64()), (0, Some(30)));
    let tests = sb
        .accepted()
        .iter()
        .filter(|a| a.test_event_code.is_some())
        .count();
    assert_eq!(tests, 12);
    assert!(sb
        .requests()
        .iter()
        .filter(|q| q.test)
        .all(|q| q.events <= 12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_loses_nothing() {
    let sb = sandbox_with(|c| c.faults.latency_ms = 40).await;
    let mut env = Env::new(&sb);
    env.delivery = "batch_size = 25\nin_flight = 2\nlease_secs = 5\nmax_wait_secs = 60\n".into();
    env.import(1000, 1, 60, &[]).await;
    let mut child = env
        .cmd(&["send", "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let killed_at;
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if sb.stats().events_accepted >= 300 {
            child.kill().unwrap(); // SIGKILL
            killed_at = sb.stats().events_accepted;
            break;
        }
    }
    let _ = child.wait();
    assert!(killed_at < 1000);
    // The restart waits for the dead run's leases (5 s) and completes.
    let started = Instant::now();
    let (code, r) = env.send_json(&[]).await;
    assert_eq!(code, 0, "{r}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let st = sb.stats();
    assert_eq!(st.distinct_event_ids, 1000, "none lost");
    // Only events Meta had accepted before the kill (in the requests in
    // flight at that moment) can come twice, always with the same event_id.
    assert!(st.duplicate_event_ids <= 2 * 25, "{st:?}");
    assert_eq!(env.states().get("sent"), Some(&1000));
}

/// Success, retries, rate limits, a missing proof and a revoked token:
/// everything printed, logged (at `info`) or stored is searched for the
/// token, the app secret, the proof and raw contact data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_output_logs_or_database() {
    let t = now();
    let sb = sandbox_with(|c| {
        c.datasets[0].app_secret = Some("app-5ecret-xyz".into());
        c.faults.error_rate = 0.2;
        c.faults.rate_limit_windows = vec![(t - 1, t + 1)];
    })
    .await;
    let mut env = Env::new(&sb);
    env.delivery =
        "batch_size = 10\nin_flight = 2\nretry_base_ms = 100\nretry_max_secs = 1\n".into();
    env.import(40, 2, 60, &[]).await;
    // Without the app secret: refused (proof required) and paused.
    let (code, r) = env.send_json(&[]).await;
    assert_eq!(code, 3, "{r}");
    // With it, through the environment.
    let mut c = env.cmd(&["send"]);
    c.env("LEADSIGNAL_META__APP_SECRET", "app-5ecret-xyz");
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let mut all = Vec::new();
    all.extend_from_slice(&o.stdout);
    all.extend_from_slice(&o.stderr);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&all));
    // Revoke and try again, for error paths.
    sb.revoke_token(DATASET);
    env.import(45, 1, 30, &[]).await;
    let o = env.run(&["send"]).await;
    assert_eq!(o.status.code(), Some(3));
    let _ = env.run(&["status", "--json"]).await;
    let proof = leadsignal_graph::proof::appsecret_proof("app-5ecret-xyz", TOKEN);
    let mut haystack = std::fs::read(env.path("all-output.log")).unwrap();
    haystack.extend_from_slice(&all);
    for f in ["outbox.db", "outbox.db-wal"] {
        if let Ok(b) = std::fs::read(env.path(f)) {
            haystack.extend_from_slice(&b);
        }
    }
    let text = String::from_utf8_lossy(&haystack);
    assert!(text.contains("accepted by Meta"), "the logs were captured");
    for secret in [TOKEN, "5ecret", proof.as_str(), "p1@example.com", "Austin"] {
        assert!(!text.contains(secret), "{secret:?} leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_imports_the_folder_then_sends_and_is_idempotent() {
    let sb = sandbox_with(|_| {}).await;
    let env = Env::new(&sb);
    let folder = env.path("exports");
    std::fs::create_dir(&folder).unwrap();
    for (name, first) in [("a.csv", 0u64), ("b.csv", 50)] {
        let mut w = std::fs::File::create(folder.join(name)).unwrap();
        writeln!(w, "lead_id,stage,changed_at,email").unwrap();
        for i in first..first + 50 {
            writeln!(w, "{},new,{},s{i}@example.com", FIRST_LEAD + i, now() - 600).unwrap();
        }
    }
    // A history export: each lead came in 9 days ago (too old for Meta)
    // and became an MQL five minutes ago.
    let mut w = std::fs::File::create(folder.join("c.csv")).unwrap();
    writeln!(w, "lead_id,stage,changed_at,email").unwrap();
    for i in 200..210 {
        let id = FIRST_LEAD + i;
        writeln!(w, "{id},new,{},h{i}@example.com", now() - 9 * 86_400).unwrap();
        writeln!(w, "{id},mql,{},h{i}@example.com", now() - 300).unwrap();
    }
    drop(w);
    std::fs::write(folder.join("notes.txt"), "not an export").unwrap();
    let o = env.run(&["sync", "--json", folder.to_str().unwrap()]).await;
    // Old history is not an error: exit 0.
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (
            v["import"]["rows"].as_u64(),
            v["import"]["expired"].as_u64(),
            v["import"]["inferred"].as_u64(),
            v["send"]["accepted"].as_u64()
        ),
        (Some(120), Some(10), Some(0), Some(110))
    );
    let o = env.run(&["sync", "--json", folder.to_str().unwrap()]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["import"]["already_known"], 120);
    assert_eq!(v["send"]["accepted"], 0);
    // Meta never saw the expired stage changes.
    assert_eq!(sb.stats().distinct_event_ids, 110);
    // No sources at all: a clear error.
    let o = env.run(&["sync"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[import] files"));
}

/// `leadsignal sandbox` as a server: `send` delivers to it through
/// `meta.graph_url`, and its inspection endpoint shows the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_command_serves_send() {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_leadsignal"))
        .args(["sandbox", "--listen", "127.0.0.1:0", "--dataset", DATASET])
        .env("LEADSIGNAL_SANDBOX_TOKEN", TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .split("graph_url = \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    assert!(!first.contains(TOKEN), "the token is never printed");
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        url: url.clone(),
        token: TOKEN.into(),
        delivery: "batch_size = 20\n".into(),
    };
    env.import(30, 1, 60, &[]).await;
    let (code, r) = env.send_json(&[]).await;
    let v: Value = reqwest::get(format!("{url}/sandbox/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["accepted"], 30);
    assert_eq!(v["distinct_event_ids"], 30);
}

/// A retry that would carry an event past its send-by deadline expires it
/// instead, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_past_the_deadline_expires() {
    let sb = sandbox_with(|c| c.faults.error_rate = 1.0).await;
    let mut env = Env::new(&sb);
    env.delivery =
        "batch_size = 10\nretry_base_ms = 8000\nretry_max_secs = 60\nmax_wait_secs = 5\n".into();
    // Imported "earlier", so that its deadline is 3 s from now; the first
    // retry (4 to 8 s) would miss it.
    env.import_one_at(FIRST_LEAD + 5, 1, now() - 7 * 86_400 + 3600 + 4)
        .await;
    let (code, r) = env.send_json(&[]).await;
    assert_eq!(code, 1, "{r}");
    assert_eq!(
        (r["accepted"].as_u64(), r["expired"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(
        r["errors"]["retry past the send-by deadline"].as_u64() == Some(1),
        "{r}"
    );
    assert_eq!(env.states().get("expired"), Some(&1));
    let db = rusqlite::Connection::open(env.path("outbox.db")).unwrap();
    let why: String = db
        .query_row("SELECT last_error FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert!(
        why.contains("7-day deadline") && why.contains("HTTP 500"),
        "{why}"
    );
}

/// The most common real setup: Meta's Lead Ads download has the lead IDs,
/// the CRM's export (HubSpot Lead Sync keeps none) has the stage changes.
/// Imported in that order, the CRM's events reach Meta with the lead ID of
/// the one lead their e-mail belongs to; a shared address gives none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_ids_lost_by_the_crm_are_recovered_from_metas_download() {
    let sb = sandbox_with(|_| {}).await;
    let env = Env::new(&sb);
    let created = now() - 2 * 86_400;
    let t = |s: i64| {
        chrono::DateTime::from_timestamp(s, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S+00:00")
            .to_string()
    };
    let meta = env.path("meta.tsv");
    let mut w = std::fs::File::create(&meta).unwrap();
    writeln!(w, "id\tcreated_time\tfull_name\temail\tphone_number").unwrap();
    for (id, name, email) in [
        (1_054_367_891_260_101u64, "Jane Roe", "Jane.Roe@Example.com"),
        (1_054_367_891_260_102, "Ann Poe", "family@example.com"),
        (1_054_367_891_260_103, "Bo Poe", "family@example.com"),
    ] {
        writeln!(w, "l:{id}\t{}\t{name}\t{email}\t", t(created)).unwrap();
    }
    drop(w);
    let o = env
        .run(&[
            "import",
            "--preset",
            "meta-lead-ads",
            "--json",
            meta.to_str().unwrap(),
        ])
        .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let crm = env.path("hubspot.csv");
    std::fs::write(
        &crm,
        format!(
            "crm_id,stage,changed_at,email\nHS-1,mql,{},\" jane.roe@EXAMPLE.com\"\nHS-2,mql,{},family@example.com\n",
            now() - 3600,
            now() - 3600
        ),
    )
    .unwrap();
    let o = env.run(&["import", "--json", crm.to_str().unwrap()]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&v["recovered"], &v["ambiguous"]),
        (&1.into(), &1.into()),
        "{v}"
    );
    let (code, v) = env.send_json(&[]).await;
    assert_eq!(code, 0, "{v}");
    let mqls: Vec<Option<u64>> = sb
        .accepted()
        .iter()
        .filter(|a| &*a.event_name == "Marketing Qualified Lead")
        .map(|a| a.lead_id)
        .collect();
    assert_eq!(mqls.len(), 2);
    assert!(mqls.contains(&Some(1_054_367_891_260_101)), "{mqls:?}");
    assert!(
        mqls.contains(&None),
        "the shared address recovers nothing: {mqls:?}"
    );
    let o = env.run(&["status", "--json"]).await;
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    // Jane's MQL and the "Lead" inferred before it.
    assert_eq!(s["sent_with_recovered_lead_id"], 2, "{s}");
}
