//! A CRM database row (any column names and values, as JSON): it becomes a
//! record or a clear violation, never a panic; what parses is prepared.
#![no_main]
use leadsignal_core::prepare;
use leadsignal_core::sample::config;
use leadsignal_sources::sql::SqlSource;
use leadsignal_sources::SourceRow;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(row)) = serde_json::from_slice(data) else { return };
    let source = SqlSource {
        name: "fuzz".into(),
        url: "sqlite://unused".into(),
        query: String::new(),
        cursor_column: "cursor".into(),
        columns: [("lead_id".to_string(), "fb_lead_id".to_string())].into(),
    };
    let row = SourceRow {
        origin: leadsignal_core::Origin::new("fuzz", 1),
        fingerprint: leadsignal_core::Sha256::of_bytes(data),
        record: source.record(row),
        warnings: Vec::new(),
    };
    if let Ok(sc) = row.into_stage_change() {
        let _ = prepare(&sc, &config(), 1_795_262_400);
    }
});
