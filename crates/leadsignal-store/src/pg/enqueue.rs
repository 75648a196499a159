//! Writers' side of the PostgreSQL outbox: the batch's leads upserted in
//! key order (locked until commit), the plan written with one multi-row
//! statement per table.

use super::PgOutbox;
use crate::model::*;
use crate::plan::{
    leads_of, plan, rank, stage_index, Known, LeadSpec, LoadedLead, Plan, RowEvent, Update,
};
use crate::recover::{self, IndexKey};
use crate::{Enqueue, StoreError};
use postgres::Transaction;
use std::collections::HashMap;

/// Finds or creates the batch's leads (locking them until commit), with
/// the stages they have.
fn load_leads(
    tx: &mut Transaction<'_>,
    dataset: &str,
    specs: &[LeadSpec<'_>],
    now: i64,
) -> Result<Vec<LoadedLead>, StoreError> {
    let keys: Vec<String> = specs.iter().map(|s| s.key.to_string()).collect();
    let lead_ids: Vec<Option<i64>> = specs.iter().map(|s| s.lead_id).collect();
    let crm_ids: Vec<Option<&str>> = specs.iter().map(|s| s.crm_id).collect();
    let created: Vec<Option<i64>> = specs.iter().map(|s| s.created_at).collect();
    // In key order: two batches locking the same leads take them in the
    // same order (no deadlock between them).
    let rows = tx.query(
        "INSERT INTO leads (dataset_id, lead_key, lead_id, crm_id, created_at, first_seen)
         SELECT $1, k, i, c, t, $2
           FROM unnest($3::text[], $4::bigint[], $5::text[], $6::bigint[]) AS u(k, i, c, t)
          ORDER BY k
         ON CONFLICT (dataset_id, lead_key) DO UPDATE
            SET crm_id = coalesce(leads.crm_id, EXCLUDED.crm_id),
                created_at = coalesce(leads.created_at, EXCLUDED.created_at),
                lead_id = coalesce(leads.lead_id, EXCLUDED.lead_id)
         RETURNING id, lead_key, xmax = 0",
        &[&dataset, &now, &keys, &lead_ids, &crm_ids, &created],
    )?;
    let mut found: HashMap<String, (i64, bool)> = HashMap::with_capacity(rows.len());
    for r in rows {
        found.insert(r.get(1), (r.get(0), r.get(2)));
    }
    let existing: Vec<i64> = found
        .values()
        .filter(|(_, inserted)| !inserted)
        .map(|(id, _)| *id)
        .collect();
    let mut known: HashMap<i64, Vec<Known>> = HashMap::new();
    if !existing.is_empty() {
        for r in tx.query(
            "SELECT lead, id, stage, stage_rank, inferred, state FROM outbox WHERE lead = ANY($1)",
            &[&existing],
        )? {
            let state: String = r.get(5);
            known.entry(r.get(0)).or_default().push(Known {
                row: r.get(1),
                stage: r.get::<_, String>(2).into(),
                index: stage_index(r.get(3)),
                inferred: r.get(4),
                state: State::parse(&state).unwrap_or(State::Failed),
            });
        }
    }
    keys.iter()
        .map(|k| {
            let (id, _) = found.get(k).copied().ok_or_else(|| StoreError::Corrupt {
                id: 0,
                message: format!("lead {k} was not returned by its upsert"),
            })?;
            Ok(LoadedLead {
                id,
                known: known.remove(&id).unwrap_or_default(),
            })
        })
        .collect()
}

/// The lead index's entries for `keys` (recover.rs).
fn load_index(
    tx: &mut Transaction<'_>,
    dataset: &str,
    keys: &[IndexKey],
) -> Result<Vec<(IndexKey, i64, Option<i64>)>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let by_key: HashMap<i64, &IndexKey> = keys
        .iter()
        .map(|k| (recover::db_key(dataset, k), k))
        .collect();
    let db_keys: Vec<i64> = by_key.keys().copied().collect();
    let mut out = Vec::new();
    for r in tx.query(
        "SELECT key, lead_id, created_at FROM lead_index WHERE key = ANY($1)",
        &[&db_keys],
    )? {
        if let Some(k) = by_key.get(&r.get::<_, i64>(0)) {
            out.push((**k, r.get(1), r.get(2)));
        }
    }
    Ok(out)
}

