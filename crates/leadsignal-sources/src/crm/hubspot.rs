//! HubSpot through the CRM API v3. Contacts: every contact modified since
//! the cursor (`POST /crm/v3/objects/contacts/search` on
//! `lastmodifieddate`, ascending, 100 a page), and for each, one stage
//! change per lifecycle stage it has a date for
//! (`hs_lifecyclestage_<stage>_date`), named by the account's label
//! (`GET /crm/v3/properties/contacts/lifecyclestage`): HubSpot keeps the
//! date each stage was reached, so stages reached between two polls are all
//! read, each at its own time. Deals (`object = "deals"`): the same search on
//! `hs_lastmodifieddate`, one stage change per pipeline stage entered
//! (`hs_date_entered_<stageId>`, named by `GET /crm/v3/pipelines/deals`),
//! with the first associated contact's data (`POST
//! /crm/v4/associations/deals/contacts/batch/read`, then `POST
//! /crm/v3/objects/contacts/batch/read`).
//!
//! The cursor is the last modification time read (milliseconds) and the
//! IDs of the contacts read at that very millisecond: the next poll asks
//! for `lastmodifieddate >= that time` and skips those, so contacts
//! modified in the same millisecond are neither lost nor read twice. The
//! search API stops at 10,000 results per query; a poll stops before that
//! and the next one queries again from the last time read.

use super::http::{CrmError, Http};
use crate::mapping::HUBSPOT_STAGES;
use crate::sql::Poll;
use crate::SourceRow;
use leadsignal_core::{Origin, Scalar, Sha256, StageChangeRecord};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The contact properties a stage change takes its contact data from.
const CONTACT_FIELDS: [&str; 9] = [
    "email",
    "phone",
    "mobilephone",
    "firstname",
    "lastname",
    "city",
    "state",
    "zip",
    "country",
];

/// Contacts per search page (HubSpot's documented maximum for this use).
const PAGE: usize = 100;

/// The search API's cap on `after` (results per query).
const SEARCH_CAP: usize = 10_000;

/// What a HubSpot source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HubspotObject {
    /// Contacts: one stage change per lifecycle stage date.
    #[default]
    Contacts,
    /// Deals: one stage change per pipeline stage the deal entered
    /// (`hs_date_entered_<stageId>`), named by the pipeline's labels, with
    /// the first associated contact's e-mail and phone.
    Deals,
}

/// A HubSpot account's contacts or deals, polled.
pub struct HubspotSource {
    /// The source's name (positions and the stored cursor use it).
    pub name: String,
    /// `https://api.hubapi.com`, or an emulator's address.
    pub base_url: String,
    /// The private app's access token (sent as `Authorization: Bearer`).
    pub token: String,
    /// The property (of the contact, or of the deal) holding Meta's lead
    /// ID, if any.
    pub lead_id_property: Option<String>,
    /// Contacts (default) or deals.
    pub object: HubspotObject,
    http: Http,
}

impl std::fmt::Debug for HubspotSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubspotSource")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("token", &"***")
            .finish()
    }
}

/// Where a poll starts: a time and the contacts already read at it.
#[derive(Debug, Default, PartialEq)]
struct Cursor {
    ms: i64,
    seen: Vec<String>,
}

