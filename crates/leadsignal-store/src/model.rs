//! What goes into and comes out of the outbox.

use leadsignal_core::{Funnel, Origin, PrepareConfig, Prepared, ServerEvent, Violation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One input row for the outbox.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A stage change that became an event.
    Event {
        /// The prepared event.
        prepared: Box<Prepared>,
        /// Its stored form, encoded by whoever builds the batch (so that
        /// the writer, the bottleneck of an import, does not have to).
        payload: Payload,
        /// Where it came from.
        origin: Origin,
        /// The CRM record ID, if any (stored with the lead).
        crm_id: Option<String>,
        /// When the lead was created, if known.
        lead_created_at: Option<i64>,
        /// Not to be sent before this time (Unix seconds): a short hold,
        /// e.g. while the lead's form answers are fetched to enrich it.
        not_before: Option<i64>,
    },
    /// A row that was rejected: kept in the quarantine.
    Rejected {
        /// Where it came from.
        origin: Origin,
        /// Hex SHA-256 of the raw row: recognizes the same row on re-import
        /// without keeping its (possibly personal) content.
        fingerprint: String,
        /// Every reason.
        violations: Vec<Violation>,
    },
}

impl Incoming {
    /// A prepared event from `origin` (boxed or not), with its stored form.
    pub fn event(
        prepared: impl Into<Box<Prepared>>,
        origin: Origin,
        crm_id: Option<String>,
        lead_created_at: Option<i64>,
    ) -> Incoming {
        let prepared = prepared.into();
        Incoming::Event {
            payload: Payload::encode(&prepared.event),
            prepared,
            origin,
            crm_id,
            lead_created_at,
            not_before: None,
        }
    }

    /// The same, held back until `t` (Unix seconds).
    pub fn not_before(mut self, t: i64) -> Incoming {
        if let Incoming::Event { not_before, .. } = &mut self {
            *not_before = Some(t);
        }
        self
    }
}

/// An event in its stored form (see `codec.rs`): hashed data only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(pub(crate) Vec<u8>);

impl Payload {
    /// Encodes `event`.
    pub fn encode(event: &ServerEvent) -> Payload {
        Payload(crate::codec::encode(event))
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The `last_error` of a stage change stored as expired because it was
/// already too old when it arrived.
pub(crate) const EXPIRED_ON_ARRIVAL: &str =
    "older than Meta's 7-day window when received: kept as a stage of its lead, never sent";

/// What to do with a stage change whose earlier funnel stages were never seen
/// (`funnel.missing_stages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingStages {
    /// Enqueue the missing earlier stages at the same time, ordered before
    /// it, marked as inferred (default).
    #[default]
    Fill,
    /// Keep it waiting until they arrive, or until it would expire.
    Hold,
    /// Quarantine it with a reason.
    Reject,
}

/// What `enqueue` needs besides the batch.
pub struct EnqueueContext<'a> {
    /// How events were prepared (dataset, funnel, profile): inferred stages
    /// are built the same way.
    pub prepare: &'a PrepareConfig,
    /// The missing-stages policy.
    pub missing: MissingStages,
    /// The current time.
    pub now: i64,
}

impl EnqueueContext<'_> {
    /// The funnel.
    pub fn funnel(&self) -> &Funnel {
        &self.prepare.funnel
    }
}

/// What one `enqueue` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EnqueueReport {
    /// New events stored ready to send.
    pub accepted: u64,
    /// Events already in the outbox (same lead, stage and time), or a stage
    /// the lead already has: nothing added.
    pub already_known: u64,
    /// Earlier stages added by the `fill` policy.
    pub inferred: u64,
    /// Events kept waiting for earlier stages (`hold`).
    pub held: u64,
    /// Held events released because their earlier stages arrived.
    pub released: u64,
    /// Stage changes older than Meta's 7-day window (less the margin):
    /// stored as expired, never sent. A known stage of their lead all the
    /// same (`fill` never infers it). Not an error: a CRM's history.
    pub expired: u64,
    /// The oldest expired stage change's time (Unix seconds).
    pub oldest_expired: Option<i64>,
    /// Stage changes stored with a lead ID recovered from the lead index
    /// (by their e-mail or phone).
    pub recovered: u64,
    /// Stage changes without a lead ID whose e-mail or phone belongs to
    /// several leads of the index: no lead ID attached.
    pub ambiguous: u64,
    /// Rows that are not production data (leads made by Meta's Lead Ads
    /// testing tool): kept in the quarantine with their rule, never sent,
    /// not an error.
    pub skipped: u64,
    /// Rows quarantined (rejected input, and `reject` policy), by rule.
    pub rejected_by_rule: BTreeMap<String, u64>,
    /// Rows quarantined.
    pub rejected: u64,
    /// What became of each item of the batch, in order.
    #[serde(skip)]
    pub items: Vec<ItemOutcome>,
}