/// Adds the batch's leads to the lead index.
fn write_index(
    tx: &mut Transaction<'_>,
    dataset: &str,
    entries: &[(IndexKey, i64, Option<i64>)],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    // Sorted by key: two batches writing the same entries lock them in the
    // same order.
    let mut rows: Vec<(i64, i64, Option<i64>)> = entries
        .iter()
        .map(|(k, id, c)| (recover::db_key(dataset, k), *id, *c))
        .collect();
    rows.sort_unstable();
    rows.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let keys: Vec<i64> = rows.iter().map(|e| e.0).collect();
    let ids: Vec<i64> = rows.iter().map(|e| e.1).collect();
    let created: Vec<Option<i64>> = rows.iter().map(|e| e.2).collect();
    tx.execute(
        "INSERT INTO lead_index (key, lead_id, created_at)
         SELECT k, i, c FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(k, i, c)
         ON CONFLICT (key, lead_id)
            DO UPDATE SET created_at = coalesce(lead_index.created_at, EXCLUDED.created_at)",
        &[&keys, &ids, &created],
    )?;
    Ok(())
}

/// Writes what the planner decided: one statement per table.
fn write(
    tx: &mut Transaction<'_>,
    dataset: &str,
    now: i64,
    plan: &Plan<'_>,
) -> Result<(), StoreError> {
    if !plan.quarantine.is_empty() {
        let q = &plan.quarantine;
        let sources: Vec<&str> = q.iter().map(|r| &*r.origin.source).collect();
        let lines: Vec<i64> = q.iter().map(|r| r.origin.line as i64).collect();
        let fps: Vec<&str> = q.iter().map(|r| &*r.fingerprint).collect();
        let rules: Vec<&str> = q.iter().map(|r| r.rule).collect();
        let fields: Vec<&str> = q.iter().map(|r| r.field).collect();
        let messages: Vec<&str> = q.iter().map(|r| &*r.message).collect();
        tx.execute(
            "INSERT INTO quarantine (source, line, fingerprint, rule, field, message, created_at)
             SELECT s, l, f, r, fi, m, $7
               FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(s, l, f, r, fi, m)
             ON CONFLICT (source, fingerprint, rule, field) DO NOTHING",
            &[&sources, &lines, &fps, &rules, &fields, &messages, &now],
        )?;
    }
    let source_ids = source_ids(tx, plan)?;
    let source_of = |name: &str| source_ids.get(name).copied().unwrap_or(0);
    if !plan.inserts.is_empty() {
        let rows = &plan.inserts;
        // Events made here (inferred, recovered) are encoded here; the
        // others came encoded.
        let encoded: Vec<Option<Vec<u8>>> = rows
            .iter()
            .map(|r| match &r.event {
                RowEvent::Owned(p) => Some(crate::codec::encode(&p.event)),
                RowEvent::Given(..) => None,
            })
            .collect();
        let payloads: Vec<&[u8]> = rows
            .iter()
            .zip(&encoded)
            .map(|(r, e)| match (&r.event, e) {
                (RowEvent::Given(_, p), _) => p.as_bytes(),
                (_, Some(e)) => e.as_slice(),
                (_, None) => &[],
            })
            .collect();
        let prepared: Vec<&leadsignal_core::Prepared> =
            rows.iter().map(|r| r.event.prepared()).collect();
        let leads: Vec<i64> = rows.iter().map(|r| r.lead).collect();
        let stages: Vec<&str> = prepared.iter().map(|p| &*p.event.event_name).collect();
        let ranks: Vec<i64> = prepared.iter().map(|p| rank(p.stage)).collect();
        let times: Vec<i64> = prepared.iter().map(|p| p.event.event_time).collect();
        let event_ids: Vec<&str> = prepared.iter().map(|p| p.event.event_id.as_str()).collect();
        let send_by: Vec<i64> = prepared.iter().map(|p| p.send_by).collect();
        let states: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
        let inferred: Vec<bool> = rows.iter().map(|r| r.inferred).collect();
        let not_before: Vec<i64> = rows.iter().map(|r| r.not_before).collect();
        let sources: Vec<i64> = rows.iter().map(|r| source_of(&r.origin.source)).collect();
        let lines: Vec<i64> = rows.iter().map(|r| r.origin.line as i64).collect();
        let recovered: Vec<bool> = rows.iter().map(|r| r.recovered).collect();
        tx.execute(
            "INSERT INTO outbox (lead, dataset_id, stage, stage_rank, event_time, event_id, payload, send_by,
                                 state, inferred, next_attempt_at, source, line, created_at, settled_at, last_error,
                                 recovered)
             SELECT le, $1, st, ra, et, ei, pa, sb, sa, inf, nb, so, li, $2,
                    CASE sa WHEN 'expired' THEN $2::bigint END, CASE sa WHEN 'expired' THEN $15::text END, rec
               FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::bytea[],
                           $9::bigint[], $10::text[], $11::bool[], $12::bigint[], $13::bigint[], $14::bigint[],
                           $16::bool[])
                    WITH ORDINALITY AS u(le, st, ra, et, ei, pa, sb, sa, inf, nb, so, li, rec, n)
              ORDER BY n",
            &[
                &dataset, &now, &leads, &stages, &ranks, &times, &event_ids, &payloads, &send_by, &states,
                &inferred, &not_before, &sources, &lines, &EXPIRED_ON_ARRIVAL, &recovered,
            ],
        )?;
    }
    for u in &plan.updates {
        match u {
            Update::Replace {
                row,
                expired,
                event,
                recovered,
                origin,
            } => {
                let prepared = event.prepared();
                let e = &prepared.event;
                let mut buf = Vec::new();
                tx.execute(
                    "UPDATE outbox SET event_time = $2, event_id = $3, payload = $4, send_by = $5,
                            inferred = false, source = $6, line = $7,
                            state = CASE WHEN $8 THEN 'expired' ELSE state END,
                            settled_at = CASE WHEN $8 THEN $9::bigint ELSE settled_at END,
                            last_error = CASE WHEN $8 THEN $10::text ELSE last_error END,
                            recovered = $11
                      WHERE id = $1",
                    &[
                        row,
                        &e.event_time,
                        &e.event_id.as_str(),
                        &event.payload(&mut buf),
                        &prepared.send_by,
                        &source_of(&origin.source),
                        &(origin.line as i64),
                        expired,
                        &now,
                        &EXPIRED_ON_ARRIVAL,
                        recovered,
                    ],
                )?;
            }
            Update::Release { row } => {
                tx.execute(
                    "UPDATE outbox SET state = 'pending' WHERE id = $1 AND state = 'held'",
                    &[row],
                )?;
            }
        }
    }
    Ok(())
}

