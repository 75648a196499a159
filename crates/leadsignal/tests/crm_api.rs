//! `[[sources]]` read through a CRM's API: `leadsignal sync` with a HubSpot
//! source pointed at the HubSpot emulator delivers every lifecycle stage of
//! the emulated history to the Graph sandbox exactly once, in stage order
//! per lead; a second `sync` adds nothing; stages reached between two syncs
//! are each sent at their own time; the token lives only in the
//! environment and never appears in output or the outbox.

use leadsignal_sandbox::crm::{start_hubspot, HubspotConfig};
use leadsignal_sandbox::{self as sandbox, SandboxConfig, SandboxHandle};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

const DATASET: &str = "2780431635496611";
const META_TOKEN: &str = "EAAcrm-api-token";
const HUBSPOT_TOKEN: &str = "pat-na1-7f3c2b1a-0000-4d4e-9f9f-123456789abc";
const JANE: u64 = 1_234_567_890_123_456;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn config(dir: &Path, graph: &str, hubspot: &str) -> String {
    format!(
        r#"[meta]
dataset_id = "{DATASET}"
access_token = "{META_TOKEN}"
graph_url = "{graph}"
[crm]
name = "HubSpot"
[normalize]
default_country = "US"
[store]
url = "sqlite://{}"
[funnel]
stages = [
  {{ name = "Lead", meta = "LEAD", crm = ["Subscriber", "Lead"] }},
  {{ name = "Marketing Qualified Lead", meta = "MARKETING_QUALIFIED_LEAD", crm = ["Marketing Qualified Lead"] }},
  {{ name = "Sales Qualified Lead", meta = "SALES_OPPORTUNITY", crm = ["Sales Qualified Lead"] }},
  {{ name = "Opportunity", meta = "SALES_OPPORTUNITY", crm = ["Opportunity"] }},
  {{ name = "Customer", meta = "CONVERTED", crm = ["Customer"] }},
  {{ name = "Other", meta = "NOT_ASSIGNED", crm = ["Other"], terminal = true }},
]
[[sources]]
name = "hubspot"
kind = "hubspot"
base_url = "{hubspot}"
token = "env:HUBSPOT_TOKEN"
lead_id_property = "facebook_lead_id"
"#,
        dir.join("outbox.db").display()
    )
}

async fn sync(dir: &Path) -> (Value, String) {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_leadsignal"));
        for (k, _) in std::env::vars() {
            if k.starts_with("LEADSIGNAL_") {
                c.env_remove(k);
            }
        }
        let out = c
            .current_dir(&d)
            .env("HUBSPOT_TOKEN", HUBSPOT_TOKEN)
            .env("LEADSIGNAL_LOG", "info")
            .args(["sync", "--json"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !stdout.contains(HUBSPOT_TOKEN) && !stderr.contains(HUBSPOT_TOKEN),
            "the HubSpot token was printed"
        );
        (serde_json::from_str::<Value>(&stdout).unwrap(), stderr)
    })
    .await
    .unwrap()
}

