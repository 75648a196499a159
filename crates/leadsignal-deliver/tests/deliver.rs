//! The sender in-process against the sandbox over HTTP on 127.0.0.1, with a
//! real SQLite outbox: every outcome class, bisection, pause and resume,
//! rate-limit hold, deadlines (claim order, expiry before sending and
//! instead of a late retry) and test sends. What needs a process boundary
//! (exit statuses, kill -9, what a process prints) is tested by spawning
//! the binary in `crates/leadsignal/tests/send.rs`.

use leadsignal_core::sample::config;
use leadsignal_core::{prepare, Contact, LeadId, Origin, StageChange};
use leadsignal_deliver::{send_due, SendReport, SenderConfig};
use leadsignal_graph::{ClientConfig, Credentials, GraphClient};
use leadsignal_sandbox::{self as sandbox, SandboxConfig, SandboxHandle};
use leadsignal_store::{EnqueueContext, Incoming, MissingStages, Outbox, SqliteOutbox};
use std::collections::HashMap;
use std::time::Duration;

const DATASET: &str = "2780431635496611";
const TOKEN: &str = "EAAtest-token-5ecret-1";
const NEW_TOKEN: &str = "EAAtest-token-5ecret-2";
const FIRST_LEAD: u64 = 1_000_000_000_000_000;
const STAGES: [&str; 4] = ["new", "mql", "opportunity", "won"];

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fresh SQLite outbox, a sandbox and a client for it.
struct Env {
    _dir: tempfile::TempDir,
    path: String,
    sb: SandboxHandle,
    timeout: Duration,
}

impl Env {
    async fn new(f: impl FnOnce(&mut SandboxConfig)) -> Env {
        let mut cfg = SandboxConfig::single(DATASET, TOKEN);
        f(&mut cfg);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db").to_str().unwrap().to_string();
        Env {
            _dir: dir,
            path,
            sb: sandbox::start(cfg).await.unwrap(),
            timeout: Duration::from_secs(10),
        }
    }

    fn store(&self) -> Box<dyn Outbox + Send> {
        Box::new(SqliteOutbox::open(&self.path).unwrap())
    }

    fn client(&self) -> GraphClient {
        GraphClient::new(&ClientConfig {
            graph_url: self.sb.url(),
            api_version: "v24.0".into(),
            timeout: self.timeout,
        })
        .unwrap()
    }

    /// Settings with short retries, as the binary's tests configure them.
    fn sender(&self, token: &str, batch_size: usize, in_flight: usize) -> SenderConfig {
        let mut sc = SenderConfig::new(DATASET, Credentials::new(token));
        sc.batch_size = batch_size;
        sc.in_flight = in_flight;
        sc.retry.base = Duration::from_millis(200);
        sc.retry.max = Duration::from_secs(2);
        sc.max_wait = Duration::from_secs(30);
        sc
    }

    /// Enqueues stage changes `(lead, stage index, time)` as received at
    /// `received`.
    fn enqueue(&self, changes: &[(u64, usize, i64)], received: i64) {
        let cfg = config();
        let items: Vec<Incoming> = changes
            .iter()
            .enumerate()
            .map(|(line, &(lead, stage, at))| {
                let sc = StageChange {
                    lead_id: Some(LeadId::from_u64(lead).unwrap()),
                    stage: STAGES[stage].into(),
                    changed_at: at,
                    contact: Contact {
                        email: Some(format!("p{lead}@example.com")),
                        city: Some("Austin".into()),
                        country: Some("US".into()),
                        ..Default::default()
                    },
                    origin: Origin::new("leads.csv", line as u64 + 2),
                    ..Default::default()
                };
                Incoming::event(prepare(&sc, &cfg, received).unwrap(), sc.origin, None, None)
            })
            .collect();
        let ctx = EnqueueContext {
            prepare: &cfg,
            missing: MissingStages::Fill,
            now: received,
        };
        self.store().enqueue(&items, &ctx).unwrap();
    }

