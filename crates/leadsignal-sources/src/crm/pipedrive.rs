//! Pipedrive deals through its API: deals updated since the cursor
//! (`GET /api/v2/deals?updated_since=...&sort_by=update_time`, cursor
//! paging), and for each its change log (`GET /v1/deals/{id}/flow`): the
//! deal's creation at its first stage, every stage change, and won or lost
//! at the time it was marked so, with the person's e-mail and phone and the
//! deal field that holds Meta's lead ID. Stage IDs are named through
//! `GET /api/v2/stages`. The API token goes in the `x-api-token` header,
//! never in a URL.
//!
//! The cursor is the last `update_time` read (Unix seconds) with the IDs
//! of the deals read at that second, as for HubSpot: `updated_since` is
//! inclusive, and those are skipped.

use super::http::{percent_encode, CrmError, Http};
use crate::sql::Poll;
use crate::SourceRow;
use leadsignal_core::{Origin, Scalar, Sha256, StageChangeRecord};
use serde_json::Value;
use std::collections::HashMap;

/// Deals per page.
const PAGE: usize = 100;

/// A Pipedrive company's deals, polled.
pub struct PipedriveSource {
    /// The source's name (positions and the stored cursor use it).
    pub name: String,
    /// The company domain (`https://acme.pipedrive.com`) or an emulator.
    pub base_url: String,
    token: String,
    /// The deal field (its 40-character key) holding Meta's lead ID.
    pub lead_id_field: Option<String>,
    http: Http,
}

impl std::fmt::Debug for PipedriveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipedriveSource")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("token", &"***")
            .finish()
    }
}

/// Seconds of Pipedrive's times: RFC 3339 (API v2) or
/// `2026-11-20 17:00:00` in UTC (API v1).
fn seconds(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
                .map(|d| d.and_utc().timestamp())
        })
        .ok()
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        // A custom field as `{"value": ...}`.
        Value::Object(o) => text(o.get("value")),
        _ => None,
    }
}

impl PipedriveSource {
    /// A source reading `base_url` with the API `token`.
    pub fn new(
        name: &str,
        base_url: &str,
        token: &str,
        lead_id_field: Option<String>,
    ) -> PipedriveSource {
        PipedriveSource {
            name: name.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            lead_id_field,
            http: Http::new(name, vec![token.to_string()]),
        }
    }

    /// A `GET` of `path` (with its query), as JSON.
    fn get(&self, what: &str, path: &str) -> Result<Value, CrmError> {
        let url = format!("{}{path}", self.base_url);
        let a = self.http.send(what, |agent| {
            agent.get(&url).header("x-api-token", &self.token).call()
        })?;
        match a.status {
            200 => Ok(a.body),
            401 | 403 => Err(self.http.auth(
                &a,
                "check the API token (`token`: Settings > Personal preferences > API) of a user who can see the deals",
            )),
            _ => Err(self.http.refused(what, &a)),
        }
    }

    /// Checks the token with one read (the stages), storing nothing:
    /// `leadsignal doctor`.
    pub fn check(&self) -> Result<(), CrmError> {
        self.stages().map(drop)
    }

