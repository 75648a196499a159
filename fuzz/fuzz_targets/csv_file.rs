//! A CSV source: any bytes give a header error, or rows with positions,
//! never a panic. The first byte picks the column mapping (record fields or
//! a CRM preset, with a time zone), so presets and stage-date columns are
//! fuzzed too.
#![no_main]
use leadsignal_core::prepare;
use leadsignal_core::sample::config;
use leadsignal_sources::{FileFormat, FileRows, Mapping, PRESETS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else { return };
    let mut mapping = match PRESETS.get(pick as usize % (PRESETS.len() + 1)) {
        Some(p) => Mapping::preset(p, "Lead").unwrap(),
        None => Mapping::record_fields(),
    };
    if pick & 0x80 != 0 {
        mapping.time_zone = Some(chrono_tz::Europe::Paris);
    }
    let Ok(rows) = FileRows::from_reader_with(
        "fuzz".into(),
        Box::new(std::io::Cursor::new(data.to_vec())),
        Some(FileFormat::Csv),
        &mapping,
    ) else {
        return;
    };
    let cfg = config();
    for row in rows.take(10_000) {
        assert!(row.origin.line >= 1);
        if let Ok(sc) = row.into_stage_change() {
            let _ = prepare(&sc, &cfg, 1_795_262_400);
        }
    }
});
