//! Salesforce leads through the REST API: every Lead Status change from
//! `LeadHistory` (field history tracking on Lead Status), and each lead's
//! creation (its `created` history row) at the status it was created with,
//! with the lead's contact fields read through the `Lead` relationship.
//!
//! Authentication is OAuth 2.0's client-credentials flow (a connected app
//! with an API-enabled integration user): `POST {login_url}/services/oauth2/token`
//! gives an access token and the org's `instance_url`; a token Salesforce
//! no longer accepts (401 `INVALID_SESSION_ID`) is replaced once and the
//! request repeated.
//!
//! The cursor is the last history row read: its `CreatedDate` (ms) and
//! record ID. The next poll asks for rows after it, ordered by both, so
//! rows created in the same second are neither lost nor read twice. Every
//! value put into SOQL goes through [`soql_string`] or [`soql_datetime`];
//! the cursor's ID is checked to be a record ID first.

use super::http::{percent_encode, CrmError, Http};
use crate::sql::Poll;
use crate::SourceRow;
use leadsignal_core::{Origin, Scalar, Sha256, StageChangeRecord};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;

/// History rows per poll (one query, several pages).
const ROWS: usize = 2000;

/// A Salesforce org's leads, polled.
pub struct SalesforceSource {
    /// The source's name (positions and the stored cursor use it).
    pub name: String,
    /// `https://login.salesforce.com` (or `https://test.salesforce.com`,
    /// a My Domain URL, an emulator).
    pub login_url: String,
    /// The connected app's consumer key.
    pub client_id: String,
    client_secret: String,
    /// `v62.0` unless configured.
    pub api_version: String,
    /// The Lead field holding Meta's lead ID (`Meta_Lead_ID__c`).
    pub lead_id_field: String,
    /// Also read opportunity stage changes of converted leads.
    pub opportunities: bool,
    http: Http,
    session: Mutex<Option<Session>>,
}

#[derive(Clone)]
struct Session {
    token: String,
    instance_url: String,
}

impl std::fmt::Debug for SalesforceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceSource")
            .field("name", &self.name)
            .field("login_url", &self.login_url)
            .field("client_secret", &"***")
            .finish()
    }
}

/// `s` as a SOQL string literal: quoted, with `\` and `'` escaped.
pub fn soql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A SOQL date-time literal (UTC, unquoted) for `ms`.
pub fn soql_datetime(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A field name usable in SOQL (letters, digits, `_`, starting with a
/// letter): `lead_id_field` comes from configuration.
fn soql_field(name: &str) -> Option<&str> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then_some(name)
}

/// Whether `id` looks like a Salesforce record ID (15 or 18 characters).
fn record_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Milliseconds of Salesforce's `2026-11-20T17:00:00.000+0000`.
fn sf_millis(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(t))
        .ok()
        .map(|d| d.timestamp_millis())
}

/// RFC 3339 (what the record reads) of Salesforce's time format.
fn rfc3339(t: &str) -> Option<String> {
    sf_millis(t).map(|ms| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    })
}

impl SalesforceSource {
    /// A source for the connected app `client_id`/`client_secret`.
    pub fn new(
        name: &str,
        login_url: &str,
        client_id: &str,
        client_secret: &str,
        api_version: &str,
        lead_id_field: &str,
    ) -> SalesforceSource {
        SalesforceSource {
            name: name.to_string(),
            login_url: login_url.trim_end_matches('/').to_string(),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            api_version: api_version.to_string(),
            lead_id_field: lead_id_field.to_string(),
            opportunities: false,
            http: Http::new(name, vec![client_secret.to_string()]),
            session: Mutex::new(None),
        }
    }

    /// The same source, also reading the stage changes of opportunities
    /// converted from leads (`objects = ["Lead", "Opportunity"]`).
    pub fn with_opportunities(mut self) -> SalesforceSource {
        self.opportunities = true;
        self
    }

    /// Checks the connected app's credentials by logging in, reading
    /// nothing: `leadsignal doctor`.
    pub fn check(&self) -> Result<(), CrmError> {
        self.log_in().map(drop)
    }

