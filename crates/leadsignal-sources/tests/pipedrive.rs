//! The Pipedrive source against the Pipedrive emulator over HTTP on
//! 127.0.0.1: a deal's creation, stage changes and won/lost from its change
//! log, incremental polls, deals updated in the same second across polls,
//! rate limits, a refused token.

mod common;

use common::changes;
use leadsignal_sandbox::crm::start_pipedrive;
use leadsignal_sources::crm::{CrmError, PipedriveSource};
use leadsignal_sources::sql::Poll;
use std::collections::BTreeSet;

const TOKEN: &str = "4f2d0c1b9a8e7d6c5b4a39281706f5e4d3c2b1a0";
const LEAD_FIELD: &str = "d4de1c1518b4531717c676029a45911c340390a6";
const T0: i64 = 1_795_194_000;

fn source(url: &str, token: &str) -> PipedriveSource {
    PipedriveSource::new("pipedrive", url, token, Some(LEAD_FIELD.into()))
}

async fn poll(
    s: PipedriveSource,
    cursor: &str,
    limit: usize,
) -> (PipedriveSource, Result<Poll, CrmError>) {
    common::poll_off_runtime(s, cursor, limit, PipedriveSource::poll).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deal_history_then_only_what_changed() {
    let pd = start_pipedrive(TOKEN).await.unwrap();
    let ann = pd.create_person(
        "Ann",
        "Lee",
        &["ann.lee@example.com", "ann@home.example"],
        &["+1 415 555 0100"],
    );
    let deal = pd.create_deal(T0, Some(ann), 1, &[(LEAD_FIELD, "1234567890123456")]);
    pd.move_stage(deal, 2, T0 + 600);
    pd.move_stage(deal, 3, T0 + 1200);
    let (s, p) = poll(source(&pd.url(), TOKEN), &(T0 - 86_400).to_string(), 10_000).await;
    let p = p.unwrap();
    let id = deal.to_string();
    assert_eq!(
        changes(&p),
        [
            (id.clone(), "Lead In".into(), "2026-11-20T17:00:00Z".into()),
            (
                id.clone(),
                "Contact Made".into(),
                "2026-11-20T17:10:00Z".into()
            ),
            (
                id.clone(),
                "Demo Scheduled".into(),
                "2026-11-20T17:20:00Z".into()
            ),
        ]
    );
    let rec = p.rows[0].record.as_ref().unwrap();
    let text = |v: &Option<leadsignal_core::Scalar>| v.as_ref().and_then(|s| s.text());
    assert_eq!(text(&rec.lead_id).as_deref(), Some("1234567890123456"));
    assert_eq!(text(&rec.email).as_deref(), Some("ann.lee@example.com"));
    assert_eq!(rec.other_emails, ["ann@home.example"]);
    assert_eq!(text(&rec.phone).as_deref(), Some("+1 415 555 0100"));
    let cursor = p.cursor.unwrap();
    assert_eq!(cursor, format!("{}:{deal}", T0 + 1200));

    let (s, p) = poll(s, &cursor, 10_000).await;
    assert!(p.unwrap().cursor.is_none(), "nothing new");

    // Won, after two more stages: the whole log again, the store keeps
    // only what is new.
    pd.move_stage(deal, 4, T0 + 3000);
    pd.set_status(deal, "won", T0 + 3600);
    let (_, p) = poll(s, &cursor, 10_000).await;
    let p = p.unwrap();
    let tail: Vec<(String, String)> = changes(&p)
        .into_iter()
        .skip(3)
        .map(|(_, s, t)| (s, t))
        .collect();
    assert_eq!(
        tail,
        [
            ("Proposal Made".into(), "2026-11-20T17:50:00Z".into()),
            ("won".into(), "2026-11-20T18:00:00Z".into()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_second_deals_across_polls_rate_limits_and_a_refused_token() {
    let pd = start_pipedrive(TOKEN).await.unwrap();
    let mut all = BTreeSet::new();
    for _ in 0..130 {
        // Imported together: the same update second.
        all.insert(pd.create_deal(T0, None, 1, &[]).to_string());
    }
    pd.rate_limit_every(40);
    let mut s = source(&pd.url(), TOKEN);
    let (mut cursor, mut seen, mut polls) = ("0".to_string(), Vec::new(), 0);
    loop {
        let (s2, p) = poll(s, &cursor, 50).await;
        s = s2;
        let p = p.unwrap();
        polls += 1;
        let Some(next) = p.cursor.clone() else { break };
        seen.extend(changes(&p).into_iter().map(|(id, _, _)| id));
        cursor = next;
        assert!(polls < 10);
    }
    assert_eq!(seen.len(), 130, "nothing twice");
    assert_eq!(
        seen.into_iter().collect::<BTreeSet<_>>(),
        all,
        "nothing lost"
    );
    assert!(
        pd.requests().1 > 0,
        "some requests were refused with 429 and retried"
    );

    let (_, p) = poll(source(&pd.url(), "0000-wrong-token"), "0", 100).await;
    let e = p.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, CrmError::Auth { status: 401, .. }), "{e:?}");
    assert!(
        msg.contains("unauthorized access") && msg.contains("API token"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-token"), "{msg}");
}
