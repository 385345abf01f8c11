//! Interoperability with python-paillier (phe 1.5): `../shared/reference/paillier_phe.json`
//! holds a phe key pair, raw ciphertexts with their obfuscators and plaintexts, homomorphic sums
//! and scalar products, and float encodings. Every ciphertext is recomputed bit for bit from its
//! `r`, every homomorphic result is recomputed from its inputs, and everything is decrypted and
//! decoded. Set `FL_HE_PHE_VECTORS=/path/file.json` to check another file of the same format as
//! well.

#![allow(clippy::panic_in_result_fn, clippy::unwrap_used, reason = "test code")]

use std::path::PathBuf;

use fl_he::{Ciphertext, Decoded, EncodedNumber, EncryptedNumber, Error, PrivateKey, PublicKey};
use num_bigint::{BigInt, BigUint};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn big(v: &Value) -> BigUint {
    BigUint::parse_bytes(v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).as_bytes(), 10)
        .unwrap()
}

fn bigint(v: &Value) -> BigInt {
    BigInt::parse_bytes(v.as_str().unwrap().as_bytes(), 10).unwrap()
}

fn exponent(v: &Value) -> i32 {
    i32::try_from(v.as_i64().unwrap()).unwrap()
}

/// A Python number written as text: an int unless it has a point or an exponent.
fn is_float_text(s: &str) -> bool {
    s.contains(['.', 'e', 'E']) || s.contains("inf") || s.contains("nan")
}

fn check_decoded(got: &Decoded, expected: &str, what: &str) {
    match got {
        Decoded::Int(i) => assert_eq!(i.to_string(), expected, "{what}"),
        Decoded::Float(f) => {
            let want: f64 = expected.parse().unwrap();
            assert_eq!(f.to_bits(), want.to_bits(), "{what}: {f} vs {expected}");
        }
    }
}

fn check_file(path: &PathBuf) -> TestResult {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&text)?;
    let sk = PrivateKey::from_factors(&big(&doc["p"]), &big(&doc["q"]))?;
    let pk: &PublicKey = sk.public_key();
    assert_eq!(pk.n(), &big(&doc["n"]));
    assert_eq!(pk.max_int(), &big(&doc["max_int"]));

    let mut checked = 0;
    for case in doc["cases"].as_array().unwrap() {
        let plaintext = bigint(&case["plaintext"]);
        let enc = EncodedNumber::encode_int(pk, &plaintext, None)?;
        assert_eq!(enc.encoding, big(&case["encoding"]), "encoding of {plaintext}");
        assert_eq!(enc.exponent, exponent(&case["exponent"]));
        let c = pk.encrypt_with_r(&enc.encoding, &big(&case["r"]))?;
        assert_eq!(c.value(), &big(&case["ciphertext"]), "ciphertext of {plaintext}");
        assert_eq!(sk.decrypt_raw(&c)?, enc.encoding);
        check_decoded(&enc.decode(pk)?, &plaintext.to_string(), "int case");
        checked += 1;
    }

    for case in doc["sums"].as_array().unwrap() {
        let note = case["note"].as_str().unwrap_or("");
        let terms: Vec<EncryptedNumber> = case["terms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| EncryptedNumber {
                ciphertext: Ciphertext::from_value(big(&t["ciphertext"])),
                exponent: exponent(&t["exponent"]),
            })
            .collect();
        let mut sum = terms[0].clone();
        for t in &terms[1..] {
            sum = sum.add(pk, t)?;
        }
        assert_eq!(sum.exponent, exponent(&case["result_exponent"]), "{note}");
        assert_eq!(sum.ciphertext.value(), &big(&case["sum_ciphertext"]), "{note}");
        let raw = sk.decrypt_raw(&sum.ciphertext)?;
        assert_eq!(raw, big(&case["expected_raw_plaintext"]), "{note}");
        let decoded = EncodedNumber { encoding: raw, exponent: sum.exponent }.decode(pk);
        match case.get("expected_error").and_then(Value::as_str) {
            Some("OverflowError") => {
                assert!(matches!(decoded, Err(Error::Overflow)), "{note}: {decoded:?}")
            }
            Some(other) => panic!("unknown expected error {other}"),
            None => check_decoded(&decoded?, case["expected_sum"].as_str().unwrap(), note),
        }
        checked += 1;
    }

    for case in doc["scalar_products"].as_array().unwrap() {
        let note = case["note"].as_str().unwrap_or("");
        let x = EncryptedNumber {
            ciphertext: Ciphertext::from_value(big(&case["ciphertext"])),
            exponent: exponent(&case["exponent"]),
        };
        let scalar_text = case["scalar"].as_str().unwrap();
        let scalar = if is_float_text(scalar_text) {
            EncodedNumber::encode_f64(pk, scalar_text.parse()?, None, None)?
        } else {
            EncodedNumber::encode_int(pk, &scalar_text.parse::<BigInt>()?, None)?
        };
        assert_eq!(scalar.encoding, big(&case["scalar_encoding"]), "{note}");
        assert_eq!(scalar.exponent, exponent(&case["scalar_exponent"]), "{note}");
        let product = x.mul(pk, &scalar)?;
        assert_eq!(product.exponent, exponent(&case["result_exponent"]), "{note}");
        assert_eq!(product.ciphertext.value(), &big(&case["product_ciphertext"]), "{note}");
        let raw = sk.decrypt_raw(&product.ciphertext)?;
        assert_eq!(raw, big(&case["expected_raw_plaintext"]), "{note}");
        check_decoded(
            &EncodedNumber { encoding: raw, exponent: product.exponent }.decode(pk)?,
            case["expected_product"].as_str().unwrap(),
            note,
        );
        checked += 1;
    }

    for case in doc["float_encodings"].as_array().unwrap() {
        let repr = case["value_repr"].as_str().unwrap();
        let value: f64 = repr.parse()?;
        let precision = case["precision"].as_f64();
        let enc = EncodedNumber::encode_f64(pk, value, precision, None)?;
        assert_eq!(
            enc.exponent,
            exponent(&case["exponent"]),
            "exponent of {repr} at {precision:?}"
        );
        assert_eq!(enc.encoding, big(&case["encoding"]), "encoding of {repr}");
        assert_eq!(enc.mantissa(pk)?, bigint(&case["mantissa"]), "mantissa of {repr}");
        let c = pk.encrypt_with_r(&enc.encoding, &big(&case["r"]))?;
        assert_eq!(c.value(), &big(&case["ciphertext"]), "ciphertext of {repr}");
        let decoded =
            EncodedNumber { encoding: sk.decrypt_raw(&c)?, exponent: enc.exponent }.decode(pk)?;
        let kind = if matches!(decoded, Decoded::Int(_)) { "int" } else { "float" };
        assert_eq!(kind, case["decoded_type"].as_str().unwrap(), "{repr}");
        check_decoded(&decoded, case["decoded"].as_str().unwrap(), repr);
        checked += 1;
    }
    assert!(checked >= 4, "no vectors in {}", path.display());
    Ok(())
}

#[test]
fn python_paillier_vectors_decrypt_and_recompute() -> TestResult {
    check_file(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/reference/paillier_phe.json"),
    )?;
    if let Some(extra) = std::env::var_os("FL_HE_PHE_VECTORS") {
        check_file(&PathBuf::from(extra))?;
    }
    Ok(())
}
