//! HTTP ingest bodies in every format: any bytes give items with positions
//! or a clear error, never a panic; what parses is prepared.
#![no_main]
use leadsignal_core::prepare;
use leadsignal_core::sample::config;
use leadsignal_sources::ingest::{parse, IngestFormat, IngestOptions, Item};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = config();
    let opts = IngestOptions::default();
    for format in [IngestFormat::Records, IngestFormat::Hubspot, IngestFormat::Salesforce] {
        let Ok(items) = parse(data, format, &opts, "fuzz") else { continue };
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Item::Row(row) => {
                    assert_eq!(row.origin.line, i as u64 + 1);
                    if let Ok(sc) = row.into_stage_change() {
                        let _ = prepare(&sc, &cfg, 1_795_262_400);
                    }
                }
                Item::Ignored { origin, .. } => assert_eq!(origin.line, i as u64 + 1),
            }
        }
    }
});
