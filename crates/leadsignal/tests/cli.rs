//! The commands as a user runs them: real process, real files, exit codes.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The tests' clock: 2026-11-21T12:00:00Z.
const NOW: &str = "1795262400";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_leadsignal"));
    // Never pick up a developer's ./leadsignal.toml or LEADSIGNAL_* settings.
    c.current_dir(std::env::temp_dir());
    for (k, _) in std::env::vars() {
        if k.starts_with("LEADSIGNAL_") {
            c.env_remove(k);
        }
    }
    c
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = bin();
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(name)
}

fn config_file(body: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(body.as_bytes()).unwrap();
    f
}

const CONFIG: &str = "[meta]\ndataset_id = \"2780431635496611\"\naccess_token = \"SECRET-TOKEN-XYZ\"\napp_secret = \"APP-SECRET-ABC\"\n[crm]\nname = \"HubSpot\"\n[normalize]\ndefault_country = \"US\"\n";

#[test]
fn hash_text_json_and_drop() {
    let o = run(&["hash", "email", " John_Smith@gmail.com"], None);
    assert!(o.status.success());
    assert_eq!(
        text(&o.stdout),
        "em\tjohn_smith@gmail.com\t62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f\n"
    );
    let o = run(
        &["hash", "ph", "(650)555-1212", "--country", "US", "--json"],
        None,
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["normalized"], "16505551212");
    assert_eq!(
        v["hash"],
        "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
    );
    let o = run(&["hash", "phone", "(650)555-1212", "--json"], None);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dropped"]["rule"], "ph.no_country_code");
    let o = run(&["hash", "nope", "x"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown field \"nope\""));
}

