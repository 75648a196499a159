//! `prepare` + JSON serialization of a typical event, against the physical
//! floor: SHA-256 of the event's nine already-normalized strings.
//!
//! Run: `cargo bench -p leadsignal-core --bench prepare`
//! (`leadsignal bench` prints the same comparison as events/second and the ratio).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use leadsignal_core::sample::{config, typical_stage_change, TYPICAL_NORMALIZED};
use leadsignal_core::{prepare, Sha256};
use std::hint::black_box;

/// Fixed clock: 2026-11-21T12:00:00Z.
const NOW: i64 = 1_795_262_400;

fn bench(c: &mut Criterion) {
    let cfg = config();
    let sc = typical_stage_change(NOW);
    let mut g = c.benchmark_group("typical_event");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(2048);
    g.bench_function("prepare_and_write_json", |b| {
        b.iter(|| {
            let p = prepare(black_box(&sc), &cfg, NOW).unwrap();
            buf.clear();
            p.event.write_json(&mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("prepare_and_serde_json", |b| {
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
            for s in black_box(&TYPICAL_NORMALIZED) {
                acc ^= Sha256::of(s).0[0];
            }
            black_box(acc)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
