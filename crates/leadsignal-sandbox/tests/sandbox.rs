//! The client against the sandbox over real HTTP on 127.0.0.1: every
//! outcome class, both request forms, proofs, faults, lead retrieval.

use leadsignal_core::sample::{config, typical_stage_change};
use leadsignal_core::{prepare, LeadId, ServerEvent};
use leadsignal_graph::{ClientConfig, Credentials, GraphClient, Outcome, ProofMode, SendOptions};
use leadsignal_sandbox::{self as sandbox, Faults, SandboxConfig, SandboxDataset, SandboxLead};
use std::time::Duration;

const DATASET: &str = "2780431635496611";
const TOKEN: &str = "EAAsandbox-token-1";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn event(lead: u64, minutes_ago: i64) -> ServerEvent {
    let n = now();
    let mut sc = typical_stage_change(n);
    sc.lead_id = Some(LeadId::from_u64(lead).unwrap());
    sc.changed_at = n - minutes_ago * 60;
    prepare(&sc, &config(), n).unwrap().event
}

fn client(url: &str) -> GraphClient {
    GraphClient::new(&ClientConfig {
        graph_url: url.into(),
        timeout: Duration::from_millis(2_000),
        ..ClientConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn accepted_with_trace_and_stored() {
    let sb = sandbox::start(SandboxConfig::single(DATASET, TOKEN))
        .await
        .unwrap();
    let c = client(&sb.url());
    let (a, b) = (
        event(1_234_567_890_123_456, 5),
        event(1_234_567_890_123_457, 5),
    );
    let out = c
        .send_events(
            DATASET,
            &[&a, &b],
            &Credentials::new(TOKEN),
            SendOptions::default(),
            now(),
        )
        .await;
    let Outcome::Accepted(r) = out else {
        panic!("{out:?}")
    };
    assert_eq!(r.events_received, 2);
    assert!(r.fbtrace_id.is_some());
    let got = sb.accepted();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].event_id.as_deref(), Some(a.event_id.as_str()));
    assert_eq!(got[0].lead_id, Some(1_234_567_890_123_456));
    assert_eq!(sb.stats().distinct_event_ids, 2);
}

#[tokio::test]
async fn token_dataset_and_proof_failures_are_auth() {
    let mut cfg = SandboxConfig::single(DATASET, TOKEN);
    cfg.datasets.push(SandboxDataset {
        id: "999000111".into(),
        access_token: "EAAproof-token".into(),
        app_secret: Some("app-secret-1".into()),
    });
    let sb = sandbox::start(cfg).await.unwrap();
    let c = client(&sb.url());
    let e = event(1_234_567_890_123_456, 5);
    let send = |dataset: &'static str, creds: Credentials| {
        let (c, e) = (c.clone(), e.clone());
        async move {
            c.send_events(dataset, &[&e], &creds, SendOptions::default(), now())
                .await
        }
    };
    let code = |o: Outcome| match o {
        Outcome::Auth(e) => (e.code, e.error_subcode),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        code(send(DATASET, Credentials::new("EAAwrong")).await),
        (190, None)
    );
    assert_eq!(
        code(send("123456", Credentials::new(TOKEN)).await),
        (100, Some(33))
    );
    // Require App Secret: no proof, a wrong one, then both good forms.
    assert_eq!(
        code(send("999000111", Credentials::new("EAAproof-token")).await),
        (100, None)
    );
    let wrong = Credentials::new("EAAproof-token").with_app_secret("other", ProofMode::Plain);
    assert_eq!(code(send("999000111", wrong).await), (100, None));
    for mode in [ProofMode::Plain, ProofMode::Timed] {
        let good = Credentials::new("EAAproof-token").with_app_secret("app-secret-1", mode);
        assert!(
            matches!(send("999000111", good).await, Outcome::Accepted(_)),
            "{mode:?}"
        );
    }
    // Revoked, then renewed.
    sb.revoke_token(DATASET);
    assert_eq!(
        code(send(DATASET, Credentials::new(TOKEN)).await),
        (190, Some(460))
    );
    sb.set_token(DATASET, "EAAnew-token");
    assert_eq!(
        code(send(DATASET, Credentials::new(TOKEN)).await),
        (190, Some(460))
    );
    assert!(matches!(
        send(DATASET, Credentials::new("EAAnew-token")).await,
        Outcome::Accepted(_)
    ));
}

