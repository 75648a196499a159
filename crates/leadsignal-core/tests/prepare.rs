//! `prepare` end to end: the exact JSON Meta receives, drops, rules, profiles.

mod common;
use common::*;
use leadsignal_core::*;
use serde_json::json;

fn record(v: serde_json::Value) -> StageChange {
    serde_json::from_value::<StageChangeRecord>(v)
        .unwrap()
        .into_stage_change(Origin::new("test.jsonl", 7))
        .unwrap()
}

fn codes(r: Result<Prepared, Vec<Violation>>) -> Vec<&'static str> {
    r.unwrap_err().into_iter().map(|v| v.code).collect()
}

#[test]
fn design_record_becomes_the_exact_event() {
    let sc = record(json!({
        "lead_id": "1234567890123456", "crm_id": "HS-1001", "stage": "mql",
        "changed_at": NOW - 3600, "lead_created_at": NOW - 86_400,
        "email": "Jane.Doe@Example.com", "phone": "(650) 555-1212",
        "first_name": "Jane", "last_name": "Doe", "city": "Menlo Park",
        "state": "California", "zip": "94025-1234", "country": "United States",
        "date_of_birth": "1990-02-16", "gender": "female", "external_id": "HS-1001",
        "fbc": "fb.1.1700000000000.AbCdEf"
    }));
    let p = prepare(&sc, &config(), NOW).unwrap();
    assert!(p.dropped.is_empty(), "{:?}", p.dropped);
    let h = |s: &str| Sha256::of(s).to_string();
    let expected = json!({
        "event_name": "Marketing Qualified Lead",
        "event_time": NOW - 3600,
        "action_source": "system_generated",
        "event_id": event_id("2780431635496611", &LeadKey::LeadId(LeadId::parse("1234567890123456").unwrap()), "Marketing Qualified Lead", NOW - 3600),
        "user_data": {
            "lead_id": 1234567890123456u64,
            "em": [h("jane.doe@example.com")],
            "ph": [h("16505551212")],
            "fn": [h("jane")],
            "ln": [h("doe")],
            "ge": [h("f")],
            "db": [h("19900216")],
            "ct": [h("menlopark")],
            "st": [h("ca")],
            "zp": [h("94025")],
            "country": [h("us")],
            "external_id": [h("HS-1001")],
            "fbc": "fb.1.1700000000000.AbCdEf"
        },
        "custom_data": {"event_source": "crm", "lead_event_source": "HubSpot"}
    });
    assert_eq!(serde_json::to_value(&p.event).unwrap(), expected);
    // lead_id is a JSON integer in the text itself, not a string or a float.
    let text = serde_json::to_string(&p.event).unwrap();
    assert!(text.contains("\"lead_id\":1234567890123456,"), "{text}");
    assert_eq!(p.send_by, NOW - 3600 + 7 * 86_400 - 3600);
    assert_eq!(p.lifecycle, Lifecycle::MarketingQualifiedLead);
    // Round trip: what the outbox stores reads back identical.
    assert_eq!(serde_json::from_str::<ServerEvent>(&text).unwrap(), p.event);
}

#[test]
fn a_bad_field_is_dropped_with_a_reason_and_the_event_survives() {
    let sc = record(
        json!({"lead_id": "1234567890123456", "stage": "new", "changed_at": NOW - 60,
        "email": "not-an-email", "phone": "n/a", "fbc": "AbCdEf"}),
    );
    let p = prepare(&sc, &config(), NOW).unwrap();
    let rules: Vec<_> = p.dropped.iter().map(|d| (d.field, d.rule)).collect();
    assert_eq!(
        rules,
        [
            ("email", "em.invalid"),
            ("phone", "ph.invalid"),
            ("fbc", "fbc.format")
        ]
    );
    assert_eq!(p.event.user_data.keys(), ["lead_id"]);
    // No raw value in any message.
    for d in &p.dropped {
        assert!(
            !d.message.contains("not-an-email") && !d.message.contains("AbCdEf"),
            "{d}"
        );
    }
}

