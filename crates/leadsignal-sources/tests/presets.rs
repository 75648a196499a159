//! Each CRM preset against a realistic sample export in testdata/presets.

use leadsignal_core::StageChange;
use leadsignal_sources::{FileRows, Mapping};
use std::path::{Path, PathBuf};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/presets")
        .join(name)
}

/// Stage changes (or rule codes) of a sample under a preset, in `tz`.
fn read(
    file: &str,
    preset: &str,
    tz: Option<chrono_tz::Tz>,
) -> Vec<Result<StageChange, (u64, &'static str)>> {
    let mut m = Mapping::preset(preset, "Lead").unwrap();
    m.time_zone = tz;
    FileRows::open_with(&sample(file), &m)
        .unwrap()
        .map(|r| r.into_stage_change().map_err(|(o, v)| (o.line, v[0].code)))
        .collect()
}

const NY: Option<chrono_tz::Tz> = Some(chrono_tz::America::New_York);

#[test]
fn hubspot_stage_date_columns_become_one_change_each() {
    let rows = read("hubspot_contacts.csv", "hubspot", NY);
    let got: Vec<(u64, String, i64)> = rows
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|sc| (sc.origin.line, sc.stage.clone(), sc.changed_at))
        .collect();
    assert_eq!(
        got,
        [
            (2, "lead".into(), 1_794_838_320), // 2026-11-16 09:12 EST
            (2, "marketingqualifiedlead".into(), 1_794_927_600), // 2026-11-17 10:00 EST
            (2, "opportunity".into(), 1_795_030_200), // 2026-11-18 14:30 EST
            (2, "customer".into(), 1_795_211_100), // 2026-11-20 16:45 EST
            (3, "lead".into(), 1_795_093_200),
        ]
    );
    let jane = rows[0].as_ref().unwrap();
    assert_eq!(jane.lead_id.unwrap().get(), 1_234_567_890_123_456);
    assert_eq!(jane.crm_id.as_deref(), Some("1001"));
    assert_eq!(jane.lead_created_at, Some(1_794_838_320));
    assert_eq!(jane.contact.state.as_deref(), Some("California"));
    assert_eq!(jane.contact.external_id.as_deref(), Some("1001"));
    // A contact with no lifecycle date is reported, not skipped.
    assert_eq!(
        rows.last().unwrap().as_ref().unwrap_err(),
        &(4, "csv.no_stage_date")
    );
}

#[test]
fn hubspot_without_a_time_zone_says_so() {
    let rows = read("hubspot_contacts.csv", "hubspot", None);
    assert_eq!(rows[0].as_ref().unwrap_err().1, "changed_at.no_time_zone");
}

#[test]
fn salesforce_report_export() {
    let rows = read("salesforce_leads.csv", "salesforce", NY);
    let sc = rows[0].as_ref().unwrap();
    assert_eq!(sc.stage, "Working - Contacted");
    assert_eq!(sc.changed_at, 1_795_211_100); // 11/20/2026 4:45 PM EST
    assert_eq!(sc.lead_created_at, Some(1_795_010_700));
    assert_eq!(sc.crm_id.as_deref(), Some("00Q5e00000AbCdE"));
    assert_eq!(sc.lead_id.unwrap().get(), 1_234_567_890_123_456);
    assert_eq!(
        rows[1].as_ref().unwrap().contact.phone.as_deref(),
        Some("+91 98765 43210")
    );
}

#[test]
fn zoho_pipedrive_dynamics() {
    let z = read("zoho_leads.csv", "zoho", NY);
    let z = z[0].as_ref().unwrap();
    assert_eq!(
        (z.stage.as_str(), z.changed_at),
        ("Contacted", 1_795_211_100)
    );
    // Phone is empty, Mobile is not: the next preferred column is used.
    assert_eq!(z.contact.phone.as_deref(), Some("+1 650 555 1212"));
    let p = read("pipedrive_deals.csv", "pipedrive", NY);
    let p = p[0].as_ref().unwrap();
    assert_eq!(
        (p.stage.as_str(), p.changed_at, p.crm_id.as_deref()),
        ("Qualified", 1_795_211_100, Some("42"))
    );
    assert_eq!(p.contact.email.as_deref(), Some("jane@example.com"));
    let d = read("dynamics_leads.csv", "dynamics", NY);
    let d = d[0].as_ref().unwrap();
    assert_eq!(
        (d.stage.as_str(), d.changed_at),
        ("Qualified", 1_795_211_100)
    );
    assert_eq!(d.lead_created_at, Some(1_795_010_700));
}

#[test]
fn meta_lead_ads_download_utf16_tab_separated() {
    let rows = read("meta_lead_ads_utf16.csv", "meta-lead-ads", None);
    assert_eq!(rows.len(), 2);
    let sc = rows[0].as_ref().unwrap();
    assert_eq!(sc.origin.line, 2);
    assert_eq!(sc.lead_id.unwrap().get(), 1_234_567_890_123_456);
    assert_eq!(sc.stage, "Lead");
    assert_eq!(sc.changed_at, 1_795_168_800);
    assert_eq!(sc.lead_created_at, Some(1_795_168_800));
    assert_eq!(sc.contact.phone.as_deref(), Some("p:+16505551212"));
    assert_eq!(
        rows[1].as_ref().unwrap().lead_id.unwrap().get(),
        1_234_567_890_123_457
    );
}

#[test]
fn time_zone_column_per_row() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("tz.csv");
    std::fs::write(&f, "stage,changed_at,tz\nnew,2026-11-20 10:00,Europe/Paris\nnew,2026-11-20 10:00,Mars/Olympus\n").unwrap();
    let mut m = Mapping::record_fields();
    m.formats = vec!["%Y-%m-%d %H:%M".into()];
    m.time_zone_column = Some("tz".into());
    let rows: Vec<_> = FileRows::open_with(&f, &m)
        .unwrap()
        .map(|r| r.into_stage_change())
        .collect();
    assert_eq!(rows[0].as_ref().unwrap().changed_at, 1_795_165_200);
    assert_eq!(rows[1].as_ref().unwrap_err().1[0].code, "csv.time_zone");
}

#[test]
fn missing_columns_name_what_the_preset_expects() {
    let e = FileRows::open_with(
        &sample("zoho_leads.csv"),
        &Mapping::preset("hubspot", "Lead").unwrap(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("hubspot mapping") && e.contains("Became a Lead Date"),
        "{e}"
    );
}
