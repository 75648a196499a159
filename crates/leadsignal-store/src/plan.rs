//! Where a batch of stage changes becomes outbox rows: the funnel across
//! time (one event per stage per lead, earlier stages before later ones,
//! the `fill`/`hold`/`reject` policies, real stages replacing inferred
//! ones, held stages released), independent of the database.
//!
//! Every backend enqueues the same way: it loads the batch's leads
//! ([`leads_of`] → [`LoadedLead`]: row ID and the stages already stored),
//! runs [`plan`], and writes the [`Plan`] (new rows, updates of stored rows,
//! quarantine records) in one transaction.

use crate::model::*;
use crate::recover::Recovery;
use leadsignal_core::{LeadKey, Origin, Prepared, StageIndex, StageRef, TEST_LEAD};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// Funnel rank stored for stages outside the funnel (`NOT_ASSIGNED`):
/// after all others.
const UNMAPPED_RANK: i64 = 10_000;

/// The stored funnel rank of a stage.
pub(crate) fn rank(index: Option<StageIndex>) -> i64 {
    index.map_or(UNMAPPED_RANK, |i| i as i64)
}

/// The funnel position stored as `rank`.
pub(crate) fn stage_index(rank: i64) -> Option<StageIndex> {
    (rank != UNMAPPED_RANK).then_some(rank as usize)
}

/// A lead named by a batch, as first seen in it.
pub(crate) struct LeadSpec<'b> {
    /// The idempotency key's lead part.
    pub key: &'b LeadKey,
    /// Meta lead ID, when known.
    pub lead_id: Option<i64>,
    /// CRM record ID, when given.
    pub crm_id: Option<&'b str>,
    /// Lead creation time, when given.
    pub created_at: Option<i64>,
}

/// The distinct leads of a batch's events, in order of first appearance,
/// with the lead IDs (and creation times) recovery found for them
/// (`recoveries[i]` is item `i`'s).
pub(crate) fn leads_of<'b>(batch: &'b [Incoming], recoveries: &[Recovery]) -> Vec<LeadSpec<'b>> {
    let mut seen: HashMap<&LeadKey, usize> = HashMap::new();
    let mut out: Vec<LeadSpec<'b>> = Vec::new();
    for (i, item) in batch.iter().enumerate() {
        if let Incoming::Event {
            prepared,
            crm_id,
            lead_created_at,
            ..
        } = item
        {
            let (recovered, created) = match recoveries.get(i) {
                Some(Recovery::Found {
                    lead_id,
                    created_at,
                }) => (Some(lead_id.get() as i64), *created_at),
                _ => (None, None),
            };
            let lead_id = prepared
                .event
                .user_data
                .lead_id
                .map(|l| l.get() as i64)
                .or(recovered);
            let created_at = lead_created_at.or(created);
            match seen.get(&prepared.lead_key) {
                Some(&at) => {
                    let spec = &mut out[at];
                    spec.lead_id = spec.lead_id.or(lead_id);
                    spec.created_at = spec.created_at.or(created_at);
                }
                None => {
                    seen.insert(&prepared.lead_key, out.len());
                    out.push(LeadSpec {
                        key: &prepared.lead_key,
                        lead_id,
                        crm_id: crm_id.as_deref(),
                        created_at,
                    });
                }
            }
        }
    }
    out
}

/// A stage a lead already has in the outbox.
#[derive(Debug, Clone)]
pub(crate) struct Known {
    /// Its outbox row ID.
    pub row: i64,
    /// Event name.
    pub stage: Arc<str>,
    /// Funnel position (`None` outside the funnel).
    pub index: Option<StageIndex>,
    /// Added by the `fill` policy.
    pub inferred: bool,
    /// Delivery state.
    pub state: State,
}

/// A lead as the backend found or created it.
pub(crate) struct LoadedLead {
    /// Its row ID.
    pub id: i64,
    /// Its stored stages.
    pub known: Vec<Known>,
}

/// The event of a row.
pub(crate) enum RowEvent<'b> {
    /// A stage change of the batch, with its stored form.
    Given(&'b Prepared, &'b Payload),
    /// An event made here (encoded when written): an earlier stage the
    /// `fill` policy added, or a stage change with a recovered lead ID.
    Owned(Box<Prepared>),
}