/// What became of one item of an enqueued batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOutcome {
    /// Stored, ready to send (possibly with inferred earlier stages).
    Accepted,
    /// Already in the outbox: nothing added.
    AlreadyKnown,
    /// Stored, waiting for earlier stages (`hold`).
    Held,
    /// Stored as expired: older than Meta's window, never sent.
    Expired,
    /// Not production data (a Meta test lead): kept aside, never sent.
    Skipped,
    /// Rejected by a rule or by Meta: kept with the reason, never sent.
    Rejected,
}

/// The counters an item can move, to tell what it did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts([u64; 5]);

impl EnqueueReport {
    pub(crate) fn clone_counts(&self) -> Counts {
        Counts([
            self.accepted,
            self.already_known,
            self.held,
            self.expired,
            self.skipped,
        ])
    }

    /// What the last item did, from the counters before it.
    pub(crate) fn outcome_since(&self, before: Counts) -> ItemOutcome {
        let [accepted, known, held, expired, skipped] = before.0;
        if self.accepted > accepted {
            ItemOutcome::Accepted
        } else if self.held > held {
            ItemOutcome::Held
        } else if self.expired > expired {
            ItemOutcome::Expired
        } else if self.skipped > skipped {
            ItemOutcome::Skipped
        } else if self.already_known > known {
            ItemOutcome::AlreadyKnown
        } else {
            ItemOutcome::Rejected
        }
    }
}

impl EnqueueReport {
    /// Adds another report's counts.
    pub fn add(&mut self, o: &EnqueueReport) {
        self.accepted += o.accepted;
        self.already_known += o.already_known;
        self.inferred += o.inferred;
        self.held += o.held;
        self.released += o.released;
        self.expired += o.expired;
        self.skipped += o.skipped;
        self.recovered += o.recovered;
        self.ambiguous += o.ambiguous;
        self.oldest_expired = match (self.oldest_expired, o.oldest_expired) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.rejected += o.rejected;
        for (k, v) in &o.rejected_by_rule {
            *self.rejected_by_rule.entry(k.clone()).or_default() += v;
        }
    }
}

/// Delivery states of an outbox entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Ready to send.
    Pending,
    /// Claimed by a sender (leased).
    Sending,
    /// Accepted by Meta.
    Sent,
    /// Gave up after retries.
    Failed,
    /// Past its send-by deadline; never sent.
    Expired,
    /// Rejected by Meta; kept for inspection.
    Quarantined,
    /// Waiting for earlier stages (`hold` policy).
    Held,
}

impl State {
    /// Every state, in display order.
    pub const ALL: [State; 7] = [
        State::Pending,
        State::Held,
        State::Sending,
        State::Sent,
        State::Failed,
        State::Expired,
        State::Quarantined,
    ];

    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Failed => "failed",
            State::Expired => "expired",
            State::Quarantined => "quarantined",
            State::Held => "held",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A stored event with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Row ID.
    pub id: i64,
    /// The dataset (pixel) ID.
    pub dataset_id: String,
    /// The lead's key.
    pub lead_key: String,
    /// The event as Meta receives it.
    pub event: ServerEvent,
    /// Meta's 7-day deadline, less the margin (Unix seconds).
    pub send_by: i64,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Added by the `fill` policy.
    pub inferred: bool,
}

