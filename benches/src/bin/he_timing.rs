//! Times fl-he at 2048 bits the way `../shared/anchors/bench_phe.py` times python-paillier, and
//! the packed-update goals, printing JSON lines (`cargo xtask bench-compare he` reads them).
//!
//! Per-operation rates are measured twice: on one thread (comparable with phe's single thread)
//! and across both cores with rayon (the goal's setting).

#![allow(
    clippy::print_stdout,
    clippy::cast_precision_loss,
    reason = "a benchmark reports to the terminal"
)]

use std::time::Instant;

use fl_he::{Obfuscator, Packing, PrivateKey, ThresholdKey, vector};
use num_bigint::{BigInt, BigUint};
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

fn rate(name: &str, batch: usize, f: impl Fn(usize) + Sync) {
    // Median of 5 runs of `batch` operations, single thread and parallel.
    let time = |par: bool| {
        let mut v: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                if par {
                    (0..batch).into_par_iter().for_each(&f);
                } else {
                    (0..batch).for_each(&f);
                }
                t.elapsed().as_secs_f64() / batch as f64
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v[2]
    };
    let (one, two) = (time(false), time(true));
    println!(
        "{{\"op\": \"{name}\", \"ops_per_s_1thread\": {:.1}, \"ops_per_s_2cores\": {:.1}}}",
        1.0 / one,
        1.0 / two
    );
}

/// Threshold decryption at 2048 bits: dealing (safe primes), decryption shares, combining.
fn threshold(rng: &mut ChaCha20Rng) -> anyhow::Result<()> {
    let (parties, t_needed) = (10, 6);
    let t = Instant::now();
    let (key, shares) = ThresholdKey::deal(2048, parties, t_needed, rng)?;
    println!(
        "{{\"op\": \"threshold_deal_2048_{parties}_{t_needed}\", \"seconds\": {:.1}}}",
        t.elapsed().as_secs_f64()
    );
    let cts: Vec<_> = (0..16u64)
        .map(|i| key.public.encrypt_raw(&BigUint::from(i * 1_000_003), rng))
        .collect::<Result<_, _>>()?;
    rate("threshold_decrypt_share", 16, |i| drop(shares[0].decrypt_share(&key, &cts[i % 16])));
    let by_ct: Vec<Vec<_>> = cts
        .iter()
        .map(|c| shares[..t_needed as usize].iter().map(|s| s.decrypt_share(&key, c)).collect())
        .collect::<Result<_, _>>()?;
    rate("threshold_combine", 16, |i| drop(key.combine(&by_ct[i % 16])));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut rng = ChaCha20Rng::from_rng(&mut rand::rng());
    if std::env::args().nth(1).as_deref() == Some("threshold") {
        return threshold(&mut rng);
    }
    let mut keygen: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let _ = PrivateKey::generate(2048, &mut rng);
            t.elapsed().as_secs_f64()
        })
        .collect();
    keygen.sort_by(f64::total_cmp);
    println!("{{\"op\": \"keygen\", \"median_s\": {:.4}}}", keygen[1]);
    let sk = PrivateKey::generate(2048, &mut rng)?;
    let pk = sk.public_key().clone();
    let t = Instant::now();
    let obf = Obfuscator::new(&pk, 8, &mut rng)?;
    println!("{{\"op\": \"obfuscator_table_w8\", \"seconds\": {:.3}}}", t.elapsed().as_secs_f64());
    let ints: Vec<BigUint> = (0..64).map(|_| BigUint::from(rng.random::<u64>() >> 2)).collect();
    let cts: Vec<_> = ints.iter().map(|m| pk.encrypt_raw(m, &mut rng)).collect::<Result<_, _>>()?;
    let seeds: Vec<u64> = (0..64).map(|_| rng.random()).collect();
    let r = |i: usize| ChaCha20Rng::seed_from_u64(seeds[i % 64] ^ i as u64);
    rate("encrypt_public", 32, |i| drop(pk.encrypt_raw(&ints[i % 64], &mut r(i))));
    rate("encrypt_obfuscator", 64, |i| drop(obf.encrypt(&pk, &ints[i % 64], &mut r(i))));
    rate("encrypt_crt", 64, |i| drop(sk.encrypt_raw(&ints[i % 64], &mut r(i))));
    rate("decrypt", 64, |i| drop(sk.decrypt_raw(&cts[i % 64])));
    rate("add", 20_000, |i| drop(pk.add(&cts[i % 64], &cts[(i + 1) % 64])));
    let scal: Vec<BigInt> =
        (0..64).map(|_| BigInt::from(rng.random_range(1..1u64 << 31))).collect();
    rate("mul_int_scalar", 256, |i| drop(pk.mul_plain(&cts[i % 64], &scal[i % 64])));

    // A 10,000-float update, packed (16-bit values, headroom for 100 additions) and element-wise.
    let update: Vec<f32> = (0..10_000).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let packing = Packing::new(&pk, 1.0, 16, 100)?;
    let t = Instant::now();
    let packed = packing.encrypt(&pk, Some(&obf), &update, &mut rng)?;
    let enc_packed = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let packed_public = packing.encrypt(&pk, None, &update, &mut rng)?;
    let enc_packed_public = t.elapsed().as_secs_f64();
    let floats: Vec<f64> = update.iter().map(|&x| f64::from(x)).collect();
    let t = Instant::now();
    let elementwise = vector::encrypt_f64s(&pk, Some(&obf), &floats, &mut rng)?;
    let enc_elem = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let back = vector::decrypt_f64s(&sk, &elementwise)?;
    let dec_elem = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        back.iter().zip(&floats).all(|(a, b)| (a - b).abs() < 1e-12),
        "element-wise round trip lost precision"
    );
    println!(
        "{{\"op\": \"vector_10k\", \"ciphertexts_packed\": {}, \"encrypt_packed_obfuscator_s\": {enc_packed:.3}, \"encrypt_packed_public_s\": {enc_packed_public:.3}, \"encrypt_elementwise_s\": {enc_elem:.2}, \"decrypt_elementwise_s\": {dec_elem:.2}}}",
        packed.ciphertexts.len()
    );
    drop(packed_public);
    // 100 such updates summed and decrypted.
    let mut vectors = vec![packed];
    for _ in 1..100 {
        let u: Vec<f32> = (0..10_000).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        vectors.push(packing.encrypt(&pk, Some(&obf), &u, &mut rng)?);
    }
    let t = Instant::now();
    let mut total = vectors[0].clone();
    for v in &vectors[1..] {
        total = packing.add(&pk, &total, v)?;
    }
    let sum_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let sums = packing.decrypt(&sk, &total)?;
    let dec_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(sums.len() == 10_000, "packed sum decrypted to {} values", sums.len());
    println!(
        "{{\"op\": \"sum_100_packed_10k\", \"sum_s\": {sum_s:.3}, \"decrypt_s\": {dec_s:.3}, \"total_s\": {:.3}}}",
        sum_s + dec_s
    );
    Ok(())
}
