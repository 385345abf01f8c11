//! Criterion benchmarks of the aggregation rules on f32 updates shaped like the Flower anchor's
//! (`../shared/anchors/bench_flower.py`: four layers splitting d, standard normal values).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fl_agg::{Aggregator, Bulyan, FedAvg, Krum, Median, TrimmedMean};
use fl_core::{ClientUpdate, ModelParams, ModelSpec, ModelVersion, PartnerId, Round};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};

fn clients(n: usize, d: usize) -> (ModelParams<f32>, Vec<ClientUpdate<f32>>) {
    let q = d / 4;
    let spec = Arc::new(
        ModelSpec::from_pairs([
            ("l0", vec![q]),
            ("l1", vec![q]),
            ("l2", vec![q]),
            ("l3", vec![d - 3 * q]),
        ])
        .expect("valid"),
    );
    let mut rng = ChaCha20Rng::seed_from_u64(2024);
    let updates = (0..n)
        .map(|i| {
            let data: Vec<f32> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
            let params = ModelParams::from_flat(Arc::clone(&spec), data).expect("length");
            ClientUpdate::new(
                PartnerId::new(format!("c{i}")).expect("id"),
                Round(1),
                ModelVersion(0),
                1 + (i as u64 % 100),
                params,
            )
        })
        .collect();
    (ModelParams::zeros(spec), updates)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("aggregators_f32");
    g.sample_size(10);
    for &(n, d) in &[(100usize, 100_000usize), (100, 1_000_000)] {
        let (global, ups) = clients(n, d);
        let id = format!("N{n}_d{d}");
        g.bench_with_input(BenchmarkId::new("fedavg", &id), &ups, |b, u| {
            b.iter(|| FedAvg::default().aggregate(&global, black_box(u)));
        });
        g.bench_with_input(BenchmarkId::new("krum", &id), &ups, |b, u| {
            b.iter(|| Krum::new(n / 5).aggregate(&global, black_box(u)));
        });
        g.bench_with_input(BenchmarkId::new("median", &id), &ups, |b, u| {
            b.iter(|| Median.aggregate(&global, black_box(u)));
        });
        g.bench_with_input(BenchmarkId::new("trimmed_mean", &id), &ups, |b, u| {
            b.iter(|| TrimmedMean::new(0.1).expect("valid").aggregate(&global, black_box(u)));
        });
        if d <= 100_000 {
            g.bench_with_input(BenchmarkId::new("bulyan", &id), &ups, |b, u| {
                b.iter(|| Bulyan::new((n - 3) / 4).aggregate(&global, black_box(u)));
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