/// Starts `sync` with the secret `env`, kills it with SIGKILL once its first
/// poll is committed (a cursor stored), checks nothing was sent yet, runs
/// `sync` again, and checks that the second run did not read the committed
/// poll again and that Meta got each of the history's `events` once.
async fn kill_after_first_poll_then_sync(
    dir: &Path,
    env: (&'static str, &'static str),
    sb: &SandboxHandle,
    events: u64,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_leadsignal"))
        .current_dir(dir)
        .env(env.0, env.1)
        .args(["sync"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let outbox = dir.join("outbox.db");
    let t0 = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let committed = rusqlite::Connection::open(&outbox)
            .ok()
            .and_then(|db| {
                db.query_row("SELECT count(*) FROM source_cursors", [], |r| {
                    r.get::<_, i64>(0)
                })
                .ok()
            })
            .unwrap_or(0);
        if committed > 0 {
            child.kill().unwrap(); // SIGKILL
            break;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(120),
            "no poll committed"
        );
    }
    let _ = child.wait();
    assert_eq!(sb.stats().requests, 0, "killed before sending");
    let second = sync_with(dir, env).await;
    let read = second["sources"][0]["rows"].as_u64().unwrap();
    assert!(
        read < events,
        "the committed poll was not read again: {read}"
    );
    let stats = sb.stats();
    assert_eq!(stats.distinct_event_ids, events, "nothing lost");
    assert_eq!(stats.duplicate_event_ids, 0, "nothing twice");
}

/// Accepted production events, by lead (Meta lead ID, else event order),
/// as (name, time) in the order Meta received them.
fn by_lead(sb: &SandboxHandle) -> HashMap<Option<u64>, Vec<(String, i64)>> {
    let mut out: HashMap<Option<u64>, Vec<(String, i64)>> = HashMap::new();
    for a in sb.accepted().iter().filter(|a| a.test_event_code.is_none()) {
        out.entry(a.lead_id)
            .or_default()
            .push((a.event_name.to_string(), a.event_time));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_delivers_a_hubspot_history_once_in_stage_order() {
    let sb = sandbox::start(SandboxConfig::single(DATASET, META_TOKEN))
        .await
        .unwrap();
    let hub = start_hubspot(HubspotConfig::new(HUBSPOT_TOKEN))
        .await
        .unwrap();
    let t = now_ms() - 3 * 3_600_000;
    let min = 60_000;
    let jane = hub.create(
        t,
        &[
            ("email", "Jane.Doe@Example.com"),
            ("phone", "(650) 555-1212"),
            ("firstname", "Jane"),
            ("lastname", "Doe"),
            ("facebook_lead_id", &JANE.to_string()),
        ],
    );
    hub.set_stage(&jane, "lead", t);
    hub.set_stage(&jane, "marketingqualifiedlead", t + 20 * min);
    let ken = hub.create(t + min, &[("email", "ken@example.org")]);
    hub.set_stage(&ken, "subscriber", t + min);
    // Modified ten days ago: before the first poll's 7-day lookback.
    let old = hub.create(t - 10 * 86_400_000, &[("email", "old@example.net")]);
    hub.set_stage(&old, "lead", t - 10 * 86_400_000);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("leadsignal.toml"),
        config(dir.path(), &sb.url(), &hub.url()),
    )
    .unwrap();
    assert!(!std::fs::read_to_string(dir.path().join("leadsignal.toml"))
        .unwrap()
        .contains(HUBSPOT_TOKEN));

    let (first, _) = sync(dir.path()).await;
    let src = &first["sources"][0];
    assert_eq!(
        (src["source"].as_str(), src["rows"].as_u64()),
        (Some("hubspot"), Some(3)),
        "{first}"
    );
    assert_eq!(src["store"]["accepted"], 3, "{first}");
    assert_eq!(first["send"]["accepted"], 3, "{first}");
    let leads = by_lead(&sb);
    let secs = |ms: i64| ms / 1000;
    assert_eq!(
        leads[&Some(JANE)],
        [
            ("Lead".to_string(), secs(t)),
            ("Marketing Qualified Lead".to_string(), secs(t + 20 * min)),
        ]
    );
    assert_eq!(
        leads[&None],
        [("Lead".to_string(), secs(t + min))],
        "Ken, by e-mail"
    );

    // Nothing changed in HubSpot: nothing read, nothing sent.
    let (again, _) = sync(dir.path()).await;
    assert_eq!(again["sources"][0]["rows"], 0, "{again}");
    assert_eq!(again["send"]["accepted"], 0, "{again}");

    // Jane moves three stages between two syncs: three events, each at the
    // time HubSpot recorded; her earlier stages are already known.
    hub.set_stage(&jane, "salesqualifiedlead", t + 60 * min);
    hub.set_stage(&jane, "opportunity", t + 90 * min);
    hub.set_stage(&jane, "customer", t + 120 * min);
    let (third, _) = sync(dir.path()).await;
    let src = &third["sources"][0];
    assert_eq!(src["rows"], 5, "all of Jane's stage dates: {third}");
    assert_eq!(src["store"]["accepted"], 3, "{third}");
    assert_eq!(src["store"]["already_known"], 2, "{third}");
    assert_eq!(third["send"]["accepted"], 3, "{third}");
    let names: Vec<(String, i64)> = by_lead(&sb)[&Some(JANE)].clone();
    assert_eq!(
        names,
        [
            ("Lead".to_string(), secs(t)),
            ("Marketing Qualified Lead".to_string(), secs(t + 20 * min)),
            ("Sales Qualified Lead".to_string(), secs(t + 60 * min)),
            ("Opportunity".to_string(), secs(t + 90 * min)),
            ("Customer".to_string(), secs(t + 120 * min)),
        ]
    );
    let stats = sb.stats();
    assert_eq!(
        (stats.distinct_event_ids, stats.duplicate_event_ids),
        (6, 0)
    );

    // The cursor is stored with the rows it covers; the token is nowhere
    // in the outbox.
    let outbox = std::fs::read(dir.path().join("outbox.db")).unwrap();
    assert!(!outbox
        .windows(HUBSPOT_TOKEN.len())
        .any(|w| w == HUBSPOT_TOKEN.as_bytes()));
    let db = rusqlite::Connection::open(dir.path().join("outbox.db")).unwrap();
    let cursor: String = db
        .query_row(
            "SELECT cursor FROM source_cursors WHERE source = 'hubspot'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(cursor, format!("{}:{jane}", t + 120 * min));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_hubspot_token_is_a_clear_error_without_the_token() {
    let sb = sandbox::start(SandboxConfig::single(DATASET, META_TOKEN))
        .await
        .unwrap();
    let hub = start_hubspot(HubspotConfig::new("pat-na1-the-right-one"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("leadsignal.toml"),
        config(dir.path(), &sb.url(), &hub.url()),
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_leadsignal"))
            .current_dir(&d)
            .env("HUBSPOT_TOKEN", HUBSPOT_TOKEN)
            .args(["sync"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("source hubspot")
            && err.contains("HTTP 401")
            && err.contains("crm.objects.contacts.read"),
        "{err}"
    );
    assert!(!err.contains(HUBSPOT_TOKEN), "{err}");
}

const SF_CLIENT: &str = "3MVG9crm.api.test.key";
const SF_SECRET: &str = "9F8E7D6C5B4A-salesforce-consumer-secret";
const ANN: u64 = 1_234_567_890_123_457;

fn salesforce_config(dir: &Path, graph: &str, login: &str) -> String {
    format!(
        r#"[meta]
dataset_id = "{DATASET}"
access_token = "{META_TOKEN}"
graph_url = "{graph}"
[crm]
name = "Salesforce"
[normalize]
default_country = "US"
[store]
url = "sqlite://{}"
[funnel]
stages = [
  {{ name = "Lead", meta = "LEAD", crm = ["Open - Not Contacted"] }},
  {{ name = "Contacted", meta = "MARKETING_QUALIFIED_LEAD", crm = ["Working - Contacted"] }},
  {{ name = "Converted", meta = "CONVERTED", crm = ["Closed - Converted"] }},
  {{ name = "Not Converted", meta = "DISQUALIFIED", crm = ["Closed - Not Converted"], terminal = true }},
]
[[sources]]
name = "salesforce"
kind = "salesforce"
login_url = "{login}"
client_id = "{SF_CLIENT}"
client_secret = "env:SALESFORCE_CLIENT_SECRET"
"#,
        dir.join("outbox.db").display()
    )
}

async fn sync_with(dir: &Path, env: (&'static str, &'static str)) -> Value {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_leadsignal"))
            .current_dir(&d)
            .env(env.0, env.1)
            .env("LEADSIGNAL_LOG", "info")
            .args(["sync", "--json"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !stdout.contains(env.1) && !stderr.contains(env.1),
            "a secret was printed"
        );
        serde_json::from_str::<Value>(&stdout).unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_delivers_a_salesforce_lead_history_once_in_stage_order() {
    use leadsignal_sandbox::crm::{start_salesforce, SalesforceConfig};
    let sb = sandbox::start(SandboxConfig::single(DATASET, META_TOKEN))
        .await
        .unwrap();
    let mut cfg = SalesforceConfig::new(SF_CLIENT, SF_SECRET);
    cfg.page_size = 2;
    let sf = start_salesforce(cfg).await.unwrap();
    let t = now_ms() - 2 * 3_600_000;
    let min = 60_000;
    let ann = sf.create_lead(
        t,
        "Open - Not Contacted",
        &[
            ("Email", "ann.lee@example.com"),
            ("Meta_Lead_ID__c", &ANN.to_string()),
        ],
    );
    sf.set_status(&ann, "Working - Contacted", t + 5 * min);
    let bob = sf.create_lead(
        t + min,
        "Open - Not Contacted",
        &[("Email", "bob@example.org")],
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("leadsignal.toml"),
        salesforce_config(dir.path(), &sb.url(), &sf.url()),
    )
    .unwrap();
    let secret = ("SALESFORCE_CLIENT_SECRET", SF_SECRET);

    let first = sync_with(dir.path(), secret).await;
    assert_eq!(first["sources"][0]["rows"], 3, "{first}");
    assert_eq!(first["send"]["accepted"], 3, "{first}");
    let secs = |ms: i64| ms / 1000;
    assert_eq!(
        by_lead(&sb)[&Some(ANN)],
        [
            ("Lead".to_string(), secs(t)),
            ("Contacted".to_string(), secs(t + 5 * min))
        ]
    );
    let again = sync_with(dir.path(), secret).await;
    assert_eq!(
        (
            again["sources"][0]["rows"].as_u64(),
            again["send"]["accepted"].as_u64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );

    // Three status changes between two syncs: three events, in order.
    sf.set_status(&ann, "Closed - Converted", t + 30 * min);
    sf.set_status(&bob, "Working - Contacted", t + 40 * min);
    sf.set_status(&bob, "Closed - Not Converted", t + 50 * min);
    let third = sync_with(dir.path(), secret).await;
    assert_eq!(third["sources"][0]["rows"], 3, "{third}");
    assert_eq!(third["send"]["accepted"], 3, "{third}");
    let leads = by_lead(&sb);
    assert_eq!(
        leads[&Some(ANN)].last().unwrap(),
        &("Converted".to_string(), secs(t + 30 * min))
    );
    assert_eq!(
        leads[&None],
        [
            ("Lead".to_string(), secs(t + min)),
            ("Contacted".to_string(), secs(t + 40 * min)),
            ("Not Converted".to_string(), secs(t + 50 * min)),
        ]
    );
    assert_eq!(
        (
            sb.stats().distinct_event_ids,
            sb.stats().duplicate_event_ids
        ),
        (6, 0)
    );
    assert_eq!(sf.logins(), 3, "one login per sync run");
}

const PD_TOKEN: &str = "7c1e0d2b3a4f5e6d7c8b9a0f1e2d3c4b5a697887";
const PD_LEAD_FIELD: &str = "d4de1c1518b4531717c676029a45911c340390a6";
const CARL: u64 = 1_234_567_890_123_458;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_delivers_pipedrive_deal_logs_once_in_stage_order() {
    use leadsignal_sandbox::crm::start_pipedrive;
    let sb = sandbox::start(SandboxConfig::single(DATASET, META_TOKEN))
        .await
        .unwrap();
    let pd = start_pipedrive(PD_TOKEN).await.unwrap();
    let t = now_ms() / 1000 - 4 * 3600;
    let carl = pd.create_person(
        "Carl",
        "Berg",
        &["carl.berg@example.se"],
        &["+46 70 123 45 67"],
    );
    let deal = pd.create_deal(t, Some(carl), 1, &[(PD_LEAD_FIELD, &CARL.to_string())]);
    pd.move_stage(deal, 2, t + 600);
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"[meta]
dataset_id = "{DATASET}"
access_token = "{META_TOKEN}"
graph_url = "{}"
[crm]
name = "Pipedrive"
[normalize]
default_country = "US"
[store]
url = "sqlite://{}"
[funnel]
stages = [
  {{ name = "Lead In", meta = "LEAD", crm = ["Lead In"] }},
  {{ name = "Contact Made", meta = "MARKETING_QUALIFIED_LEAD", crm = ["Contact Made"] }},
  {{ name = "Demo Scheduled", meta = "SALES_OPPORTUNITY", crm = ["Demo Scheduled"] }},
  {{ name = "Proposal Made", meta = "SALES_OPPORTUNITY", crm = ["Proposal Made", "Negotiations Started"] }},
  {{ name = "Won", meta = "CONVERTED", crm = ["won"] }},
  {{ name = "Lost", meta = "LOST", crm = ["lost"], terminal = true }},
]
[[sources]]
name = "pipedrive"
kind = "pipedrive"
base_url = "{}"
token = "env:PIPEDRIVE_TOKEN"
lead_id_field = "{PD_LEAD_FIELD}"
"#,
        sb.url(),
        dir.path().join("outbox.db").display(),
        pd.url()
    );
    std::fs::write(dir.path().join("leadsignal.toml"), cfg).unwrap();
    let token = ("PIPEDRIVE_TOKEN", PD_TOKEN);
    let first = sync_with(dir.path(), token).await;
    assert_eq!(first["send"]["accepted"], 2, "{first}");
    let again = sync_with(dir.path(), token).await;
    assert_eq!(
        (
            again["sources"][0]["rows"].as_u64(),
            again["send"]["accepted"].as_u64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );
    // Three changes between two syncs, won last.
    pd.move_stage(deal, 3, t + 3600);
    pd.move_stage(deal, 4, t + 5400);
    pd.set_status(deal, "won", t + 7200);
    let third = sync_with(dir.path(), token).await;
    assert_eq!(third["send"]["accepted"], 3, "{third}");
    assert_eq!(
        by_lead(&sb)[&Some(CARL)],
        [
            ("Lead In".to_string(), t),
            ("Contact Made".to_string(), t + 600),
            ("Demo Scheduled".to_string(), t + 3600),
            ("Proposal Made".to_string(), t + 5400),
            ("Won".to_string(), t + 7200),
        ]
    );
    assert_eq!(
        (
            sb.stats().distinct_event_ids,
            sb.stats().duplicate_event_ids
        ),
        (5, 0)
    );
}

/// `sync` killed with SIGKILL while polling a large HubSpot account (more
/// than one poll's worth), then run again: every contact's stage reaches
/// Meta once; the first run's committed polls are not read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_killed_mid_poll_then_rerun_loses_and_repeats_nothing() {
    let sb = sandbox::start(SandboxConfig::single(DATASET, META_TOKEN))
        .await
        .unwrap();
    let mut cfg = HubspotConfig::new(HUBSPOT_TOKEN);
    cfg.latency_ms = 15;
    let hub = start_hubspot(cfg).await.unwrap();
    let t = now_ms() - 3_600_000;
    let contacts = 10_500;
    for i in 0..contacts {
        let id = hub.create(t + i, &[("email", &format!("p{i}@example.com"))]);
        hub.set_stage(&id, "lead", t + i);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("leadsignal.toml"),
        config(dir.path(), &sb.url(), &hub.url()),
    )
    .unwrap();
    kill_after_first_poll_then_sync(
        dir.path(),
        ("HUBSPOT_TOKEN", HUBSPOT_TOKEN),
        &sb,
        contacts as u64,
    )
    .await;
}

/// `serve` polls HubSpot, Salesforce and Pipedrive every second: new stage
/// changes in each CRM reach Meta without a `sync`; a source whose token
/// is refused is reported by name and holds nothing else back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_polls_every_crm_continuously_and_a_broken_one_holds_nothing_back() {
    use leadsignal_sandbox::crm::{start_pipedrive, start_salesforce, SalesforceConfig};
    let sb = sandbox::start(SandboxConfig::single(DATASET, META_TOKEN))
        .await
        .unwrap();
    let hub = start_hubspot(HubspotConfig::new(HUBSPOT_TOKEN))
        .await
        .unwrap();
    let sf = start_salesforce(SalesforceConfig::new(SF_CLIENT, SF_SECRET))
        .await
        .unwrap();
    let pd = start_pipedrive(PD_TOKEN).await.unwrap();
    let t = now_ms() - 3_600_000;
    let jane = hub.create(
        t,
        &[
            ("email", "jane@example.com"),
            ("facebook_lead_id", &JANE.to_string()),
        ],
    );
    hub.set_stage(&jane, "lead", t);
    let ann = sf.create_lead(
        t,
        "Open - Not Contacted",
        &[("Meta_Lead_ID__c", &ANN.to_string())],
    );
    let deal = pd.create_deal(t / 1000, None, 1, &[(PD_LEAD_FIELD, &CARL.to_string())]);
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = format!(
        r#"[meta]
dataset_id = "{DATASET}"
access_token = "{META_TOKEN}"
graph_url = "{}"
[crm]
name = "Several CRMs"
[normalize]
default_country = "US"
[store]
url = "sqlite://{}"
[server]
listen = "127.0.0.1:{port}"
api_token = "t0ken-for-this-test"
flush_interval_ms = 100
[funnel]
unknown_stage = "not_assigned"
stages = [
  {{ name = "Lead", meta = "LEAD", crm = ["lead", "Open - Not Contacted", "Lead In"] }},
  {{ name = "Qualified", meta = "MARKETING_QUALIFIED_LEAD", crm = ["Marketing Qualified Lead", "Working - Contacted", "Contact Made"] }},
]
[[sources]]
name = "hubspot"
kind = "hubspot"
base_url = "{}"
token = "env:HUBSPOT_TOKEN"
lead_id_property = "facebook_lead_id"
poll_secs = 1
[[sources]]
name = "hubspot-old-portal"
kind = "hubspot"
base_url = "{}"
token = "pat-na1-revoked"
poll_secs = 1
[[sources]]
name = "salesforce"
kind = "salesforce"
login_url = "{}"
client_id = "{SF_CLIENT}"
client_secret = "env:SALESFORCE_CLIENT_SECRET"
poll_secs = 1
[[sources]]
name = "pipedrive"
kind = "pipedrive"
base_url = "{}"
token = "env:PIPEDRIVE_TOKEN"
lead_id_field = "{PD_LEAD_FIELD}"
poll_secs = 1
"#,
        sb.url(),
        dir.path().join("outbox.db").display(),
        hub.url(),
        hub.url(),
        sf.url(),
        pd.url()
    );
    std::fs::write(dir.path().join("leadsignal.toml"), cfg).unwrap();
    let log = dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_leadsignal"))
        .current_dir(dir.path())
        .arg("serve")
        .env("LEADSIGNAL_LOG", "info")
        .env("HUBSPOT_TOKEN", HUBSPOT_TOKEN)
        .env("SALESFORCE_CLIENT_SECRET", SF_SECRET)
        .env("PIPEDRIVE_TOKEN", PD_TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let wait_for = |n: u64| {
        let (sb, log) = (&sb, log.clone());
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
    // One more stage in each CRM, while serve runs.
    hub.set_stage(&jane, "marketingqualifiedlead", t + 60_000);
    sf.set_status(&ann, "Working - Contacted", t + 60_000);
    pd.move_stage(deal, 2, t / 1000 + 60);
    wait_for(6).await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let stats = sb.stats();
    assert_eq!(
        (stats.distinct_event_ids, stats.duplicate_event_ids),
        (6, 0)
    );
    let leads = by_lead(&sb);
    for lead in [JANE, ANN, CARL] {
        let names: Vec<&str> = leads[&Some(lead)].iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Lead", "Qualified"], "lead {lead}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("hubspot-old-portal") && text.contains("refused the credentials"),
        "the broken source is named in the log"
    );
    for secret in [HUBSPOT_TOKEN, SF_SECRET, PD_TOKEN, "pat-na1-revoked"] {
        assert!(!text.contains(secret), "a secret in the log");
    }
    // `status` names the failing source and what the CRM said.
    let out = Command::new(env!("CARGO_BIN_EXE_leadsignal"))
        .current_dir(dir.path())
        .env("HUBSPOT_TOKEN", HUBSPOT_TOKEN)
        .env("SALESFORCE_CLIENT_SECRET", SF_SECRET)
        .env("PIPEDRIVE_TOKEN", PD_TOKEN)
        .arg("status")
        .output()
        .unwrap();
    let status = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        status.contains("SOURCE hubspot-old-portal FAILING since")
            && status.contains("last worked: never")
            && status.contains("HTTP 401")
            && status.contains("source hubspot: last polled")
            && status.contains("source pipedrive: last polled"),
        "{status}"
    );
    assert!(!status.contains("pat-na1-revoked"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_follows_a_converted_lead_into_its_opportunity() {
    use leadsignal_sandbox::crm::{start_salesforce, SalesforceConfig};
    let sb = sandbox::start(SandboxConfig::single(DATASET, META_TOKEN))
        .await
        .unwrap();
    let sf = start_salesforce(SalesforceConfig::new(SF_CLIENT, SF_SECRET))
        .await
        .unwrap();
    let t = now_ms() - 2 * 3_600_000;
    let min = 60_000;
    let ann = sf.create_lead(
        t,
        "Open - Not Contacted",
        &[
            ("Email", "ann.lee@example.com"),
            ("Meta_Lead_ID__c", &ANN.to_string()),
        ],
    );
    let opp = sf.convert_lead(&ann, "Qualification", t + 10 * min);
    let dir = tempfile::tempdir().unwrap();
    let cfg = salesforce_config(dir.path(), &sb.url(), &sf.url())
        .replace(
            "{ name = \"Converted\", meta = \"CONVERTED\", crm = [\"Closed - Converted\"] },",
            "{ name = \"Opportunity\", meta = \"SALES_OPPORTUNITY\", crm = [\"Closed - Converted\", \"Qualification\", \"Proposal/Price Quote\"] },\n  { name = \"Converted\", meta = \"CONVERTED\", crm = [\"Closed Won\"] },",
        )
        + "objects = [\"Lead\", \"Opportunity\"]\n";
    std::fs::write(dir.path().join("leadsignal.toml"), cfg).unwrap();
    let secret = ("SALESFORCE_CLIENT_SECRET", SF_SECRET);
    let first = sync_with(dir.path(), secret).await;
    // Lead, Opportunity (the conversion and the opportunity's first stage
    // are one funnel stage), and Contacted inferred before it (fill).
    assert_eq!(first["sources"][0]["store"]["inferred"], 1, "{first}");
    assert_eq!(first["send"]["accepted"], 3, "{first}");
    sf.set_opportunity_stage(&opp, "Closed Won", t + 60 * min);
    let second = sync_with(dir.path(), secret).await;
    assert_eq!(second["send"]["accepted"], 1, "{second}");
    let secs = |ms: i64| ms / 1000;
    let got = &by_lead(&sb)[&Some(ANN)];
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Lead", "Contacted", "Opportunity", "Converted"]);
    assert_eq!(got[0].1, secs(t));
    assert_eq!(got[2].1, secs(t + 10 * min));
    assert_eq!(
        got[3].1,
        secs(t + 60 * min),
        "the opportunity's Closed Won, at its time"
    );
}

/// The Salesforce source killed with SIGKILL after its first committed
/// poll (polls of 2,000 history rows), then run again: nothing lost,
/// nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_sync_killed_mid_poll_then_rerun_loses_and_repeats_nothing() {
    use leadsignal_sandbox::crm::{start_salesforce, SalesforceConfig};
    let sb = sandbox::start(SandboxConfig::single(DATASET, META_TOKEN))
        .await
        .unwrap();
    let mut cfg = SalesforceConfig::new(SF_CLIENT, SF_SECRET);
    cfg.latency_ms = 300;
    let sf = start_salesforce(cfg).await.unwrap();
    let t = now_ms() - 3_600_000;
    let leads = 5_000;
    for i in 0..leads {
        sf.create_lead(
            t + i,
            "Open - Not Contacted",
            &[("Email", &format!("l{i}@example.com"))],
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("leadsignal.toml"),
        salesforce_config(dir.path(), &sb.url(), &sf.url()),
    )
    .unwrap();
    kill_after_first_poll_then_sync(
        dir.path(),
        ("SALESFORCE_CLIENT_SECRET", SF_SECRET),
        &sb,
        leads as u64,
    )
    .await;
}

/// The issue's whole case in one configuration: HubSpot, Salesforce and
/// Pipedrive sources, secrets only in the environment; one `sync` delivers
/// every stage of the three histories once, a second adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sync_with_all_three_crms() {
    use leadsignal_sandbox::crm::{start_pipedrive, start_salesforce, SalesforceConfig};
    let sb = sandbox::start(SandboxConfig::single(DATASET, META_TOKEN))
        .await
        .unwrap();
    let hub = start_hubspot(HubspotConfig::new(HUBSPOT_TOKEN))
        .await
        .unwrap();
    let sf = start_salesforce(SalesforceConfig::new(SF_CLIENT, SF_SECRET))
        .await
        .unwrap();
    let pd = start_pipedrive(PD_TOKEN).await.unwrap();
    let t = now_ms() - 3_600_000;
    let jane = hub.create(
        t,
        &[
            ("email", "jane@example.com"),
            ("facebook_lead_id", &JANE.to_string()),
        ],
    );
    hub.set_stage(&jane, "lead", t);
    hub.set_stage(&jane, "marketingqualifiedlead", t + 60_000);
    let ann = sf.create_lead(
        t,
        "Open - Not Contacted",
        &[("Meta_Lead_ID__c", &ANN.to_string())],
    );
    sf.set_status(&ann, "Working - Contacted", t + 60_000);
    let deal = pd.create_deal(t / 1000, None, 1, &[(PD_LEAD_FIELD, &CARL.to_string())]);
    pd.move_stage(deal, 2, t / 1000 + 60);
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"[meta]
dataset_id = "{DATASET}"
access_token = "env:META_TOKEN_FOR_TEST"
graph_url = "{}"
[crm]
name = "Several CRMs"
[normalize]
default_country = "US"
[store]
url = "sqlite://{}"
[funnel]
stages = [
  {{ name = "Lead", meta = "LEAD", crm = ["lead", "Open - Not Contacted", "Lead In"] }},
  {{ name = "Qualified", meta = "MARKETING_QUALIFIED_LEAD", crm = ["Marketing Qualified Lead", "Working - Contacted", "Contact Made"] }},
]
[[sources]]
name = "hubspot"
kind = "hubspot"
base_url = "{}"
token = "env:HUBSPOT_TOKEN"
lead_id_property = "facebook_lead_id"
[[sources]]
name = "salesforce"
kind = "salesforce"
login_url = "{}"
client_id = "{SF_CLIENT}"
client_secret = "env:SALESFORCE_CLIENT_SECRET"
[[sources]]
name = "pipedrive"
kind = "pipedrive"
base_url = "{}"
token = "env:PIPEDRIVE_TOKEN"
lead_id_field = "{PD_LEAD_FIELD}"
"#,
        sb.url(),
        dir.path().join("outbox.db").display(),
        hub.url(),
        sf.url(),
        pd.url()
    );
    std::fs::write(dir.path().join("leadsignal.toml"), &cfg).unwrap();
    for secret in [META_TOKEN, HUBSPOT_TOKEN, SF_SECRET, PD_TOKEN] {
        assert!(!cfg.contains(secret));
    }
    let run = || {
        let d = dir.path().to_path_buf();
        async move {
            tokio::task::spawn_blocking(move || {
                let out = Command::new(env!("CARGO_BIN_EXE_leadsignal"))
                    .current_dir(&d)
                    .env("META_TOKEN_FOR_TEST", META_TOKEN)
                    .env("HUBSPOT_TOKEN", HUBSPOT_TOKEN)
                    .env("SALESFORCE_CLIENT_SECRET", SF_SECRET)
                    .env("PIPEDRIVE_TOKEN", PD_TOKEN)
                    .args(["sync", "--json"])
                    .output()
                    .unwrap();
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
    let first = run().await;
    assert_eq!(first["send"]["accepted"], 6, "{first}");
    let again = run().await;
    assert_eq!(again["send"]["accepted"], 0, "{again}");
    let leads = by_lead(&sb);
    for lead in [JANE, ANN, CARL] {
        let names: Vec<&str> = leads[&Some(lead)].iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Lead", "Qualified"], "lead {lead}");
    }
    assert_eq!(
        (
            sb.stats().distinct_event_ids,
            sb.stats().duplicate_event_ids
        ),
        (6, 0)
    );
    // What Meta received for Jane: her lead ID as an integer, her e-mail
    // hashed as Meta's rules ask, the CRM event's fields.
    let recent: Value = reqwest::get(format!("{}/sandbox/events?limit=50", sb.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jane_events: Vec<&Value> = recent["recent_full"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["user_data"]["lead_id"].as_u64() == Some(JANE))
        .collect();
    assert_eq!(jane_events.len(), 2, "{recent}");
    let em = leadsignal_core::Sha256::of("jane@example.com").to_string();
    for e in jane_events {
        assert_eq!(e["user_data"]["em"][0].as_str(), Some(em.as_str()), "{e}");
        assert_eq!(e["action_source"], "system_generated");
        assert_eq!(e["custom_data"]["event_source"], "crm");
        assert_eq!(e["custom_data"]["lead_event_source"], "Several CRMs");
    }
}

/// The Pipedrive source killed with SIGKILL after its first committed poll
/// (2,500 deals of five stage changes each: two polls), then run again:
/// nothing lost, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipedrive_sync_killed_mid_poll_then_rerun_loses_and_repeats_nothing() {
    use leadsignal_sandbox::crm::start_pipedrive;
    let sb = sandbox::start(SandboxConfig::single(DATASET, META_TOKEN))
        .await
        .unwrap();
    let pd = start_pipedrive(PD_TOKEN).await.unwrap();
    pd.set_latency_ms(1);
    let t = now_ms() / 1000 - 3 * 3600;
    let deals = 2_500;
    for i in 0..deals {
        let d = pd.create_deal(
            t + i,
            None,
            1,
            &[(PD_LEAD_FIELD, &(CARL + 10 + i as u64).to_string())],
        );
        for (k, stage) in [2u64, 3, 4, 5].into_iter().enumerate() {
            pd.move_stage(d, stage, t + i + 60 * (k as i64 + 1));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"[meta]
dataset_id = "{DATASET}"
access_token = "{META_TOKEN}"
graph_url = "{}"
[crm]
name = "Pipedrive"
[normalize]
default_country = "US"
[store]
url = "sqlite://{}"
[funnel]
stages = [
  {{ name = "Lead In", meta = "LEAD", crm = ["Lead In"] }},
  {{ name = "Contact Made", meta = "MARKETING_QUALIFIED_LEAD", crm = ["Contact Made"] }},
  {{ name = "Demo Scheduled", meta = "SALES_OPPORTUNITY", crm = ["Demo Scheduled"] }},
  {{ name = "Proposal Made", meta = "SALES_OPPORTUNITY", crm = ["Proposal Made"] }},
  {{ name = "Negotiations Started", meta = "SALES_OPPORTUNITY", crm = ["Negotiations Started"] }},
]
[[sources]]
name = "pipedrive"
kind = "pipedrive"
base_url = "{}"
token = "env:PIPEDRIVE_TOKEN"
lead_id_field = "{PD_LEAD_FIELD}"
"#,
        sb.url(),
        dir.path().join("outbox.db").display(),
        pd.url()
    );
    std::fs::write(dir.path().join("leadsignal.toml"), cfg).unwrap();
    kill_after_first_poll_then_sync(
        dir.path(),
        ("PIPEDRIVE_TOKEN", PD_TOKEN),
        &sb,
        5 * deals as u64,
    )
    .await;
}