    fn stages(&self) -> Result<HashMap<String, String>, CrmError> {
        let body = self.get("GET /api/v2/stages", "/api/v2/stages?limit=500")?;
        Ok(body
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| Some((text(s.get("id"))?, text(s.get("name"))?)))
            .collect())
    }

    /// Reads the stage changes of deals updated after `cursor`
    /// (`<seconds>` or `<seconds>:<id>,<id>`), about `limit` rows.
    pub fn poll(&self, cursor: &str, limit: usize) -> Result<Poll, CrmError> {
        let (since, seen) = cursor.split_once(':').unwrap_or((cursor, ""));
        let since: i64 = since.trim().parse().unwrap_or(0);
        let seen: Vec<&str> = seen.split(',').filter(|s| !s.is_empty()).collect();
        let stages = self.stages()?;
        let mut rows = Vec::new();
        let mut last: Option<(i64, Vec<String>)> = None;
        let mut page_cursor: Option<String> = None;
        loop {
            let mut path = format!(
                "/api/v2/deals?updated_since={}&sort_by=update_time&sort_direction=asc&limit={PAGE}",
                rfc3339(since).replace(':', "%3A").replace('+', "%2B")
            );
            if let Some(c) = &page_cursor {
                path.push_str(&format!("&cursor={}", percent_encode(c)));
            }
            let what = "GET /api/v2/deals";
            let body = self.get(what, &path)?;
            let deals = body
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| self.http.unexpected(what, "no `data` array"))?;
            for deal in deals {
                let id = text(deal.get("id"))
                    .ok_or_else(|| self.http.unexpected(what, "a deal without an `id`"))?;
                let updated = text(deal.get("update_time"))
                    .and_then(|t| seconds(&t))
                    .ok_or_else(|| {
                        self.http
                            .unexpected(what, format!("deal {id}: no readable update_time"))
                    })?;
                if updated == since && seen.contains(&id.as_str()) {
                    continue;
                }
                self.rows_of(&id, deal, &stages, &mut rows)?;
                match &mut last {
                    Some((t, ids)) if *t == updated => ids.push(id),
                    _ => last = Some((updated, vec![id])),
                }
            }
            page_cursor = body
                .pointer("/additional_data/next_cursor")
                .and_then(|c| text(Some(c)));
            if page_cursor.is_none() || rows.len() >= limit {
                break;
            }
        }
        let cursor = last.map(|(t, mut ids)| {
            if t == since {
                let mut all: Vec<String> = seen.iter().map(|s| s.to_string()).collect();
                all.append(&mut ids);
                ids = all;
            }
            format!("{t}:{}", ids.join(","))
        });
        for (i, row) in rows.iter_mut().enumerate() {
            row.origin = Origin::new(&self.name, i as u64 + 1);
        }
        Ok(Poll { rows, cursor })
    }

    /// Fetches a deal's change log and person, and adds its rows.
    fn rows_of(
        &self,
        id: &str,
        deal: &Value,
        stages: &HashMap<String, String>,
        rows: &mut Vec<SourceRow>,
    ) -> Result<(), CrmError> {
        let what = "GET /v1/deals/{id}/flow";
        let mut flow: Vec<Value> = Vec::new();
        let mut start = 0;
        loop {
            let body = self.get(
                what,
                &format!("/v1/deals/{id}/flow?start={start}&limit=100&items=dealChange"),
            )?;
            flow.extend(
                body.get("data")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            let more = body
                .pointer("/additional_data/pagination/more_items_in_collection")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if !more {
                break;
            }
            start += 100;
        }
        let person = match text(deal.get("person_id")) {
            Some(p) => self
                .get(
                    "GET /api/v2/persons/{id}",
                    &format!("/api/v2/persons/{}", percent_encode(&p)),
                )?
                .get("data")
                .cloned()
                .unwrap_or(Value::Null),
            None => Value::Null,
        };
        deal_rows(
            &self.name,
            self.lead_id_field.as_deref(),
            id,
            deal,
            &flow,
            &person,
            stages,
            rows,
        )
        .map_err(|m| self.http.unexpected(what, m))
    }
}

