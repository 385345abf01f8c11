//! Element-wise encryption of float vectors in python-paillier's format (one [`EncryptedNumber`]
//! per value), parallel across elements with rayon. For throughput use [`crate::Packing`].

use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, RngExt, SeedableRng};
use rayon::prelude::*;

use crate::{Decoded, EncodedNumber, EncryptedNumber, Obfuscator, PrivateKey, PublicKey, Result};

/// Encrypts each value like `public_key.encrypt(value)` in python-paillier (default precision).
///
/// # Errors
///
/// Non-finite values or values beyond `max_int`.
pub fn encrypt_f64s(
    pk: &PublicKey,
    obfuscator: Option<&Obfuscator>,
    values: &[f64],
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<Vec<EncryptedNumber>> {
    let seeds: Vec<[u8; 32]> = values.iter().map(|_| rng.random()).collect();
    values
        .par_iter()
        .zip(seeds)
        .map(|(&v, seed)| {
            let e = EncodedNumber::encode_f64(pk, v, None, None)?;
            let mut r = ChaCha20Rng::from_seed(seed);
            let ciphertext = match obfuscator {
                Some(o) => o.encrypt(pk, &e.encoding, &mut r)?,
                None => pk.encrypt_raw(&e.encoding, &mut r)?,
            };
            Ok(EncryptedNumber { ciphertext, exponent: e.exponent })
        })
        .collect()
}

/// Adds two vectors element-wise (aligning exponents).
///
/// # Errors
///
/// [`crate::Error::InvalidParameter`] for different lengths.
pub fn add_vectors(
    pk: &PublicKey,
    a: &[EncryptedNumber],
    b: &[EncryptedNumber],
) -> Result<Vec<EncryptedNumber>> {
    if a.len() != b.len() {
        return Err(crate::Error::param("vectors", "different lengths"));
    }
    a.par_iter().zip(b).map(|(x, y)| x.add(pk, y)).collect()
}

/// Decrypts and decodes each element, in parallel.
///
/// # Errors
///
/// Invalid ciphertexts or overflow.
pub fn decrypt_f64s(sk: &PrivateKey, values: &[EncryptedNumber]) -> Result<Vec<f64>> {
    values
        .par_iter()
        .map(|v| {
            let encoding = sk.decrypt_raw(&v.ciphertext)?;
            Ok(EncodedNumber { encoding, exponent: v.exponent }.decode(sk.public_key())?.to_f64())
        })
        .collect::<Result<Vec<f64>>>()
        .map(|v| v.into_iter().collect())
}

/// Decrypts one number to its decoded value.
///
/// # Errors
///
/// Invalid ciphertext or overflow.
pub fn decrypt_number(sk: &PrivateKey, v: &EncryptedNumber) -> Result<Decoded> {
    let encoding = sk.decrypt_raw(&v.ciphertext)?;
    EncodedNumber { encoding, exponent: v.exponent }.decode(sk.public_key())
}