impl Cursor {
    /// `"<ms>"` or `"<ms>:<id>,<id>"`; anything else is time 0.
    fn parse(s: &str) -> Cursor {
        let (ms, ids) = s.split_once(':').unwrap_or((s, ""));
        Cursor {
            ms: ms.trim().parse().unwrap_or(0),
            seen: ids
                .split(',')
                .filter(|i| !i.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    fn render(&self) -> String {
        if self.seen.is_empty() {
            self.ms.to_string()
        } else {
            format!("{}:{}", self.ms, self.seen.join(","))
        }
    }
}

impl HubspotSource {
    /// A source reading `base_url` with `token`.
    pub fn new(
        name: &str,
        base_url: &str,
        token: &str,
        lead_id_property: Option<String>,
    ) -> HubspotSource {
        HubspotSource {
            name: name.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            lead_id_property,
            object: HubspotObject::Contacts,
            http: Http::new(name, vec![token.to_string()]),
        }
    }

    /// The same source reading `object`.
    pub fn reading(mut self, object: HubspotObject) -> HubspotSource {
        self.object = object;
        self
    }

    /// The contact properties asked for.
    fn properties(&self) -> Vec<String> {
        let mut p: Vec<String> = CONTACT_FIELDS
            .iter()
            .chain([&"createdate", &"lastmodifieddate"])
            .map(|s| s.to_string())
            .collect();
        p.extend(
            HUBSPOT_STAGES
                .iter()
                .map(|(v, _)| format!("hs_lifecyclestage_{v}_date")),
        );
        p.extend(self.lead_id_property.clone());
        p
    }

    /// Reads the stage changes of contacts (or deals) modified after
    /// `cursor` (about `limit` rows; a record's rows are never split
    /// between polls). The cursor is a millisecond time, optionally with
    /// the IDs already read at it (see the module documentation).
    pub fn poll(&self, cursor: &str, limit: usize) -> Result<Poll, CrmError> {
        match self.object {
            HubspotObject::Contacts => {
                let labels = self.lifecycle_labels()?;
                self.search(
                    "contacts",
                    "lastmodifieddate",
                    self.properties(),
                    cursor,
                    limit,
                    |page, rows| {
                        for (id, props) in page {
                            contact_rows(
                                &self.name,
                                self.lead_id_property.as_deref(),
                                &labels,
                                id,
                                props,
                                rows,
                            );
                        }
                        Ok(())
                    },
                )
            }
            HubspotObject::Deals => {
                let stages = self.deal_stages()?;
                let mut props: Vec<String> = [
                    "dealname",
                    "dealstage",
                    "pipeline",
                    "createdate",
                    "closedate",
                    "hs_lastmodifieddate",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                props.extend(stages.iter().map(|(id, _)| format!("hs_date_entered_{id}")));
                props.extend(self.lead_id_property.clone());
                self.search(
                    "deals",
                    "hs_lastmodifieddate",
                    props,
                    cursor,
                    limit,
                    |page, rows| {
                        let contacts = self.deal_contacts(page)?;
                        for (id, props) in page {
                            let contact = contacts.get(id.as_str()).unwrap_or(&Value::Null);
                            deal_rows(
                                &self.name,
                                self.lead_id_property.as_deref(),
                                id,
                                props,
                                contact,
                                &stages,
                                rows,
                            );
                        }
                        Ok(())
                    },
                )
            }
        }
    }

    fn post(&self, what: &str, path: &str, body: &Value, scope: &str) -> Result<Value, CrmError> {
        let url = format!("{}{path}", self.base_url);
        let auth = format!("Bearer {}", self.token);
        let a = self.http.send(what, |agent| {
            agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(body)
        })?;
        match a.status {
            200 | 207 => Ok(a.body),
            401 | 403 => Err(self.http.auth(
                &a,
                &format!("check the private app's access token (`token`) and its scopes ({scope})"),
            )),
            _ => Err(self.http.refused(what, &a)),
        }
    }

    /// Checks the token with one read (the lifecycle stages, or the deal
    /// pipelines), storing nothing: `leadsignal doctor`.
    pub fn check(&self) -> Result<(), CrmError> {
        match self.object {
            HubspotObject::Contacts => self.lifecycle_labels().map(drop),
            HubspotObject::Deals => self.deal_stages().map(drop),
        }
    }

    /// A `GET` of `path` as JSON; `scope` names what the token needs.
    fn get(&self, what: &str, path: &str, scope: &str) -> Result<Value, CrmError> {
        let url = format!("{}{path}", self.base_url);
        let auth = format!("Bearer {}", self.token);
        let a = self.http.send(what, |agent| {
            agent.get(&url).header("Authorization", &auth).call()
        })?;
        match a.status {
            200 => Ok(a.body),
            401 | 403 => Err(self.http.auth(
                &a,
                &format!("check the private app's access token (`token`) and its scope {scope}"),
            )),
            _ => Err(self.http.refused(what, &a)),
        }
    }

    /// The account's labels of the lifecycle stages (internal name →
    /// label), from the `lifecyclestage` property's options.
    fn lifecycle_labels(&self) -> Result<HashMap<String, String>, CrmError> {
        let body = self.get(
            "GET /crm/v3/properties/contacts/lifecyclestage",
            "/crm/v3/properties/contacts/lifecyclestage",
            "crm.objects.contacts.read",
        )?;
        Ok(body
            .get("options")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| Some((text(o.get("value"))?, text(o.get("label"))?)))
            .collect())
    }

    /// Every deal pipeline's stages, in order: (ID, label).
    fn deal_stages(&self) -> Result<Vec<(String, String)>, CrmError> {
        let body = self.get(
            "GET /crm/v3/pipelines/deals",
            "/crm/v3/pipelines/deals",
            "crm.objects.deals.read",
        )?;
        let mut out = Vec::new();
        for p in body
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for st in p
                .get("stages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(id), Some(label)) = (text(st.get("id")), text(st.get("label"))) {
                    out.push((id, label));
                }
            }
        }
        Ok(out)
    }

    /// The first associated contact's properties of each deal of `page`.
    fn deal_contacts(&self, page: &[(String, Value)]) -> Result<HashMap<String, Value>, CrmError> {
        if page.is_empty() {
            return Ok(HashMap::new());
        }
        let scope = "crm.objects.deals.read, crm.objects.contacts.read";
        let inputs: Vec<Value> = page.iter().map(|(id, _)| json!({"id": id})).collect();
        let assoc = self.post(
            "POST /crm/v4/associations/deals/contacts/batch/read",
            "/crm/v4/associations/deals/contacts/batch/read",
            &json!({"inputs": inputs}),
            scope,
        )?;
        let mut first: HashMap<String, String> = HashMap::new();
        for r in assoc
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(deal), Some(contact)) = (
                text(r.pointer("/from/id")),
                text(r.pointer("/to/0/toObjectId")),
            ) else {
                continue;
            };
            first.insert(deal, contact);
        }
        if first.is_empty() {
            return Ok(HashMap::new());
        }
        let mut ids: Vec<&String> = first.values().collect();
        ids.sort();
        ids.dedup();
        let read = self.post(
            "POST /crm/v3/objects/contacts/batch/read",
            "/crm/v3/objects/contacts/batch/read",
            &json!({
                "properties": CONTACT_FIELDS,
                "inputs": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
            }),
            scope,
        )?;
        let by_id: HashMap<String, Value> = read
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| Some((text(c.get("id"))?, c.get("properties")?.clone())))
            .collect();
        Ok(first
            .into_iter()
            .filter_map(|(deal, contact)| Some((deal, by_id.get(&contact)?.clone())))
            .collect())
    }

    /// The search loop: records of `object` modified at or after the
    /// cursor's time, ascending, page by page; `page_rows` turns each page's
    /// new records (ID, properties) into rows.
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        object: &str,
        modified: &str,
        properties: Vec<String>,
        cursor: &str,
        limit: usize,
        mut page_rows: impl FnMut(&[(String, Value)], &mut Vec<SourceRow>) -> Result<(), CrmError>,
    ) -> Result<Poll, CrmError> {
        let start = Cursor::parse(cursor);
        let what = format!("POST /crm/v3/objects/{object}/search");
        let path = format!("/crm/v3/objects/{object}/search");
        let scope = format!("crm.objects.{object}.read");
        let mut rows: Vec<SourceRow> = Vec::new();
        let mut last: Option<Cursor> = None;
        let mut after = 0usize;
        loop {
            let body = json!({
                "filterGroups": [{"filters": [{
                    "propertyName": modified,
                    "operator": "GTE",
                    "value": start.ms.to_string(),
                }]}],
                "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
                "properties": properties,
                "limit": PAGE,
                "after": after.to_string(),
            });
            let answer = self.post(&what, &path, &body, &scope)?;
            let results = answer
                .get("results")
                .and_then(Value::as_array)
                .ok_or_else(|| self.http.unexpected(&what, "no `results` array"))?;
            let mut page = Vec::with_capacity(results.len());
            for record in results {
                let id = text(record.get("id"))
                    .ok_or_else(|| self.http.unexpected(&what, "a result without an `id`"))?;
                let props = record.get("properties").cloned().unwrap_or(Value::Null);
                let ms = text(props.get(modified))
                    .and_then(|t| millis(&t))
                    .ok_or_else(|| {
                        self.http
                            .unexpected(&what, format!("record {id}: no readable {modified}"))
                    })?;
                if ms == start.ms && start.seen.contains(&id) {
                    continue;
                }
                match &mut last {
                    Some(c) if c.ms == ms => c.seen.push(id.clone()),
                    _ => {
                        last = Some(Cursor {
                            ms,
                            seen: vec![id.clone()],
                        })
                    }
                }
                page.push((id, props));
            }
            page_rows(&page, &mut rows)?;
            let next = answer
                .pointer("/paging/next/after")
                .and_then(|v| text(Some(v)))
                .and_then(|t| t.parse::<usize>().ok());
            match next {
                Some(n) if rows.len() < limit && n + PAGE <= SEARCH_CAP => after = n,
                _ => break,
            }
        }
        // Records read at the start time carry over the IDs seen before.
        let cursor = last.map(|mut c| {
            if c.ms == start.ms {
                let mut seen = start.seen;
                seen.append(&mut c.seen);
                c.seen = seen;
            }
            c.render()
        });
        for (i, row) in rows.iter_mut().enumerate() {
            row.origin = Origin::new(&self.name, i as u64 + 1);
        }
        Ok(Poll { rows, cursor })
    }
}

