//! Tier-1 extraction and tier-2 features on real WLP protocols: `cargo bench -p fl-tiers`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fl_tiers::brat;
use fl_tiers::features::{LocalDp, features};
use fl_tiers::spec::{extract_with, shipped_tagger};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

fn bench(c: &mut Criterion) {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/protocols/wlp/test");
    let Ok(docs) = brat::read_dir(&dir) else {
        return; // the corpus lives beside the repository; nothing to measure without it
    };
    let Ok(tagger) = shipped_tagger() else { return };
    let mut g = c.benchmark_group("tier1");
    g.sample_size(10);
    g.throughput(Throughput::Elements(docs.len() as u64));
    g.bench_function("extract_wlp_test_123_protocols", |b| {
        b.iter(|| {
            docs.iter().map(|d| extract_with(tagger, black_box(&d.text)).summary.steps).sum::<u32>()
        });
    });
    let specs: Vec<_> = docs.iter().map(|d| extract_with(tagger, &d.text)).collect();
    g.bench_function("features_123_specs", |b| {
        b.iter(|| specs.iter().map(|s| features(black_box(s)).values[0]).sum::<f32>());
    });
    g.finish();

    // Local DP: calibrating σ once versus releasing one vector with it.
    let mut g = c.benchmark_group("tier2_local_dp");
    g.bench_function("calibrate_eps1", |b| {
        b.iter(|| LocalDp::new(black_box(1.0), 1e-5, 8.0).map(|l| l.sigma()));
    });
    let Ok(local_dp) = LocalDp::new(1.0, 1e-5, 8.0) else { return };
    let v = features(&specs[0]);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    g.bench_function("privatize_one_vector", |b| {
        b.iter(|| local_dp.privatize(black_box(&v), &mut rng).map(|p| p.values[0]));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