impl RowEvent<'_> {
    /// The prepared event.
    pub fn prepared(&self) -> &Prepared {
        match self {
            RowEvent::Given(p, _) => p,
            RowEvent::Owned(p) => p,
        }
    }

    /// Its stored form: given, or encoded into `buf`.
    pub fn payload<'a>(&'a self, buf: &'a mut Vec<u8>) -> &'a [u8] {
        match self {
            RowEvent::Given(_, payload) => payload.as_bytes(),
            RowEvent::Owned(p) => {
                crate::codec::encode_into(&p.event, buf);
                buf
            }
        }
    }
}

/// A row to insert.
pub(crate) struct NewRow<'b> {
    /// Lead row ID.
    pub lead: i64,
    /// What it carries.
    pub event: RowEvent<'b>,
    /// `pending`, `held` or `expired` (older than Meta's window: stored as
    /// a known stage of the lead, never sent).
    pub state: State,
    /// Added by the `fill` policy.
    pub inferred: bool,
    /// Its lead ID was recovered from the lead index.
    pub recovered: bool,
    /// Where it came from.
    pub origin: &'b Origin,
    /// Not to be claimed before (Unix seconds; 0: at once).
    pub not_before: i64,
}

/// A change to a row stored before this batch.
pub(crate) enum Update<'b> {
    /// A real stage change replaces a stored inferred one (its time, ID,
    /// payload, deadline and origin; no longer inferred; expired when the
    /// real change is too old to send).
    Replace {
        /// Row ID.
        row: i64,
        /// The real change is older than Meta's window.
        expired: bool,
        /// The real event.
        event: RowEvent<'b>,
        /// Its lead ID was recovered.
        recovered: bool,
        /// Where it came from.
        origin: &'b Origin,
    },
    /// A held row whose earlier stages are all there becomes pending.
    Release {
        /// Row ID.
        row: i64,
    },
}

/// A quarantine record.
pub(crate) struct QuarantineRow<'b> {
    /// Where the input came from.
    pub origin: &'b Origin,
    /// Recognizes the same input again without keeping it.
    pub fingerprint: Cow<'b, str>,
    /// Rule code.
    pub rule: &'static str,
    /// Record field, or empty.
    pub field: &'static str,
    /// Explanation (never a raw contact value).
    pub message: Cow<'b, str>,
}

/// What a batch becomes.
pub(crate) struct Plan<'b> {
    /// New rows, in claim order within a deadline hour (an inferred stage
    /// before the stage that made it).
    pub inserts: Vec<NewRow<'b>>,
    /// Changes to rows stored before.
    pub updates: Vec<Update<'b>>,
    /// Rejected input.
    pub quarantine: Vec<QuarantineRow<'b>>,
    /// The counts and per-item outcomes.
    pub report: EnqueueReport,
}

/// Where a known stage's row is: stored before, or new in this plan.
#[derive(Clone, Copy)]
enum Row {
    Stored(i64),
    New(usize),
}

#[derive(Clone)]
struct Stage {
    row: Row,
    name: Arc<str>,
    index: Option<StageIndex>,
    inferred: bool,
    state: State,
}