/// One row per lifecycle stage a contact (its ID and the search result's
/// `properties`) has a date for, from source `source`, named by the
/// account's label of the stage (`labels`; the internal name without one). Pure: what a search
/// answer becomes (`fuzz/fuzz_targets/crm_answers.rs`).
pub fn contact_rows(
    source: &str,
    lead_id_property: Option<&str>,
    labels: &HashMap<String, String>,
    id: &str,
    props: &Value,
    rows: &mut Vec<SourceRow>,
) {
    let prop = |name: &str| text(props.get(name));
    let s = |v: Option<String>| v.map(Scalar::Text);
    let base = StageChangeRecord {
        lead_id: s(lead_id_property.and_then(prop)),
        crm_id: Some(Scalar::Text(id.to_string())),
        lead_created_at: s(prop("createdate")),
        email: s(prop("email")),
        phone: s(prop("phone").or_else(|| prop("mobilephone"))),
        first_name: s(prop("firstname")),
        last_name: s(prop("lastname")),
        city: s(prop("city")),
        state: s(prop("state")),
        zip: s(prop("zip")),
        country: s(prop("country")),
        other_phones: prop("phone").and(prop("mobilephone")).into_iter().collect(),
        ..StageChangeRecord::default()
    };
    for (stage, _label) in HUBSPOT_STAGES {
        let Some(at) = prop(&format!("hs_lifecyclestage_{stage}_date")) else {
            continue;
        };
        let mut record = base.clone();
        let label = labels.get(*stage).map_or(*stage, String::as_str);
        record.stage = Some(Scalar::Text(label.to_string()));
        record.changed_at = Some(Scalar::Text(at.clone()));
        rows.push(SourceRow {
            origin: Origin::new(source, 0),
            fingerprint: Sha256::of(&format!("hubspot contact {id} {stage} {at}")),
            record: Ok(record),
            warnings: Vec::new(),
        });
    }
}

