//! Paillier primitives at 2048 bits: encryption (fresh rⁿ, DJN obfuscator, CRT with the key),
//! CRT decryption, homomorphic addition, and a packed 10,000-float update. The side-by-side run
//! against python-paillier is `cargo xtask bench-compare he`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fl_he::{Obfuscator, Packing, PrivateKey};
use num_bigint::BigUint;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let sk = PrivateKey::generate(2048, &mut rng).expect("keygen");
    let pk = sk.public_key().clone();
    let obf = Obfuscator::new(&pk, 8, &mut rng).expect("obfuscator");
    let m = BigUint::from(123_456_789u64);
    let ct = pk.encrypt_raw(&m, &mut rng).expect("encrypt");
    let mut g = c.benchmark_group("paillier_2048");
    g.sample_size(20);
    g.bench_function("encrypt_public", |b| b.iter(|| pk.encrypt_raw(black_box(&m), &mut rng)));
    g.bench_function("encrypt_obfuscator_w8", |b| {
        b.iter(|| obf.encrypt(&pk, black_box(&m), &mut rng))
    });
    g.bench_function("encrypt_crt", |b| b.iter(|| sk.encrypt_raw(black_box(&m), &mut rng)));
    g.bench_function("decrypt_crt", |b| b.iter(|| sk.decrypt_raw(black_box(&ct))));
    g.bench_function("add", |b| b.iter(|| pk.add(black_box(&ct), &ct)));
    let packing = Packing::new(&pk, 1.0, 16, 100).expect("packing");
    let update: Vec<f32> = (0..10_000u16).map(|i| (f32::from(i) * 0.001).sin()).collect();
    g.sample_size(10);
    g.bench_function("packed_encrypt_10k_floats", |b| {
        b.iter(|| packing.encrypt(&pk, Some(&obf), black_box(&update), &mut rng))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
