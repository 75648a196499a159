//! HubSpot contacts through the CRM API v3: every contact modified since
//! the cursor (`POST /crm/v3/objects/contacts/search` on
//! `lastmodifieddate`, ascending, 100 a page), and for each, one stage
//! change per lifecycle stage it has a date for
//! (`hs_lifecyclestage_<stage>_date`): HubSpot keeps the date each stage was
//! reached, so stages reached between two polls are all read, each at its
//! own time.
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

/// Contacts per search page (HubSpot's documented maximum for this use).
const PAGE: usize = 100;

/// The search API's cap on `after` (results per query).
const SEARCH_CAP: usize = 10_000;

/// A HubSpot account's contacts, polled.
pub struct HubspotSource {
    /// The source's name (positions and the stored cursor use it).
    pub name: String,
    /// `https://api.hubapi.com`, or an emulator's address.
    pub base_url: String,
    /// The private app's access token (sent as `Authorization: Bearer`).
    pub token: String,
    /// The contact property holding Meta's lead ID, if any.
    pub lead_id_property: Option<String>,
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
            http: Http::new(name, vec![token.to_string()]),
        }
    }

    /// The properties asked for.
    fn properties(&self) -> Vec<String> {
        let mut p: Vec<String> = [
            "email",
            "phone",
            "mobilephone",
            "firstname",
            "lastname",
            "city",
            "state",
            "zip",
            "country",
            "createdate",
            "lastmodifieddate",
        ]
        .iter()
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

    /// Reads the stage changes of contacts modified after `cursor` (about
    /// `limit` rows; a contact's rows are never split between polls).
    /// The cursor is a millisecond time, optionally with the contact IDs
    /// already read at it (see the module documentation).
    pub fn poll(&self, cursor: &str, limit: usize) -> Result<Poll, CrmError> {
        let start = Cursor::parse(cursor);
        let what = "POST /crm/v3/objects/contacts/search";
        let url = format!("{}/crm/v3/objects/contacts/search", self.base_url);
        let auth = format!("Bearer {}", self.token);
        let properties = self.properties();
        let mut rows: Vec<SourceRow> = Vec::new();
        let mut last: Option<Cursor> = None;
        let mut after = 0usize;
        loop {
            let body = json!({
                "filterGroups": [{"filters": [{
                    "propertyName": "lastmodifieddate",
                    "operator": "GTE",
                    "value": start.ms.to_string(),
                }]}],
                "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                "properties": properties,
                "limit": PAGE,
                "after": after.to_string(),
            });
            let a = self.http.send(what, |agent| {
                agent
                    .post(&url)
                    .header("Authorization", &auth)
                    .send_json(&body)
            })?;
            match a.status {
                200 => {}
                401 | 403 => {
                    return Err(self.http.auth(
                        &a,
                        "check the private app's access token (`token`) and its scope crm.objects.contacts.read",
                    ))
                }
                _ => return Err(self.http.refused(what, &a)),
            }
            let results = a
                .body
                .get("results")
                .and_then(Value::as_array)
                .ok_or_else(|| self.http.unexpected(what, "no `results` array"))?;
            for contact in results {
                let id = text(contact.get("id"))
                    .ok_or_else(|| self.http.unexpected(what, "a result without an `id`"))?;
                let props = contact.get("properties").unwrap_or(&Value::Null);
                let ms = text(props.get("lastmodifieddate"))
                    .and_then(|t| millis(&t))
                    .ok_or_else(|| {
                        self.http
                            .unexpected(what, format!("contact {id}: no readable lastmodifieddate"))
                    })?;
                if ms == start.ms && start.seen.contains(&id) {
                    continue;
                }
                contact_rows(
                    &self.name,
                    self.lead_id_property.as_deref(),
                    &id,
                    props,
                    &mut rows,
                );
                match &mut last {
                    Some(c) if c.ms == ms => c.seen.push(id),
                    _ => last = Some(Cursor { ms, seen: vec![id] }),
                }
            }
            let next = a
                .body
                .pointer("/paging/next/after")
                .and_then(|v| text(Some(v)))
                .and_then(|t| t.parse::<usize>().ok());
            match next {
                Some(n) if rows.len() < limit && n + PAGE <= SEARCH_CAP => after = n,
                _ => break,
            }
        }
        // Contacts read at the start time carry over the IDs seen before.
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
/// `properties`) has a date for, from source `source`. Pure: what a search
/// answer becomes (`fuzz/fuzz_targets/crm_answers.rs`).
pub fn contact_rows(
    source: &str,
    lead_id_property: Option<&str>,
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
        record.stage = Some(Scalar::Text(stage.to_string()));
        record.changed_at = Some(Scalar::Text(at.clone()));
        rows.push(SourceRow {
            origin: Origin::new(source, 0),
            fingerprint: Sha256::of(&format!("hubspot contact {id} {stage} {at}")),
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
