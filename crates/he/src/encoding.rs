//! Fixed-point encoding of signed numbers, compatible with python-paillier's `EncodedNumber`
//! (phe 1.5): a value is `mantissa · 16^exponent`; the mantissa is stored as `mantissa mod n`, so
//! negatives live in `[n − max_int, n)`; `|mantissa| ≤ max_int = n // 3 − 1`. Floats get the
//! exponent that keeps all 53 bits of their mantissa (`⌊(frexp exponent − 53)/4⌋`), or the
//! exponent of a requested precision; ints get exponent 0. Decoding an encoding in the band
//! between `max_int` and `n − max_int` is an overflow.

use num_bigint::{BigInt, BigUint, Sign};
use num_integer::Integer;
use num_traits::{One, ToPrimitive, Zero};
use serde::{Deserialize, Serialize};

use crate::bigint::dec;
use crate::{Ciphertext, Error, PublicKey, Result};

/// The encoding base (python-paillier's `EncodedNumber.BASE`).
pub const BASE: u32 = 16;
const LOG2_BASE: i64 = 4;
const FLOAT_MANTISSA_BITS: i64 = 53;

/// Largest positive exponent [`EncodedNumber::decode`] expands: the exact integer would have
/// `4 · exponent` more bits than the mantissa (python-paillier computes it whatever its size,
/// so an exponent of 2³¹ from a file asks for a gigabyte).
pub const MAX_DECODE_EXPONENT: i32 = 1 << 16;

/// `16^Δ mod n`: the plaintext factor that lowers an exponent by Δ. Plaintexts live in `Z_n`,
/// so reducing it changes nothing a decryption sees; python-paillier raises to `16^Δ` unreduced,
/// which is the same number while `16^Δ < n` (every exponent a float encoding produces) and
/// asks for 2³³ bits when Δ = 2³¹ arrives in a file.
fn base_power(delta: u32, n: &BigUint) -> BigUint {
    BigUint::from(BASE).modpow(&BigUint::from(delta), n)
}

/// A number encoded for a key: `encoding ∈ [0, n)` and a base-16 exponent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedNumber {
    /// `mantissa mod n`.
    #[serde(with = "dec")]
    pub encoding: BigUint,
    /// Base-16 exponent.
    pub exponent: i32,
}

/// A decoded value: an integer when the exponent is ≥ 0 (python-paillier returns an `int`),
/// otherwise a float.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    /// Exact integer.
    Int(BigInt),
    /// Correctly rounded float.
    Float(f64),
}

impl Decoded {
    /// The value as an f64 (integers rounded to nearest).
    #[must_use]
    pub fn to_f64(&self) -> f64 {
        match self {
            Self::Int(i) => big_to_f64(i, 0),
            Self::Float(f) => *f,
        }
    }
}

/// `2^k` as an f64 for any k, by exact steps.
fn scale_pow2(mut x: f64, mut k: i64) -> f64 {
    while k > 1000 {
        x *= 2f64.powi(1000);
        k -= 1000;
    }
    while k < -1000 {
        x *= 2f64.powi(-1000);
        k += 1000;
    }
    #[allow(clippy::cast_possible_truncation, reason = "|k| ≤ 1000")]
    let k = k as i32;
    x * 2f64.powi(k)
}

/// `m · 2^e2` correctly rounded to the nearest f64 (ties to even), including subnormals, as
/// Python's `int / int` true division does for a power-of-two divisor.
pub(crate) fn big_to_f64(m: &BigInt, e2: i64) -> f64 {
    let neg = m.sign() == Sign::Minus;
    let mag = m.magnitude();
    if mag.is_zero() {
        return if neg { -0.0 } else { 0.0 };
    }
    let len = i64::try_from(mag.bits()).unwrap_or(i64::MAX);
    let top = len - 1 + e2; // exponent of the leading bit
    if top > 1023 {
        return if neg { f64::NEG_INFINITY } else { f64::INFINITY };
    }
    // Bits of precision available at this magnitude: 53 for normals, fewer for subnormals.
    let keep = if top >= -1022 { 53 } else { 53 - (-1022 - top) };
    let v = if keep <= 0 {
        // Below half the smallest subnormal rounds to 0; exactly half ties to even (0).
        let half = top == -1075 && mag.trailing_zeros() == Some(mag.bits() - 1);
        if top >= -1075 && !half { 2f64.powi(-1074) } else { 0.0 }
    } else {
        let drop = len - keep;
        let (kept, exp) = if drop <= 0 {
            (mag.clone(), e2)
        } else {
            #[allow(clippy::cast_sign_loss, reason = "drop > 0")]
            let d = drop as u64;
            let kept = mag >> d;
            let rem = mag - (&kept << d);
            let half = BigUint::one() << (d - 1);
            let up = rem > half || (rem == half && kept.is_odd());
            (if up { kept + 1u32 } else { kept }, e2 + drop)
        };
        scale_pow2(kept.to_f64().unwrap_or(f64::INFINITY), exp)
    };
    if neg { -v } else { v }
}