/// A deal's rows: its creation at its first stage, every stage change and
/// won or lost, in time order, from the deal, its change log items (any
/// order), its person and the stage names. Pure: what Pipedrive's answers
/// become (`fuzz/fuzz_targets/crm_answers.rs`).
#[allow(clippy::too_many_arguments)]
pub fn deal_rows(
    source: &str,
    lead_id_field: Option<&str>,
    id: &str,
    deal: &Value,
    flow: &[Value],
    person: &Value,
    stages: &HashMap<String, String>,
    rows: &mut Vec<SourceRow>,
) -> Result<(), String> {
    // (time, field, old value, new value).
    let mut changes: Vec<(i64, String, Option<String>, String)> = Vec::new();
    for item in flow {
        if item.get("object").and_then(Value::as_str) != Some("dealChange") {
            continue;
        }
        let d = item.get("data").unwrap_or(&Value::Null);
        let field = text(d.get("field_key")).unwrap_or_default();
        let at = text(d.get("log_time"))
            .or_else(|| text(item.get("timestamp")))
            .and_then(|t| seconds(&t));
        let (Some(at), Some(new)) = (at, text(d.get("new_value"))) else {
            continue;
        };
        let keep = field == "stage_id" || (field == "status" && (new == "won" || new == "lost"));
        if keep {
            changes.push((at, field, text(d.get("old_value")), new));
        }
    }
    changes.sort_by_key(|c| c.0);
    // The stage it was created in: the old value of its first stage
    // change, or (never moved) its stage now.
    let first_old_stage = changes
        .iter()
        .find(|c| c.1 == "stage_id")
        .and_then(|c| c.2.clone());
    let pick = |key: &str| -> Vec<String> {
        let mut all: Vec<(bool, String)> = person
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some((
                    e.get("primary") == Some(&Value::Bool(true)),
                    text(e.get("value"))?,
                ))
            })
            .collect();
        all.sort_by_key(|(primary, _)| !primary);
        all.into_iter().map(|(_, v)| v).collect()
    };
    let (emails, phones) = (pick("emails"), pick("phones"));
    let added = text(deal.get("add_time"))
        .and_then(|t| seconds(&t))
        .ok_or_else(|| format!("deal {id}: no add_time"))?;
    let lead_id = lead_id_field.and_then(|f| {
        text(deal.pointer(&format!("/custom_fields/{f}"))).or_else(|| text(deal.get(f)))
    });
    let stage_name = |sid: &str| {
        stages
            .get(sid)
            .cloned()
            .unwrap_or_else(|| format!("stage {sid}"))
    };
    let first_stage = first_old_stage.or_else(|| text(deal.get("stage_id")));
    let mut events: Vec<(i64, String)> = Vec::new();
    if let Some(s) = first_stage {
        events.push((added, stage_name(&s)));
    }
    for (at, field, _, value) in changes {
        events.push((
            at,
            if field == "stage_id" {
                stage_name(&value)
            } else {
                value
            },
        ));
    }
    let s = |v: Option<String>| v.map(Scalar::Text);
    for (at, stage) in events {
        let record = StageChangeRecord {
            lead_id: s(lead_id.clone()),
            crm_id: Some(Scalar::Text(id.to_string())),
            stage: Some(Scalar::Text(stage.clone())),
            changed_at: Some(Scalar::Text(rfc3339(at))),
            lead_created_at: Some(Scalar::Text(rfc3339(added))),
            email: s(emails.first().cloned()),
            phone: s(phones.first().cloned()),
            other_emails: emails.iter().skip(1).cloned().collect(),
            other_phones: phones.iter().skip(1).cloned().collect(),
            first_name: s(text(person.get("first_name"))),
            last_name: s(text(person.get("last_name"))),
            full_name: s(text(person.get("name"))),
            ..StageChangeRecord::default()
        };
        rows.push(SourceRow {
            origin: Origin::new(source, 0),
            fingerprint: Sha256::of(&format!("pipedrive deal {id} {stage} {at}")),
            record: Ok(record),
            warnings: Vec::new(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipedrive_times_both_versions() {
        assert_eq!(seconds("2026-11-20T17:00:00Z"), Some(1_795_194_000));
        assert_eq!(seconds("2026-11-20 17:00:00"), Some(1_795_194_000));
        assert_eq!(rfc3339(1_795_194_000), "2026-11-20T17:00:00Z");
        assert_eq!(percent_encode("eyJ0+/="), "eyJ0%2B%2F%3D");
        let custom = serde_json::json!({"value": "1234567890123456"});
        assert_eq!(text(Some(&custom)).as_deref(), Some("1234567890123456"));
    }
}
