//! Accountant speed: ε for q = 0.01, σ = 1.1, 10,000 steps over the 156 default orders, and σ
//! calibration. `cargo xtask bench-compare dp` times dp-accounting on the same work side by side.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fl_dp::rdp::default_orders;
use fl_dp::{DpEvent, RdpAccountant, calibrate_noise_multiplier};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("rdp_accountant");
    g.bench_function("epsilon_q0.01_sigma1.1_steps10000_default_orders", |b| {
        b.iter(|| {
            let mut acc = RdpAccountant::default();
            acc.compose(
                &DpEvent::PoissonSampledGaussian { sampling_rate: 0.01, noise_multiplier: 1.1 },
                black_box(10_000),
            )
            .expect("valid event");
            acc.get_epsilon(1e-5).expect("valid delta")
        });
    });
    let orders = default_orders();
    g.bench_function("calibrate_eps1_q0.01_steps10000", |b| {
        b.iter(|| {
            calibrate_noise_multiplier(black_box(1.0), 1e-5, 0.01, 10_000, &orders)
                .expect("feasible")
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
