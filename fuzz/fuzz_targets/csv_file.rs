//! A CSV source: any bytes give a header error, or rows with positions,
//! never a panic. The first byte picks the column mapping (record fields or
//! a CRM preset, with a time zone), the date order and the encoding (auto,
//! or UTF-16LE as configured), so presets, stage-date columns, footers and
//! decoding are fuzzed too.
#![no_main]
use leadsignal_core::sample::config;
use leadsignal_core::{prepare, DateOrder};
use leadsignal_sources::{FileFormat, FileRows, Mapping, TextEncoding, PRESETS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else { return };
    let mut mapping = match PRESETS.get(pick as usize % (PRESETS.len() + 1)) {
        Some(p) => Mapping::preset(p, "Lead").unwrap(),
        None => Mapping::record_fields(),
    };
    let cfg = config();
    mapping.funnel = Some(cfg.funnel.clone());
    if pick & 0x80 != 0 {
        mapping.time_zone = Some(chrono_tz::Europe::Paris);
    }
    if pick & 0x40 != 0 {
        mapping.date_order = DateOrder::Dmy;
    }
    if pick & 0x20 != 0 {
        mapping.encoding = TextEncoding::from_label("utf-16le").unwrap();
    }
    let Ok(mut rows) = FileRows::from_reader_with(
        "fuzz".into(),
        Box::new(std::io::Cursor::new(data.to_vec())),
        Some(FileFormat::Csv),
        &mapping,
    ) else {
        return;
    };
    let mut n = 0u64;
    for row in rows.by_ref().take(10_000) {
        n += 1;
        assert!(row.origin.line >= 1);
        if let Ok(sc) = row.into_stage_change() {
            let _ = prepare(&sc, &cfg, 1_795_262_400);
        }
    }
    // Every record gives at least one row (a stage change or a rejection).
    if n < 10_000 {
        assert!(rows.stats().records <= n, "{:?} for {n} rows", rows.stats());
    }
});
