//! Algebraic laws under random inputs: encoding round trips, the additive homomorphism, scalar
//! multiplication with negative scalars, exact packed sums, and the fast encryption paths
//! decrypting exactly like the plain one.

#![allow(
    clippy::unwrap_used,
    clippy::panic_in_result_fn,
    clippy::cast_precision_loss,
    reason = "test code"
)]

use std::sync::OnceLock;

use fl_he::{Decoded, EncodedNumber, Obfuscator, Packing, PrivateKey, vector};
use num_bigint::{BigInt, BigUint};
use proptest::prelude::*;
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        PrivateKey::generate_insecure_for_tests(512, &mut ChaCha20Rng::seed_from_u64(11)).unwrap()
    })
}

fn obfuscator() -> &'static Obfuscator {
    static OBF: OnceLock<Obfuscator> = OnceLock::new();
    OBF.get_or_init(|| {
        Obfuscator::new(key().public_key(), 6, &mut ChaCha20Rng::seed_from_u64(12)).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn floats_encode_and_decode_exactly(v in prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO) {
        let pk = key().public_key();
        // A float's 53-bit mantissa at its natural exponent always fits under max_int.
        let e = EncodedNumber::encode_f64(pk, v, None, None).unwrap();
        prop_assert_eq!(e.decode(pk).unwrap().to_f64(), v);
    }

    #[test]
    fn addition_and_scalar_multiplication_are_homomorphic(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000, k in -1000i64..1000, seed in any::<u64>()) {
        let sk = key();
        let pk = sk.public_key();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let ea = vector::encrypt_f64s(pk, Some(obfuscator()), &[a as f64 * 0.5], &mut rng).unwrap().remove(0);
        let eb = vector::encrypt_f64s(pk, None, &[b as f64], &mut rng).unwrap().remove(0);
        let sum = ea.add(pk, &eb).unwrap();
        prop_assert_eq!(vector::decrypt_number(sk, &sum).unwrap().to_f64(), a as f64 * 0.5 + b as f64);
        let scalar = EncodedNumber::encode_int(pk, &BigInt::from(k), None).unwrap();
        let prod = eb.mul(pk, &scalar).unwrap();
        prop_assert_eq!(vector::decrypt_number(sk, &prod).unwrap().to_f64(), (b * k) as f64);
        let int_scalar = EncodedNumber::encode_int(pk, &BigInt::from(b), None).unwrap();
        let enc_int = fl_he::EncryptedNumber { ciphertext: pk.encrypt_raw(&int_scalar.encoding, &mut rng).unwrap(), exponent: 0 };
        prop_assert_eq!(vector::decrypt_number(sk, &enc_int.mul(pk, &scalar).unwrap()).unwrap(), Decoded::Int(BigInt::from(b * k)));
    }

    #[test]
    fn packed_sums_are_exact(len in 1usize..300, terms in 1u64..12, bits in 4u32..20, seed in any::<u64>()) {
        let sk = key();
        let pk = sk.public_key();
        let packing = Packing::new(pk, 2.0, bits, 16).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let vectors: Vec<Vec<f32>> = (0..terms).map(|t| (0..len).map(|i| (((i as f32) * 0.37 + t as f32).sin()) * 2.5).collect()).collect();
        // The integer sums the slots must hold, from the same quantization draws.
        let mut expected = vec![0u64; len];
        let mut total: Option<fl_he::PackedVector> = None;
        for v in &vectors {
            let qseed: u64 = rng.random();
            let q = packing.quantize(v, &mut ChaCha20Rng::seed_from_u64(qseed)).unwrap();
            for (e, x) in expected.iter_mut().zip(&q) { *e += x; }
            let plains = packing.pack(&q);
            let cts = plains.iter().map(|m| pk.encrypt_raw(m, &mut rng)).collect::<Result<Vec<_>, _>>().unwrap();
            let p = fl_he::PackedVector { ciphertexts: cts, len, terms: 1 };
            total = Some(match total { None => p, Some(t) => packing.add(pk, &t, &p).unwrap() });
        }
        let total = total.unwrap();
        let plains: Vec<BigUint> = total.ciphertexts.iter().map(|c| sk.decrypt_raw(c).unwrap()).collect();
        prop_assert_eq!(packing.unpack(&plains, len), expected.clone());
        let floats = packing.dequantize_sum(&expected, terms);
        let decrypted = packing.decrypt(sk, &total).unwrap();
        prop_assert_eq!(decrypted, floats.clone());
        // Each quantized value is within one step of the clipped input.
        let step = 4.0 / ((1u64 << bits) - 1) as f64;
        for i in 0..len {
            let want: f64 = vectors.iter().map(|v| f64::from(v[i]).clamp(-2.0, 2.0)).sum();
            prop_assert!((floats[i] - want).abs() <= step * terms as f64 + 1e-9);
        }
    }
}

#[test]
fn packing_refuses_overflowing_sums_and_bad_input() {
    let sk = key();
    let pk = sk.public_key();
    let packing = Packing::new(pk, 1.0, 16, 2).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let a = packing.encrypt(pk, Some(obfuscator()), &[0.5, -0.25, 1.0], &mut rng).unwrap();
    let ab = packing.add(pk, &a, &a).unwrap();
    assert!(packing.add(pk, &ab, &a).is_err(), "a third term would exceed the headroom");
    let got = packing.decrypt(sk, &ab).unwrap();
    for (g, w) in got.iter().zip([1.0, -0.5, 2.0]) {
        assert!((g - w).abs() <= 2.0 * 2.0 / 65535.0, "{g} vs {w}");
    }
    assert!(packing.encrypt(pk, None, &[f32::NAN], &mut rng).is_err());
    assert!(Packing::new(pk, 0.0, 16, 2).is_err());
    assert!(Packing::new(pk, 1.0, 60, 1 << 20).is_err());
}

#[test]
fn untrusted_input_gets_errors_not_panics() {
    let sk = key();
    let pk = sk.public_key();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(EncodedNumber::encode_f64(pk, v, None, None).is_err(), "{v}");
    }
    assert!(vector::encrypt_f64s(pk, None, &[1.0, f64::NAN], &mut rng).is_err());
    let huge = BigInt::from(pk.max_int().clone()) + 1u32;
    assert!(EncodedNumber::encode_int(pk, &huge, None).is_err(), "above max_int");
    // Ciphertexts from the wire: zero, n² and above, and non-units are refused.
    for bad in [BigUint::ZERO, pk.n_squared().clone(), pk.n_squared() + 5u32, pk.n().clone()] {
        let c = fl_he::Ciphertext::from_value(bad);
        assert!(pk.validate(&c).is_err());
        assert!(sk.decrypt_raw(&c).is_err());
    }
    // Keys and ciphertexts from JSON: non-decimal, negative, tiny or even moduli.
    for text in [r#"{"n":"abc"}"#, r#"{"n":"-77"}"#, r#"{"n":"15"}"#, r#"{"n":1}"#, "{}"] {
        assert!(serde_json::from_str::<fl_he::PublicKey>(text).is_err(), "{text}");
    }
    // Vectors under different keys or of different lengths do not add.
    let other = PrivateKey::generate_insecure_for_tests(512, &mut rng).unwrap();
    let a = vector::encrypt_f64s(pk, None, &[1.0], &mut rng).unwrap();
    let b = vector::encrypt_f64s(other.public_key(), None, &[1.0], &mut rng).unwrap();
    assert!(vector::add_vectors(pk, &a, &a[..0]).is_err(), "length mismatch");
    let mixed = vector::add_vectors(pk, &a, &b);
    assert!(
        mixed.is_err() || vector::decrypt_f64s(sk, &mixed.unwrap()).map_or(true, |v| v != [2.0])
    );
}