/// Figures for `leadsignal status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// Entries by state.
    pub by_state: BTreeMap<String, u64>,
    /// Entries by stage (event_name), then by state.
    pub by_stage: BTreeMap<String, BTreeMap<String, u64>>,
    /// Inferred entries (fill policy).
    pub inferred: u64,
    /// Event time of the oldest pending entry.
    pub oldest_pending_event_time: Option<i64>,
    /// Seconds left before the most urgent pending entry expires.
    pub seconds_to_next_expiry: Option<i64>,
    /// Time of the last entry Meta accepted.
    pub last_sent_at: Option<i64>,
    /// Event time of the oldest expired entry (too old when received, or
    /// not delivered before its deadline).
    pub oldest_expired_event_time: Option<i64>,
    /// Events Meta accepted with a lead ID recovered from the lead index.
    pub sent_with_recovered_lead_id: u64,
    /// Quarantined input rows by rule.
    pub rejected_by_rule: BTreeMap<String, u64>,
    /// Leads known.
    pub leads: u64,
    /// Sends to Meta's Test Events.
    pub test_sends: u64,
    /// Datasets whose delivery is paused.
    pub paused: Vec<Paused>,
    /// Each polled source's last poll.
    pub sources: Vec<SourceHealth>,
    /// Match quality of the last 7 days' sendable events.
    pub match_quality: Coverage,
    /// Most frequent reasons of quarantined and expired entries, with counts.
    pub delivery_errors: Vec<(String, u64)>,
    /// Meta asks for uploads at least daily: set when events are pending and
    /// nothing was accepted for 24 hours, or an event is within 24 hours of
    /// its deadline.
    pub warnings: Vec<String>,
}

impl Status {
    /// Unsent entries (pending, held, being sent).
    pub fn unsent(&self) -> u64 {
        ["pending", "held", "sending"]
            .iter()
            .filter_map(|s| self.by_state.get(*s))
            .sum()
    }

    /// Fills `warnings` (see there).
    pub fn check_upload_cadence(&mut self, now: i64) {
        self.warnings.clear();
        let unsent = self.unsent();
        if unsent > 0 {
            let stale = self.last_sent_at.is_none_or(|t| now - t >= 86_400);
            if stale {
                self.warnings.push(match self.last_sent_at {
                    Some(t) => format!(
                        "no successful upload for {} hours while {unsent} events are waiting (Meta asks for at least one upload a day)",
                        (now - t) / 3600
                    ),
                    None => format!(
                        "nothing was ever uploaded while {unsent} events are waiting (Meta asks for at least one upload a day)"
                    ),
                });
            }
        }
        if let Some(left) = self.seconds_to_next_expiry {
            if left < 86_400 {
                self.warnings.push(format!(
                    "events expire within 24 hours (the most urgent in {} min): they are lost if not uploaded by then",
                    left.max(0) / 60
                ));
            }
        }
    }
}

/// The dataset ID a configured dataset name is bound to
/// (`Enqueue::bind_dataset`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetBinding {
    /// The dataset's name in the configuration (`default` for `[meta]`'s).
    pub name: String,
    /// The dataset (pixel) ID it is bound to.
    pub dataset_id: String,
    /// Since when (Unix seconds).
    pub bound_at: i64,
    /// The ID before the last deliberate rebind, and when it happened.
    pub previous: Option<(String, i64)>,
}

/// A polled source's last poll (`Enqueue::record_poll`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceHealth {
    /// The source's name.
    pub source: String,
    /// When it was last polled (Unix seconds).
    pub polled_at: i64,
    /// When a poll last worked.
    pub ok_at: Option<i64>,
    /// The last poll's error (without secrets), when it failed.
    pub error: Option<String>,
    /// When that error happened.
    pub error_at: Option<i64>,
}

/// A dataset whose delivery is paused (token or permission problem).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paused {
    /// The dataset (pixel) ID.
    pub dataset_id: String,
    /// Meta's answer (code, subcode, message; never the token).
    pub reason: String,
    /// Since when (Unix seconds).
    pub since: i64,
}