    /// A new access token (client-credentials flow).
    fn log_in(&self) -> Result<Session, CrmError> {
        let what = "POST /services/oauth2/token";
        let url = format!("{}/services/oauth2/token", self.login_url);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
        ];
        let a = self
            .http
            .send(what, |agent| agent.post(&url).send_form(form))?;
        if a.status != 200 {
            return Err(self.http.auth(
                &a,
                "check client_id and client_secret (a connected app with the client credentials flow enabled and a Run As user with API access)",
            ));
        }
        let field = |k: &str| a.body.get(k).and_then(Value::as_str).map(str::to_string);
        match (field("access_token"), field("instance_url")) {
            (Some(token), Some(instance_url)) => Ok(Session {
                token,
                instance_url: instance_url.trim_end_matches('/').to_string(),
            }),
            _ => Err(self
                .http
                .unexpected(what, "no access_token or instance_url")),
        }
    }

    fn session(&self) -> Result<Session, CrmError> {
        let mut s = self.session.lock().expect("session lock");
        if let Some(s) = &*s {
            return Ok(s.clone());
        }
        let new = self.log_in()?;
        *s = Some(new.clone());
        Ok(new)
    }

    /// `GET` of a path under the instance (a query, or a query's next
    /// page), logging in again once if the token was refused.
    fn get(&self, path_and_query: &str) -> Result<Value, CrmError> {
        let what = "GET /services/data/query";
        for attempt in 0..2 {
            let s = self.session()?;
            let url = format!("{}{path_and_query}", s.instance_url);
            let auth = format!("Bearer {}", s.token);
            let a = self.http.send(what, |agent| {
                agent.get(&url).header("Authorization", &auth).call()
            })?;
            let code = a
                .body
                .pointer("/0/errorCode")
                .and_then(Value::as_str)
                .unwrap_or("");
            match (a.status, code) {
                (200, _) => return Ok(a.body),
                (401, _) if attempt == 0 => {
                    tracing::info!(source = %self.name, "Salesforce refused the session: logging in again");
                    *self.session.lock().expect("session lock") = None;
                }
                (401, _) => return Err(self.http.auth(
                    &a,
                    "the integration user needs API access and read access to Lead and LeadHistory",
                )),
                (403, "REQUEST_LIMIT_EXCEEDED") => {
                    return Err(CrmError::RateLimited {
                        source_name: self.name.clone(),
                        attempts: 1,
                    })
                }
                _ => return Err(self.http.refused(what, &a)),
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Every record of a SOQL query, following `nextRecordsUrl`.
    fn query(&self, soql: &str) -> Result<Vec<Value>, CrmError> {
        let mut body = self.get(&format!(
            "/services/data/{}/query?q={}",
            self.api_version,
            percent_encode(soql)
        ))?;
        let mut out = Vec::new();
        loop {
            let records = body
                .get("records")
                .and_then(Value::as_array)
                .ok_or_else(|| self.http.unexpected("query", "no `records` array"))?;
            out.extend(records.iter().cloned());
            match body.get("nextRecordsUrl").and_then(Value::as_str) {
                Some(next) if body.get("done") != Some(&Value::Bool(true)) => {
                    body = self.get(next)?;
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// Reads the stage changes after `cursor`, at most about `limit` rows
    /// per object. The cursor is `<ms>` or `<ms>:<Id>` of the last
    /// `LeadHistory` row read; with opportunities, that and the same for
    /// `OpportunityHistory`, joined by `|`.
    pub fn poll(&self, cursor: &str, limit: usize) -> Result<Poll, CrmError> {
        let (lead_cursor, opp_cursor) = cursor.split_once('|').unwrap_or((cursor, cursor));
        let (mut rows, lead_next) = self.poll_leads(lead_cursor, limit)?;
        if !self.opportunities {
            return Ok(Poll {
                rows,
                cursor: lead_next,
            });
        }
        let (opp_rows, opp_next) = self.poll_opportunities(opp_cursor, limit)?;
        let moved = lead_next.is_some() || opp_next.is_some();
        let cursor = moved.then(|| {
            format!(
                "{}|{}",
                lead_next.as_deref().unwrap_or(lead_cursor),
                opp_next.as_deref().unwrap_or(opp_cursor)
            )
        });
        rows.extend(opp_rows);
        for (i, row) in rows.iter_mut().enumerate() {
            row.origin = Origin::new(&self.name, i as u64 + 1);
        }
        Ok(Poll { rows, cursor })
    }

    /// The SOQL condition "after the cursor" (`<ms>` or `<ms>:<Id>`).
    fn after(&self, cursor: &str) -> Result<String, CrmError> {
        let (ms, id) = cursor.split_once(':').unwrap_or((cursor, ""));
        let ms: i64 = ms.trim().parse().unwrap_or(0);
        if id.is_empty() {
            Ok(format!("CreatedDate > {}", soql_datetime(ms)))
        } else if record_id(id) {
            Ok(format!(
                "(CreatedDate > {t} OR (CreatedDate = {t} AND Id > {id}))",
                t = soql_datetime(ms),
                id = soql_string(id)
            ))
        } else {
            Err(self.http.unexpected(
                "the stored cursor",
                "not a Salesforce record ID after the time",
            ))
        }
    }

    /// Opportunity stage changes (`OpportunityHistory`) of opportunities
    /// converted from a lead that carries Meta's lead ID, as that lead's.
    fn poll_opportunities(
        &self,
        cursor: &str,
        limit: usize,
    ) -> Result<(Vec<SourceRow>, Option<String>), CrmError> {
        let after = self.after(cursor)?;
        let lead_id_field = soql_field(&self.lead_id_field).ok_or_else(|| {
            self.http
                .unexpected("lead_id_field", "not a Salesforce field name")
        })?;
        let history = self.query(&format!(
            "SELECT Id, OpportunityId, StageName, CreatedDate FROM OpportunityHistory \
             WHERE {after} ORDER BY CreatedDate, Id LIMIT {}",
            limit.clamp(1, ROWS)
        ))?;
        let mut opps: Vec<&str> = history
            .iter()
            .filter_map(|r| r.get("OpportunityId").and_then(Value::as_str))
            .filter(|id| record_id(id))
            .collect();
        opps.sort_unstable();
        opps.dedup();
        let mut leads: HashMap<String, Value> = HashMap::new();
        for chunk in opps.chunks(200) {
            let ids: Vec<String> = chunk.iter().map(|id| soql_string(id)).collect();
            for lead in self.query(&format!(
                "SELECT Id, ConvertedOpportunityId, Status, CreatedDate, Email, Phone, MobilePhone, \
                 FirstName, LastName, City, State, PostalCode, Country, {lead_id_field} FROM Lead \
                 WHERE IsConverted = true AND ConvertedOpportunityId IN ({})",
                ids.join(", ")
            ))? {
                if let Some(opp) = lead.get("ConvertedOpportunityId").and_then(Value::as_str) {
                    leads.insert(opp.to_string(), lead.clone());
                }
            }
        }
        opportunity_rows(&self.name, lead_id_field, &history, &leads)
            .map_err(|m| self.http.unexpected("query", m))
    }

    /// Lead status changes and creations (`LeadHistory`).
    fn poll_leads(
        &self,
        cursor: &str,
        limit: usize,
    ) -> Result<(Vec<SourceRow>, Option<String>), CrmError> {
        let after = self.after(cursor)?;
        let lead_id_field = soql_field(&self.lead_id_field).ok_or_else(|| {
            self.http
                .unexpected("lead_id_field", "not a Salesforce field name")
        })?;
        let soql = format!(
            "SELECT Id, LeadId, Field, OldValue, NewValue, CreatedDate, Lead.Status, Lead.CreatedDate, \
             Lead.Email, Lead.Phone, Lead.MobilePhone, Lead.FirstName, Lead.LastName, Lead.City, \
             Lead.State, Lead.PostalCode, Lead.Country, Lead.{lead_id_field} \
             FROM LeadHistory WHERE Field IN ('Status', 'created') AND {after} \
             ORDER BY CreatedDate, Id LIMIT {}",
            limit.clamp(1, ROWS)
        );
        let records = self.query(&soql)?;
        // A lead's first status: the old value of its first status change,
        // or (never changed) its status now.
        let created: Vec<&str> = records
            .iter()
            .filter(|r| r.get("Field").and_then(Value::as_str) == Some("created"))
            .filter_map(|r| r.get("LeadId").and_then(Value::as_str))
            .filter(|id| record_id(id))
            .collect();
        let mut first_status: HashMap<String, String> = HashMap::new();
        for chunk in created.chunks(200) {
            let ids: Vec<String> = chunk.iter().map(|id| soql_string(id)).collect();
            let soql = format!(
                "SELECT LeadId, OldValue, CreatedDate FROM LeadHistory WHERE Field = 'Status' \
                 AND LeadId IN ({}) ORDER BY CreatedDate, Id",
                ids.join(", ")
            );
            for r in self.query(&soql)? {
                if let (Some(lead), Some(old)) = (
                    r.get("LeadId").and_then(Value::as_str),
                    r.get("OldValue").and_then(Value::as_str),
                ) {
                    first_status
                        .entry(lead.to_string())
                        .or_insert_with(|| old.to_string());
                }
            }
        }
        history_rows(&self.name, lead_id_field, &records, &first_status)
            .map_err(|m| self.http.unexpected("query", m))
    }
}

/// The record of a lead's stage change: the lead's fields (a `Lead`
/// relationship or record), its record ID, the stage and the time.
fn lead_record(
    lead: &Value,
    lead_id_field: &str,
    crm_id: Option<String>,
    stage: Option<String>,
    changed_at: &str,
) -> StageChangeRecord {
    let field = |k: &str| {
        lead.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
            .map(str::to_string)
    };
    let text = |v: Option<String>| v.map(Scalar::Text);
    StageChangeRecord {
        lead_id: text(field(lead_id_field)),
        crm_id: text(crm_id),
        stage: text(stage),
        changed_at: text(rfc3339(changed_at)),
        lead_created_at: text(field("CreatedDate").and_then(|t| rfc3339(&t))),
        email: text(field("Email")),
        phone: text(field("Phone").or_else(|| field("MobilePhone"))),
        other_phones: field("Phone")
            .and(field("MobilePhone"))
            .into_iter()
            .collect(),
        first_name: text(field("FirstName")),
        last_name: text(field("LastName")),
        city: text(field("City")),
        state: text(field("State")),
        zip: text(field("PostalCode")),
        country: text(field("Country")),
        ..StageChangeRecord::default()
    }
}

/// The rows of `LeadHistory` records (with their `Lead` relationship
/// fields), and the cursor after the last; `first_status` gives a created
/// lead's first status when it has changed since. Pure: what Salesforce's
/// answers become (`fuzz/fuzz_targets/crm_answers.rs`).
pub fn history_rows(
    source: &str,
    lead_id_field: &str,
    records: &[Value],
    first_status: &HashMap<String, String>,
) -> Result<(Vec<SourceRow>, Option<String>), String> {
    let mut rows = Vec::with_capacity(records.len());
    let mut last = None;
    for (i, r) in records.iter().enumerate() {
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let id = s(r.get("Id")).unwrap_or_default();
        let created_at = s(r.get("CreatedDate")).unwrap_or_default();
        let Some(at_ms) = sf_millis(&created_at) else {
            return Err(format!("history row {id}: no readable CreatedDate"));
        };
        last = Some(format!("{at_ms}:{id}"));
        let lead = r.get("Lead").unwrap_or(&Value::Null);
        let field = |k: &str| s(lead.get(k)).filter(|v| !v.trim().is_empty());
        let lead_id_sf = s(r.get("LeadId")).unwrap_or_default();
        let stage = match s(r.get("Field")).as_deref() {
            Some("Status") => s(r.get("NewValue")),
            _ => first_status
                .get(&lead_id_sf)
                .cloned()
                .or_else(|| field("Status")),
        };
        let record = lead_record(
            lead,
            lead_id_field,
            Some(lead_id_sf.clone()),
            stage,
            &created_at,
        );
        rows.push(SourceRow {
            origin: Origin::new(source, i as u64 + 1),
            fingerprint: Sha256::of(&format!("salesforce LeadHistory {id}")),
            record: Ok(record),
            warnings: Vec::new(),
        });
    }
    Ok((rows, last))
}

/// The rows of `OpportunityHistory` records whose opportunity was
/// converted from a lead in `leads` (by opportunity ID) that carries
/// Meta's lead ID: the stage change as that lead's, with its data; other
/// opportunities are no lead of Meta's and are left out. Returns the cursor
/// after the last record read. Pure (`fuzz/fuzz_targets/crm_answers.rs`).
pub fn opportunity_rows(
    source: &str,
    lead_id_field: &str,
    history: &[Value],
    leads: &HashMap<String, Value>,
) -> Result<(Vec<SourceRow>, Option<String>), String> {
    let mut rows = Vec::new();
    let mut last = None;
    for r in history {
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let id = s(r.get("Id")).unwrap_or_default();
        let created_at = s(r.get("CreatedDate")).unwrap_or_default();
        let Some(at_ms) = sf_millis(&created_at) else {
            return Err(format!(
                "opportunity history row {id}: no readable CreatedDate"
            ));
        };
        last = Some(format!("{at_ms}:{id}"));
        let Some(lead) = s(r.get("OpportunityId")).and_then(|o| leads.get(&o)) else {
            continue;
        };
        let field = |k: &str| s(lead.get(k)).filter(|v| !v.trim().is_empty());
        let Some(meta_lead) = field(lead_id_field) else {
            continue;
        };
        let mut record = lead_record(
            lead,
            lead_id_field,
            field("Id"),
            s(r.get("StageName")),
            &created_at,
        );
        record.lead_id = Some(Scalar::Text(meta_lead));
        rows.push(SourceRow {
            origin: Origin::new(source, rows.len() as u64 + 1),
            fingerprint: Sha256::of(&format!("salesforce OpportunityHistory {id}")),
            record: Ok(record),
            warnings: Vec::new(),
        });
    }
    Ok((rows, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soql_literals_are_escaped_never_spliced() {
        assert_eq!(soql_string("O'Brien"), r"'O\'Brien'");
        assert_eq!(soql_string(r"a\' OR Id != '"), r"'a\\\' OR Id != \''");
        assert_eq!(soql_datetime(1_795_194_000_123), "2026-11-20T17:00:00.123Z");
        assert_eq!(soql_field("Meta_Lead_ID__c"), Some("Meta_Lead_ID__c"));
        assert_eq!(soql_field("Id FROM User"), None);
        assert!(record_id("00Q5g00000AbCdEEAZ") && !record_id("00Q' OR '1'='1"));
    }

    /// The literal's value back, or `None` when it is not exactly one
    /// quoted literal (an unescaped quote inside).
    fn unquote(lit: &str) -> Option<String> {
        let inner = lit.strip_prefix('\'')?.strip_suffix('\'')?;
        let (mut out, mut chars) = (String::new(), inner.chars());
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(match chars.next()? {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    c => c,
                }),
                '\'' => return None,
                c => out.push(c),
            }
        }
        Some(out)
    }

    proptest::proptest! {
        /// Whatever the text (a cursor, a CRM value, an attack), it becomes
        /// one SOQL string literal whose value is the text.
        #[test]
        fn any_text_is_one_soql_literal(s in "\\PC*|[\\\\'\\n OR=()]*") {
            let lit = soql_string(&s);
            proptest::prop_assert_eq!(unquote(&lit), Some(s));
        }
    }

    #[test]
    fn salesforce_times() {
        assert_eq!(
            sf_millis("2026-11-20T17:00:00.000+0000"),
            Some(1_795_194_000_000)
        );
        assert_eq!(
            rfc3339("2026-11-20T18:00:00.000+0100").as_deref(),
            Some("2026-11-20T17:00:00.000Z")
        );
        assert_eq!(percent_encode("a b'"), "a%20b%27");
    }
}
