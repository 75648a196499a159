//! Several datasets in one deployment (`[[datasets]]`): each imported with
//! its own CRM name and funnel, each delivered with its own token; one
//! dataset's revoked token pauses that dataset only.

use leadsignal_sandbox::{self as sandbox, SandboxConfig, SandboxDataset};
use std::process::Command;

const A: &str = "2780431635496611";
const B: &str = "9990001112223334";
const TOKEN_A: &str = "EAAdataset-a-token";
const TOKEN_B: &str = "EAAdataset-b-token";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A sandbox knowing dataset `first` (with `token`) and B.
fn two_datasets(first: &str, token: &str) -> SandboxConfig {
    let mut cfg = SandboxConfig::single(first, token);
    cfg.datasets.push(SandboxDataset {
        id: B.into(),
        access_token: TOKEN_B.into(),
        app_secret: None,
    });
    cfg
}

fn run(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_leadsignal"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LEADSIGNAL_") || k.starts_with("META_") {
            c.env_remove(k);
        }
    }
    c.current_dir(dir).args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_dataset_is_delivered_on_its_own() {
    let cfg = two_datasets(A, TOKEN_A);
    let sb = sandbox::start(cfg).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("leadsignal.toml"),
        format!(
            "[meta]\ndataset_id = \"{A}\"\naccess_token = \"{TOKEN_A}\"\ngraph_url = \"{}\"\n\
             [crm]\nname = \"HubSpot\"\n[store]\nurl = \"sqlite://outbox.db\"\n\
             [[datasets]]\nname = \"brand-b\"\ndataset_id = \"{B}\"\naccess_token = \"{TOKEN_B}\"\ncrm_name = \"Salesforce\"\n\
             stages = [{{ name = \"Inquiry\", meta = \"LEAD\", crm = [\"inquiry\"] }}, {{ name = \"Closed\", meta = \"CONVERTED\", crm = [\"closed\"] }}]\n",
            sb.url()
        ),
    )
    .unwrap();
    let t = now() - 3600;
    std::fs::write(
        dir.path().join("a.csv"),
        format!("lead_id,stage,changed_at\n1234567890123456,new,{t}\n1234567890123457,new,{t}\n1234567890123457,mql,{}\n", t + 60),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.csv"),
        format!("lead_id,stage,changed_at\n1234567890123456,inquiry,{t}\n1234567890123456,closed,{}\n1234567890123458,inquiry,{t}\n", t + 60),
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let (a, b, unknown, wrong_funnel) = tokio::task::spawn_blocking(move || {
        (
            run(&d, &["import", "--json", "a.csv"]),
            run(&d, &["import", "--json", "--dataset", "brand-b", "b.csv"]),
            run(&d, &["import", "--dataset", "brand-c", "b.csv"]),
            run(&d, &["import", "--json", "b.csv"]),
        )
    })
    .await
    .unwrap();
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let b: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    assert_eq!(b["accepted"], 3, "brand-b's own funnel: {b}");
    let e = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        !unknown.status.success() && e.contains("brand-c") && e.contains("brand-b"),
        "{e}"
    );
    let w: serde_json::Value = serde_json::from_slice(&wrong_funnel.stdout).unwrap();
    assert_eq!(
        w["rejected"], 3,
        "the default funnel knows no 'inquiry': {w}"
    );

    // Dataset A's token is revoked: A pauses, B is delivered in full.
    sb.revoke_token(A);
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || run(&d, &["send", "--json"]))
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "paused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 2, "one report per dataset");
    let by: std::collections::HashMap<&str, &serde_json::Value> = reports
        .iter()
        .map(|r| (r["dataset_id"].as_str().unwrap(), r))
        .collect();
    assert!(by[A]["paused"].is_string(), "{}", by[A]);
    assert_eq!(by[A]["accepted"], 0);
    assert!(by[B]["paused"].is_null(), "{}", by[B]);
    assert_eq!(by[B]["accepted"], 3, "{}", by[B]);
    let accepted = sb.accepted();
    assert_eq!(accepted.len(), 3);
    assert!(accepted.iter().all(|e| &*e.dataset_id == B));
    let names: std::collections::BTreeSet<&str> = accepted.iter().map(|e| &*e.event_name).collect();
    assert_eq!(names, ["Closed", "Inquiry"].into());
    // B's events carry B's CRM name.
    let events: serde_json::Value =
        reqwest::get(format!("{}/sandbox/events?dataset={B}", sb.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let text = events.to_string();
    assert!(
        text.contains("Salesforce") && !text.contains("HubSpot"),
        "{text}"
    );
    // A new token for A: `send --dataset default` delivers A alone.
    sb.set_token(A, TOKEN_A);
    let d = dir.path().to_path_buf();
    let out =
        tokio::task::spawn_blocking(move || run(&d, &["send", "--json", "--dataset", "default"]))
            .await
            .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["dataset_id"], A);
    assert_eq!(r["accepted"], 3, "{r}");
}

