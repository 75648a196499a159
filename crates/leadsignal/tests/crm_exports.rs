//! Each CRM's export as the CRM (and Excel) really writes it
//! (`testdata/crm/`, every person invented), read as a careful analyst of
//! that file would: the events with their exact UTC second, the history too
//! old to send (expired, not an error), the rows that are really wrong, and
//! the warnings, through `validate --json --events`; then what `import
//! --json` stores, and that importing the same export again adds nothing.
//!
//! The expected seconds were computed apart from leadsignal (Python's
//! zoneinfo) from the local times in the files; the comments give them.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// 2026-11-21T12:00:00Z: events before 2026-11-14T13:00:00Z are expired.
const NOW: &str = "1795262400";

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/crm")
        .join(name)
}

fn leadsignal(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_leadsignal"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LEADSIGNAL_") {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().copied());
    let o = c.args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// What `validate --json --events` said about a file.
#[derive(Debug, Default)]
struct Read {
    exit: i32,
    /// (line, event_name, event_time)
    events: Vec<(u64, String, i64)>,
    /// (line, event_name, event_time)
    expired: Vec<(u64, String, i64)>,
    /// (line, rule) of rejected rows.
    violations: Vec<(u64, String)>,
    /// (line, rule) of warnings and values dropped.
    warnings: Vec<(u64, String)>,
    /// Lines of rows that are not production data (Meta test leads).
    skipped: Vec<u64>,
    /// The event lines as they are.
    lines: Vec<Value>,
    notes: Vec<String>,
    summary: Value,
}

fn validate(config: &str, file: &str) -> Read {
    let (exit, out) = leadsignal(
        &[
            "--config",
            testdata(config).to_str().unwrap(),
            "validate",
            "--json",
            "--events",
            "--now",
            NOW,
            testdata(file).to_str().unwrap(),
        ],
        &[],
    );
    let mut r = Read {
        exit,
        ..Read::default()
    };
    for line in out.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if let Some(s) = v.get("summary") {
            r.summary = s.clone();
            continue;
        }
        let at = v["line"].as_u64().unwrap_or(0);
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        match v["kind"].as_str().unwrap() {
            "event" => r
                .events
                .push((at, s("event_name"), v["event_time"].as_i64().unwrap())),
            "expired" => r
                .expired
                .push((at, s("event_name"), v["event_time"].as_i64().unwrap())),
            "violation" => r.violations.push((at, s("code"))),
            "warning" | "dropped" => r.warnings.push((at, s("code"))),
            "skipped" => r.skipped.push(at),
            "note" | "footer" => r.notes.push(s("message")),
            other => panic!("unexpected kind {other}: {line}"),
        }
        if v["kind"] == "event" {
            r.lines.push(v);
        }
    }
    r
}

fn ev(line: u64, name: &str, t: i64) -> (u64, String, i64) {
    (line, name.to_string(), t)
}

fn at(line: u64, rule: &str) -> (u64, String) {
    (line, rule.to_string())
}

/// `import --json` into `db` (a fresh file the first time).
fn import(config: &str, file: &str, db: &Path) -> (i32, Value) {
    let url = format!("sqlite://{}", db.display());
    let (exit, out) = leadsignal(
        &[
            "--config",
            testdata(config).to_str().unwrap(),
            "import",
            "--json",
            "--now",
            NOW,
            testdata(file).to_str().unwrap(),
        ],
        &[("LEADSIGNAL_STORE__URL", &url)],
    );
    (exit, serde_json::from_str(out.trim()).unwrap())
}