/// The IDs of the sources the plan's rows come from, registering new ones.
fn source_ids(
    tx: &mut Transaction<'_>,
    plan: &Plan<'_>,
) -> Result<HashMap<String, i64>, StoreError> {
    let mut names: Vec<&str> = plan
        .inserts
        .iter()
        .map(|r| &*r.origin.source)
        .chain(plan.updates.iter().filter_map(|u| match u {
            Update::Replace { origin, .. } => Some(&*origin.source),
            Update::Release { .. } => None,
        }))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    tx.execute(
        "INSERT INTO sources (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING",
        &[&names],
    )?;
    Ok(tx
        .query(
            "SELECT name, id FROM sources WHERE name = ANY($1)",
            &[&names],
        )?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

impl Enqueue for PgOutbox {
    fn enqueue_with_cursor(
        &mut self,
        batch: &[Incoming],
        ctx: &EnqueueContext<'_>,
        cursor: Option<(&str, &str)>,
    ) -> Result<EnqueueReport, StoreError> {
        self.tx(|tx| {
            let dataset = &*ctx.prepare.dataset_id;
            let found = load_index(tx, dataset, &recover::wanted(batch))?;
            let recoveries = recover::recover(batch, &found);
            let specs = leads_of(batch, &recoveries);
            let leads = load_leads(tx, dataset, &specs, ctx.now)?;
            let new: std::collections::HashSet<&leadsignal_core::LeadKey> = specs
                .iter()
                .zip(&leads)
                .filter(|(_, l)| l.known.is_empty())
                .map(|(s, _)| s.key)
                .collect();
            let plan = plan(batch, ctx, &specs, leads, &recoveries);
            write(tx, dataset, ctx.now, &plan)?;
            write_index(tx, dataset, &recover::entries(batch, |k| new.contains(k)))?;
            if let Some((source, value)) = cursor {
                tx.execute(
                    "INSERT INTO source_cursors (source, cursor) VALUES ($1, $2)
                     ON CONFLICT (source) DO UPDATE SET cursor = EXCLUDED.cursor",
                    &[&source, &value],
                )?;
            }
            Ok(plan.report)
        })
    }

    fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        self.db(|c| {
            Ok(c.query_opt(
                "SELECT cursor FROM source_cursors WHERE source = $1",
                &[&source],
            )?
            .map(|r| r.get(0)))
        })
    }

    fn record_poll(
        &mut self,
        source: &str,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO source_health (source, polled_at, ok_at, error, error_at)
             VALUES ($1, $2::bigint, CASE WHEN $3::text IS NULL THEN $2::bigint END, $3::text,
                     CASE WHEN $3::text IS NULL THEN NULL ELSE $2::bigint END)
             ON CONFLICT (source) DO UPDATE SET polled_at = excluded.polled_at,
                ok_at = COALESCE(excluded.ok_at, source_health.ok_at), error = excluded.error, error_at = excluded.error_at",
            &[&source, &now, &error],
        )
    }

    fn bind_dataset(
        &mut self,
        name: &str,
        dataset_id: &str,
        now: i64,
    ) -> Result<DatasetBinding, StoreError> {
        self.exec(
            "INSERT INTO dataset_bindings (name, dataset_id, bound_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
            &[&name, &dataset_id, &now],
        )?;
        let name = name.to_string();
        self.db(move |c| pg_binding(c, &name).map(|b| b.expect("just inserted or there")))
    }

    fn rebind_dataset(
        &mut self,
        name: &str,
        dataset_id: &str,
        now: i64,
    ) -> Result<Option<DatasetBinding>, StoreError> {
        let (name, dataset_id) = (name.to_string(), dataset_id.to_string());
        self.tx(move |tx| {
            let before = tx
                .query_opt(
                    "SELECT dataset_id, bound_at, previous_id, rebound_at FROM dataset_bindings WHERE name = $1 FOR UPDATE",
                    &[&name],
                )?
                .map(|r| binding_row(&name, &r));
            let previous = before.as_ref().map(|b| b.dataset_id.clone());
            let rebound_at = previous.as_ref().map(|_| now);
            tx.execute(
                "INSERT INTO dataset_bindings (name, dataset_id, bound_at, previous_id, rebound_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET dataset_id = excluded.dataset_id, bound_at = excluded.bound_at,
                    previous_id = excluded.previous_id, rebound_at = excluded.rebound_at",
                &[&name, &dataset_id, &now, &previous, &rebound_at],
            )?;
            Ok(before)
        })
    }

    fn refresh(&mut self, batch: &[Incoming], dataset_id: &str) -> Result<u64, StoreError> {
        self.tx(|tx| {
            let stmt = tx.prepare(
                "UPDATE outbox SET payload = $3, next_attempt_at = 0
                  WHERE lead = (SELECT id FROM leads WHERE dataset_id = $1 AND lead_key = $2)
                    AND stage = $4 AND event_time = $5 AND state = 'pending'",
            )?;
            let mut n = 0;
            for item in batch {
                if let Incoming::Event {
                    prepared, payload, ..
                } = item
                {
                    let e = &prepared.event;
                    n += tx.execute(
                        &stmt,
                        &[
                            &dataset_id,
                            &prepared.lead_key.to_string(),
                            &payload.as_bytes(),
                            &&*e.event_name,
                            &e.event_time,
                        ],
                    )?;
                }
            }
            // The form answers a lead's refresh brings go into the lead index.
            write_index(tx, dataset_id, &recover::entries(batch, |_| true))?;
            Ok(n)
        })
    }
}

fn binding_row(name: &str, r: &postgres::Row) -> DatasetBinding {
    let previous: Option<String> = r.get(2);
    let rebound: Option<i64> = r.get(3);
    DatasetBinding {
        name: name.to_string(),
        dataset_id: r.get(0),
        bound_at: r.get(1),
        previous: previous.zip(rebound),
    }
}

fn pg_binding(c: &mut postgres::Client, name: &str) -> Result<Option<DatasetBinding>, StoreError> {
    Ok(c
        .query_opt(
            "SELECT dataset_id, bound_at, previous_id, rebound_at FROM dataset_bindings WHERE name = $1",
            &[&name],
        )?
        .map(|r| binding_row(name, &r)))
}
