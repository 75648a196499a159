//! What a CRM API answers (any JSON): a HubSpot contact, Salesforce
//! `LeadHistory` records, a Pipedrive deal with its change log and person
//! become rows or a clear error, never a panic; every row becomes a stage
//! change or violations, and what does is prepared.
#![no_main]
use leadsignal_core::prepare;
use leadsignal_core::sample::config;
use leadsignal_sources::crm::{hubspot, pipedrive, salesforce};
use leadsignal_sources::SourceRow;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    let mut rows: Vec<SourceRow> = Vec::new();
    let props = v.get("properties").unwrap_or(&v);
    let labels: HashMap<String, String> = [("lead".to_string(), "Lead".to_string())].into();
    hubspot::contact_rows("hubspot", Some("facebook_lead_id"), &labels, "51", props, &mut rows);
    let stages = [("appointmentscheduled".to_string(), "Appointment Scheduled".to_string()), ("closedwon".to_string(), "Closed Won".to_string())];
    let contact = v.get("contact").unwrap_or(&Value::Null);
    hubspot::deal_rows("hubspot", Some("facebook_lead_id"), "9001", props, contact, &stages, &mut rows);
    let records: Vec<Value> = match v.get("records") {
        Some(Value::Array(a)) => a.clone(),
        _ => vec![v.clone()],
    };
    let first: HashMap<String, String> = [("00Q5g0000000001EAA".to_string(), "Open".to_string())].into();
    if let Ok((more, _cursor)) = salesforce::history_rows("salesforce", "Meta_Lead_ID__c", &records, &first) {
        rows.extend(more);
    }
    let leads: HashMap<String, Value> = v
        .get("lead")
        .map(|l| ("0065g0000000004AAA".to_string(), l.clone()))
        .into_iter()
        .collect();
    if let Ok((more, _cursor)) = salesforce::opportunity_rows("salesforce", "Meta_Lead_ID__c", &records, &leads) {
        rows.extend(more);
    }
    let flow: Vec<Value> = match v.get("data") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    let pd_stages: HashMap<String, String> = [("1".to_string(), "Lead In".to_string())].into();
    let person = v.get("person").cloned().unwrap_or(Value::Null);
    let _ = pipedrive::deal_rows("pipedrive", Some("lead"), "7", &v, &flow, &person, &pd_stages, &mut rows);
    for row in rows {
        if let Ok(sc) = row.into_stage_change() {
            let _ = prepare(&sc, &config(), 1_795_262_400);
        }
    }
});