#[test]
fn preview_from_flags_prints_the_exact_body() {
    let cfg = config_file(CONFIG);
    let o = run(
        &[
            "--config",
            cfg.path().to_str().unwrap(),
            "preview",
            "--now",
            NOW,
            "--lead-id",
            "l:1234567890123456",
            "--stage",
            "mql",
            "--changed-at",
            "2026-11-21T10:00:00Z",
            "--email",
            "Jane@Example.com",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("\"lead_id\": 1234567890123456,"), "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let e = &v["data"][0];
    assert_eq!(e["event_name"], "Marketing Qualified Lead");
    assert_eq!(e["event_time"], 1_795_255_200);
    assert_eq!(e["action_source"], "system_generated");
    assert_eq!(e["custom_data"]["event_source"], "crm");
    assert_eq!(e["custom_data"]["lead_event_source"], "HubSpot");
    assert_eq!(e["user_data"]["em"][0].as_str().unwrap().len(), 64);
    assert!(v.get("access_token").is_none());
}

#[test]
fn preview_from_stdin_reports_bad_lines_and_exits_1() {
    let cfg = config_file(CONFIG);
    let input = "{\"lead_id\":\"1234567890123456\",\"stage\":\"new\",\"changed_at\":1795255200}\n\
                 {\"lead_id\":\"1.23457E+15\",\"stage\":\"new\",\"changed_at\":1795255200}\n\
                 not json\n\
                 {\"lead_id\":\"1234567890123457\",\"stage\":\"new\",\"changed_at\":1794262400}\n";
    let o = run(
        &[
            "--config",
            cfg.path().to_str().unwrap(),
            "preview",
            "--now",
            NOW,
        ],
        Some(input),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("stdin:2: lead_id:") && err.contains("[lead_id.scientific_notation]"),
        "{err}"
    );
    assert!(
        err.contains("stdin:3:") && err.contains("[json.syntax]"),
        "{err}"
    );
    // Too old to send: listed, never in the body.
    assert!(err.contains("stdin:4: expired: \"Lead\""), "{err}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);

    let o = run(
        &[
            "--config",
            cfg.path().to_str().unwrap(),
            "preview",
            "--now",
            NOW,
            "--json",
        ],
        Some(input),
    );
    let lines: Vec<Value> = text(&o.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["line"], 2);
    assert_eq!(lines[0]["code"], "lead_id.scientific_notation");
    assert_eq!(lines[0]["field"], "lead_id");
}

#[test]
fn preview_splits_more_than_1000_events_into_requests() {
    let cfg = config_file(CONFIG);
    let input: String = (0..1001)
        .map(|i| {
            format!(
                "{{\"lead_id\":\"{}\",\"stage\":\"new\",\"changed_at\":1795255200}}\n",
                1_234_567_890_000_000u64 + i
            )
        })
        .collect();
    let o = run(
        &[
            "--config",
            cfg.path().to_str().unwrap(),
            "preview",
            "--now",
            NOW,
        ],
        Some(&input),
    );
    assert!(o.status.success());
    let bodies: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["data"].as_array().unwrap().len(), 1000);
    assert_eq!(bodies[1]["data"].as_array().unwrap().len(), 1);
}

#[test]
fn offline_profile_is_export_only_and_says_why() {
    let cfg =
        config_file(&format!("{CONFIG}\n").replace("[crm]", "profile = \"offline-v7\"\n[crm]"));
    let o = run(
        &[
            "--config",
            cfg.path().to_str().unwrap(),
            "preview",
            "--now",
            NOW,
            "--lead-id",
            "1234567890123456",
            "--stage",
            "won",
            "--changed-at",
            "1795255200",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("retired in May 2025"));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["data"][0]["match_keys"]["lead_id"], "1234567890123456");
    assert_eq!(
        v["data"][0]["custom_data"]["facebook_lifecycle_stage_name"],
        "CONVERTED"
    );
}

#[test]
fn environment_overrides_the_file() {
    let cfg = config_file(CONFIG);
    let mut c = bin();
    c.env("LEADSIGNAL_CRM__NAME", "Salesforce").args([
        "--config",
        cfg.path().to_str().unwrap(),
        "preview",
        "--now",
        NOW,
        "--lead-id",
        "1234567890123456",
        "--stage",
        "new",
        "--changed-at",
        "1795255200",
    ]);
    let o = c.output().unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["data"][0]["custom_data"]["lead_event_source"],
        "Salesforce"
    );
}

#[test]
fn validate_reports_file_line_field_rule_and_summary() {
    let cfg = config_file(CONFIG);
    let csv = testdata("export_semicolon_bom_crlf.csv");
    let o = run(
        &[
            "--config",
            cfg.path().to_str().unwrap(),
            "validate",
            "--now",
            NOW,
            csv.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    let name = csv.display().to_string();
    // A lead ID Excel mangled is left out; the row's e-mail still matches.
    assert!(
        out.contains(&format!("{name}:4: warning: lead_id dropped:"))
            && out.contains("[lead_id.scientific_notation]"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{name}:6:")) && out.contains("[csv.field_count]"),
        "{out}"
    );
    assert!(
        out.contains("columns ignored (not read by the mapping): notes"),
        "{out}"
    );
    assert!(
        out.contains("4 rows read\n4 stage changes: 3 valid, 0 expired, 1 rejected"),
        "{out}"
    );

    let jsonl = testdata("stage_changes.jsonl");
    let o = run(
        &[
            "--config",
            cfg.path().to_str().unwrap(),
            "validate",
            "--json",
            "--now",
            NOW,
            jsonl.to_str().unwrap(),
            "/no/such/file.csv",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let lines: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["rows"], 5);
    assert_eq!(summary["accepted"], 3);
    assert_eq!(summary["rejected_by_rule"]["json.field"], 1);
    assert_eq!(summary["unreadable_files"], 1);
    assert!(lines.iter().any(|l| l["kind"] == "file_error"));
}

#[test]
fn validate_all_good_exits_0() {
    let cfg = config_file(CONFIG);
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    write!(
        f,
        "lead_id,stage,changed_at,email\n1234567890123456,new,2026-11-21T10:00:00Z,a@b.co\n"
    )
    .unwrap();
    let o = run(
        &[
            "--config",
            cfg.path().to_str().unwrap(),
            "validate",
            "--now",
            NOW,
            f.path().to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("1 stage changes: 1 valid, 0 expired, 0 rejected"));
}

#[test]
fn demo_runs_with_no_config() {
    let o = run(&["demo"], None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("24 stage changes: 18 valid, 1 expired, 5 rejected"),
        "{out}"
    );
    // History older than Meta's window is listed as expired, not rejected.
    assert!(
        out.contains("demo.jsonl:20: expired: \"Lead\" at "),
        "{out}"
    );
    // Delivered to the in-process sandbox; the lead Meta no longer knows is
    // found by bisection and quarantined with Meta's code.
    assert!(out.contains("18 events stored"), "{out}");
    assert!(out.contains("18 events accepted"), "{out}");
    assert!(out.contains("1 x code 100, subcode 2804036"), "{out}");
    for rule in [
        "lead_id.scientific_notation",
        "stage.unknown",
        "event_time.milliseconds",
        "identifier.baseline_invalid",
        "event_time.before_lead_created",
        "ldu.state",
    ] {
        assert!(out.contains(rule), "{rule} missing from demo output");
    }
}

#[test]
fn bad_config_is_a_clear_error_with_exit_2() {
    let cfg = config_file("[funnel]\nstages = [{ name = \"Lead\", meta = \"LEAD\" }]\n");
    let o = run(
        &[
            "--config",
            cfg.path().to_str().unwrap(),
            "validate",
            "x.csv",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("at least two"),
        "{}",
        text(&o.stderr)
    );
    let o = run(&["--config", "/no/such.toml", "demo"], None);
    assert!(o.status.success(), "demo ignores --config");
    let o = run(&["--config", "/no/such.toml", "validate", "x.csv"], None);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn secrets_and_raw_contact_data_never_appear_in_output() {
    let cfg = config_file(CONFIG);
    let c = cfg.path().to_str().unwrap();
    let input = "{\"lead_id\":\"1234567890123456\",\"stage\":\"new\",\"changed_at\":1795255200,\"email\":\"secret.person@example.com\",\"phone\":\"(650) 555-1212\"}\n\
                 {\"stage\":\"new\",\"changed_at\":1795255200,\"email\":\"broken@@example.com\",\"phone\":\"650 555 1299 call\"}\n";
    let outputs = [
        run(&["--config", c, "preview", "--now", NOW], Some(input)),
        run(
            &["--config", c, "preview", "--now", NOW, "--json"],
            Some(input),
        ),
        run(
            &[
                "--config",
                c,
                "validate",
                "--now",
                NOW,
                testdata("stage_changes.jsonl").to_str().unwrap(),
            ],
            None,
        ),
    ];
    for o in &outputs {
        let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
        for secret in [
            "SECRET-TOKEN-XYZ",
            "APP-SECRET-ABC",
            "secret.person",
            "broken@@",
            "555-1212",
            "5551212",
            "Jane.Doe",
        ] {
            assert!(!all.contains(secret), "{secret:?} leaked:\n{all}");
        }
    }
}

/// `demo --serve`: after the demo, the service runs on the demo's outbox and
/// sandbox; the dashboard answers, a pushed stage change reaches the
/// sandbox, and Ctrl-C (SIGINT) stops it cleanly.
#[test]
fn demo_serve_runs_the_service_until_interrupted() {
    use std::io::{BufRead, BufReader};
    let mut child = bin()
        .args(["demo", "--serve", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base, mut token) = (String::new(), String::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("dashboard") {
            base = rest.trim().trim_end_matches('/').to_string();
        }
        if let Some(rest) = line.trim().strip_prefix("API token") {
            token = rest.split_whitespace().next().unwrap().to_string();
        }
        if line.contains("/v1/stage-changes") {
            break;
        }
    }
    assert!(
        base.starts_with("http://127.0.0.1:") && token.len() == 32,
        "{base} {token}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let page = http.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let r = http
            .post(format!("{base}/v1/stage-changes"))
            .bearer_auth(&token)
            .body(format!(
                r#"[{{"lead_id":"1234567890123999","stage":"new","changed_at":{}}}]"#,
                now - 60
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let t0 = std::time::Instant::now();
        loop {
            let page = http
                .get(format!("{base}/sandbox"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if page.contains("1234567890123999") {
                break;
            }
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(20),
                "not delivered: {page}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(rest.iter().any(|l| l.contains("Next:")), "{rest:?}");
}