/// `round(x)` of an exact binary fraction `m · 2^s` to the nearest integer, ties to even
/// (Python's `round(Fraction)`).
fn round_shift(m: &BigInt, s: i64) -> BigInt {
    if s >= 0 {
        #[allow(clippy::cast_sign_loss, reason = "s ≥ 0")]
        return m << (s as u64);
    }
    #[allow(clippy::cast_sign_loss, reason = "s < 0")]
    let d = (-s) as u64;
    let (q, r) = m.div_mod_floor(&(BigInt::one() << d));
    let half = BigInt::one() << (d - 1);
    if r > half || (r == half && q.is_odd()) { q + 1 } else { q }
}

impl EncodedNumber {
    fn from_int_rep(pk: &PublicKey, int_rep: &BigInt, exponent: i32) -> Result<Self> {
        if int_rep.magnitude() > pk.max_int() {
            return Err(Error::OutOfRange(format!(
                "|mantissa| > max_int for a {}-bit key",
                pk.bits()
            )));
        }
        let n = BigInt::from(pk.n().clone());
        let encoding = int_rep.mod_floor(&n).magnitude().clone();
        Ok(Self { encoding, exponent })
    }

    /// Encodes an integer (exponent 0, or `max_exponent` if lower, as python-paillier).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] if `|value| > max_int`.
    pub fn encode_int(pk: &PublicKey, value: &BigInt, max_exponent: Option<i32>) -> Result<Self> {
        let exponent = max_exponent.map_or(0, |m| m.min(0));
        let int_rep = round_shift(value, -i64::from(exponent) * LOG2_BASE);
        Self::from_int_rep(pk, &int_rep, exponent)
    }

    /// Encodes a finite float like `EncodedNumber.encode(pk, value, precision, max_exponent)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for NaN/∞ or a non-positive precision; [`Error::OutOfRange`]
    /// if the mantissa exceeds `max_int`.
    pub fn encode_f64(
        pk: &PublicKey,
        value: f64,
        precision: Option<f64>,
        max_exponent: Option<i32>,
    ) -> Result<Self> {
        if !value.is_finite() {
            return Err(Error::param("value", format!("{value} is not finite")));
        }
        let prec_exponent: i64 = match precision {
            None => {
                let bin_flt_exponent = frexp_exponent(value);
                let bin_lsb_exponent = bin_flt_exponent - FLOAT_MANTISSA_BITS;
                bin_lsb_exponent.div_euclid(LOG2_BASE)
            }
            Some(p) if p.is_finite() && p > 0.0 => {
                // math.floor(math.log(precision, 16)), as Python computes it.
                #[allow(clippy::cast_possible_truncation, reason = "log of a finite float")]
                let e = (p.ln() / 16f64.ln()).floor() as i64;
                e
            }
            Some(p) => {
                return Err(Error::param("precision", format!("{p} is not finite and positive")));
            }
        };
        let exponent = max_exponent.map_or(prec_exponent, |m| prec_exponent.min(i64::from(m)));
        let exponent =
            i32::try_from(exponent).map_err(|_| Error::param("exponent", "out of range"))?;
        // value = M · 2^E exactly; int_rep = round(value · 16^{−exponent}).
        let (mant, e2) = float_parts(value);
        let int_rep = round_shift(&mant, e2 - i64::from(exponent) * LOG2_BASE);
        Self::from_int_rep(pk, &int_rep, exponent)
    }

