//! The HubSpot source against the HubSpot emulator over HTTP on 127.0.0.1:
//! first and incremental polls, stages reached between two polls, paging
//! and contacts modified in the same millisecond across polls, rate limits,
//! a refused token.

mod common;

use common::changes;
use leadsignal_sandbox::crm::{start_hubspot, HubspotConfig, HubspotHandle};
use leadsignal_sources::crm::{CrmError, HubspotSource};
use leadsignal_sources::sql::Poll;
use std::collections::BTreeSet;

const TOKEN: &str = "pat-na1-11111111-2222-3333-4444-555555555555";
/// 2026-11-20T17:00:00Z in milliseconds.
const T0: i64 = 1_795_194_000_000;
const MIN: i64 = 60_000;

fn source(hub: &HubspotHandle, token: &str) -> HubspotSource {
    HubspotSource::new(
        "hubspot",
        &hub.url(),
        token,
        Some("facebook_lead_id".into()),
    )
}

async fn poll(
    s: HubspotSource,
    cursor: &str,
    limit: usize,
) -> (HubspotSource, Result<Poll, CrmError>) {
    common::poll_off_runtime(s, cursor, limit, HubspotSource::poll).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_poll_then_only_what_changed_in_order() {
    let hub = start_hubspot(HubspotConfig::new(TOKEN)).await.unwrap();
    let jane = hub.create(
        T0,
        &[
            ("email", "Jane.Doe@Example.com"),
            ("phone", "+1 (650) 555-1212"),
            ("mobilephone", "650.555.0100"),
            ("firstname", "Jane"),
            ("lastname", "Doe"),
            ("country", "United States"),
            ("facebook_lead_id", "1234567890123456"),
        ],
    );
    hub.set_stage(&jane, "lead", T0 + MIN);
    let old = hub.create(T0 - 30 * 86_400_000, &[("email", "old@example.com")]);
    hub.set_stage(&old, "lead", T0 - 30 * 86_400_000);

    // The first poll starts at the lookback: the old contact is not read.
    let (s, p) = poll(
        source(&hub, TOKEN),
        &(T0 - 7 * 86_400_000).to_string(),
        10_000,
    )
    .await;
    let p = p.unwrap();
    assert_eq!(
        changes(&p),
        [(
            jane.clone(),
            "Lead".into(),
            "2026-11-20T17:01:00.000Z".into()
        )]
    );
    let rec = p.rows[0].record.as_ref().unwrap();
    let text = |v: &Option<leadsignal_core::Scalar>| v.as_ref().and_then(|s| s.text());
    assert_eq!(text(&rec.lead_id).as_deref(), Some("1234567890123456"));
    assert_eq!(text(&rec.email).as_deref(), Some("Jane.Doe@Example.com"));
    assert_eq!(text(&rec.phone).as_deref(), Some("+1 (650) 555-1212"));
    assert_eq!(rec.other_phones, ["650.555.0100"]);
    assert_eq!(
        text(&rec.lead_created_at).as_deref(),
        Some("2026-11-20T17:00:00.000Z")
    );
    assert_eq!(p.rows[0].origin.to_string(), "hubspot:1");
    let cursor = p.cursor.unwrap();
    assert_eq!(cursor, format!("{}:{jane}", T0 + MIN));

    // Nothing new: no rows, no cursor (the caller keeps its own).
    let (s, p) = poll(s, &cursor, 10_000).await;
    let p = p.unwrap();
    assert!(p.rows.is_empty() && p.cursor.is_none(), "{p:?}");

    // Three stages between two polls: three rows, each at its own time.
    hub.set_stage(&jane, "marketingqualifiedlead", T0 + 10 * MIN);
    hub.set_stage(&jane, "salesqualifiedlead", T0 + 20 * MIN);
    hub.set_stage(&jane, "opportunity", T0 + 30 * MIN);
    let (_, p) = poll(s, &cursor, 10_000).await;
    let p = p.unwrap();
    let stages: Vec<(String, String)> = changes(&p).into_iter().map(|(_, s, t)| (s, t)).collect();
    assert_eq!(
        stages,
        [
            ("Lead".into(), "2026-11-20T17:01:00.000Z".into()),
            ("Marketing Qualified Lead".into(), "2026-11-20T17:10:00.000Z".into()),
            ("Sales Qualified Lead".into(), "2026-11-20T17:20:00.000Z".into()),
            ("Opportunity".into(), "2026-11-20T17:30:00.000Z".into()),
        ],
        "every stage the contact has a date for, in funnel order, by the account's labels (the store adds only the new ones)"
    );
    assert_eq!(p.cursor.unwrap(), format!("{}:{jane}", T0 + 30 * MIN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_same_millisecond_contacts_across_polls_lose_and_repeat_nothing() {
    let hub = start_hubspot(HubspotConfig::new(TOKEN)).await.unwrap();
    // 250 contacts changed in the same millisecond (a bulk update), and 60
    // after it.
    let mut all = BTreeSet::new();
    for i in 0..310 {
        let at = if i < 250 { T0 } else { T0 + i * 1000 };
        let id = hub.create(at, &[("email", &format!("c{i}@example.com"))]);
        hub.set_stage(&id, "lead", at);
        all.insert(id);
    }
    let mut s = source(&hub, TOKEN);
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    let mut polls = 0;
    loop {
        let (s2, p) = poll(s, &cursor, 120).await;
        s = s2;
        let p = p.unwrap();
        polls += 1;
        let Some(next) = p.cursor.clone() else {
            assert!(p.rows.is_empty());
            break;
        };
        seen.extend(changes(&p).into_iter().map(|(id, _, _)| id));
        cursor = next;
        assert!(polls < 20, "the cursor must move");
    }
    let distinct: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 310, "nothing twice");
    assert_eq!(distinct, all, "nothing lost");
    assert!(polls >= 3, "{polls} polls");
    assert!(hub.searches() >= 4, "paged: {} searches", hub.searches());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out_and_a_refused_token_says_what_to_fix() {
    let mut cfg = HubspotConfig::new(TOKEN);
    cfg.rate_limit_every = 2;
    let hub = start_hubspot(cfg).await.unwrap();
    for i in 0..150 {
        let id = hub.create(T0 + i, &[]);
        hub.set_stage(&id, "lead", T0 + i);
    }
    let (_, p) = poll(source(&hub, TOKEN), "0", 10_000).await;
    assert_eq!(p.unwrap().rows.len(), 150);
    assert!(
        hub.rate_limited() >= 1,
        "the emulator refused some searches"
    );

    let (_, p) = poll(source(&hub, "pat-na1-wrong-token"), "0", 10_000).await;
    let e = p.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, CrmError::Auth { status: 401, .. }), "{e:?}");
    assert!(
        msg.contains("source hubspot") && msg.contains("crm.objects.contacts.read"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-token"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deals_every_pipeline_stage_entered_with_the_contacts_data() {
    use leadsignal_sources::crm::hubspot::HubspotObject;
    let hub = start_hubspot(HubspotConfig::new(TOKEN)).await.unwrap();
    let ann = hub.create(
        T0,
        &[("email", "ann@example.com"), ("phone", "+1 415 555 0100")],
    );
    let deal = hub.create_deal(
        T0 + MIN,
        Some(&ann),
        &[
            ("dealname", "Ann's order"),
            ("facebook_lead_id", "1234567890123456"),
        ],
    );
    hub.set_deal_stage(&deal, "qualifiedtobuy", T0 + 5 * MIN);
    let lone = hub.create_deal(T0 + 2 * MIN, None, &[]);
    let s = source(&hub, TOKEN).reading(HubspotObject::Deals);
    let (s, p) = poll(s, "0", 10_000).await;
    let p = p.unwrap();
    // Deals in modification order; each deal's stages in the order entered.
    assert_eq!(
        changes(&p),
        [
            (
                lone.clone(),
                "Appointment Scheduled".into(),
                "2026-11-20T17:02:00.000Z".into()
            ),
            (
                deal.clone(),
                "Appointment Scheduled".into(),
                "2026-11-20T17:01:00.000Z".into()
            ),
            (
                deal.clone(),
                "Qualified To Buy".into(),
                "2026-11-20T17:05:00.000Z".into()
            ),
        ]
    );
    let rec = p.rows[1].record.as_ref().unwrap();
    let text = |v: &Option<leadsignal_core::Scalar>| v.as_ref().and_then(|s| s.text());
    assert_eq!(text(&rec.email).as_deref(), Some("ann@example.com"));
    assert_eq!(text(&rec.phone).as_deref(), Some("+1 415 555 0100"));
    assert_eq!(text(&rec.lead_id).as_deref(), Some("1234567890123456"));
    assert_eq!(
        text(&p.rows[0].record.as_ref().unwrap().email),
        None,
        "no contact"
    );
    let cursor = p.cursor.unwrap();
    // Won later: the closed stage, at its time.
    hub.set_deal_stage(&deal, "closedwon", T0 + 60 * MIN);
    let (_, p) = poll(s, &cursor, 10_000).await;
    let got = changes(&p.unwrap());
    assert_eq!(
        got.last().unwrap(),
        &(
            deal.clone(),
            "Closed Won".to_string(),
            "2026-11-20T18:00:00.000Z".to_string()
        )
    );
    assert_eq!(
        got.len(),
        3,
        "the deal's three stages (the store keeps the new one)"
    );
}
