//! Prometheus metrics at `/metrics`: counters kept by the process (items
//! received, webhook deliveries, requests to Meta and their latency, events
//! by outcome) and gauges read from the outbox at each scrape (events by
//! dataset, stage and state, queue depth, oldest pending age, time since the
//! last upload, paused datasets, upload-cadence warnings).

use super::answers::IngestAnswer;
use leadsignal_deliver::SendReport;
use leadsignal_store::Status;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Received {
    dataset: String,
    stage: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Dataset {
    dataset: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageState {
    dataset: String,
    stage: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Key {
    key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rule {
    rule: String,
}

/// The process's counters.
pub(crate) struct Metrics {
    dataset: String,
    received: Family<Received, Counter>,
    webhook: Family<Outcome, Counter>,
    requests: Family<Outcome, Counter>,
    events: Family<Outcome, Counter>,
    latency: Histogram,
}

impl Metrics {
    /// Counters for `dataset`.
    pub(crate) fn new(dataset: &str) -> Metrics {
        Metrics {
            dataset: dataset.to_string(),
            received: Family::default(),
            webhook: Family::default(),
            requests: Family::default(),
            events: Family::default(),
            latency: Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
        }
    }

    /// Counts the items of an ingest answer by stage and outcome.
    pub(crate) fn ingested(&self, a: &IngestAnswer) {
        for item in &a.items {
            self.received
                .get_or_create(&Received {
                    dataset: self.dataset.clone(),
                    stage: item.event_name.clone().unwrap_or_default(),
                    outcome: item.status.clone(),
                })
                .inc();
        }
    }

    /// Counts a webhook delivery.
    pub(crate) fn webhook(&self, outcome: &str) {
        self.webhook
            .get_or_create(&Outcome {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts what a sender run did since its previous report (`before`).
    pub(crate) fn delivered(&self, before: &SendReport, now: &SendReport) {
        let add = |family: &Family<Outcome, Counter>, outcome: &str, a: u64, b: u64| {
            if b > a {
                family
                    .get_or_create(&Outcome {
                        outcome: outcome.into(),
                    })
                    .inc_by(b - a);
            }
        };
        add(&self.events, "accepted", before.accepted, now.accepted);
        add(&self.events, "rejected", before.rejected, now.rejected);
        add(&self.events, "expired", before.expired, now.expired);
        add(&self.events, "retried", before.retried, now.retried);
        for (class, &n) in &now.requests_by_class {
            let was = before.requests_by_class.get(class).copied().unwrap_or(0);
            add(&self.requests, class, was, n);
        }
        if now.requests > before.requests {
            self.latency.observe(now.last_batch_seconds);
        }
    }

    /// The text exposition, with the outbox gauges from `status`.
    pub(crate) fn render(&self, status: &Status, now: i64) -> String {
        let mut r = Registry::with_prefix("leadsignal");
        r.register(
            "received_items",
            "Stage changes received over HTTP, by dataset, stage and outcome",
            self.received.clone(),
        );
        r.register(
            "webhook_deliveries",
            "Lead Ads webhook deliveries by outcome",
            self.webhook.clone(),
        );
        r.register(
            "meta_requests",
            "Requests to Meta's /events by outcome class (accepted, rejected, transient, rate_limited, auth)",
            self.requests.clone(),
        );
        r.register(
            "delivered_events",
            "Events by delivery outcome (accepted, rejected, expired, retried)",
            self.events.clone(),
        );
        r.register(
            "delivery_batch_seconds",
            "Time to deliver one batch to Meta, bisection included",
            self.latency.clone(),
        );
        let by_state: Family<StageState, Gauge> = Family::default();
        for (stage, states) in &status.by_stage {
            for (state, n) in states {
                by_state
                    .get_or_create(&StageState {
                        dataset: self.dataset.clone(),
                        stage: stage.clone(),
                        state: state.clone(),
                    })
                    .set(*n as i64);
            }
        }
        r.register(
            "outbox_events",
            "Outbox entries by dataset, stage and state",
            by_state,
        );
        let ds = Dataset {
            dataset: self.dataset.clone(),
        };
        let gauge = |v: i64| {
            let f: Family<Dataset, Gauge> = Family::default();
            f.get_or_create(&ds).set(v);
            f
        };
        r.register(
            "queue_depth",
            "Events not yet accepted (pending, held, being sent)",
            gauge(status.unsent() as i64),
        );
        r.register(
            "oldest_pending_age_seconds",
            "Age of the oldest unsent event",
            gauge(status.oldest_pending_event_time.map_or(0, |t| now - t)),
        );
        r.register(
            "seconds_since_last_upload",
            "Seconds since Meta last accepted an event (-1: never)",
            gauge(status.last_sent_at.map_or(-1, |t| now - t)),
        );
        r.register(
            "dataset_paused",
            "1 when delivery is paused (token or permission problem)",
            gauge(status.paused.iter().any(|p| p.dataset_id == self.dataset) as i64),
        );
        r.register(
            "upload_overdue",
            "1 when nothing was uploaded for 24 hours while events wait, or events expire within 24 hours",
            gauge(!status.warnings.is_empty() as i64),
        );
        let rules: Family<Rule, Gauge> = Family::default();
        for (rule, n) in &status.rejected_by_rule {
            rules
                .get_or_create(&Rule { rule: rule.clone() })
                .set(*n as i64);
        }
        r.register(
            "quarantined_rows",
            "Rejected input rows in the quarantine, by rule",
            rules,
        );
        // Match quality: share of the last 7 days' sendable events with
        // each key Meta matches leads on.
        let q = &status.match_quality;
        let keys: Family<Key, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
        for (key, n) in [
            ("lead_id", q.lead_id),
            ("lead_id_recovered", q.lead_id_recovered),
            ("em", q.em),
            ("ph", q.ph),
            ("fbc", q.fbc),
        ] {
            let share = if q.events == 0 {
                0.0
            } else {
                n as f64 / q.events as f64
            };
            keys.get_or_create(&Key { key: key.into() }).set(share);
        }
        r.register(
            "match_keys",
            "Share of the last 7 days' sendable events with each match key (lead_id_recovered: a lead ID found in the lead index)",
            keys,
        );
        let mut out = String::new();
        encode(&mut out, &r).expect("writing to a String");
        out
    }
}
