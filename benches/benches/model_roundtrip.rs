//! A client update's path to the server and back as bytes: delta, encode, decode, add.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use fl_benches::mlp_spec;
use fl_core::{DecodeOptions, ModelParams, decode_params, encode_params};

fn roundtrip(c: &mut Criterion) {
    let spec = Arc::new(mlp_spec(&[784, 512, 512, 10]).expect("valid widths"));
    let global = ModelParams::<f32>::zeros(Arc::clone(&spec));
    let mut local = global.clone();
    local.as_mut_slice().iter_mut().enumerate().for_each(|(i, x)| *x = (i % 7) as f32 * 0.01);
    let options = DecodeOptions::expecting(Arc::clone(&spec));
    c.bench_function("mlp_669k_delta_encode_decode_apply", |b| {
        b.iter(|| {
            let delta = local.sub(&global).expect("same spec");
            let frame = encode_params(&delta).expect("encodes");
            let back = decode_params::<f32>(black_box(&frame), &options).expect("decodes");
            let mut next = global.clone();
            next.add_assign(&back).expect("same spec");
            next
        });
    });
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
