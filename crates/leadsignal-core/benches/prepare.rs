//! `prepare` + JSON serialization of a typical event, against the physical
//! floor: SHA-256 of the event's nine already-normalized strings.
//!
//! Run: `cargo bench -p leadsignal-core --bench prepare`
//! (`leadsignal bench` prints the same comparison as events/second and the ratio).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use leadsignal_core::*;
use std::hint::black_box;

/// Fixed clock: 2026-11-21T12:00:00Z.
const NOW: i64 = 1_795_262_400;

fn config() -> PrepareConfig {
    PrepareConfig {
        dataset_id: "2780431635496611".into(),
        lead_event_source: "HubSpot".into(),
        funnel: Funnel::new(Funnel::default_stages(), false).unwrap(),
        normalize: NormalizeOptions {
            default_country: CountryCode::parse_alpha2("US"),
            date_order: DateOrder::Mdy,
        },
        time: TimeRules::default(),
        profile: Profile::ConversionLeads,
    }
}

/// The typical event: lead_id, em, ph, fn, ln, ct, st, zp, country.
fn typical() -> StageChange {
    StageChange {
        lead_id: Some(LeadId::parse("1234567890123456").unwrap()),
        crm_id: Some("HS-1001".into()),
        stage: "mql".into(),
        changed_at: NOW - 3600,
        contact: Contact {
            email: Some("Jane.Doe@Example.com".into()),
            phone: Some("(650) 555-1212".into()),
            first_name: Some("Jane".into()),
            last_name: Some("Doe".into()),
            city: Some("Menlo Park".into()),
            state: Some("California".into()),
            zip: Some("94025-1234".into()),
            country: Some("United States".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The same event's normalized values: what a hash-only pipeline would digest.
const NORMALIZED: [&str; 9] = [
    "1234567890123456",
    "jane.doe@example.com",
    "16505551212",
    "jane",
    "doe",
    "menlopark",
    "ca",
    "94025",
    "us",
];

fn bench(c: &mut Criterion) {
    let cfg = config();
    let sc = typical();
    let mut g = c.benchmark_group("typical_event");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(2048);
    g.bench_function("prepare_and_serialize", |b| {
        b.iter(|| {
            let p = prepare(black_box(&sc), &cfg, NOW).unwrap();
            buf.clear();
            serde_json::to_writer(&mut buf, &p.event).unwrap();
            black_box(buf.len())
        })
    });
    g.bench_function("sha256_nine_normalized_strings", |b| {
        b.iter(|| {
            let mut acc = 0u8;
            for s in black_box(&NORMALIZED) {
                acc ^= Sha256::of(s).0[0];
            }
            black_box(acc)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