mod common;

/// `serve` with two datasets: stage changes posted with `?dataset=` are
/// prepared with that dataset's funnel and CRM name and delivered with its
/// token; an unknown dataset is a clear 404 (401 without the token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_and_delivers_each_dataset() {
    let cfg = two_datasets(common::DATASET, common::TOKEN);
    let sb = sandbox::start(cfg).await.unwrap();
    let mut s = common::Serve::start(
        &sb,
        &format!(
            "[[datasets]]\nname = \"brand-b\"\ndataset_id = \"{B}\"\naccess_token = \"{TOKEN_B}\"\ncrm_name = \"Salesforce\"\n\
             stages = [{{ name = \"Inquiry\", meta = \"LEAD\", crm = [\"inquiry\"] }}, {{ name = \"Closed\", meta = \"CONVERTED\", crm = [\"closed\"] }}]\n"
        ),
    )
    .await;
    let t = now() - 600;
    let body =
        format!(r#"[{{"lead_id": 1234567890123999, "stage": "inquiry", "changed_at": {t}}}]"#);
    let (code, answer) = s.post("/v1/stage-changes?dataset=brand-b", &body).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["items"][0]["status"], "accepted", "{answer}");
    assert_eq!(answer["items"][0]["event_name"], "Inquiry");
    // The default dataset's funnel does not know "inquiry".
    let (_, answer) = s.post("/v1/stage-changes", &body).await;
    assert_eq!(answer["items"][0]["status"], "rejected", "{answer}");
    let (code, answer) = s.post("/v1/stage-changes?dataset=nope", &body).await;
    assert_eq!(code, 404);
    assert!(answer.to_string().contains("brand-b"), "{answer}");
    let anon = s
        .http
        .post(s.url("/v1/stage-changes?dataset=nope"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        anon.status().as_u16(),
        401,
        "names are for authenticated callers"
    );
    // Delivered to B with B's token, by B's own sender.
    let t0 = std::time::Instant::now();
    while sb.accepted().iter().all(|e| &*e.dataset_id != B) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "not delivered: {}",
            s.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let e = sb
        .accepted()
        .into_iter()
        .find(|e| &*e.dataset_id == B)
        .unwrap();
    assert_eq!(&*e.event_name, "Inquiry");
    assert_eq!(e.lead_id, Some(1234567890123999));
    assert!(s.terminate().success());
}

/// One dataset's token is rate limited for an hour: its events wait (Meta
/// said when to come back), the other dataset's are all delivered in the
/// same run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_dataset_does_not_hold_another_back() {
    let mut cfg = two_datasets(A, TOKEN_A);
    cfg.faults.rate_limit_windows = vec![(now() - 10, now() + 3600)];
    cfg.faults.rate_limited_datasets = vec![A.into()];
    cfg.faults.regain_minutes = 30;
    let sb = sandbox::start(cfg).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("leadsignal.toml"),
        format!(
            "[meta]\ndataset_id = \"{A}\"\naccess_token = \"{TOKEN_A}\"\ngraph_url = \"{}\"\n\
             [crm]\nname = \"HubSpot\"\n[store]\nurl = \"sqlite://outbox.db\"\n[delivery]\nbatch_size = 10\nmax_wait_secs = 2\n\
             [[datasets]]\nname = \"b\"\ndataset_id = \"{B}\"\naccess_token = \"{TOKEN_B}\"\n",
            sb.url()
        ),
    )
    .unwrap();
    let t = now() - 3600;
    let rows: String = (0..50)
        .map(|i| format!("{},new,{t}\n", 1_234_567_890_100_000u64 + i))
        .collect();
    std::fs::write(
        dir.path().join("x.csv"),
        format!("lead_id,stage,changed_at\n{rows}"),
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        assert!(run(&d, &["import", "x.csv"]).status.success());
        assert!(run(&d, &["import", "--dataset", "b", "x.csv"])
            .status
            .success());
        run(&d, &["send", "--json"])
    })
    .await
    .unwrap();
    let reports: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by: std::collections::HashMap<&str, &serde_json::Value> = reports
        .iter()
        .map(|r| (r["dataset_id"].as_str().unwrap(), r))
        .collect();
    assert_eq!(by[B]["accepted"], 50, "{}", by[B]);
    assert_eq!(by[B]["rate_limited_requests"], 0);
    assert_eq!(by[A]["accepted"], 0, "{}", by[A]);
    assert!(
        by[A]["rate_limited_requests"].as_u64().unwrap() >= 1,
        "{}",
        by[A]
    );
    assert_eq!(
        by[A]["left_pending"], 50,
        "A waits for Meta's regain time: {}",
        by[A]
    );
}