/// One lead and its stages (`Outbox::lead`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeadHistory {
    /// The dataset (pixel) ID.
    pub dataset_id: String,
    /// Meta lead ID.
    pub lead_id: u64,
    /// CRM record ID, when known.
    pub crm_id: Option<String>,
    /// Lead creation time (Unix seconds), when known.
    pub created_at: Option<i64>,
    /// First seen by leadsignal.
    pub first_seen: i64,
    /// Stages in funnel order.
    pub stages: Vec<StageEntry>,
}

/// One stage of a lead and its delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageEntry {
    /// The event name (the funnel stage).
    pub stage: String,
    /// When the stage changed (`event_time`, Unix seconds).
    pub event_time: i64,
    /// The deterministic `event_id`.
    pub event_id: String,
    /// Delivery state.
    pub state: String,
    /// Added by the `fill` policy.
    pub inferred: bool,
    /// Attempts so far.
    pub attempts: i64,
    /// Meta's 7-day deadline, less the margin (Unix seconds).
    pub send_by: i64,
    /// When Meta accepted it.
    pub sent_at: Option<i64>,
    /// Meta's trace ID of the accepting request.
    pub fbtrace_id: Option<String>,
    /// The last error (Meta's code and message; never a token).
    pub last_error: Option<String>,
}

/// Dashboard figures (`Outbox::activity`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Activity {
    /// Events that left the queue per hour over the last 7 days, by final
    /// state (`sent`, `quarantined`, `expired`): (hour start, state, count).
    pub settled_per_hour: Vec<(i64, String, u64)>,
    /// Unsent events whose deadline is within 24 hours: (stage, send_by, lead key), most urgent first (at most 20).
    pub near_cutoff: Vec<(String, i64, String)>,
    /// How many unsent events are within 24 hours of their deadline.
    pub near_cutoff_count: u64,
    /// The latest quarantined or expired entries: (stage, state, error), newest first (at most 20).
    pub latest_errors: Vec<(String, String, String)>,
    /// Match keys over the latest events (at most 10,000).
    pub coverage: Coverage,
}

/// Match quality: how many events carry each key Meta matches leads on,
/// over the sendable events (pending, held, being sent or sent) stored in
/// the last 7 days, the latest [`COVERAGE_EVENTS`] of them at most.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Coverage {
    /// Events looked at.
    pub events: u64,
    /// With `lead_id` (given or recovered).
    pub lead_id: u64,
    /// With a `lead_id` recovered from the lead index.
    pub lead_id_recovered: u64,
    /// With `em`.
    pub em: u64,
    /// With `ph`.
    pub ph: u64,
    /// With `fbc`.
    pub fbc: u64,
    /// Events by number of keys of any kind (index = keys, capped at 10).
    pub keys_histogram: Vec<u64>,
    /// Events by number of matchable keys (`lead_id`, `em`, `ph`, `fbc`:
    /// index 0 to 4).
    pub matchable_histogram: Vec<u64>,
}

/// The most events [`Coverage`] decodes (the latest).
pub const COVERAGE_EVENTS: i64 = 10_000;

/// The rows of [`Coverage`]: sendable, stored in the last 7 days (`?1`/`$1`
/// = now - 7 days), latest first; columns id, payload, stage, event_time,
/// event_id, recovered.
pub(crate) const COVERAGE_ROWS: &str =
    "state IN ('pending', 'held', 'sending', 'sent') AND created_at >= ";

impl Coverage {
    /// No events looked at yet.
    pub(crate) fn new() -> Coverage {
        Coverage {
            keys_histogram: vec![0; 11],
            matchable_histogram: vec![0; 5],
            ..Coverage::default()
        }
    }

