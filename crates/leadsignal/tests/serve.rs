//! `leadsignal serve` as a process on 127.0.0.1, with the sandbox as Meta:
//! every endpoint, auth, idempotency, the webhook's verification and
//! signature paths, continuous delivery, metrics, the inbox folder, and a
//! SIGTERM in the middle of a load that loses nothing.

mod common;

use common::*;
use leadsignal_sandbox::{self as sandbox, SandboxConfig};
use leadsignal_sources::webhook::sign;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn record(lead: u64, stage: &str, minutes_ago: i64, email: &str) -> Value {
    json!({"lead_id": lead, "stage": stage, "changed_at": now() - minutes_ago * 60, "email": email, "city": "Austin"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_answers_per_item_is_idempotent_and_delivers() {
    let sb = sandbox().await;
    let mut s = Serve::start(&sb, "").await;
    // Auth first.
    for auth in [None, Some("wrong")] {
        let mut r = s.http.post(s.url("/v1/stage-changes")).body("[]");
        if let Some(t) = auth {
            r = r.bearer_auth(t);
        }
        assert_eq!(r.send().await.unwrap().status().as_u16(), 401);
    }
    assert_eq!(s.get("/v1/status", false).await.0, 401);
    assert_eq!(s.get(&format!("/v1/leads/{LEAD}"), false).await.0, 401);
    // Three items: good, bad e-mail (dropped, still an event with lead_id),
    // unknown field, and a stage that needs earlier ones (filled).
    let body = json!([
        record(LEAD, "new", 30, "Jane.Doe@Example.com"),
        {"lead_id": LEAD + 1, "stage": "new", "changed_at": now() - 60, "bogus": 1},
        {"lead_id": "12", "stage": "new", "changed_at": now() - 60},
        record(LEAD + 2, "won", 20, "x@example.com"),
        // Nine days old: kept as the lead's stage, never sent, not an error.
        {"lead_id": LEAD + 3, "stage": "new", "changed_at": now() - 9 * 86_400},
    ]);
    let (code, a) = s.post("/v1/stage-changes", &body.to_string()).await;
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["received"], 5);
    assert_eq!(a["expired"], 1, "{a}");
    let st: Vec<&str> = a["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        st,
        ["accepted", "rejected", "rejected", "accepted", "expired"],
        "{a}"
    );
    assert_eq!(a["items"][1]["errors"][0]["rule"], "json.field");
    assert!(a["items"][2]["errors"][0]["field"] == "lead_id", "{a}");
    assert_eq!(a["items"][0]["event_name"], "Lead");
    assert_eq!(a["items"][0]["event_id"].as_str().unwrap().len(), 32);
    // The same again: nothing twice.
    let (_, again) = s.post("/v1/stage-changes", &body.to_string()).await;
    assert_eq!(again["already_known"], 3, "{again}");
    assert_eq!(again["accepted"], 0);
    // Delivered continuously: Lead of LEAD, and Lead..Converted of LEAD+2
    // (earlier stages filled in).
    until("delivery", || sb.stats().distinct_event_ids >= 3).await;
    let (code, lead) = s.get(&format!("/v1/leads/{LEAD}"), true).await;
    assert_eq!(code, 200, "{lead}");
    let lead: Value = serde_json::from_str(&lead).unwrap();
    assert_eq!(lead["lead_id"], LEAD);
    let sent = || async {
        let (_, l) = s.get(&format!("/v1/leads/{}", LEAD + 2), true).await;
        let l: Value = serde_json::from_str(&l).unwrap();
        l["stages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["state"] == "sent")
            .count()
    };
    let t0 = Instant::now();
    while sent().await < 3 {
        assert!(t0.elapsed() < Duration::from_secs(30), "{}", s.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.get("/v1/leads/1234567890999999", true).await.0, 404);
    assert_eq!(s.get("/v1/leads/12", true).await.0, 400);
    let (code, status) = s.get("/v1/status", true).await;
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&status).unwrap();
    let sent_total = status["by_state"]["sent"].as_u64().unwrap();
    let all: u64 = status["by_state"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    // Everything was sent but the expired one, which Meta never saw.
    assert_eq!(status["by_state"]["expired"], 1, "{status}");
    assert_eq!(sent_total + 1, all, "{status}");
    assert_eq!(sent_total, sb.stats().distinct_event_ids as u64);
    assert_eq!(status["rejected_by_rule"]["json.field"], 1, "{status}");
    assert_eq!(s.get("/healthz", false).await, (200, "ok".into()));
    let (code, doc) = s.get("/openapi.json", false).await;
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    for path in [
        "/v1/stage-changes",
        "/v1/leads/{lead_id}",
        "/v1/status",
        "/webhooks/meta",
        "/readyz",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} not documented");
    }
    assert_eq!(s.get("/readyz", false).await.0, 200);
    // Metrics: the counters and the outbox gauges.
    let (code, m) = s.get("/metrics", false).await;
    assert_eq!(code, 200);
    assert!(m.contains(&format!("leadsignal_outbox_events{{dataset=\"{DATASET}\",stage=\"Converted\",state=\"sent\"}} 1")), "{m}");
    assert!(m.contains(&format!("leadsignal_received_items_total{{dataset=\"{DATASET}\",stage=\"Converted\",outcome=\"accepted\"}} 1")), "{m}");
    assert!(
        m.contains(&format!(
            "leadsignal_delivered_events_total{{outcome=\"accepted\"}} {sent_total}"
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "leadsignal_queue_depth{{dataset=\"{DATASET}\"}} 0"
        )),
        "{m}"
    );
    assert!(m.contains("leadsignal_delivery_batch_seconds_count"), "{m}");
    assert!(
        m.contains("leadsignal_meta_requests_total{outcome=\"accepted\"}"),
        "{m}"
    );
    assert!(
        !m.contains("leadsignal_meta_requests_total{outcome=\"rejected\"}"),
        "{m}"
    );
    assert!(
        m.contains("leadsignal_quarantined_rows{rule=\"json.field\"} 1"),
        "{m}"
    );
    // Raw contact data never reaches the store.
    let st = s.terminate();
    assert!(st.success(), "{}", s.log());
    let bytes = std::fs::read(s.dir.path().join("outbox.db")).unwrap();
    for raw in [
        "Jane.Doe@Example.com",
        "jane.doe@example.com",
        "Austin",
        "austin",
    ] {
        assert!(
            !bytes.windows(raw.len()).any(|w| w == raw.as_bytes()),
            "{raw} stored"
        );
    }
    let log = s.log();
    for secret in [TOKEN, APP_SECRET, API_TOKEN, "jane.doe"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_clearly() {
    let sb = sandbox().await;
    let s = Serve::start(&sb, "max_body_bytes = 10000\n").await;
    let (code, a) = s.post("/v1/stage-changes", "{not json").await;
    assert_eq!(code, 400);
    assert!(a["error"].as_str().unwrap().contains("malformed"), "{a}");
    let deep = format!("{}{}", "[".repeat(64), "]".repeat(64));
    let (code, a) = s.post("/v1/stage-changes", &deep).await;
    assert_eq!(code, 400);
    assert!(a["error"].as_str().unwrap().contains("nested"), "{a}");
    let (code, _) = s.post("/v1/stage-changes", &"x".repeat(20_000)).await;
    assert_eq!(code, 413);
    let (code, a) = s.post("/v1/stage-changes?format=xml", "[]").await;
    assert_eq!(code, 400, "{a}");
    let (code, a) = s.post("/v1/stage-changes", "42").await;
    assert_eq!(code, 400, "{a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_shapes_hubspot_and_salesforce() {
    let sb = sandbox().await;
    let s = Serve::start(&sb, "hubspot_client_secret = \"hs-client-5ecret\"\n").await;
    let hs = json!([
        {"eventId": 1, "subscriptionType": "contact.propertyChange", "objectId": 77, "propertyName": "lifecyclestage", "propertyValue": "marketingqualifiedlead", "occurredAt": (now() - 60) * 1000},
        {"eventId": 2, "subscriptionType": "contact.propertyChange", "objectId": 77, "propertyName": "firstname", "propertyValue": "Jane", "occurredAt": (now() - 60) * 1000}
    ]);
    // HubSpot names the contact by record ID only: unknown at first...
    let (code, a) = s.post("/v1/stage-changes/hubspot", &hs.to_string()).await;
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["items"][0]["status"], "rejected", "{a}");
    assert_eq!(a["items"][0]["errors"][0]["rule"], "identifier.none", "{a}");
    assert_eq!(a["items"][1]["status"], "ignored", "{a}");
    // ...then known with its Meta lead ID from an earlier stage change.
    let first =
        json!([{"lead_id": LEAD + 77, "crm_id": "77", "stage": "new", "changed_at": now() - 3600}]);
    assert_eq!(s.post("/v1/stage-changes", &first.to_string()).await.0, 200);
    let (code, a) = s.post("/v1/stage-changes/hubspot", &hs.to_string()).await;
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["items"][0]["status"], "accepted", "{a}");
    assert_eq!(
        a["items"][0]["event_name"], "Marketing Qualified Lead",
        "{a}"
    );
    let (_, lead) = s.get(&format!("/v1/leads/{}", LEAD + 77), true).await;
    assert!(lead.contains("Marketing Qualified Lead"), "{lead}");
    assert_eq!(a["received"], 2);
    let (code2, a2) = s
        .post("/v1/stage-changes?format=hubspot", &hs.to_string())
        .await;
    assert_eq!(code2, 200);
    assert_eq!(a2["ignored"], 1);
    // HubSpot cannot send a bearer token: its v3 signature stands in.
    let body = hs.to_string();
    let uri = s.url("/v1/stage-changes/hubspot");
    let hubspot = |ts: String, sig: Option<String>| {
        let mut r = s
            .http
            .post(&uri)
            .header("content-type", "application/json")
            .header("X-HubSpot-Request-Timestamp", ts)
            .body(body.clone());
        if let Some(sig) = sig {
            r = r.header("X-HubSpot-Signature-v3", sig);
        }
        r.send()
    };
    let ts = (now() * 1000).to_string();
    let good = leadsignal_sources::ingest::sign_hubspot_v3(
        b"hs-client-5ecret",
        "POST",
        &uri,
        body.as_bytes(),
        &ts,
    );
    let r = hubspot(ts.clone(), Some(good.clone())).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let a: Value = r.json().await.unwrap();
    assert_eq!(a["already_known"], 1, "{a}");
    assert_eq!(
        hubspot(ts.clone(), None).await.unwrap().status().as_u16(),
        401
    );
    let old_ts = ((now() - 600) * 1000).to_string();
    let stale = leadsignal_sources::ingest::sign_hubspot_v3(
        b"hs-client-5ecret",
        "POST",
        &uri,
        body.as_bytes(),
        &old_ts,
    );
    assert_eq!(
        hubspot(old_ts, Some(stale))
            .await
            .unwrap()
            .status()
            .as_u16(),
        401,
        "a replay"
    );
    let forged =
        leadsignal_sources::ingest::sign_hubspot_v3(b"guess", "POST", &uri, body.as_bytes(), &ts);
    assert_eq!(
        hubspot(ts, Some(forged)).await.unwrap().status().as_u16(),
        401
    );
    let sf = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>00D</OrganizationId><Notification><Id>04l</Id><sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>00Q000000000001</sf:Id><sf:Meta_Lead_ID__c>{}</sf:Meta_Lead_ID__c><sf:Status>new</sf:Status><sf:LastModifiedDate>{}</sf:LastModifiedDate><sf:Email>sf@example.com</sf:Email></sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"#,
        LEAD + 50,
        chrono_like(now() - 120)
    );
    let r = s
        .http
        .post(s.url("/v1/stage-changes/salesforce"))
        .bearer_auth(API_TOKEN)
        .header("content-type", "text/xml")
        .body(sf.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("<Ack>true</Ack>"));
    // Salesforce cannot send headers either: the token in the path.
    for (token, code) in [(API_TOKEN, 200), ("wrong", 401)] {
        let r = s
            .http
            .post(s.url(&format!("/v1/stage-changes/salesforce/{token}")))
            .header("content-type", "text/xml")
            .body(sf.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code);
    }
    let (code, lead) = s.get(&format!("/v1/leads/{}", LEAD + 50), true).await;
    assert_eq!(code, 200, "{lead}");
    assert!(lead.contains("00Q000000000001"), "{lead}");
}

/// RFC 3339 in UTC for a Unix time (what Salesforce writes).
fn chrono_like(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_ads_webhook_verification_signature_and_replays() {
    let sb = sandbox().await;
    let s = Serve::start(&sb, "").await;
    let (code, body) = s
        .get(&format!("/webhooks/meta?hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge=1158201444"), false)
        .await;
    assert_eq!((code, body.as_str()), (200, "1158201444"));
    let (code, _) = s
        .get(
            "/webhooks/meta?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
            false,
        )
        .await;
    assert_eq!(code, 403);
    let created = now() - 300;
    let payload = json!({"object": "page", "entry": [{"id": "153125381133", "time": created, "changes": [
        {"field": "leadgen", "value": {"leadgen_id": LEAD + 100, "page_id": 153125381133u64, "form_id": "444", "created_time": created}},
        {"field": "leadgen", "value": {"leadgen_id": (LEAD + 101).to_string(), "page_id": "153125381133", "created_time": created}}
    ]}]})
    .to_string();
    let post = |body: String, sig: Option<String>| {
        let mut r = s.http.post(s.url("/webhooks/meta")).body(body);
        if let Some(sig) = sig {
            r = r.header("X-Hub-Signature-256", sig);
        }
        r.send()
    };
    let sig = sign(APP_SECRET.as_bytes(), payload.as_bytes());
    let r = post(payload.clone(), Some(sig.clone())).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let a: Value = r.json().await.unwrap();
    assert_eq!(a["new_leads"], 2, "{a}");
    // Replayed delivery: nothing twice.
    let a: Value = post(payload.clone(), Some(sig.clone()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["already_known"], 2, "{a}");
    assert_eq!(a["new_leads"], 0);
    // Forged, unsigned, wrong key, malformed header: refused before parsing.
    let forged = payload.replace("444", "445");
    assert_eq!(
        post(forged, Some(sig.clone()))
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        post(payload.clone(), None).await.unwrap().status().as_u16(),
        403
    );
    let other = sign(b"not-the-secret", payload.as_bytes());
    assert_eq!(
        post(payload.clone(), Some(other))
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        post(payload.clone(), Some("sha256=xyz".into()))
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    // Signed but not a webhook payload.
    let junk =
        "{\"object\":\"page\",\"entry\":[{\"changes\":[{\"field\":\"leadgen\",\"value\":{}}]}]}";
    let r = post(
        junk.into(),
        Some(sign(APP_SECRET.as_bytes(), junk.as_bytes())),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // The lead is known with its creation time and its first stage is sent.
    let (code, lead) = s.get(&format!("/v1/leads/{}", LEAD + 100), true).await;
    assert_eq!(code, 200);
    let lead: Value = serde_json::from_str(&lead).unwrap();
    assert_eq!(lead["created_at"], created);
    assert_eq!(lead["stages"][0]["stage"], "Lead");
    until("webhook leads delivered", || {
        sb.accepted()
            .iter()
            .filter(|a| a.lead_id == Some(LEAD + 100) || a.lead_id == Some(LEAD + 101))
            .count()
            == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_files_are_imported_and_moved() {
    let sb = sandbox().await;
    let inbox = tempfile::tempdir().unwrap();
    let s = Serve::start(
        &sb,
        &format!("inbox_dir = \"{}\"\n", inbox.path().display()),
    )
    .await;
    let csv = format!(
        "lead_id,stage,changed_at\n{},new,{}\n",
        LEAD + 300,
        now() - 100
    );
    std::fs::write(inbox.path().join(".part"), "").unwrap();
    std::fs::write(inbox.path().join("drop.csv"), csv).unwrap();
    until("the inbox file moved", || {
        inbox.path().join("done/drop.csv").exists()
    })
    .await;
    until("delivered", || {
        sb.accepted().iter().any(|a| a.lead_id == Some(LEAD + 300))
    })
    .await;
    assert!(
        inbox.path().join(".part").exists(),
        "hidden files are left alone"
    );
    drop(s);
}

/// SIGTERM while clients are sending: every item answered 200 is stored,
/// deliveries in flight finish or are given back, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_load_loses_nothing() {
    let mut cfg = SandboxConfig::single(DATASET, TOKEN);
    cfg.datasets[0].app_secret = Some(APP_SECRET.into());
    cfg.faults.latency_ms = 300;
    let sb = sandbox::start(cfg).await.unwrap();
    let mut s = Serve::start(&sb, "").await;
    let http = s.http.clone();
    let url = s.url("/v1/stage-changes");
    let mut clients = Vec::new();
    for c in 0..4u64 {
        let (http, url) = (http.clone(), url.clone());
        clients.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            for b in 0..200u64 {
                let leads: Vec<u64> = (0..20)
                    .map(|i| LEAD + 10_000 + c * 100_000 + b * 20 + i)
                    .collect();
                let body: Vec<Value> = leads.iter().map(|&l| record(l, "new", 10, "")).collect();
                let r = http
                    .post(&url)
                    .bearer_auth(API_TOKEN)
                    .json(&body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => ok.extend(leads),
                    _ => break,
                }
            }
            ok
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let st = tokio::task::spawn_blocking(move || {
        let st = s.terminate();
        (st, s)
    })
    .await
    .unwrap();
    let (status, s) = st;
    let mut answered = Vec::new();
    for c in clients {
        answered.extend(c.await.unwrap());
    }
    assert!(status.success(), "{}", s.log());
    assert!(!answered.is_empty());
    let db = s.db();
    let mut stmt = db.prepare("SELECT lead_id FROM leads").unwrap();
    let stored: std::collections::HashSet<u64> = stmt
        .query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|r| r.unwrap() as u64)
        .collect();
    let lost: Vec<&u64> = answered.iter().filter(|l| !stored.contains(l)).collect();
    assert!(lost.is_empty(), "{} answered but not stored", lost.len());
    let leased: i64 = db
        .query_row(
            "SELECT count(*) FROM outbox WHERE state = 'sending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leased, 0, "nothing left leased");
    assert!(s.log().contains("stopped"), "{}", s.log());
}

/// `fetch_leads`: the webhook lead's form answers are fetched from Meta and
/// its first event goes out with them, hashed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_leads_are_enriched_with_their_form_answers() {
    use leadsignal_graph::client::FieldData;
    use leadsignal_sandbox::SandboxLead;
    let sb = sandbox().await;
    let created = now() - 120;
    let field = |name: &str, v: &str| FieldData {
        name: name.into(),
        values: vec![v.into()],
    };
    sb.add_lead(SandboxLead {
        id: LEAD + 200,
        created_time: created,
        field_data: vec![
            field("email", "Jane.Doe@Example.com"),
            field("full_name", "Jane Q. Doe"),
            field("phone_number", "+1 650-555-1212"),
        ],
    });
    let s = Serve::start(&sb, "fetch_leads = true\nfetch_hold_secs = 20\n").await;
    let payload = json!({"object": "page", "entry": [{"id": "1", "time": created, "changes": [
        {"field": "leadgen", "value": {"leadgen_id": LEAD + 200, "created_time": created}},
        {"field": "leadgen", "value": {"leadgen_id": LEAD + 201, "created_time": created}}
    ]}]})
    .to_string();
    let r = s
        .http
        .post(s.url("/webhooks/meta"))
        .header(
            "X-Hub-Signature-256",
            sign(APP_SECRET.as_bytes(), payload.as_bytes()),
        )
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // The known lead is enriched and sent at once; the one Meta does not
    // know goes out bare when its hold ends (20 s) — not waited for here.
    until("the enriched lead delivered", || {
        sb.accepted().iter().any(|a| a.lead_id == Some(LEAD + 200))
    })
    .await;
    let full: Value = s
        .http
        .get(format!("{}/sandbox/events?limit=10", sb.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event = full["recent_full"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["user_data"]["lead_id"] == LEAD + 200)
        .unwrap_or_else(|| panic!("{full}"))
        .clone();
    let em = leadsignal_core::Sha256::of("jane.doe@example.com").to_string();
    assert_eq!(event["user_data"]["em"][0], em, "{event}");
    assert_eq!(
        event["user_data"]["fn"][0],
        leadsignal_core::Sha256::of("jane").to_string()
    );
    assert_eq!(
        event["user_data"]["ln"][0],
        leadsignal_core::Sha256::of("doe").to_string()
    );
    assert_eq!(
        event["user_data"]["ph"][0],
        leadsignal_core::Sha256::of("16505551212").to_string()
    );
    assert!(
        !sb.accepted().iter().any(|a| a.lead_id == Some(LEAD + 201)),
        "still held"
    );
    assert!(s.log().contains("lead answers not fetched"), "{}", s.log());
}
