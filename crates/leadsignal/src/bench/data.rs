//! The benchmarks' data: a generated CRM export and its import.

use leadsignal_core::sample::config;

/// Writes `rows` stage changes as a CRM export would: leads with 1 to 4
/// funnel stages each, contact data, times within the last five days.
pub(crate) fn generate_csv(path: &std::path::Path, rows: u64, now: i64) -> std::io::Result<()> {
    use std::io::Write;
    const STAGES: [&str; 4] = ["new", "mql", "opportunity", "won"];
    const CITIES: [(&str, &str, &str); 4] = [
        ("Menlo Park", "California", "94025"),
        ("Austin", "TX", "78701-1234"),
        ("New York", "New York", "10001"),
        ("Seattle", "WA", "98101"),
    ];
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(
        w,
        "lead_id,crm_id,stage,changed_at,email,phone,first_name,last_name,city,state,zip,country"
    )?;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut written, mut lead) = (0u64, 0u64);
    while written < rows {
        lead += 1;
        let stages = 1 + (next() % 4) as usize;
        let start = now - 5 * 86_400 + (next() % (4 * 86_400)) as i64;
        let (city, state, zip) = CITIES[(next() % 4) as usize];
        for (i, stage) in STAGES.iter().take(stages).enumerate() {
            if written == rows {
                break;
            }
            writeln!(
                w,
                "{},HS-{lead},{stage},{},Person.{lead}@Example.com,(650) 555-{:04},Jane{},Doe{},{city},{state},{zip},United States",
                1_000_000_000_000_000 + lead,
                start + i as i64 * 3_600,
                lead % 10_000,
                lead % 97,
                lead % 89,
            )?;
            written += 1;
        }
    }
    w.flush()
}

/// Imports a generated CSV into a fresh SQLite outbox at `db` with the
/// typical event's configuration.
pub(crate) fn import_generated(
    csv: &std::path::Path,
    db: &std::path::Path,
    now: i64,
) -> anyhow::Result<(leadsignal_store::SqliteOutbox, leadsignal_intake::Summary)> {
    let mut store = leadsignal_store::SqliteOutbox::open(db.to_str().expect("UTF-8 path"))?;
    let summary = leadsignal_intake::import_files(
        std::slice::from_ref(&csv.to_path_buf()),
        &leadsignal_sources::Mapping::record_fields(),
        &config(),
        leadsignal_store::MissingStages::Fill,
        &mut store,
        now,
        |_| {},
        |_| {},
    )?;
    Ok((store, summary))
}