    /// `leads` leads; lead i gets 1 + i % stages stages, the first
    /// `minutes_ago` minutes ago, a minute apart.
    fn enqueue_leads(&self, leads: u64, stages: u64, minutes_ago: i64) {
        let t0 = now() - minutes_ago * 60;
        let mut changes = Vec::new();
        for lead in 0..leads {
            for i in 0..=(lead % stages) as usize {
                changes.push((FIRST_LEAD + lead, i, t0 + lead as i64 + i as i64 * 60));
            }
        }
        self.enqueue(&changes, now());
    }

    async fn send(&self, sc: &SenderConfig) -> SendReport {
        let mut store = self.store();
        send_due(&mut *store, &self.client(), sc, |_| {})
            .await
            .unwrap()
    }

    fn states(&self) -> HashMap<String, u64> {
        let st = self.store().status(now()).unwrap();
        st.by_state
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }
}

/// Every accepted event, by lead, in order: stages never out of order.
fn assert_stage_order(sb: &SandboxHandle) {
    let names = [
        "Lead",
        "Marketing Qualified Lead",
        "Sales Opportunity",
        "Converted",
    ];
    let mut last: HashMap<u64, usize> = HashMap::new();
    for a in sb.accepted().iter().filter(|a| a.test_event_code.is_none()) {
        let r = names.iter().position(|s| *s == &*a.event_name).unwrap();
        let prev = last.insert(a.lead_id.unwrap(), r);
        assert!(prev.is_none_or(|p| p < r), "lead {:?}", a.lead_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_everything_in_stage_order_then_nothing() {
    let env = Env::new(|_| {}).await;
    env.enqueue_leads(300, 4, 120); // 750 events
    let r = env.send(&env.sender(TOKEN, 100, 2)).await;
    assert_eq!(
        (r.accepted, r.rejected, r.expired, r.retried),
        (750, 0, 0, 0)
    );
    // Later stages wait for their earlier stage: more than 750 / 100
    // requests, every one accepted.
    assert!(r.requests >= 8, "{r:?}");
    assert_eq!(r.requests_by_class.get("accepted"), Some(&r.requests));
    assert_eq!(env.sb.stats().distinct_event_ids, 750);
    assert_eq!(env.sb.stats().duplicate_event_ids, 0);
    assert_stage_order(&env.sb);
    assert_eq!(env.states(), HashMap::from([("sent".into(), 750)]));
    let r = env.send(&env.sender(TOKEN, 100, 2)).await;
    assert_eq!((r.accepted, r.requests, r.left_pending), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_event_in_a_thousand_is_isolated() {
    let bad = FIRST_LEAD + 617;
    let env = Env::new(|c| c.deleted_leads.push(bad)).await;
    env.enqueue_leads(1000, 1, 60);
    let r = env.send(&env.sender(TOKEN, 1000, 1)).await;
    assert_eq!((r.accepted, r.rejected), (999, 1));
    // Bisection: one request per level on the bad side and its sibling.
    assert!(r.requests <= 2 * 10 + 1, "{} requests", r.requests);
    assert_eq!(env.sb.requests().len() as u64, r.requests);
    let (why, n) = r.errors.iter().next().unwrap();
    assert!(why.contains("code 100, subcode 2804036"), "{why}");
    assert_eq!(*n, 1);
    assert_eq!(env.states().get("quarantined"), Some(&1));
    let lead = env.store().lead(DATASET, bad).unwrap().unwrap();
    assert_eq!(lead.stages[0].state, "quarantined");
    assert!(env.sb.accepted().iter().all(|a| a.lead_id != Some(bad)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_pauses_then_a_new_token_resumes() {
    let env = Env::new(|c| c.faults.latency_ms = 20).await;
    env.enqueue_leads(200, 1, 60);
    let sc = env.sender(TOKEN, 10, 1);
    let send = {
        let (mut store, client, sc) = (env.store(), env.client(), sc.clone());
        tokio::spawn(async move { send_due(&mut *store, &client, &sc, |_| {}).await })
    };
    while env.sb.stats().events_accepted < 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    env.sb.revoke_token(DATASET);
    let r = send.await.unwrap().unwrap();
    assert!(r.paused.as_deref().unwrap().contains("code 190"), "{r:?}");
    assert!(!r.paused.as_deref().unwrap().contains(TOKEN));
    let sent_before = r.accepted;
    assert!((50..200).contains(&sent_before));
    assert_eq!(
        env.states(),
        HashMap::from([
            ("sent".into(), sent_before),
            ("pending".into(), 200 - sent_before)
        ]),
        "nothing dropped or failed"
    );
    assert!(env.store().paused(DATASET).unwrap().is_some());
    // Meta issues a new token; the old one still fails: one probe, paused.
    env.sb.set_token(DATASET, NEW_TOKEN);
    let before = env.sb.requests().len();
    let r = env.send(&sc).await;
    assert_eq!((r.accepted, r.requests), (0, 1));
    assert!(r.paused.is_some());
    assert_eq!(env.sb.requests().len(), before + 1);
    // The new token configured: the probe passes and delivery resumes.
    let r = env.send(&env.sender(NEW_TOKEN, 10, 1)).await;
    assert_eq!((r.accepted, r.paused), (200 - sent_before, None));
    assert!(env.store().paused(DATASET).unwrap().is_none());
    assert_eq!(env.sb.stats().distinct_event_ids, 200);
    assert_eq!(env.sb.stats().duplicate_event_ids, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_window_holds_new_requests_then_delivers() {
    let t = now();
    let env = Env::new(|c| c.faults.rate_limit_windows = vec![(t - 5, t + 3)]).await;
    env.enqueue_leads(200, 1, 60);
    let mut sc = env.sender(TOKEN, 50, 2);
    sc.retry.base = Duration::from_millis(1000);
    sc.retry.max = Duration::from_secs(4);
    sc.max_wait = Duration::from_secs(60);
    let r = env.send(&sc).await;
    assert_eq!(r.accepted, 200);
    assert!(r.retried > 0 && r.rate_limited_requests > 0, "{r:?}");
    let reqs = env.sb.requests();
    let limited: Vec<_> = reqs.iter().filter(|q| q.code == Some(17)).collect();
    assert_eq!(limited.len() as u64, r.rate_limited_requests);
    // Held: nothing is sent for at least half the base wait after the
    // first refusal, and far fewer requests than a busy loop.
    let first = limited[0].at_ms;
    assert!(
        reqs.iter()
            .all(|q| q.at_ms <= first + 50 || q.at_ms >= first + 400),
        "{reqs:?}"
    );
    assert!(
        limited.len() < 30,
        "{} rate-limited requests",
        limited.len()
    );
    assert_eq!(env.sb.stats().distinct_event_ids, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closest_to_deadline_first_and_past_deadline_expired() {
    let env = Env::new(|_| {}).await;
    // Three arrivals of different ages, newest first.
    for (k, minutes) in [10i64, 3000, 600].into_iter().enumerate() {
        let changes: Vec<_> = (0..20)
            .map(|i| {
                (
                    FIRST_LEAD + k as u64 * 100 + i,
                    0,
                    now() - minutes * 60 - i as i64,
                )
            })
            .collect();
        env.enqueue(&changes, now());
    }
    // One that was in time when received but is past its deadline now.
    let then = now() - 7 * 86_400 + 3600 + 30;
    env.enqueue(&[(FIRST_LEAD + 9_999, 0, then - 60)], then);
    assert_eq!(env.states().get("pending"), Some(&61));
    let r = env.send(&env.sender(TOKEN, 10, 1)).await;
    assert_eq!((r.accepted, r.expired), (60, 0), "expired before claiming");
    // Claims go by deadline hour (then arrival): oldest first.
    let ages: Vec<i64> = env
        .sb
        .accepted()
        .iter()
        .map(|a| (now() - a.event_time) / 60 / 100)
        .collect();
    let mut sorted = ages.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ages, sorted, "oldest (closest to the 7-day cutoff) first");
    assert_eq!((ages.first(), ages.last()), (Some(&30), Some(&0)));
    assert!(env
        .sb
        .accepted()
        .iter()
        .all(|a| a.lead_id != Some(FIRST_LEAD + 9_999)));
    assert_eq!(env.states().get("expired"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_and_timeouts_are_retried() {
    let mut env = Env::new(|c| {
        c.faults.error_rate = 0.3;
        c.faults.timeout_rate = 0.05;
        c.faults.hang_ms = 3_000;
    })
    .await;
    env.timeout = Duration::from_millis(1000);
    env.enqueue_leads(300, 1, 60);
    let mut sc = env.sender(TOKEN, 20, 4);
    sc.retry.base = Duration::from_millis(100);
    sc.retry.max = Duration::from_secs(1);
    sc.max_wait = Duration::from_secs(60);
    let r = env.send(&sc).await;
    assert_eq!(r.accepted, 300);
    assert!(r.retried > 0);
    assert!(r.requests_by_class.get("transient").copied().unwrap_or(0) > 0);
    assert_eq!(env.sb.stats().distinct_event_ids, 300);
    assert_eq!(env.states(), HashMap::from([("sent".into(), 300)]));
}

/// A retry that would carry an event past its send-by deadline expires it
/// instead, with the reason; the attempts and deadline come with the claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_past_the_deadline_expires() {
    let env = Env::new(|c| c.faults.error_rate = 1.0).await;
    // Received "earlier", so that its deadline is 3 s from now; the first
    // retry (4 to 8 s) would miss it. A fresh one is released instead.
    let then = now() - 7 * 86_400 + 3600 + 4;
    env.enqueue(&[(FIRST_LEAD + 5, 0, then - 1)], then);
    env.enqueue(&[(FIRST_LEAD + 6, 0, now() - 60)], now());
    let mut sc = env.sender(TOKEN, 1, 1);
    sc.retry.base = Duration::from_secs(8);
    sc.retry.max = Duration::from_secs(60);
    sc.max_wait = Duration::from_secs(1);
    let r = env.send(&sc).await;
    assert_eq!((r.accepted, r.expired, r.retried), (0, 1, 1), "{r:?}");
    assert_eq!(r.errors.get("retry past the send-by deadline"), Some(&1));
    assert_eq!(r.left_pending, 1);
    let store = env.store();
    let late = store.lead(DATASET, FIRST_LEAD + 5).unwrap().unwrap();
    let why = late.stages[0].last_error.clone().unwrap();
    assert!(
        late.stages[0].state == "expired"
            && why.contains("7-day deadline")
            && why.contains("HTTP 500"),
        "{why}"
    );
    let fresh = store.lead(DATASET, FIRST_LEAD + 6).unwrap().unwrap();
    assert_eq!(
        (fresh.stages[0].state.as_str(), fresh.stages[0].attempts),
        ("pending", 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_sends_never_mark_sent_nor_mix() {
    let env = Env::new(|_| {}).await;
    env.enqueue_leads(30, 1, 60);
    let mut sc = env.sender(TOKEN, 100, 2);
    sc.test_event_code = Some("TEST9".into());
    sc.test_limit = 12;
    let r = env.send(&sc).await;
    assert!(r.test);
    assert_eq!((r.test_sent, r.accepted), (12, 0));
    assert_eq!(env.states(), HashMap::from([("pending".into(), 30)]));
    assert_eq!(env.sb.stats().test_events_accepted, 12);
    let r = env.send(&env.sender(TOKEN, 100, 2)).await;
    assert_eq!(r.accepted, 30);
    let accepted = env.sb.accepted();
    assert_eq!(
        accepted
            .iter()
            .filter(|a| a.test_event_code.is_some())
            .count(),
        12
    );
    assert!(env
        .sb
        .requests()
        .iter()
        .filter(|q| q.test)
        .all(|q| q.events <= 12));
}