    /// Counts one stored event's match keys (`recovered`: its lead ID came
    /// from the lead index).
    pub(crate) fn add(&mut self, e: &ServerEvent, recovered: bool) {
        let u = &e.user_data;
        self.events += 1;
        self.lead_id_recovered += (recovered && u.lead_id.is_some()) as u64;
        let matchable = [
            u.lead_id.is_some(),
            !u.em.is_empty(),
            !u.ph.is_empty(),
            u.fbc.is_some(),
        ]
        .iter()
        .filter(|&&k| k)
        .count();
        self.matchable_histogram[matchable] += 1;
        self.lead_id += u.lead_id.is_some() as u64;
        self.em += !u.em.is_empty() as u64;
        self.ph += !u.ph.is_empty() as u64;
        self.fbc += u.fbc.is_some() as u64;
        let keys = [
            u.lead_id.is_some(),
            !u.em.is_empty(),
            !u.ph.is_empty(),
            !u.fn_.is_empty(),
            !u.ln.is_empty(),
            !u.ge.is_empty(),
            !u.db.is_empty(),
            !u.ct.is_empty(),
            !u.st.is_empty(),
            !u.zp.is_empty(),
            !u.country.is_empty(),
            !u.external_id.is_empty(),
            u.fbc.is_some(),
            u.fbp.is_some(),
        ]
        .iter()
        .filter(|&&k| k)
        .count();
        self.keys_histogram[keys.min(10)] += 1;
    }
}

impl Status {
    /// Adds `n` entries of `stage` in `state`, `inferred` of them inferred.
    pub(crate) fn count(&mut self, stage: String, state: String, n: u64, inferred: u64) {
        *self.by_state.entry(state.clone()).or_default() += n;
        *self
            .by_stage
            .entry(stage)
            .or_default()
            .entry(state)
            .or_default() += n;
        self.inferred += inferred;
    }
}

/// The columns of a claimed row, as every backend reads them.
pub(crate) struct ClaimedRow {
    pub id: i64,
    pub dataset_id: String,
    pub lead_key: String,
    pub payload: Vec<u8>,
    pub send_by: i64,
    pub attempts: i64,
    pub inferred: bool,
    pub stage: String,
    pub event_time: i64,
    pub event_id: String,
}

impl ClaimedRow {
    /// The entry, its event decoded from the stored form.
    pub(crate) fn into_entry(self) -> Result<OutboxEntry, crate::StoreError> {
        let event = decode_stored(
            self.id,
            &self.payload,
            &self.stage,
            self.event_time,
            &self.event_id,
        )?;
        Ok(OutboxEntry {
            id: self.id,
            dataset_id: self.dataset_id,
            lead_key: self.lead_key,
            event,
            send_by: self.send_by,
            attempts: self.attempts,
            inferred: self.inferred,
        })
    }
}

/// Decodes the stored form of row `id`.
pub(crate) fn decode_stored(
    id: i64,
    payload: &[u8],
    stage: &str,
    event_time: i64,
    event_id: &str,
) -> Result<ServerEvent, crate::StoreError> {
    crate::codec::decode(
        payload,
        crate::codec::Columns {
            event_name: stage,
            event_time,
            event_id,
        },
    )
    .map_err(|message| crate::StoreError::Corrupt { id, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_262_400;

    fn status(pending: u64, last_sent: Option<i64>, to_expiry: Option<i64>) -> Status {
        let mut s = Status::default();
        if pending > 0 {
            s.by_state.insert("pending".into(), pending);
        }
        s.by_state.insert("sent".into(), 10);
        s.last_sent_at = last_sent;
        s.seconds_to_next_expiry = to_expiry;
        s.check_upload_cadence(NOW);
        s
    }

    #[test]
    fn daily_upload_cadence() {
        // Uploaded an hour ago, nothing urgent: quiet.
        assert!(status(5, Some(NOW - 3600), Some(5 * 86_400))
            .warnings
            .is_empty());
        // Nothing waiting: quiet however old the last upload.
        assert!(status(0, Some(NOW - 10 * 86_400), None).warnings.is_empty());
        // Waiting and no upload for 25 hours.
        let w = status(5, Some(NOW - 25 * 3600), Some(5 * 86_400)).warnings;
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("25 hours") && w[0].contains("5 events"),
            "{w:?}"
        );
        // Never uploaded.
        assert!(status(3, None, Some(5 * 86_400)).warnings[0].contains("nothing was ever uploaded"));
        // An event expires within 24 hours.
        let w = status(5, Some(NOW - 60), Some(3 * 3600)).warnings;
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("180 min"), "{w:?}");
    }
}