/// Applies the funnel policy to `batch`, given its leads as loaded
/// (`leads[i]` is [`leads_of`]`(batch)[i]`).
pub(crate) fn plan<'b>(
    batch: &'b [Incoming],
    ctx: &EnqueueContext<'_>,
    specs: &[LeadSpec<'b>],
    leads: Vec<LoadedLead>,
    recoveries: &[Recovery],
) -> Plan<'b> {
    let mut by_key: HashMap<&'b LeadKey, (i64, Vec<Stage>)> = HashMap::with_capacity(specs.len());
    for (spec, lead) in specs.iter().zip(leads) {
        let stages = lead
            .known
            .into_iter()
            .map(|k| Stage {
                row: Row::Stored(k.row),
                name: k.stage,
                index: k.index,
                inferred: k.inferred,
                state: k.state,
            })
            .collect();
        by_key.insert(spec.key, (lead.id, stages));
    }
    let mut p = Planner {
        ctx,
        leads: by_key,
        plan: Plan {
            inserts: Vec::with_capacity(batch.len()),
            updates: Vec::new(),
            quarantine: Vec::new(),
            report: EnqueueReport::default(),
        },
    };
    for (i, item) in batch.iter().enumerate() {
        let before = p.plan.report.clone_counts();
        match item {
            Incoming::Event {
                prepared,
                payload,
                origin,
                not_before,
                lead_created_at,
                ..
            } => {
                let not_before = not_before.unwrap_or(0);
                match recoveries.get(i).copied().unwrap_or(Recovery::None) {
                    Recovery::Found {
                        lead_id,
                        created_at,
                    } => {
                        // Meta's lead ID, from the lead index; the event's
                        // identity (lead key, event_id) stays the CRM's.
                        let mut owned = Box::new((**prepared).clone());
                        owned.event.user_data.lead_id = Some(lead_id);
                        let mut late = Vec::new();
                        if lead_created_at.is_none() {
                            ctx.prepare.time.check(
                                owned.event.event_time,
                                created_at,
                                ctx.now,
                                &mut late,
                            );
                        }
                        if late.is_empty() {
                            let stored = p.plan.report.accepted + p.plan.report.expired;
                            p.event(RowEvent::Owned(owned), true, origin, not_before);
                            if p.plan.report.accepted + p.plan.report.expired > stored {
                                p.plan.report.recovered += 1;
                            }
                        } else {
                            let fingerprint = format!("{}:recovered", owned.event.event_id);
                            for v in late {
                                p.quarantine(QuarantineRow {
                                    origin,
                                    fingerprint: Cow::Owned(fingerprint.clone()),
                                    rule: v.code,
                                    field: v.field.unwrap_or(""),
                                    message: Cow::Owned(format!(
                                        "{} (the lead's creation time comes from the lead ID recovered by its e-mail or phone)",
                                        v.message
                                    )),
                                });
                            }
                            p.plan.report.rejected += 1;
                        }
                    }
                    found => {
                        if found == Recovery::Ambiguous {
                            p.plan.report.ambiguous += 1;
                        }
                        p.event(
                            RowEvent::Given(prepared, payload),
                            false,
                            origin,
                            not_before,
                        );
                    }
                }
            }
            Incoming::Rejected {
                origin,
                fingerprint,
                violations,
            } => {
                let skipped = violations.iter().all(|v| v.code == TEST_LEAD);
                for v in violations {
                    let q = QuarantineRow {
                        origin,
                        fingerprint: Cow::Borrowed(fingerprint),
                        rule: v.code,
                        field: v.field.unwrap_or(""),
                        message: Cow::Borrowed(&v.message),
                    };
                    if skipped {
                        p.plan.quarantine.push(q);
                    } else {
                        p.quarantine(q);
                    }
                }
                if skipped {
                    p.plan.report.skipped += 1;
                } else {
                    p.plan.report.rejected += 1;
                }
            }
        }
        let outcome = p.plan.report.outcome_since(before);
        p.plan.report.items.push(outcome);
    }
    p.plan
}

struct Planner<'b, 'c> {
    ctx: &'c EnqueueContext<'c>,
    leads: HashMap<&'b LeadKey, (i64, Vec<Stage>)>,
    plan: Plan<'b>,
}

