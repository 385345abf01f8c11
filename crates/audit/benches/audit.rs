//! Append throughput with an fsync per record and with group commit (one fsync per 64 records),
//! and verification throughput.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fl_audit::{AuditLog, Digest, Durability, Entry, Extension, verify_bytes};

fn entry(i: u64) -> Entry {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("round".to_owned(), Extension::Int(i64::try_from(i).unwrap_or(0)));
    fields.insert("aggregate".to_owned(), Extension::Digest(Digest::of(&i.to_le_bytes())));
    fields.insert(
        "note".to_owned(),
        Extension::Text("round closed: 10 partners, 0 dropouts, ε charged".into()),
    );
    Entry::Event { kind: "round".into(), fields }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("audit");
    g.sample_size(20);
    let path = dir.path().join("fsync.log");
    let mut log =
        AuditLog::create(&path, Entry::genesis("bench", "{}"), 0, Durability::EveryAppend)
            .expect("create");
    let mut i = 0;
    g.throughput(Throughput::Elements(1));
    g.bench_function("append_fsync_each", |b| {
        b.iter(|| {
            i += 1;
            log.append(entry(i), i).expect("append")
        });
    });
    let path = dir.path().join("group.log");
    let mut glog =
        AuditLog::create(&path, Entry::genesis("bench", "{}"), 0, Durability::EveryAppend)
            .expect("create");
    g.throughput(Throughput::Elements(64));
    g.bench_function("append_group_commit_64", |b| {
        b.iter_batched(
            || (0..64).map(|k| (entry(k), k)).collect::<Vec<_>>(),
            |batch| glog.append_batch(batch).expect("append"),
            BatchSize::SmallInput,
        );
    });
    // Verification of a 10,000-record log.
    let path = dir.path().join("verify.log");
    let mut vlog = AuditLog::create(&path, Entry::genesis("bench", "{}"), 0, Durability::Unsynced)
        .expect("create");
    for chunk in (0..10_000u64).collect::<Vec<_>>().chunks(500) {
        vlog.append_batch(chunk.iter().map(|&k| (entry(k), k)).collect()).expect("append");
    }
    drop(vlog);
    let bytes = std::fs::read(&path).expect("read");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("verify_10k_records", |b| {
        b.iter(|| verify_bytes(black_box(&bytes)).expect("sound"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