    /// The signed mantissa.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] for an encoding ≥ n; [`Error::Overflow`] in the band between
    /// `max_int` and `n − max_int`.
    pub fn mantissa(&self, pk: &PublicKey) -> Result<BigInt> {
        let n = pk.n();
        if &self.encoding >= n {
            return Err(Error::OutOfRange("corrupted encoding (≥ n)".into()));
        }
        if &self.encoding <= pk.max_int() {
            Ok(BigInt::from(self.encoding.clone()))
        } else if self.encoding >= n - pk.max_int() {
            Ok(BigInt::from(self.encoding.clone()) - BigInt::from(n.clone()))
        } else {
            Err(Error::Overflow)
        }
    }

    /// Decodes like python-paillier: an exact integer for exponent ≥ 0, else the correctly
    /// rounded float `mantissa / 16^−exponent`.
    ///
    /// # Errors
    ///
    /// As [`Self::mantissa`]; [`Error::OutOfRange`] for an exponent above
    /// [`MAX_DECODE_EXPONENT`].
    pub fn decode(&self, pk: &PublicKey) -> Result<Decoded> {
        let m = self.mantissa(pk)?;
        if self.exponent > MAX_DECODE_EXPONENT {
            return Err(Error::OutOfRange(format!(
                "exponent {} above {MAX_DECODE_EXPONENT}: the integer would have over {} bits",
                self.exponent,
                4 * i64::from(MAX_DECODE_EXPONENT)
            )));
        }
        if self.exponent >= 0 {
            Ok(Decoded::Int(m * BigInt::from(BASE).pow(self.exponent.unsigned_abs())))
        } else {
            Ok(Decoded::Float(big_to_f64(&m, i64::from(self.exponent) * LOG2_BASE)))
        }
    }

    /// The same number at a lower exponent (mantissa × 16^{Δ} mod n).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if `new_exponent` is higher than the current one.
    pub fn decrease_exponent_to(&self, pk: &PublicKey, new_exponent: i32) -> Result<Self> {
        if new_exponent > self.exponent {
            return Err(Error::param("exponent", "can only decrease"));
        }
        let factor = base_power(self.exponent.abs_diff(new_exponent), pk.n());
        Ok(Self { encoding: &self.encoding * factor % pk.n(), exponent: new_exponent })
    }
}

/// Python's `math.frexp(x)[1]`: x = m·2^e with 0.5 ≤ |m| < 1 (0 for x = 0).
fn frexp_exponent(x: f64) -> i64 {
    if x == 0.0 {
        return 0;
    }
    let (mant, e2) = float_parts(x);
    i64::try_from(mant.magnitude().bits()).unwrap_or(0) + e2
}

/// x = M · 2^E exactly, M an integer.
fn float_parts(x: f64) -> (BigInt, i64) {
    let bits = x.to_bits();
    let sign = if bits >> 63 == 1 { -1 } else { 1 };
    let exp = i64::try_from((bits >> 52) & 0x7ff).unwrap_or(0);
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if exp == 0 { (frac, -1074) } else { (frac | (1u64 << 52), exp - 1075) };
    (BigInt::from(m) * sign, e)
}

/// A ciphertext with its exponent: python-paillier's `EncryptedNumber`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedNumber {
    /// The raw ciphertext of the encoding.
    pub ciphertext: Ciphertext,
    /// Base-16 exponent.
    pub exponent: i32,
}

impl EncryptedNumber {
    /// Lowers the exponent by multiplying the plaintext by `16^Δ` (ciphertext to that power).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if `new_exponent` is higher.
    pub fn decrease_exponent_to(&self, pk: &PublicKey, new_exponent: i32) -> Result<Self> {
        if new_exponent > self.exponent {
            return Err(Error::param("exponent", "can only decrease"));
        }
        let factor = BigInt::from(base_power(self.exponent.abs_diff(new_exponent), pk.n()));
        Ok(Self { ciphertext: pk.mul_plain(&self.ciphertext, &factor)?, exponent: new_exponent })
    }

    /// `E(a + b)`, aligning both to the lower exponent as python-paillier does. The result is
    /// not re-randomized (python-paillier's `__add__` neither).
    ///
    /// # Errors
    ///
    /// As [`Self::decrease_exponent_to`].
    pub fn add(&self, pk: &PublicKey, other: &Self) -> Result<Self> {
        let e = self.exponent.min(other.exponent);
        let a = if self.exponent > e { self.decrease_exponent_to(pk, e)? } else { self.clone() };
        let b = if other.exponent > e { other.decrease_exponent_to(pk, e)? } else { other.clone() };
        Ok(Self { ciphertext: pk.add(&a.ciphertext, &b.ciphertext), exponent: e })
    }

