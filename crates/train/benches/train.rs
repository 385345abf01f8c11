//! Training-step throughput of an MLP 784-128-10 (batch 128), plain and DP-SGD (per-example
//! clipping of 128 examples); `cargo xtask bench-compare train` runs the PyTorch comparison.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fl_train::Mlp;
use ndarray::Array2;

fn bench(c: &mut Criterion) {
    let model = Mlp::new(&[784, 128, 10]).expect("widths");
    let params = model.init(1);
    let x = Array2::from_shape_fn((128, 784), |(i, j)| ((i * 784 + j) % 255) as f32 / 255.0);
    let y: Vec<u32> = (0..128).map(|i| i % 10).collect();
    let mut g = c.benchmark_group("mlp_784_128_10_batch128");
    g.throughput(Throughput::Elements(128));
    g.bench_function("loss_and_gradient", |b| {
        b.iter(|| model.loss_and_gradient(&params, black_box(x.view()), &y))
    });
    g.bench_function("clipped_gradient_sum", |b| {
        b.iter(|| model.clipped_gradient_sum(&params, black_box(x.view()), &y, 1.0));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
