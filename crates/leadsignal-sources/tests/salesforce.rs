//! The Salesforce source against the Salesforce emulator over HTTP on
//! 127.0.0.1: lead creations and status changes from `LeadHistory`, the
//! cursor across rows of the same millisecond, paging, an expired session
//! replaced, the API limit, refused credentials.

mod common;

use common::changes;
use leadsignal_sandbox::crm::{start_salesforce, SalesforceConfig, SalesforceHandle};
use leadsignal_sources::crm::{CrmError, SalesforceSource};
use leadsignal_sources::sql::Poll;
use std::collections::BTreeSet;

const CLIENT: &str = "3MVG9test.consumer.key";
const SECRET: &str = "A1B2C3D4E5F6-consumer-secret";
const T0: i64 = 1_795_194_000_000;
const MIN: i64 = 60_000;

fn source(sf: &SalesforceHandle, secret: &str) -> SalesforceSource {
    SalesforceSource::new(
        "salesforce",
        &sf.url(),
        CLIENT,
        secret,
        "v62.0",
        "Meta_Lead_ID__c",
    )
}

async fn poll(
    s: SalesforceSource,
    cursor: &str,
    limit: usize,
) -> (SalesforceSource, Result<Poll, CrmError>) {
    common::poll_off_runtime(s, cursor, limit, SalesforceSource::poll).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creations_and_status_changes_in_order_then_only_new_ones() {
    let sf = start_salesforce(SalesforceConfig::new(CLIENT, SECRET))
        .await
        .unwrap();
    let ann = sf.create_lead(
        T0,
        "Open - Not Contacted",
        &[
            ("Email", "Ann.Lee@Example.com"),
            ("Phone", "(415) 555-0100"),
            ("MobilePhone", "+1 415 555 0199"),
            ("FirstName", "Ann"),
            ("LastName", "Lee"),
            ("Country", "US"),
            ("Meta_Lead_ID__c", "1234567890123456"),
        ],
    );
    sf.set_status(&ann, "Working - Contacted", T0 + 10 * MIN);
    let bob = sf.create_lead(
        T0 + MIN,
        "Open - Not Contacted",
        &[("Email", "bob@example.com")],
    );

    let (s, p) = poll(source(&sf, SECRET), &(T0 - 86_400_000).to_string(), 2000).await;
    let p = p.unwrap();
    assert_eq!(
        changes(&p),
        [
            (
                ann.clone(),
                "Open - Not Contacted".into(),
                "2026-11-20T17:00:00.000Z".into()
            ),
            (
                bob.clone(),
                "Open - Not Contacted".into(),
                "2026-11-20T17:01:00.000Z".into()
            ),
            (
                ann.clone(),
                "Working - Contacted".into(),
                "2026-11-20T17:10:00.000Z".into()
            ),
        ]
    );
    let rec = p.rows[0].record.as_ref().unwrap();
    let text = |v: &Option<leadsignal_core::Scalar>| v.as_ref().and_then(|s| s.text());
    assert_eq!(text(&rec.lead_id).as_deref(), Some("1234567890123456"));
    assert_eq!(text(&rec.phone).as_deref(), Some("(415) 555-0100"));
    assert_eq!(rec.other_phones, ["+1 415 555 0199"]);
    assert_eq!(
        text(&rec.lead_created_at).as_deref(),
        Some("2026-11-20T17:00:00.000Z")
    );
    let cursor = p.cursor.unwrap();
    assert!(
        cursor.starts_with(&format!("{}:", T0 + 10 * MIN)),
        "{cursor}"
    );
    assert_eq!(sf.logins(), 1);

    let (s, p) = poll(s, &cursor, 2000).await;
    let p = p.unwrap();
    assert!(p.rows.is_empty() && p.cursor.is_none());

    // Three status changes between two polls: three rows, in order. Bob's
    // creation status is the old value of his first change.
    sf.set_status(&bob, "Working - Contacted", T0 + 20 * MIN);
    sf.set_status(&bob, "Qualified", T0 + 30 * MIN);
    sf.set_status(&ann, "Unqualified", T0 + 40 * MIN);
    let (_, p) = poll(s, &cursor, 2000).await;
    assert_eq!(
        changes(&p.unwrap()),
        [
            (
                bob.clone(),
                "Working - Contacted".into(),
                "2026-11-20T17:20:00.000Z".into()
            ),
            (
                bob.clone(),
                "Qualified".into(),
                "2026-11-20T17:30:00.000Z".into()
            ),
            (
                ann.clone(),
                "Unqualified".into(),
                "2026-11-20T17:40:00.000Z".into()
            ),
        ]
    );
    assert_eq!(sf.logins(), 1, "the session is kept between polls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_millisecond_rows_across_polls_and_pages_lose_and_repeat_nothing() {
    let mut cfg = SalesforceConfig::new(CLIENT, SECRET);
    cfg.page_size = 3;
    let sf = start_salesforce(cfg).await.unwrap();
    let mut all = BTreeSet::new();
    for i in 0..12 {
        // Bulk-loaded: twelve leads created in the same millisecond.
        let id = sf.create_lead(
            T0,
            "Open - Not Contacted",
            &[("Email", &format!("l{i}@example.com"))],
        );
        all.insert(id);
    }
    let mut s = source(&sf, SECRET);
    let (mut cursor, mut seen, mut polls) = ("0".to_string(), Vec::new(), 0);
    loop {
        let (s2, p) = poll(s, &cursor, 5).await;
        s = s2;
        let p = p.unwrap();
        polls += 1;
        let Some(next) = p.cursor.clone() else { break };
        seen.extend(changes(&p).into_iter().map(|(id, _, _)| id));
        cursor = next;
        assert!(polls < 10);
    }
    assert_eq!(seen.len(), 12, "nothing twice");
    assert_eq!(
        seen.into_iter().collect::<BTreeSet<_>>(),
        all,
        "nothing lost"
    );
    assert!(sf.queries() >= 6, "pages of 3: {} queries", sf.queries());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_replaced_limits_and_bad_secrets_are_clear() {
    let sf = start_salesforce(SalesforceConfig::new(CLIENT, SECRET))
        .await
        .unwrap();
    sf.create_lead(T0, "Open - Not Contacted", &[("Email", "c@example.com")]);
    let (s, p) = poll(source(&sf, SECRET), "0", 2000).await;
    assert_eq!(p.unwrap().rows.len(), 1);
    sf.expire_sessions();
    let (s, p) = poll(s, "0", 2000).await;
    assert_eq!(
        p.unwrap().rows.len(),
        1,
        "read again after logging in again"
    );
    assert_eq!(sf.logins(), 2);

    sf.set_limit_exceeded(true);
    let (_, p) = poll(s, "0", 2000).await;
    assert!(matches!(p, Err(CrmError::RateLimited { .. })), "{p:?}");
    sf.set_limit_exceeded(false);

    let (_, p) = poll(source(&sf, "wrong-secret-value"), "0", 2000).await;
    let e = p.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, CrmError::Auth { status: 400, .. }), "{e:?}");
    assert!(
        msg.contains("invalid client credentials") && msg.contains("client_secret"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-secret-value"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opportunities_of_converted_leads_are_their_leads_stages() {
    let sf = start_salesforce(SalesforceConfig::new(CLIENT, SECRET))
        .await
        .unwrap();
    let ann = sf.create_lead(
        T0,
        "Open - Not Contacted",
        &[
            ("Email", "ann@example.com"),
            ("Meta_Lead_ID__c", "1234567890123456"),
        ],
    );
    // A lead without Meta's lead ID: its opportunity is nobody Meta knows.
    let walk_in = sf.create_lead(T0, "Open - Not Contacted", &[("Email", "w@example.com")]);
    let opp = sf.convert_lead(&ann, "Qualification", T0 + 10 * MIN);
    sf.convert_lead(&walk_in, "Qualification", T0 + 11 * MIN);
    let s = source(&sf, SECRET).with_opportunities();
    let (s, p) = poll(s, "0", 2000).await;
    let p = p.unwrap();
    let got = changes(&p);
    assert!(got.contains(&(
        ann.clone(),
        "Closed - Converted".into(),
        "2026-11-20T17:10:00.000Z".into()
    )));
    assert!(got.contains(&(
        ann.clone(),
        "Qualification".into(),
        "2026-11-20T17:10:00.000Z".into()
    )));
    assert!(
        !got.iter()
            .any(|(id, stage, _)| *id == walk_in && stage == "Qualification"),
        "{got:?}"
    );
    let opp_row = p
        .rows
        .iter()
        .find(|r| {
            r.record
                .as_ref()
                .unwrap()
                .stage
                .as_ref()
                .unwrap()
                .text()
                .as_deref()
                == Some("Qualification")
        })
        .unwrap();
    let rec = opp_row.record.as_ref().unwrap();
    assert_eq!(
        rec.lead_id.as_ref().unwrap().text().as_deref(),
        Some("1234567890123456")
    );
    assert_eq!(
        rec.email.as_ref().unwrap().text().as_deref(),
        Some("ann@example.com")
    );
    let cursor = p.cursor.unwrap();
    assert!(cursor.contains('|'), "{cursor}");
    // Nothing new; then the opportunity moves twice.
    let (s, p) = poll(s, &cursor, 2000).await;
    assert!(p.unwrap().cursor.is_none());
    sf.set_opportunity_stage(&opp, "Proposal/Price Quote", T0 + 20 * MIN);
    sf.set_opportunity_stage(&opp, "Closed Won", T0 + 30 * MIN);
    let (_, p) = poll(s, &cursor, 2000).await;
    assert_eq!(
        changes(&p.unwrap()),
        [
            (
                ann.clone(),
                "Proposal/Price Quote".into(),
                "2026-11-20T17:20:00.000Z".into()
            ),
            (
                ann.clone(),
                "Closed Won".into(),
                "2026-11-20T17:30:00.000Z".into()
            ),
        ]
    );
}