/// Click IDs pass through byte for byte, so only visible ASCII is one:
/// control characters (found by the fuzzer) and spaces are dropped.
#[test]
fn click_ids_with_control_characters_are_dropped() {
    for fbc in [
        "fb.1.1700000000000.Ab\u{1d}cd",
        "fb.1.1700000000000.Ab\u{0}",
        "fb.1.1700000000000.Ab cd",
        "fb.1.1700000000000.Abé",
    ] {
        let sc = record(
            json!({"lead_id": "1234567890123456", "stage": "new", "changed_at": NOW - 60, "fbc": fbc}),
        );
        let p = prepare(&sc, &config(), NOW).unwrap();
        assert_eq!(p.event.user_data.fbc, None, "{fbc:?}");
        assert_eq!(p.dropped[0].rule, "fbc.format");
    }
    let sc = record(
        json!({"lead_id": "1234567890123456", "stage": "new", "changed_at": NOW - 60,
        "fbc": "fb.1.1700000000000.IwAR2_x-Yz.AQ"}),
    );
    let p = prepare(&sc, &config(), NOW).unwrap();
    assert_eq!(
        p.event.user_data.fbc.as_deref(),
        Some("fb.1.1700000000000.IwAR2_x-Yz.AQ")
    );
}

#[test]
fn no_identifier_left_rejects_and_explains_the_drops() {
    let sc = record(json!({"stage": "new", "changed_at": NOW - 60, "email": "jane@"}));
    let v = prepare(&sc, &config(), NOW).unwrap_err();
    let codes: Vec<_> = v.iter().map(|v| v.code).collect();
    assert_eq!(codes, ["identifier.none", "em.invalid"]);
    assert_eq!(v[1].field, Some("email"));
}

#[test]
fn baseline_invalid_identifier_sets_are_rejected() {
    for fields in [
        json!({"city": "Paris", "country": "FR", "zip": "75008", "gender": "f"}),
        json!({"date_of_birth": "1990-01-01"}),
        json!({"first_name": "Jane", "gender": "f"}),
        json!({"last_name": "Doe"}),
    ] {
        let mut v = fields.clone();
        v["stage"] = json!("new");
        v["changed_at"] = json!(NOW - 60);
        assert_eq!(
            codes(prepare(&record(v), &config(), NOW)),
            ["identifier.baseline_invalid"],
            "{fields}"
        );
    }
    // First and last name together pass Meta's baseline rule, but match no
    // lead: rejected unless rules.match_keys says names will do.
    let names = record(
        json!({"stage": "new", "changed_at": NOW - 60, "first_name": "Jane", "last_name": "Doe", "external_id": "HS-1"}),
    );
    let v = prepare(&names, &config(), NOW).unwrap_err();
    assert_eq!(v[0].code, "identifier.unmatchable");
    assert!(
        v[0].message
            .contains("it has fn, ln, external_id but needs one of lead_id, em, ph, fbc"),
        "{}",
        v[0].message
    );
    let mut cfg = config();
    cfg.identity.match_keys |= key_bit("fn").unwrap();
    assert!(prepare(&names, &cfg, NOW).is_ok());
}

#[test]
fn a_mangled_lead_id_is_left_out_when_another_key_remains() {
    let sc = record(
        json!({"lead_id": "1.23457E+15", "stage": "new", "changed_at": NOW - 60, "email": "jane@example.com"}),
    );
    let p = prepare(&sc, &config(), NOW).unwrap();
    assert_eq!(p.event.user_data.lead_id, None);
    assert_eq!(p.dropped[0].rule, "lead_id.scientific_notation");
    assert_eq!(p.dropped[0].field, "lead_id");
    // Nothing else to match on: rejected for the lead ID alone.
    let sc = record(
        json!({"lead_id": "12345", "stage": "new", "changed_at": NOW - 60, "first_name": "Jane"}),
    );
    assert_eq!(codes(prepare(&sc, &config(), NOW)), ["lead_id.length"]);
}

#[test]
fn placeholders_are_left_out_and_configurable() {
    let sc = record(
        json!({"lead_id": "1234567890123456", "stage": "new", "changed_at": NOW - 60,
        "email": "noemail@gmail.com", "phone": "000-000-0000", "first_name": "N/A", "last_name": "Unbekannt", "city": "-"}),
    );
    let rules = |cfg: &PrepareConfig| -> Vec<&'static str> {
        prepare(&sc, cfg, NOW)
            .unwrap()
            .dropped
            .iter()
            .map(|d| d.rule)
            .collect()
    };
    assert_eq!(
        rules(&config()),
        [
            "em.placeholder",
            "ph.placeholder",
            "fn.placeholder",
            "city.no_letters"
        ]
    );
    let mut cfg = config();
    cfg.identity.placeholders = vec![normalize::fold_placeholder("unbekannt").unwrap()].into();
    assert_eq!(
        rules(&cfg),
        [
            "em.placeholder",
            "ph.placeholder",
            "fn.placeholder",
            "ln.placeholder",
            "city.no_letters"
        ]
    );
    // Only a placeholder e-mail and phone: nothing to match on.
    let sc = record(
        json!({"stage": "new", "changed_at": NOW - 60, "email": "none@none.com", "phone": "1111111111", "first_name": "Jane", "last_name": "Roe"}),
    );
    assert_eq!(
        codes(prepare(&sc, &config(), NOW))[0],
        "identifier.unmatchable"
    );
}

