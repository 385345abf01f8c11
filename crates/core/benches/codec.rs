//! Encode/decode throughput of a 10M-parameter model next to a plain memcpy of the same bytes.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fl_core::{
    DecodeOptions, ModelParams, ModelSpec, decode_params, decode_params_into, encode_params,
    encode_params_into,
};

const PARAMS: usize = 10_000_000;

fn model() -> ModelParams<f32> {
    // A 10M-parameter MLP-like layout: two big matrices and their biases.
    let spec = ModelSpec::from_pairs([
        ("fc1.weight", vec![4000, 2000]),
        ("fc1.bias", vec![4000]),
        ("fc2.weight", vec![998, 2000]),
        ("fc2.bias", vec![998]),
    ])
    .expect("valid spec");
    let n = spec.num_params();
    assert!(n.abs_diff(PARAMS) < 1000, "about 10M parameters");
    let data = (0..n).map(|i| ((i % 1000) as f32) * 1e-3 - 0.5).collect();
    ModelParams::from_flat(spec, data).expect("matching length")
}

fn codec(c: &mut Criterion) {
    let params = model();
    let frame = encode_params(&params).expect("encodes");
    let mut group = c.benchmark_group("codec_10M_f32");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.sample_size(20);

    group.bench_function("memcpy_to_new_vec", |b| b.iter(|| black_box(frame.as_slice()).to_vec()));
    let mut dst = vec![0u8; frame.len()];
    group.bench_function("memcpy_into_existing", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&frame)));
    });
    group.bench_function("encode", |b| b.iter(|| encode_params(black_box(&params))));
    let mut out = Vec::new();
    group.bench_function("encode_into_existing", |b| {
        b.iter(|| encode_params_into(black_box(&params), &mut out));
    });
    let lenient = DecodeOptions::default().with_allow_non_finite(true);
    group.bench_function("decode_unchecked_values", |b| {
        b.iter(|| decode_params::<f32>(black_box(&frame), &lenient));
    });
    group.bench_function("decode_finite_checked", |b| {
        b.iter(|| decode_params::<f32>(black_box(&frame), &DecodeOptions::default()));
    });
    let expecting = DecodeOptions::expecting(Arc::clone(params.shared_spec()));
    group.bench_function("decode_expected_spec", |b| {
        b.iter(|| decode_params::<f32>(black_box(&frame), &expecting));
    });
    let mut target = ModelParams::<f32>::zeros(Arc::clone(params.shared_spec()));
    group.bench_function("decode_into_existing_finite_checked", |b| {
        b.iter(|| decode_params_into(black_box(&frame), &DecodeOptions::default(), &mut target));
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