#[tokio::test]
async fn whole_batch_rejected_for_one_old_event() {
    let sb = sandbox::start(SandboxConfig::single(DATASET, TOKEN))
        .await
        .unwrap();
    let c = client(&sb.url());
    let fresh = event(1_234_567_890_123_456, 5);
    let mut old = event(1_234_567_890_123_457, 5);
    old.event_time = now() - 8 * 86_400;
    let out = c
        .send_events(
            DATASET,
            &[&fresh, &old],
            &Credentials::new(TOKEN),
            SendOptions::default(),
            now(),
        )
        .await;
    let Outcome::Rejected(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!((e.code, e.error_subcode), (100, Some(2_804_003)));
    assert!(e.fbtrace_id.is_some());
    assert!(
        sb.accepted().is_empty(),
        "nothing of a rejected batch is kept"
    );
}

#[tokio::test]
async fn faults_classify_as_transient_and_rate_limited() {
    let sb = sandbox::start(SandboxConfig::single(DATASET, TOKEN))
        .await
        .unwrap();
    let c = client(&sb.url());
    let e = event(1_234_567_890_123_456, 5);
    let creds = Credentials::new(TOKEN);
    sb.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    assert!(matches!(
        c.send_events(DATASET, &[&e], &creds, SendOptions::default(), now())
            .await,
        Outcome::Transient(_)
    ));
    sb.set_faults(Faults {
        rate_limit_windows: vec![(now() - 10, now() + 3600)],
        regain_minutes: 3,
        ..Faults::default()
    });
    let out = c
        .send_events(DATASET, &[&e], &creds, SendOptions::default(), now())
        .await;
    assert!(
        matches!(out, Outcome::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(180)),
        "{out:?}"
    );
    // A hang longer than the client's timeout.
    sb.set_faults(Faults {
        timeout_rate: 1.0,
        hang_ms: 3_000,
        ..Faults::default()
    });
    let out = c
        .send_events(DATASET, &[&e], &creds, SendOptions::default(), now())
        .await;
    assert!(
        matches!(out, Outcome::Transient(leadsignal_graph::TransientCause::Network(ref m)) if m.contains("timeout")),
        "{out:?}"
    );
    sb.set_faults(Faults::default());
    assert!(matches!(
        c.send_events(DATASET, &[&e], &creds, SendOptions::default(), now())
            .await,
        Outcome::Accepted(_)
    ));
}

#[tokio::test]
async fn test_events_are_counted_apart() {
    let sb = sandbox::start(SandboxConfig::single(DATASET, TOKEN))
        .await
        .unwrap();
    let c = client(&sb.url());
    let e = event(1_234_567_890_123_456, 5);
    let opts = SendOptions {
        test_event_code: Some("TEST4242"),
        partner_agent: None,
    };
    assert!(matches!(
        c.send_events(DATASET, &[&e], &Credentials::new(TOKEN), opts, now())
            .await,
        Outcome::Accepted(_)
    ));
    let s = sb.stats();
    assert_eq!((s.test_events_accepted, s.distinct_event_ids), (1, 0));
    assert_eq!(
        sb.accepted()[0].test_event_code.as_deref(),
        Some("TEST4242")
    );
    assert!(sb.requests()[0].test);
}

/// Meta's SDKs send `application/x-www-form-urlencoded`, `data` being a
/// JSON array of JSON-encoded events.
#[tokio::test]
async fn form_encoded_requests_like_the_sdks() {
    let sb = sandbox::start(SandboxConfig::single(DATASET, TOKEN))
        .await
        .unwrap();
    let e = event(1_234_567_890_123_456, 5);
    let inner = serde_json::to_string(&e).unwrap();
    let data = serde_json::to_string(&vec![inner]).unwrap();
    let body =
        serde_urlencoded::to_string([("data", data.as_str()), ("access_token", TOKEN)]).unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/v23.0/{DATASET}/events", sb.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["events_received"], 1);
    // No token at all: code 104.
    let r = reqwest::Client::new()
        .post(format!("{}/v23.0/{DATASET}/events", sb.url()))
        .json(&serde_json::json!({"data": [e]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 104);
    // Inspection endpoints.
    let v: serde_json::Value = reqwest::get(format!("{}/sandbox/events", sb.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["total"], 1);
    assert_eq!(v["recent_full"][0]["event_id"], e.event_id.as_str());
}

#[tokio::test]
async fn lead_retrieval() {
    let sb = sandbox::start(SandboxConfig::single(DATASET, TOKEN))
        .await
        .unwrap();
    sb.add_lead(SandboxLead {
        id: 1_234_567_890_123_456,
        created_time: 1_795_000_000,
        field_data: vec![leadsignal_graph::client::FieldData {
            name: "email".into(),
            values: vec!["jane@example.com".into()],
        }],
    });
    let c = client(&sb.url());
    let creds = Credentials::new(TOKEN);
    let l = c
        .get_lead(
            LeadId::from_u64(1_234_567_890_123_456).unwrap(),
            &["created_time", "field_data"],
            &creds,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(l.created_time, Some(1_795_000_000));
    assert_eq!(l.field_data[0].name, "email");
    let missing = c
        .get_lead(
            LeadId::from_u64(1_234_567_890_123_999).unwrap(),
            &["created_time"],
            &creds,
            now(),
        )
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("33"), "{missing}");
}

#[tokio::test]
async fn unreachable_graph_is_transient_without_secrets() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let e = event(1_234_567_890_123_456, 5);
    let out = client(&url)
        .send_events(
            DATASET,
            &[&e],
            &Credentials::new(TOKEN),
            SendOptions::default(),
            now(),
        )
        .await;
    let Outcome::Transient(leadsignal_graph::TransientCause::Network(msg)) = out else {
        panic!("{out:?}")
    };
    assert!(!msg.contains(TOKEN) && !msg.contains("http://"), "{msg}");
}