/// A lead's stored stages: (stage, event_time, state, inferred), in funnel order.
fn stored(db: &Path, crm_id: &str) -> Vec<(String, i64, String, bool)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut q = c
        .prepare(
            "SELECT o.stage, o.event_time, o.state, o.inferred FROM outbox o JOIN leads l ON l.id = o.lead
              WHERE l.crm_id = ?1 ORDER BY o.stage_rank",
        )
        .unwrap();
    q.query_map([crm_id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn sha(normalized: &str) -> String {
    Sha256::digest(normalized.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The user_data key `key` of the event on `line` named `name`.
fn hashed(r: &Read, line: u64, name: &str, key: &str) -> Option<String> {
    let e = r
        .lines
        .iter()
        .find(|e| e["line"] == line && e["event_name"] == name)
        .unwrap_or_else(|| panic!("no event {name} on line {line}"));
    e["user_data"][key][0].as_str().map(str::to_string)
}

fn st(stage: &str, t: i64, state: &str, inferred: bool) -> (String, i64, String, bool) {
    (stage.into(), t, state.into(), inferred)
}

#[test]
fn hubspot_contacts_export_with_the_lifecycle_history() {
    let r = validate("hubspot.toml", "hubspot_contacts.csv");
    assert_eq!(
        r.events,
        [
            // 151001: Lead, MQL, Opportunity, Customer (EST = UTC-5).
            ev(2, "Lead", 1_794_838_320), // 2026-11-16 09:12
            ev(2, "Marketing Qualified Lead", 1_794_927_600), // 2026-11-17 10:00
            ev(2, "Opportunity", 1_795_030_200), // 2026-11-18 14:30
            ev(2, "Customer", 1_795_211_100), // 2026-11-20 16:45
            // 151002: subscriber (expired, below) and lead are both "Lead".
            ev(3, "Lead", 1_794_759_600), // 2026-11-15 11:20
            ev(3, "Marketing Qualified Lead", 1_795_097_100), // 2026-11-19 09:05
            ev(4, "Lead", 1_795_187_700), // 2026-11-20 10:15
            // 151004 became an Evangelist.
            ev(5, "Lead", 1_794_686_400),       // 2026-11-14 15:00
            ev(5, "Customer", 1_794_934_800),   // 2026-11-17 12:00
            ev(5, "Evangelist", 1_795_217_400), // 2026-11-20 18:30
            // 151005: "Other" is a stage too.
            ev(6, "Lead", 1_795_093_200),  // 2026-11-19 08:00
            ev(6, "Other", 1_795_098_600), // 2026-11-19 09:30
            ev(8, "Lead", 1_795_183_200),  // 2026-11-20 09:00
            // 151008's message spans two lines: its line is its first.
            ev(9, "Lead", 1_795_260_600), // 2026-11-21 06:30
            ev(11, "Marketing Qualified Lead", 1_794_841_200), // 2026-11-16 10:00
        ]
    );
    assert_eq!(
        r.expired,
        [
            ev(3, "Lead", 1_793_538_000), // subscriber 2026-11-01 08:00 EST
            // 01:30 happened twice that night: the earlier, EDT.
            ev(11, "Lead", 1_793_511_000),
        ]
    );
    assert_eq!(r.violations, [at(7, "csv.no_stage_date")]);
    assert_eq!(
        r.warnings,
        [
            at(2, "stage.no_time"), // Lead Status "Connected": no date
            at(4, "stage.no_time"),
            at(8, "identity.duplicate"), // Priya's address under record 151007 too
            at(11, "lead_created_at.ambiguous_local_time"),
            at(11, "changed_at.ambiguous_local_time"),
        ]
    );
    assert_eq!(r.summary["rows"], 9);
    assert_eq!(r.exit, 1, "line 7 has no stage date at all");
    // Priya's contact data, hashed as Meta's rules say.
    assert_eq!(
        hashed(&r, 2, "Lead", "em").unwrap(),
        sha("priya.raman@brightlane.io")
    );
    assert_eq!(hashed(&r, 2, "Lead", "ph").unwrap(), sha("16175550142"));

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let (exit, s) = import("hubspot.toml", "hubspot_contacts.csv", &db);
    assert_eq!(exit, 1);
    assert_eq!(
        (
            &s["rows"],
            &s["accepted"],
            &s["already_known"],
            &s["expired"],
            &s["inferred"],
            &s["rejected"]
        ),
        (
            &9.into(),
            &14.into(),
            &1.into(),
            &2.into(),
            &4.into(),
            &1.into()
        )
    );
    assert_eq!(s["oldest_expired"], 1_793_511_000);
    // Expired history is a stage of its lead: nothing inferred for it.
    assert_eq!(
        stored(&db, "151002"),
        [
            st("Lead", 1_793_538_000, "expired", false),
            st("Marketing Qualified Lead", 1_795_097_100, "pending", false)
        ]
    );
    // Stages the CRM never dated are inferred at the next real one's time.
    assert_eq!(
        stored(&db, "151004"),
        [
            st("Lead", 1_794_686_400, "pending", false),
            st("Marketing Qualified Lead", 1_794_934_800, "pending", true),
            st("Sales Qualified Lead", 1_794_934_800, "pending", true),
            st("Opportunity", 1_794_934_800, "pending", true),
            st("Customer", 1_794_934_800, "pending", false),
            st("Evangelist", 1_795_217_400, "pending", false),
        ]
    );
    let (exit, s) = import("hubspot.toml", "hubspot_contacts.csv", &db);
    assert_eq!(exit, 1);
    assert_eq!(
        (
            &s["accepted"],
            &s["already_known"],
            &s["expired"],
            &s["rejected"]
        ),
        (&0.into(), &17.into(), &0.into(), &1.into())
    );
}

#[test]
fn hubspot_internal_names_and_a_daily_history_import_that_exits_0() {
    let r = validate("hubspot.toml", "hubspot_contacts_internal.csv");
    assert_eq!(
        r.events,
        [
            ev(2, "Lead", 1_794_731_400),
            ev(2, "Marketing Qualified Lead", 1_794_830_400),
            ev(2, "Sales Qualified Lead", 1_795_103_100),
            ev(3, "Lead", 1_795_158_300),
            ev(4, "Customer", 1_794_994_200),
        ]
    );
    assert_eq!(
        r.expired,
        [
            ev(4, "Lead", 1_793_700_000),
            ev(4, "Marketing Qualified Lead", 1_793_872_800),
            ev(4, "Opportunity", 1_794_499_200),
        ]
    );
    assert!(r.violations.is_empty());
    assert_eq!(r.warnings, [at(2, "stage.no_time")]);
    assert_eq!(r.exit, 0, "old history is not an error");
    // Göteborg, read as UTF-8.
    assert_eq!(hashed(&r, 3, "Lead", "ct").unwrap(), sha("göteborg"));

    // The same export every day: exit 0 each time, nothing added again.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let (exit, s) = import("hubspot.toml", "hubspot_contacts_internal.csv", &db);
    assert_eq!(
        (exit, &s["expired"], &s["accepted"]),
        (0, &3.into(), &5.into())
    );
    let (exit, s) = import("hubspot.toml", "hubspot_contacts_internal.csv", &db);
    assert_eq!(
        (exit, &s["already_known"], &s["accepted"]),
        (0, &8.into(), &0.into())
    );
}

#[test]
fn salesforce_report_with_its_footer_and_case_sensitive_ids() {
    let r = validate("salesforce.toml", "salesforce_leads_report.csv");
    assert_eq!(
        r.events,
        [
            ev(2, "Contacted", 1_795_221_900), // 11/20/2026 4:45 PM PST
            ev(3, "Converted", 1_795_197_600), // 11/20/2026 10:00 AM
            ev(4, "Lead", 1_795_252_200),      // 11/21/2026 1:10 AM
            ev(6, "Nurturing", 1_795_195_200), // 11/20/2026 9:20 AM
        ]
    );
    assert_eq!(r.expired, [ev(5, "Not Converted", 1_793_646_900)]); // 11/02/2026 11:15 AM
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.warnings, [at(6, "stage.not_assigned")]);
    assert_eq!(r.summary["rows"], 5);
    assert_eq!(r.summary["footer_lines"], 7);
    assert!(
        r.notes.iter().any(|n| n == "footer skipped (7 lines)"),
        "{:?}",
        r.notes
    );
    assert_eq!(r.exit, 0);

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let (exit, s) = import("salesforce.toml", "salesforce_leads_report.csv", &db);
    assert_eq!(
        (exit, &s["rows"], &s["footer_lines"]),
        (0, &5.into(), &7.into())
    );
    // 00Q8d00000Xk2aB and 00Q8d00000Xk2ab differ only in case: two leads.
    assert_eq!(stored(&db, "00Q8d00000Xk2aB")[1].0, "Contacted");
    assert_eq!(stored(&db, "00Q8d00000Xk2ab")[2].0, "Converted");
}

#[test]
fn zoho_leads_export() {
    let r = validate("zoho.toml", "zoho_leads.csv");
    assert_eq!(
        r.events,
        [
            ev(2, "Contacted", 1_795_173_300),     // 2026-11-20 16:45:00 IST
            ev(3, "Pre-Qualified", 1_795_069_800), // 2026-11-19 12:00:00 IST
        ]
    );
    // The record ID without the zcrm_ Zoho adds in exports only.
    assert_eq!(r.lines[0]["crm_id"], "4150868000012345001");
    assert_eq!(r.expired, [ev(5, "Junk", 1_794_367_800)]);
    assert_eq!(r.violations, [at(4, "stage.none")]); // "-None-"
                                                     // National number read with the record's country (India).
    assert_eq!(
        hashed(&r, 3, "Pre-Qualified", "ph").unwrap(),
        sha("912255550199")
    );
    assert_eq!(r.exit, 1);
}

#[test]
fn pipedrive_deals_saved_again_by_excel() {
    let r = validate("pipedrive.toml", "pipedrive_deals_excel.csv");
    assert_eq!(
        r.events,
        [
            // Never moved: at its creation, not at its last update.
            ev(2, "Lead In", 1_795_100_700), // 11/19/2026 9:05 CST
            // Won: its last pipeline stage and the win, each at its time.
            ev(3, "Proposal Made", 1_795_021_200), // 11/18/2026 11:00
            ev(3, "Won", 1_795_210_200),           // 11/20/2026 15:30
            // The note's line break: deal 313 starts on line 5.
            ev(5, "Demo Scheduled", 1_794_931_200), // 11/17/2026 10:00
            ev(5, "Lost", 1_795_129_800),           // 11/19/2026 17:10
            // Excel's 1.05437E+15: the lead ID is left out, the e-mail and
            // phone still match the lead.
            ev(6, "Contact Made", 1_795_116_300), // 11/19/2026 13:25
            ev(7, "Contact Made", 1_795_189_500), // 11/20/2026 9:45
            ev(8, "Proposal Made", 1_795_122_000), // 11/19/2026 15:00
        ]
    );
    assert!(r.expired.is_empty());
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(
        r.warnings,
        [
            at(6, "lead_id.scientific_notation"),
            at(7, "lead_id.conflict"), // the duplicated column disagrees
            at(8, "stage.no_time"),    // Won, but no won time
        ]
    );
    // The duplicated column that agrees, or is empty, gives the lead ID.
    assert_eq!(r.lines[0]["lead_id"], 1_054_367_891_240_311u64);
    assert_eq!(r.lines[3]["lead_id"], 1_054_367_891_240_313u64);
    assert_eq!(r.lines[5]["lead_id"], Value::Null);
    assert_eq!(r.lines[6]["lead_id"], Value::Null);
    assert_eq!(r.exit, 0);
    assert_eq!(r.summary["rows"], 6);
    assert_eq!(r.summary["footer_lines"], 3);
    // "Dr. Liam Brennan": first and last name, never the whole.
    assert_eq!(hashed(&r, 3, "Won", "fn").unwrap(), sha("liam"));
    assert_eq!(hashed(&r, 3, "Won", "ln").unwrap(), sha("brennan"));
}

#[test]
fn dynamics_export_saved_by_german_excel_in_windows_1252() {
    let r = validate("dynamics.toml", "dynamics_leads_de.csv");
    assert!(
        r.notes
            .iter()
            .any(|n| n.starts_with("read as windows-1252")),
        "{:?}",
        r.notes
    );
    assert_eq!(
        r.events,
        [
            ev(2, "Qualified", 1_795_189_500), // 20.11.2026 16:45 CET
            ev(3, "Contacted", 1_795_083_600), // 19.11.2026 11:20
            ev(4, "New", 1_795_180_200),       // 20.11.2026 14:10
        ]
    );
    assert_eq!(r.expired, [ev(5, "Disqualified", 1_793_869_200)]);
    assert_eq!(
        r.violations,
        [
            // 29.03.2026 02:30 never happened in Berlin.
            at(6, "changed_at.nonexistent_local_time"),
            at(6, "lead_created_at.nonexistent_local_time"),
        ]
    );
    // Ł and ś became '?' when Excel saved the file: left out, event kept.
    assert_eq!(
        r.warnings,
        [
            at(4, "fn.lossy_encoding"),
            at(4, "ln.lossy_encoding"),
            at(4, "ct.lossy_encoding"),
        ]
    );
    // Jürgen Müller, decoded from Windows-1252 and hashed as UTF-8.
    assert_eq!(hashed(&r, 2, "Qualified", "fn").unwrap(), sha("jürgen"));
    assert_eq!(hashed(&r, 2, "Qualified", "ln").unwrap(), sha("müller"));
    assert_eq!(hashed(&r, 3, "Contacted", "ct").unwrap(), sha("straßburg"));
    assert_eq!(hashed(&r, 4, "New", "fn"), None);
}

#[test]
fn meta_lead_ads_download_in_utf16() {
    let r = validate("meta.toml", "meta_leads_utf16.csv");
    assert_eq!(
        r.events,
        [
            ev(2, "Lead", 1_795_198_542), // 2026-11-20T10:15:42-08:00
            ev(3, "Lead", 1_795_247_883),
            ev(4, "Lead", 1_795_255_459),
        ]
    );
    assert_eq!(r.expired, [ev(5, "Lead", 1_794_271_200)]);
    assert!(r.violations.is_empty() && r.warnings.is_empty(), "{r:?}");
    // A lead made by Meta's testing tool: not production data.
    assert_eq!(r.skipped, [6]);
    assert_eq!(r.lines[0]["lead_id"], 1_054_367_891_260_001u64);
    assert_eq!(hashed(&r, 2, "Lead", "fn").unwrap(), sha("amara"));
    assert_eq!(hashed(&r, 2, "Lead", "ln").unwrap(), sha("okaforbennett"));
    assert_eq!(hashed(&r, 3, "Lead", "ln").unwrap(), sha("pérez"));
    assert_eq!(hashed(&r, 4, "Lead", "ln"), None, "one name only");
    assert_eq!(r.exit, 0);
    let dir = tempfile::tempdir().unwrap();
    let (exit, s) = import(
        "meta.toml",
        "meta_leads_utf16.csv",
        &dir.path().join("o.db"),
    );
    assert_eq!(
        (exit, &s["skipped"], &s["accepted"]),
        (0, &1.into(), &3.into())
    );
}

#[test]
fn placeholders_test_leads_and_rows_nothing_can_match() {
    let r = validate("hubspot.toml", "hubspot_placeholders.csv");
    assert_eq!(
        r.events,
        [
            ev(3, "Lead", 1_795_104_000), // 2026-11-19 11:00 EST
            ev(6, "Lead", 1_795_114_800),
            ev(6, "Marketing Qualified Lead", 1_795_185_000),
        ]
    );
    // N/A names, noemail@, 0000000000: left out, and then nothing is left
    // that Meta matches a lead on; names alone match no one either.
    let unmatchable: Vec<u64> = r
        .violations
        .iter()
        .filter(|(_, rule)| rule == "identifier.unmatchable")
        .map(|(line, _)| *line)
        .collect();
    assert_eq!(unmatchable, [2, 5, 7]);
    for rule in [
        "em.placeholder",
        "ph.placeholder",
        "fn.placeholder",
        "ct.placeholder",
    ] {
        assert!(
            r.violations.contains(&at(2, rule)),
            "{rule}: {:?}",
            r.violations
        );
    }
    // A placeholder phone beside a real address: the phone is left out.
    assert_eq!(
        r.warnings,
        [at(6, "ph.placeholder"), at(6, "ph.placeholder")]
    );
    assert_eq!(r.skipped, [4]);
    // Greek capitals lowercase with the final sigma, as Meta's pixel does.
    assert_eq!(hashed(&r, 3, "Lead", "fn").unwrap(), sha("οδυσσεας"));
    assert_eq!(hashed(&r, 3, "Lead", "ln").unwrap(), sha("παπαδοπουλος"));
    assert_eq!(hashed(&r, 3, "Lead", "ct").unwrap(), sha("αγιοςνικολαος"));
    assert_eq!(r.exit, 1);
    let dir = tempfile::tempdir().unwrap();
    let (exit, s) = import(
        "hubspot.toml",
        "hubspot_placeholders.csv",
        &dir.path().join("o.db"),
    );
    assert_eq!(
        (exit, &s["accepted"], &s["rejected"], &s["skipped"]),
        (1, &3.into(), &3.into(), &1.into())
    );
    assert_eq!(s["rejected_by_rule"]["identifier.unmatchable"], 3);
}

#[test]
fn an_undecodable_file_names_the_file_the_byte_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[meta]\ndataset_id = \"1\"\n[crm]\nname = \"X\"\n[import]\npreset = \"dynamics\"\nencoding = \"utf-8\"\ntime_zone = \"Europe/Berlin\"\n[normalize]\ndate_order = \"dmy\"\n",
    )
    .unwrap();
    let file = testdata("dynamics_leads_de.csv");
    let (exit, out) = leadsignal(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "validate",
            "--now",
            NOW,
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(exit, 1);
    let line = out.lines().next().unwrap();
    assert!(
        line.contains("dynamics_leads_de.csv")
            && line.contains("byte 245: not valid UTF-8 (import.encoding)")
            && line.contains("\"windows-1252\""),
        "{line}"
    );
    // A label that is no encoding is a configuration error.
    std::fs::write(
        &cfg,
        "[meta]\ndataset_id = \"1\"\n[crm]\nname = \"X\"\n[import]\nencoding = \"ebcdic-ish\"\n",
    )
    .unwrap();
    let (exit, _) = leadsignal(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "validate",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(exit, 2);
}