#[test]
fn meta_test_leads_are_not_production_data() {
    for fields in [
        json!({"email": "test@meta.com", "first_name": "Jane"}),
        json!({"email": "jane@example.com", "first_name": "<test lead: dummy data for first_name>"}),
    ] {
        let mut v = fields.clone();
        v["lead_id"] = json!("1234567890123456");
        v["stage"] = json!("new");
        v["changed_at"] = json!(NOW - 60);
        assert_eq!(
            codes(prepare(&record(v), &config(), NOW)),
            [TEST_LEAD],
            "{fields}"
        );
    }
}

#[test]
fn every_rule_is_checked_at_once() {
    let mut cfg = config();
    cfg.lead_event_source = " ".into();
    let sc = record(
        json!({"lead_id": "1234567890123456", "stage": "nurture", "changed_at": NOW - 8 * 86_400,
        "data_processing_options": ["LDU"], "data_processing_options_country": 1}),
    );
    assert_eq!(
        codes(prepare(&sc, &cfg, NOW)),
        [
            "stage.unknown",
            "custom_data.lead_event_source",
            "ldu.state"
        ]
    );
}

#[test]
fn time_rules() {
    let at = |t: i64, created: Option<i64>| {
        let mut sc =
            record(json!({"lead_id": "1234567890123456", "stage": "new", "changed_at": 1}));
        sc.changed_at = t;
        sc.lead_created_at = created;
        prepare(&sc, &config(), NOW)
    };
    assert!(at(NOW, None).is_ok());
    assert_eq!(codes(at(NOW * 1000, None)), ["event_time.milliseconds"]);
    assert_eq!(codes(at(NOW + 3600, None)), ["event_time.future"]);
    assert_eq!(
        codes(at(NOW - 100, Some(NOW - 50))),
        ["event_time.before_lead_created"]
    );
    let mut tight = config();
    tight.time.window_margin_seconds = 86_400;
    let mut sc = record(
        json!({"lead_id": "1234567890123456", "stage": "new", "changed_at": NOW - 6 * 86_400 - 60}),
    );
    assert!(!prepare(&sc, &config(), NOW).unwrap().is_expired(NOW));
    // Older than the window: prepared (a fact of the lead's history) but
    // expired, never to be sent.
    assert!(prepare(&sc, &tight, NOW).unwrap().is_expired(NOW));
    sc.changed_at = NOW - 5 * 86_400;
    assert!(!prepare(&sc, &tight, NOW).unwrap().is_expired(NOW));
}

#[test]
fn unknown_stage_message_names_the_fix_and_not_assigned_mode_sends_it() {
    let sc =
        record(json!({"lead_id": "1234567890123456", "stage": "Nurture", "changed_at": NOW - 60}));
    let v = prepare(&sc, &config(), NOW).unwrap_err();
    assert!(
        v[0].message.contains("\"Nurture\"") && v[0].message.contains("unknown_stage"),
        "{}",
        v[0]
    );
    let mut cfg = config();
    cfg.funnel = Funnel::new(Funnel::default_stages(), true).unwrap();
    let p = prepare(&sc, &cfg, NOW).unwrap();
    assert_eq!(&*p.event.event_name, "Nurture");
    assert_eq!(p.lifecycle, Lifecycle::NotAssigned);
    assert_eq!(p.stage, None);
    // Sent, but the user is told it counts in no funnel stage.
    assert_eq!(p.warnings.len(), 1);
    assert_eq!(p.warnings[0].rule, "stage.not_assigned");
}