/// One row per pipeline stage a deal entered (`hs_date_entered_<id>`),
/// named by the stage's label, with its first contact's data. Pure: what
/// the search and batch answers become (`fuzz/fuzz_targets/crm_answers.rs`).
pub fn deal_rows(
    source: &str,
    lead_id_property: Option<&str>,
    id: &str,
    deal: &Value,
    contact: &Value,
    stages: &[(String, String)],
    rows: &mut Vec<SourceRow>,
) {
    let of = |v: &Value, name: &str| text(v.get(name));
    let s = |v: Option<String>| v.map(Scalar::Text);
    let lead_id = lead_id_property.and_then(|p| of(deal, p).or_else(|| of(contact, p)));
    let base = StageChangeRecord {
        lead_id: s(lead_id),
        crm_id: Some(Scalar::Text(id.to_string())),
        lead_created_at: s(of(deal, "createdate")),
        email: s(of(contact, "email")),
        phone: s(of(contact, "phone").or_else(|| of(contact, "mobilephone"))),
        first_name: s(of(contact, "firstname")),
        last_name: s(of(contact, "lastname")),
        city: s(of(contact, "city")),
        state: s(of(contact, "state")),
        zip: s(of(contact, "zip")),
        country: s(of(contact, "country")),
        other_phones: of(contact, "phone")
            .and(of(contact, "mobilephone"))
            .into_iter()
            .collect(),
        ..StageChangeRecord::default()
    };
    let mut entered: Vec<(i64, &str, String)> = stages
        .iter()
        .filter_map(|(sid, label)| {
            let at = of(deal, &format!("hs_date_entered_{sid}"))?;
            Some((millis(&at).unwrap_or(i64::MAX), label.as_str(), at))
        })
        .collect();
    entered.sort_by_key(|e| e.0);
    for (_, label, at) in entered {
        let mut record = base.clone();
        record.stage = Some(Scalar::Text(label.to_string()));
        record.changed_at = Some(Scalar::Text(at.clone()));
        rows.push(SourceRow {
            origin: Origin::new(source, 0),
            fingerprint: Sha256::of(&format!("hubspot deal {id} {label} {at}")),
            record: Ok(record),
            warnings: Vec::new(),
        });
    }
}

/// A property value as text (HubSpot sends strings; numbers accepted).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Milliseconds of an ISO 8601 time (`2026-11-20T17:00:00.123Z`) or of a
/// millisecond number.
fn millis(t: &str) -> Option<i64> {
    if let Ok(n) = t.parse::<i64>() {
        return Some(n);
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_tolerate_junk() {
        let c = Cursor::parse("1763658000123:51,52");
        assert_eq!(c.ms, 1_763_658_000_123);
        assert_eq!(c.seen, ["51", "52"]);
        assert_eq!(c.render(), "1763658000123:51,52");
        assert_eq!(Cursor::parse("17").render(), "17");
        assert_eq!(Cursor::parse("junk"), Cursor::default());
    }

    #[test]
    fn times_as_hubspot_writes_them() {
        assert_eq!(millis("2026-11-20T17:00:00.123Z"), Some(1_795_194_000_123));
        assert_eq!(millis("1795194000123"), Some(1_795_194_000_123));
        assert_eq!(millis("yesterday"), None);
    }
}
