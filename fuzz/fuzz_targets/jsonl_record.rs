//! A JSONL source: any bytes give a file error (bytes that do not decode
//! in the first line), or rows with positions or errors, never a panic.
#![no_main]
use leadsignal_core::sample::config;
use leadsignal_core::prepare;
use leadsignal_sources::{FileFormat, FileRows};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rows) = FileRows::from_reader(
        "fuzz".into(),
        Box::new(std::io::Cursor::new(data.to_vec())),
        Some(FileFormat::Jsonl),
    ) else {
        return;
    };
    let cfg = config();
    for row in rows {
        assert!(row.origin.line >= 1);
        if let Ok(sc) = row.into_stage_change() {
            let _ = prepare(&sc, &cfg, 1_795_262_400);
        }
    }
});