impl<'b> Planner<'b, '_> {
    fn quarantine(&mut self, q: QuarantineRow<'b>) {
        // Counted on every run (the row is still rejected); stored once.
        *self
            .plan
            .report
            .rejected_by_rule
            .entry(q.rule.to_string())
            .or_default() += 1;
        self.plan.quarantine.push(q);
    }

    fn event(&mut self, ev: RowEvent<'b>, recovered: bool, origin: &'b Origin, not_before: i64) {
        let ctx = self.ctx;
        // The prepared event, owned or borrowed from the batch, kept apart
        // from `ev` (which moves into a row).
        let shared = match &ev {
            RowEvent::Given(p, _) => Cow::Borrowed(*p),
            RowEvent::Owned(p) => Cow::Owned((**p).clone()),
        };
        let p: &Prepared = &shared;
        let key = &p.lead_key;
        let (lead, known) = self.leads.get_mut(key).expect("every lead is loaded");
        let lead = *lead;
        let name = &*p.event.event_name;
        let expired = p.is_expired(ctx.now);
        if let Some(k) = known.iter_mut().find(|k| *k.name == *name) {
            // A real stage change replaces a stage that was only inferred;
            // otherwise the lead already has this stage (repeated, or a
            // lead going back and forth): nothing added.
            if k.inferred && matches!(k.state, State::Pending | State::Held) {
                k.inferred = false;
                if expired {
                    k.state = State::Expired;
                }
                match k.row {
                    Row::Stored(row) => self.plan.updates.push(Update::Replace {
                        row,
                        expired,
                        event: ev,
                        recovered,
                        origin,
                    }),
                    Row::New(i) => {
                        let r = &mut self.plan.inserts[i];
                        r.event = ev;
                        r.inferred = false;
                        r.recovered = recovered;
                        r.origin = origin;
                        if expired {
                            r.state = State::Expired;
                        }
                    }
                }
                self.count_stored(p, expired);
            } else {
                self.plan.report.already_known += 1;
            }
            return;
        }
        if expired {
            // A fact of the lead's history, too old to send: no earlier
            // stage is inferred or waited for, but it counts as a stage the
            // lead has (a later stage needs it no more).
            let has_held = known.iter().any(|k| k.state == State::Held);
            self.insert(NewRow {
                lead,
                event: ev,
                state: State::Expired,
                inferred: false,
                recovered,
                origin,
                not_before,
            });
            self.count_stored(p, true);
            if has_held {
                self.release_held(key);
            }
            return;
        }
        let present: Vec<StageIndex> = known.iter().filter_map(|k| k.index).collect();
        let has_held = known.iter().any(|k| k.state == State::Held);
        let this = match p.stage {
            Some(i) => StageRef::Known(i),
            None => StageRef::Unmapped(name),
        };
        let missing = ctx.funnel().missing_before(&present, this);
        let state = if missing.is_empty() {
            State::Pending
        } else {
            match ctx.missing {
                MissingStages::Fill => {
                    for &m in &missing {
                        let inferred = Box::new(p.inferred(m, ctx.prepare));
                        self.insert(NewRow {
                            lead,
                            event: RowEvent::Owned(inferred),
                            state: State::Pending,
                            inferred: true,
                            recovered,
                            origin,
                            not_before,
                        });
                        self.plan.report.inferred += 1;
                    }
                    State::Pending
                }
                MissingStages::Hold => State::Held,
                MissingStages::Reject => {
                    let names: Vec<&str> = missing
                        .iter()
                        .map(|&m| &**ctx.funnel().event_name(m))
                        .collect();
                    let message = format!(
                        "stage {name:?} arrived but earlier stage(s) {} were never seen for this lead; funnel.missing_stages = \"reject\"",
                        names.join(", ")
                    );
                    self.quarantine(QuarantineRow {
                        origin,
                        fingerprint: Cow::Owned(format!("{}:missing", p.event.event_id)),
                        rule: "funnel.missing_stages",
                        field: "stage",
                        message: Cow::Owned(message),
                    });
                    self.plan.report.rejected += 1;
                    return;
                }
            }
        };
        self.insert(NewRow {
            lead,
            event: ev,
            state,
            inferred: false,
            recovered,
            origin,
            not_before,
        });
        if state == State::Held {
            self.plan.report.held += 1;
        } else {
            self.plan.report.accepted += 1;
            if has_held {
                self.release_held(key);
            }
        }
    }

    /// Counts a stage change stored: accepted, or expired (with the oldest).
    fn count_stored(&mut self, p: &Prepared, expired: bool) {
        let r = &mut self.plan.report;
        if expired {
            r.expired += 1;
            let t = p.event.event_time;
            r.oldest_expired = Some(r.oldest_expired.map_or(t, |o| o.min(t)));
        } else {
            r.accepted += 1;
        }
    }

    /// Adds a new row and records it as a stage of its lead.
    fn insert(&mut self, row: NewRow<'b>) {
        let p = row.event.prepared();
        let stage = Stage {
            row: Row::New(self.plan.inserts.len()),
            name: p.event.event_name.clone(),
            index: p.stage,
            inferred: row.inferred,
            state: row.state,
        };
        let key = &p.lead_key;
        if let Some((_, known)) = self.leads.get_mut(key) {
            known.push(stage);
        }
        self.plan.inserts.push(row);
    }

    /// Held stages of a lead whose earlier stages are now all there become pending.
    fn release_held(&mut self, key: &LeadKey) {
        let ctx = self.ctx;
        let Some((_, known)) = self.leads.get_mut(key) else {
            return;
        };
        let present: Vec<StageIndex> = known.iter().filter_map(|k| k.index).collect();
        for k in known.iter_mut().filter(|k| k.state == State::Held) {
            let this = match k.index {
                Some(i) => StageRef::Known(i),
                None => StageRef::Unmapped(&k.name),
            };
            if ctx.funnel().missing_before(&present, this).is_empty() {
                k.state = State::Pending;
                match k.row {
                    Row::Stored(row) => self.plan.updates.push(Update::Release { row }),
                    Row::New(i) => self.plan.inserts[i].state = State::Pending,
                }
                self.plan.report.released += 1;
            }
        }
    }
}