#[test]
fn event_id_is_deterministic_and_keyed_on_dataset_lead_stage_time() {
    let sc = record(
        json!({"lead_id": "1234567890123456", "stage": "mql", "changed_at": NOW - 60, "email": "a@b.co"}),
    );
    let a = prepare(&sc, &config(), NOW).unwrap();
    // Same change, later run, different contact data: same ID.
    let mut later = sc.clone();
    later.contact.email = Some("other@b.co".into());
    assert_eq!(
        prepare(&later, &config(), NOW + 600)
            .unwrap()
            .event
            .event_id,
        a.event.event_id
    );
    let mut other_ds = config();
    other_ds.dataset_id = "1".into();
    assert_ne!(
        prepare(&sc, &other_ds, NOW).unwrap().event.event_id,
        a.event.event_id
    );
    // Without lead_id, the CRM id keys it.
    let by_crm = record(
        json!({"crm_id": "HS-1", "stage": "mql", "changed_at": NOW - 60, "email": "a@b.co"}),
    );
    assert_eq!(
        prepare(&by_crm, &config(), NOW).unwrap().lead_key,
        LeadKey::CrmId("HS-1".into())
    );
}

#[test]
fn ldu_is_passed_through_when_consistent() {
    let sc = record(
        json!({"lead_id": "1234567890123456", "stage": "new", "changed_at": NOW - 60,
        "data_processing_options": ["LDU"], "data_processing_options_country": 0, "data_processing_options_state": 0}),
    );
    let v = serde_json::to_value(prepare(&sc, &config(), NOW).unwrap().event).unwrap();
    assert_eq!(v["data_processing_options"], json!(["LDU"]));
    // Zeros are sent, not dropped (the Node SDK bug, docs/meta-rules.md §8).
    assert_eq!(v["data_processing_options_country"], json!(0));
    assert_eq!(v["data_processing_options_state"], json!(0));
}

#[test]
fn profiles() {
    let sc = record(
        json!({"lead_id": "1234567890123456", "stage": "opportunity", "changed_at": NOW - 60, "email": "a@b.co"}),
    );
    let mut cfg = config();
    cfg.profile = Profile::LegacyV7;
    let v = serde_json::to_value(prepare(&sc, &cfg, NOW).unwrap().event).unwrap();
    assert_eq!(
        v["custom_data"]["facebook_lifecycle_stage_name"],
        "SALES_OPPORTUNITY"
    );
    assert_eq!(v["custom_data"]["lifecycle_stage_name"], "opportunity");
    assert_eq!(v["custom_data"]["event_source"], "crm");

    cfg.profile = Profile::OfflineV7;
    let p = prepare(&sc, &cfg, NOW).unwrap();
    let off = serde_json::to_value(OfflineEvent::from_prepared(&p, &sc.stage)).unwrap();
    assert_eq!(off["event_name"], "Other");
    assert_eq!(off["match_keys"]["lead_id"], "1234567890123456");
    assert_eq!(
        off["match_keys"]["email"],
        json!([Sha256::of("a@b.co").to_string()])
    );
    assert_eq!(
        off["custom_data"]["facebook_lifecycle_stage_name"],
        "SALES_OPPORTUNITY"
    );
    let refusal = Profile::OfflineV7.check_sendable().unwrap_err().to_string();
    assert!(refusal.contains("retired in May 2025"), "{refusal}");
    assert!(
        Profile::ConversionLeads.check_sendable().is_ok()
            && Profile::LegacyV7.check_sendable().is_ok()
    );
}

#[test]
fn missing_stages_for_funnel_order() {
    let f = config().funnel;
    let conv = f.resolve("won").unwrap();
    assert_eq!(f.missing_before(&[0], conv), vec![1, 2]);
}

#[test]
fn inferred_stage_event_has_its_own_name_and_id() {
    let sc = record(
        json!({"lead_id": "1234567890123456", "stage": "won", "changed_at": NOW - 60, "email": "a@b.co"}),
    );
    let cfg = config();
    let won = prepare(&sc, &cfg, NOW).unwrap();
    let lead = won.inferred(0, &cfg);
    assert_eq!(&*lead.event.event_name, "Lead");
    assert_eq!(lead.event.event_time, won.event.event_time);
    assert_eq!(lead.event.user_data, won.event.user_data);
    let direct = prepare(&record(json!({"lead_id": "1234567890123456", "stage": "new", "changed_at": NOW - 60, "email": "a@b.co"})), &cfg, NOW).unwrap();
    assert_eq!(lead.event.event_id, direct.event.event_id);
}
