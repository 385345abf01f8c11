//! Helpers around num-bigint: decimal serde, CSPRNG sampling, and constant-time modular
//! exponentiation for secret exponents through crypto-bigint's Montgomery arithmetic.

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use num_bigint::{BigRng010 as BigRng, BigUint};
use num_integer::Integer;
use num_traits::One;
use rand::CryptoRng;

use crate::{Error, Result};

/// Serializes big integers as decimal strings (readable, and what python-paillier's JSON uses).
///
/// Reading refuses strings of more than `MAX_DECIMAL_DIGITS` digits before parsing them:
/// decimal parsing is superlinear, and these values arrive from the network.
pub(crate) mod dec {
    use num_bigint::BigUint;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Longest decimal integer accepted: 20,000 digits ≈ 66,000 bits, twice the n² of a
    /// 16,384-bit key.
    pub(crate) const MAX_DECIMAL_DIGITS: usize = 20_000;

    pub(crate) fn serialize<S: Serializer>(v: &BigUint, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_str_radix(10))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BigUint, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() > MAX_DECIMAL_DIGITS {
            return Err(serde::de::Error::custom(format!(
                "a decimal integer of {} digits (at most {MAX_DECIMAL_DIGITS})",
                s.len()
            )));
        }
        BigUint::parse_bytes(s.as_bytes(), 10)
            .ok_or_else(|| serde::de::Error::custom("not a decimal integer"))
    }
}

/// A uniformly random unit of `Z_n` (`1 ≤ r < n`, `gcd(r, n) = 1`).
pub(crate) fn random_unit(n: &BigUint, rng: &mut (impl CryptoRng + ?Sized)) -> BigUint {
    loop {
        let r = rng.random_biguint_range(&BigUint::one(), n);
        if r.gcd(n).is_one() {
            return r;
        }
    }
}

/// A uniformly random integer with at most `bits` bits.
pub(crate) fn random_bits(bits: u64, rng: &mut (impl CryptoRng + ?Sized)) -> BigUint {
    rng.random_biguint(bits)
}

fn precision(bits: u64) -> u32 {
    // Whole 64-bit limbs.
    u32::try_from(bits.div_ceil(64).max(1) * 64).unwrap_or(u32::MAX)
}

fn to_boxed(x: &BigUint, bits: u32) -> Result<BoxedUint> {
    BoxedUint::from_be_slice(&x.to_bytes_be(), bits)
        .map_err(|_| Error::param("integer", "does not fit its precision"))
}

/// A fixed odd modulus with Montgomery parameters, for exponentiations whose exponent is secret
/// (CRT decryption, CRT encryption, threshold shares): crypto-bigint's `pow` runs in time that
/// depends only on the exponent's precision, not its value.
#[derive(Clone, Debug)]
pub(crate) struct CtModulus {
    modulus: BigUint,
    params: BoxedMontyParams,
    bits: u32,
}

impl CtModulus {
    pub(crate) fn new(modulus: &BigUint) -> Result<Self> {
        let bits = precision(modulus.bits());
        let m = to_boxed(modulus, bits)?;
        let odd = Option::<Odd<BoxedUint>>::from(Odd::new(m))
            .ok_or_else(|| Error::param("modulus", "must be odd"))?;
        Ok(Self { modulus: modulus.clone(), params: BoxedMontyParams::new(odd), bits })
    }

    /// `base^exp mod m`, constant time in `exp` for a given `exp_bits` precision.
    pub(crate) fn pow(&self, base: &BigUint, exp: &BigUint, exp_bits: u64) -> Result<BigUint> {
        let b = to_boxed(&(base % &self.modulus), self.bits)?;
        let e = to_boxed(exp, precision(exp_bits.max(exp.bits())))?;
        let r = BoxedMontyForm::new(b, &self.params).pow(&e).retrieve();
        Ok(BigUint::from_bytes_be(&r.to_be_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use crate::Ciphertext;

    #[test]
    fn oversized_decimal_integers_are_refused_before_parsing() {
        let ok = format!("\"{}\"", "7".repeat(super::dec::MAX_DECIMAL_DIGITS));
        assert!(serde_json::from_str::<Ciphertext>(&ok).is_ok());
        let long = format!("\"{}\"", "7".repeat(super::dec::MAX_DECIMAL_DIGITS + 1));
        let e = serde_json::from_str::<Ciphertext>(&long).unwrap_err().to_string();
        assert!(e.contains("digits"), "{e}");
        assert!(serde_json::from_str::<Ciphertext>("\"12a\"").is_err());
    }
}
