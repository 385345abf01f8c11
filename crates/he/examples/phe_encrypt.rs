//! Encrypts values under a python-paillier public key and writes them in phe's layout (raw
//! ciphertext integer + base-16 exponent), plus their homomorphic sum computed here.
//!
//! `cargo run --release -p fl-he --example phe_encrypt -- KEY.json OUT.json [VALUE ...]`
//!
//! KEY.json needs `"n"` (decimal string), e.g. `../shared/reference/paillier_phe.json`. Check the
//! output with python-paillier: `python crates/he/scripts/phe_decrypt.py KEY.json OUT.json`.

#![allow(clippy::print_stdout, reason = "an example reports to the terminal")]

use fl_he::{EncodedNumber, EncryptedNumber, PublicKey};
use num_bigint::{BigInt, BigUint};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use serde_json::{Value, json};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [key_path, out_path, values @ ..] = args.as_slice() else {
        anyhow::bail!("usage: phe_encrypt KEY.json OUT.json [VALUE ...]");
    };
    let key: Value = serde_json::from_str(&std::fs::read_to_string(key_path)?)?;
    let n = key["n"]
        .as_str()
        .and_then(|s| BigUint::parse_bytes(s.as_bytes(), 10))
        .ok_or_else(|| anyhow::anyhow!("{key_path}: no decimal \"n\""))?;
    let pk = PublicKey::from_n(n)?;
    let defaults = [
        "0",
        "1",
        "-1",
        "42",
        "-123456789012345678901234567890",
        "0.1",
        "-0.5",
        "3.141592653589793",
        "1e-08",
        "-2.5e-05",
        "123456.789",
    ];
    let values: Vec<String> = if values.is_empty() {
        defaults.iter().map(|s| (*s).to_owned()).collect()
    } else {
        values.to_vec()
    };
    let mut rng = ChaCha20Rng::from_rng(&mut rand::rng());
    let mut entries = Vec::new();
    let mut sum: Option<EncryptedNumber> = None;
    let mut expected = 0.0f64;
    for v in &values {
        let is_float = v.contains(['.', 'e', 'E']);
        let enc = if is_float {
            let x: f64 = v.parse()?;
            expected += x;
            EncodedNumber::encode_f64(&pk, x, None, None)?
        } else {
            let x: BigInt = v.parse()?;
            expected += x.to_string().parse::<f64>()?;
            EncodedNumber::encode_int(&pk, &x, None)?
        };
        let c = EncryptedNumber {
            ciphertext: pk.encrypt_raw(&enc.encoding, &mut rng)?,
            exponent: enc.exponent,
        };
        sum = Some(match sum {
            None => c.clone(),
            Some(s) => s.add(&pk, &c)?,
        });
        entries.push(json!({
            "value": v, "kind": if is_float { "float" } else { "int" },
            "ciphertext": c.ciphertext.value().to_string(), "exponent": c.exponent,
        }));
    }
    let mut doc =
        json!({ "generator": "fl-he phe_encrypt", "n": pk.n().to_string(), "values": entries });
    if let Some(s) = sum {
        doc["sum"] = json!({ "ciphertext": s.ciphertext.value().to_string(), "exponent": s.exponent, "expected": format!("{expected:?}") });
    }
    std::fs::write(out_path, serde_json::to_string_pretty(&doc)?)?;
    println!("wrote {} ciphertexts under a {}-bit key to {out_path}", values.len(), pk.bits());
    Ok(())
}
