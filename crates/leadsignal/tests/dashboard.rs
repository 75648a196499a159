//! The dashboard in a real browser: headless Chromium (Debian's `chromium`)
//! renders `/` of a running `leadsignal serve` at a phone's width; the
//! figures it shows are compared with the store, and a screenshot is saved
//! (`target/dashboard.png`, `target/dashboard-sandbox.png`).
//!
//! Without Chromium the test says so and passes, unless
//! `LEADSIGNAL_REQUIRE_BROWSER=1` (set by `.ci/run`, which installs it).

mod common;

use common::*;
use leadsignal_sandbox::{self as sandbox, SandboxConfig};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var("LEADSIGNAL_CHROMIUM").unwrap_or_default(),
        "/usr/bin/chromium".into(),
        "/usr/bin/chromium-browser".into(),
        "/usr/bin/google-chrome".into(),
    ];
    candidates
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Runs headless Chromium on `url` with `args` (off the async threads).
async fn browse(browser: &Path, url: &str, args: &[String]) -> std::process::Output {
    let mut all = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--hide-scrollbars".into(),
        // A phone's width.
        "--window-size=412,2400".into(),
    ];
    all.extend_from_slice(args);
    all.push(url.to_string());
    let browser = browser.to_path_buf();
    tokio::task::spawn_blocking(move || Command::new(browser).args(&all).output().unwrap())
        .await
        .unwrap()
}

/// `data-figure` name → text, from the DOM the browser rendered.
fn figures(dom: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut rest = dom;
    while let Some(i) = rest.find("data-figure=") {
        rest = &rest[i + "data-figure=".len()..];
        let (name, after) = if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap();
            (&r[..end], &r[end + 1..])
        } else {
            let end = rest.find(['>', ' ']).unwrap();
            (&rest[..end], &rest[end..])
        };
        let start = after.find('>').unwrap() + 1;
        let end = after[start..].find('<').unwrap();
        out.entry(name.to_string())
            .or_default()
            .push(after[start..start + end].trim().to_string());
        rest = &after[start + end..];
    }
    out
}

const DELETED: u64 = LEAD + 999;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium_matches_the_store() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("LEADSIGNAL_REQUIRE_BROWSER").is_err(),
            "LEADSIGNAL_REQUIRE_BROWSER is set but no Chromium was found"
        );
        eprintln!("SKIPPED dashboard browser test: no Chromium (apt-get install -y chromium; .ci/run does)");
        return;
    };
    let mut cfg = SandboxConfig::single(DATASET, TOKEN);
    cfg.datasets[0].app_secret = Some(APP_SECRET.into());
    cfg.deleted_leads.push(DELETED);
    let sb = sandbox::start(cfg).await.unwrap();
    let s = Serve::start(&sb, "").await;
    // 30 leads at various stages, one of them deleted on Meta's side.
    let stages = ["new", "mql", "opportunity", "won", "unqualified"];
    let mut body: Vec<Value> = (0..30u64)
        .map(|i| {
            json!({"lead_id": LEAD + i, "stage": stages[(i % 5) as usize],
                   "changed_at": now() - 3600 - i as i64 * 60,
                   "email": if i % 2 == 0 { format!("p{i}@example.com") } else { String::new() },
                   "phone": if i % 3 == 0 { "+1 512 555 0100" } else { "" }})
        })
        .collect();
    body.push(json!({"lead_id": DELETED, "stage": "new", "changed_at": now() - 600}));
    let r = s
        .http
        .post(s.url("/v1/stage-changes"))
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Wait until delivery has settled (everything sent or quarantined).
    let db = s.db();
    until("delivery settled", || {
        db.query_row(
            "SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 0
    })
    .await;
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let shot = target.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let out = browse(
        &browser,
        &s.url("/"),
        &[format!("--screenshot={}", shot.display())],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    let dom = browse(&browser, &s.url("/"), &["--dump-dom".into()]).await;
    let dom = String::from_utf8(dom.stdout).unwrap();
    let f = figures(&dom);
    let one = |k: &str| -> String {
        f.get(k)
            .and_then(|v| v.first())
            .unwrap_or_else(|| panic!("no figure {k} in\n{dom}"))
            .clone()
    };
    // Compare with the store.
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(one("dataset"), DATASET);
    assert_eq!(
        one("sent"),
        count("SELECT count(*) FROM outbox WHERE state = 'sent'").to_string()
    );
    assert_eq!(
        one("leads"),
        count("SELECT count(*) FROM leads").to_string()
    );
    assert_eq!(one("state-quarantined"), "1");
    assert_eq!(one("unsent"), "0");
    for stage in [
        "Lead",
        "Marketing Qualified Lead",
        "Sales Opportunity",
        "Converted",
        "Disqualified",
    ] {
        let n = db
            .query_row(
                "SELECT count(*) FROM outbox WHERE stage = ?1",
                [stage],
                |r| r.get::<_, i64>(0),
            )
            .unwrap();
        assert_eq!(one(&format!("stage-{stage}")), n.to_string(), "{stage}");
    }
    assert_eq!(
        one("sent-week"),
        count("SELECT count(*) FROM outbox WHERE state = 'sent'").to_string()
    );
    assert_eq!(one("quarantined-week"), "1");
    assert_eq!(one("expired-week"), "0");
    // Meta's rejection of the deleted lead, with its code and trace.
    let err = one("error");
    assert!(err.contains("100") && err.contains("fbtrace_id"), "{err}");
    // Match keys: every event has lead_id; e-mail on even leads' events.
    assert_eq!(one("cov-lead_id"), "100%");
    // Over the events that can still reach Meta (not quarantined or expired).
    let sendable = "o.state IN ('pending', 'held', 'sending', 'sent')";
    let events = count(&format!("SELECT count(*) FROM outbox o WHERE {sendable}"));
    let with_em: i64 = (0..30u64)
        .filter(|i| i % 2 == 0)
        .map(|i| {
            db.query_row(
                &format!("SELECT count(*) FROM outbox o JOIN leads l ON l.id = o.lead WHERE l.lead_id = ?1 AND {sendable}"),
                [(LEAD + i) as i64],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
        })
        .sum();
    assert_eq!(
        one("cov-em"),
        format!("{:.0}%", with_em as f64 * 100.0 / events as f64)
    );
    assert!(!f.contains_key("paused"));
    assert_eq!(one("near-cutoff"), "0");
    // No raw contact value on the page.
    for raw in ["@example.com", "512 555 0100", "15125550100"] {
        assert!(!dom.contains(raw), "raw contact data on the page: {raw}");
    }
    // What the sandbox received, like Meta's Test Events tab.
    let sb_shot = target.join("dashboard-sandbox.png");
    let out = browse(
        &browser,
        &s.url("/sandbox"),
        &[format!("--screenshot={}", sb_shot.display())],
    )
    .await;
    assert!(out.status.success());
    let dom = String::from_utf8(
        browse(&browser, &s.url("/sandbox"), &["--dump-dom".into()])
            .await
            .stdout,
    )
    .unwrap();
    assert_eq!(
        figures(&dom)["sandbox-total"][0],
        sb.stats().distinct_event_ids.to_string()
    );
}