    /// `E(a · s)` for an encoded scalar: the ciphertext raised to the scalar's encoding (to the
    /// inverse ciphertext for encodings in the negative band), exponents added.
    ///
    /// # Errors
    ///
    /// [`Error::Overflow`] for a scalar encoding in the overflow band; invalid ciphertexts;
    /// [`Error::OutOfRange`] when the exponents' sum leaves `i32`.
    pub fn mul(&self, pk: &PublicKey, scalar: &EncodedNumber) -> Result<Self> {
        let k = scalar.mantissa(pk)?;
        let exponent = self.exponent.checked_add(scalar.exponent).ok_or_else(|| {
            Error::OutOfRange(format!("exponent {} + {}", self.exponent, scalar.exponent))
        })?;
        Ok(Self { ciphertext: pk.mul_plain(&self.ciphertext, &k)?, exponent })
    }
}

#[cfg(test)]
#[allow(clippy::panic_in_result_fn, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn float_rounding_matches_python() {
        // 2^54 · 2^−1128 = 5e-324 (the smallest subnormal), 1 · 2^−1075 ties to 0.
        assert_eq!(big_to_f64(&BigInt::from(1u64 << 54), -1128), 5e-324);
        assert_eq!(big_to_f64(&BigInt::from(1), -1075), 0.0);
        assert_eq!(big_to_f64(&BigInt::from(3), -1076), 5e-324);
        assert_eq!(big_to_f64(&BigInt::from(-7_205_759_403_792_794i64), -56), -0.1);
        // 2^53 + 1 rounds to even.
        assert_eq!(big_to_f64(&BigInt::from((1u64 << 53) + 1), 0), 9_007_199_254_740_992.0);
        assert_eq!(frexp_exponent(1.0), 1);
        assert_eq!(frexp_exponent(0.5), 0);
        assert_eq!(frexp_exponent(5e-324), -1073);
        assert_eq!(round_shift(&BigInt::from(5), -1), BigInt::from(2));
        assert_eq!(round_shift(&BigInt::from(3), -1), BigInt::from(2));
        assert_eq!(round_shift(&BigInt::from(-3), -1), BigInt::from(-2));
    }

    /// Exponents from a file or another implementation are untrusted: a gap of 2³¹ between two
    /// of them, a sum past `i32`, or a huge positive exponent to decode are answered at once
    /// (they had asked for 2³³-bit powers, wrapped or panicked).
    #[test]
    fn untrusted_exponents_are_cheap_or_refused() -> Result<()> {
        use rand::SeedableRng;
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(9);
        let sk = crate::PrivateKey::generate_insecure_for_tests(256, &mut rng)?;
        let pk = sk.public_key();
        let high = EncodedNumber::encode_int(pk, &BigInt::from(12_345), None)?;
        let high = EncodedNumber { exponent: i32::MAX, ..high };
        let low = high.decrease_exponent_to(pk, i32::MIN)?;
        let exact = |delta: u32| BigUint::from(BASE).pow(delta) % pk.n();
        assert_eq!(low.encoding, &high.encoding * base_power(u32::MAX, pk.n()) % pk.n());
        // Below n the reduced factor is python-paillier's exact power.
        for delta in [0, 1, 7, 15] {
            assert_eq!(base_power(delta, pk.n()), exact(delta));
        }
        let encrypted = EncryptedNumber {
            ciphertext: sk.encrypt_raw(&high.encoding, &mut rng)?,
            exponent: i32::MAX,
        };
        let lowered = encrypted.decrease_exponent_to(pk, i32::MIN)?;
        assert_eq!(sk.decrypt_raw(&lowered.ciphertext)?, low.encoding);
        let one = EncodedNumber::encode_int(pk, &BigInt::from(1), None)?;
        let scalar = EncodedNumber { exponent: 1, ..one };
        assert!(matches!(encrypted.mul(pk, &scalar), Err(Error::OutOfRange(_))));
        assert!(matches!(high.decode(pk), Err(Error::OutOfRange(_))));
        let largest = EncodedNumber { exponent: MAX_DECODE_EXPONENT, ..scalar };
        assert!(matches!(largest.decode(pk)?, Decoded::Int(i) if i.bits() == 4 * (1 << 16) + 1));
        Ok(())
    }
}
