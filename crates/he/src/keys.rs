//! Paillier keys and raw (integer) operations (Paillier, "Public-Key Cryptosystems Based on
//! Composite Degree Residuosity Classes", EUROCRYPT 1999), with g = n + 1 as in python-paillier:
//! `E(m; r) = (1 + n·m)·rⁿ mod n²` (Scheme 1 with the simplification of Damgård–Jurik 2001,
//! §3), decryption by the Chinese remainder theorem (Paillier 1999, §7, "Decryption using
//! Chinese-remaindering").

use num_bigint::{BigInt, BigUint, Sign};
use num_integer::Integer;
use num_traits::{One, Zero};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::bigint::{CtModulus, dec, random_unit};
use crate::{Error, Result};

/// Smallest modulus accepted: below this the scheme is a toy (tests use ≥ 128-bit keys only
/// through [`PrivateKey::generate_insecure_for_tests`]).
pub const MIN_SECURE_BITS: u64 = 2048;

/// Largest modulus key generation accepts. NIST SP 800-57 Part 1 Rev. 5, Table 2, puts a
/// 15,360-bit factoring modulus at 256-bit security; past that, prime generation runs for hours,
/// so a larger request is taken as a mistake rather than started.
pub const MAX_BITS: u64 = 16_384;

/// A raw Paillier ciphertext, an element of `Z*_{n²}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ciphertext(#[serde(with = "dec")] pub(crate) BigUint);

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ciphertext({} bits)", self.0.bits())
    }
}

impl Ciphertext {
    /// The ciphertext as an integer (python-paillier's `ciphertext(be_secure=False)`).
    #[must_use]
    pub fn value(&self) -> &BigUint {
        &self.0
    }

    /// Wraps an integer received from elsewhere; check it with [`PublicKey::validate`].
    #[must_use]
    pub fn from_value(v: BigUint) -> Self {
        Self(v)
    }
}

/// A Paillier public key `n` (with g = n + 1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PublicKeyWire", into = "PublicKeyWire")]
pub struct PublicKey {
    n: BigUint,
    n_sq: BigUint,
    max_int: BigUint,
}

#[derive(Serialize, Deserialize)]
struct PublicKeyWire {
    #[serde(with = "dec")]
    n: BigUint,
}

impl TryFrom<PublicKeyWire> for PublicKey {
    type Error = Error;
    fn try_from(w: PublicKeyWire) -> Result<Self> {
        Self::from_n(w.n)
    }
}

impl From<PublicKey> for PublicKeyWire {
    fn from(k: PublicKey) -> Self {
        Self { n: k.n }
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} bits)", self.n.bits())
    }
}

impl PublicKey {
    /// The key for modulus `n`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for an even modulus or one below 64 bits.
    pub fn from_n(n: BigUint) -> Result<Self> {
        if n.bits() < 64 || n.is_even() {
            return Err(Error::param("n", "must be odd and at least 64 bits"));
        }
        let n_sq = &n * &n;
        // python-paillier: max_int = n // 3 − 1, so that sums and differences of two encodings
        // are distinguishable from overflow.
        let max_int = &n / 3u32 - 1u32;
        Ok(Self { n, n_sq, max_int })
    }

    /// The modulus n.
    #[must_use]
    pub fn n(&self) -> &BigUint {
        &self.n
    }

    /// n².
    #[must_use]
    pub fn n_squared(&self) -> &BigUint {
        &self.n_sq
    }

    /// Largest encodable magnitude, `n // 3 − 1`.
    #[must_use]
    pub fn max_int(&self) -> &BigUint {
        &self.max_int
    }

    /// Bits of n.
    #[must_use]
    pub fn bits(&self) -> u64 {
        self.n.bits()
    }

    /// `(1 + n·m) mod n²` — the deterministic part of an encryption.
    fn nude(&self, m: &BigUint) -> BigUint {
        (&self.n * m + 1u32) % &self.n_sq
    }

    fn check_plaintext(&self, m: &BigUint) -> Result<()> {
        if m >= &self.n {
            Err(Error::OutOfRange("a raw plaintext must be below n".into()))
        } else {
            Ok(())
        }
    }

    /// Encrypts `m ∈ [0, n)` with the given `r` (python-paillier's `raw_encrypt` with a fixed
    /// obfuscator): `(1 + n·m)·rⁿ mod n²`. For known-answer tests; use [`Self::encrypt_raw`].
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] for `m ≥ n`; [`Error::InvalidParameter`] unless `r` is a unit.
    pub fn encrypt_with_r(&self, m: &BigUint, r: &BigUint) -> Result<Ciphertext> {
        self.check_plaintext(m)?;
        if r.is_zero() || r >= &self.n || !r.gcd(&self.n).is_one() {
            return Err(Error::param("r", "must be a unit of Z_n"));
        }
        Ok(Ciphertext(self.nude(m) * r.modpow(&self.n, &self.n_sq) % &self.n_sq))
    }

    /// Encrypts `m ∈ [0, n)` with a fresh random `r` from `rng` (a CSPRNG).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] for `m ≥ n`.
    pub fn encrypt_raw(
        &self,
        m: &BigUint,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Ciphertext> {
        self.check_plaintext(m)?;
        let r = random_unit(&self.n, rng);
        Ok(Ciphertext(self.nude(m) * r.modpow(&self.n, &self.n_sq) % &self.n_sq))
    }

    /// Encrypts with a precomputed obfuscation factor `rⁿ mod n²` (from an
    /// [`crate::Obfuscator`] or [`PrivateKey::obfuscation_factor`]).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] for `m ≥ n`.
    pub fn encrypt_with_factor(&self, m: &BigUint, factor: &BigUint) -> Result<Ciphertext> {
        self.check_plaintext(m)?;
        Ok(Ciphertext(self.nude(m) * factor % &self.n_sq))
    }

    /// Checks that `c` is a unit of `Z_{n²}`: what every ciphertext from the network must pass.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCiphertext`].
    pub fn validate(&self, c: &Ciphertext) -> Result<()> {
        if c.0.is_zero() || c.0 >= self.n_sq {
            return Err(Error::InvalidCiphertext("not in [1, n²)".into()));
        }
        if !c.0.gcd(&self.n).is_one() {
            return Err(Error::InvalidCiphertext("shares a factor with n".into()));
        }
        Ok(())
    }

    /// `E(a + b)` from `E(a)` and `E(b)`.
    #[must_use]
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
        Ciphertext(&a.0 * &b.0 % &self.n_sq)
    }

    /// `E(a + m)` from `E(a)` and a plaintext `m ∈ [0, n)`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] for `m ≥ n`.
    pub fn add_plain(&self, a: &Ciphertext, m: &BigUint) -> Result<Ciphertext> {
        self.check_plaintext(m)?;
        Ok(Ciphertext(&a.0 * self.nude(m) % &self.n_sq))
    }

    /// `E(k·a mod n)` from `E(a)` and an integer `k` (negative `k` inverts the ciphertext first,
    /// as python-paillier does for encodings in the negative band).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCiphertext`] if `a` is not invertible modulo n².
    pub fn mul_plain(&self, a: &Ciphertext, k: &BigInt) -> Result<Ciphertext> {
        let (sign, mag) = (k.sign(), k.magnitude());
        let base = if sign == Sign::Minus {
            a.0.modinv(&self.n_sq)
                .ok_or_else(|| Error::InvalidCiphertext("not invertible".into()))?
        } else {
            a.0.clone()
        };
        Ok(Ciphertext(base.modpow(mag, &self.n_sq)))
    }

    /// Multiplies by a fresh `rⁿ`, so the result is unlinkable to the input.
    #[must_use]
    pub fn rerandomize(&self, a: &Ciphertext, rng: &mut (impl CryptoRng + ?Sized)) -> Ciphertext {
        let r = random_unit(&self.n, rng);
        Ciphertext(&a.0 * r.modpow(&self.n, &self.n_sq) % &self.n_sq)
    }
}

/// A Paillier private key: the factors p, q of n and the CRT constants of Paillier 1999 §7.
/// Zeroized on drop (as far as num-bigint allows: see the crate's Security section); `Debug`
/// shows only the size.
#[derive(Clone)]
pub struct PrivateKey {
    public: PublicKey,
    p: BigUint,
    q: BigUint,
    p_sq: CtModulus,
    q_sq: CtModulus,
    /// `h_p = L_p(g^{p−1} mod p²)^{−1} mod p`.
    hp: BigUint,
    hq: BigUint,
    /// `p^{−1} mod q`.
    p_inv_q: BigUint,
    /// `n mod φ(p²)` and `n mod φ(q²)`, for CRT encryption.
    n_mod_phi_p: BigUint,
    n_mod_phi_q: BigUint,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({} bits, redacted)", self.public.bits())
    }
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        for v in [
            &mut self.p,
            &mut self.q,
            &mut self.hp,
            &mut self.hq,
            &mut self.p_inv_q,
            &mut self.n_mod_phi_p,
            &mut self.n_mod_phi_q,
        ] {
            wipe(v);
        }
    }
}

/// Overwrites a BigUint's limbs in place. num-bigint has no `Zeroize`; clearing every set bit
/// from the lowest up writes zeros into the existing allocation (no limb becomes a trailing zero
/// before the top one, so nothing is truncated away unwritten), then the value is emptied.
pub(crate) fn wipe(v: &mut BigUint) {
    for i in 0..v.bits() {
        if v.bit(i) {
            v.set_bit(i, false);
        }
    }
    v.set_zero();
}

/// The serialized form of a private key: its factors. Treat the JSON as a secret.
#[derive(Serialize, Deserialize)]
struct PrivateKeyWire {
    #[serde(with = "dec")]
    p: BigUint,
    #[serde(with = "dec")]
    q: BigUint,
}

impl Serialize for PrivateKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        PrivateKeyWire { p: self.p.clone(), q: self.q.clone() }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PrivateKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = PrivateKeyWire::deserialize(d)?;
        Self::from_factors(&w.p, &w.q).map_err(serde::de::Error::custom)
    }
}

/// Paillier's `L(x) = (x − 1) / p`, defined only for `x ≡ 1 (mod p)`; anything else means the
/// input was not a unit (e.g. a multiple of p sent as a ciphertext).
fn l_function(x: &BigUint, p: &BigUint) -> Result<BigUint> {
    if x.is_zero() || !((x - 1u32) % p).is_zero() {
        return Err(Error::InvalidCiphertext("not a unit modulo n²".into()));
    }
    Ok((x - 1u32) / p)
}

impl PrivateKey {
    /// The key with prime factors `p` and `q` (e.g. imported from python-paillier).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for equal, even or tiny factors, or factors for which the CRT
    /// constants do not exist.
    pub fn from_factors(p: &BigUint, q: &BigUint) -> Result<Self> {
        if p == q || p.is_even() || q.is_even() || p.bits() < 32 || q.bits() < 32 {
            return Err(Error::param("p, q", "distinct odd primes of at least 32 bits"));
        }
        let public = PublicKey::from_n(p * q)?;
        let g = public.n() + 1u32;
        let h = |x: &BigUint| -> Result<BigUint> {
            let x_sq = x * x;
            let l = l_function(&g.modpow(&(x - 1u32), &x_sq), x)
                .map_err(|_| Error::param("p, q", "not a valid Paillier factorization"))?;
            l.modinv(x).ok_or_else(|| Error::param("p, q", "not a valid Paillier factorization"))
        };
        let hp = h(p)?;
        let hq = h(q)?;
        let p_inv_q = p.modinv(q).ok_or_else(|| Error::param("p, q", "not coprime"))?;
        let phi_p2 = p * (p - 1u32);
        let phi_q2 = q * (q - 1u32);
        Ok(Self {
            n_mod_phi_p: public.n() % &phi_p2,
            n_mod_phi_q: public.n() % &phi_q2,
            p_sq: CtModulus::new(&(p * p))?,
            q_sq: CtModulus::new(&(q * q))?,
            public,
            p: p.clone(),
            q: q.clone(),
            hp,
            hq,
            p_inv_q,
        })
    }

    /// Generates a key whose modulus has `bits` bits (2048 or 3072 recommended; at least
    /// [`MIN_SECURE_BITS`]) from two random primes of `bits / 2` bits each (crypto-primes:
    /// sieving, Miller–Rabin base 2 and a strong Lucas test, i.e. Baillie–PSW).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] outside [`MIN_SECURE_BITS`]`..=`[`MAX_BITS`] or for odd `bits`.
    pub fn generate(bits: u32, rng: &mut (impl CryptoRng + ?Sized)) -> Result<Self> {
        if !(MIN_SECURE_BITS..=MAX_BITS).contains(&u64::from(bits)) || bits % 2 == 1 {
            return Err(Error::param(
                "bits",
                format!("{bits}: must be even and in {MIN_SECURE_BITS}..={MAX_BITS}"),
            ));
        }
        Self::generate_unchecked(bits, rng)
    }

    /// As [`Self::generate`] without the size floor, for fast tests. Never use these keys.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] below 128 bits.
    pub fn generate_insecure_for_tests(
        bits: u32,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Self> {
        if !(128..=MAX_BITS).contains(&u64::from(bits)) || bits % 2 == 1 {
            return Err(Error::param(
                "bits",
                format!("{bits}: must be even and in 128..={MAX_BITS}"),
            ));
        }
        Self::generate_unchecked(bits, rng)
    }

    fn generate_unchecked(bits: u32, rng: &mut (impl CryptoRng + ?Sized)) -> Result<Self> {
        loop {
            let p = crate::primes::random_prime(bits / 2, false, rng);
            let q = crate::primes::random_prime(bits / 2, false, rng);
            if p == q || (&p * &q).bits() != u64::from(bits) {
                continue;
            }
            return Self::from_factors(&p, &q);
        }
    }

    /// The public key.
    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The factors `(p, q)`. Secret.
    #[must_use]
    pub fn factors(&self) -> (&BigUint, &BigUint) {
        (&self.p, &self.q)
    }

    /// Decrypts to the raw plaintext in `[0, n)` by CRT: `m_p = L_p(c^{p−1} mod p²)·h_p mod p`,
    /// likewise for q, then recombination. The exponentiations are constant time.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCiphertext`] for a value outside `[1, n²)`.
    pub fn decrypt_raw(&self, c: &Ciphertext) -> Result<BigUint> {
        if c.0.is_zero() || &c.0 >= self.public.n_squared() {
            return Err(Error::InvalidCiphertext("not in [1, n²)".into()));
        }
        let pm1 = &self.p - 1u32;
        let qm1 = &self.q - 1u32;
        let mp =
            l_function(&self.p_sq.pow(&c.0, &pm1, self.p.bits())?, &self.p)? * &self.hp % &self.p;
        let mq =
            l_function(&self.q_sq.pow(&c.0, &qm1, self.q.bits())?, &self.q)? * &self.hq % &self.q;
        // m = m_p + p·((m_q − m_p)·p^{−1} mod q).
        let diff =
            (BigInt::from(mq) - BigInt::from(mp.clone())).mod_floor(&BigInt::from(self.q.clone()));
        let u = diff.magnitude() * &self.p_inv_q % &self.q;
        Ok(mp + u * &self.p)
    }

    /// `rⁿ mod n²` computed by CRT with the factors (exponents reduced modulo φ(p²), φ(q²)):
    /// ≈ 3–4× cheaper than the public computation. Same distribution as public encryption.
    ///
    /// # Errors
    ///
    /// Internal conversion failures only.
    pub fn obfuscation_factor(&self, rng: &mut (impl CryptoRng + ?Sized)) -> Result<BigUint> {
        let r = random_unit(self.public.n(), rng);
        let p2 = &self.p * &self.p;
        let q2 = &self.q * &self.q;
        let a = self.p_sq.pow(&r, &self.n_mod_phi_p, 2 * self.p.bits())?;
        let b = self.q_sq.pow(&r, &self.n_mod_phi_q, 2 * self.q.bits())?;
        // CRT modulo p² and q².
        let p2_inv = p2.modinv(&q2).ok_or_else(|| Error::param("p, q", "not coprime"))?;
        let diff = (BigInt::from(b) - BigInt::from(a.clone())).mod_floor(&BigInt::from(q2.clone()));
        Ok(a + (diff.magnitude() * p2_inv % &q2) * p2)
    }

    /// Encrypts with the CRT fast path (the encrypting party holds the private key).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] for `m ≥ n`.
    pub fn encrypt_raw(
        &self,
        m: &BigUint,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Ciphertext> {
        let f = self.obfuscation_factor(rng)?;
        self.public.encrypt_with_factor(m, &f)
    }
}

#[cfg(test)]
#[allow(clippy::panic_in_result_fn, reason = "test code")]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    use super::*;

    #[test]
    fn raw_round_trip_homomorphism_and_fast_paths_agree() -> Result<()> {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let sk = PrivateKey::generate_insecure_for_tests(256, &mut rng)?;
        let pk = sk.public_key();
        let a = BigUint::from(1234u32);
        let b = BigUint::from(99_999u32);
        let ca = pk.encrypt_raw(&a, &mut rng)?;
        let cb = sk.encrypt_raw(&b, &mut rng)?;
        assert_eq!(sk.decrypt_raw(&ca)?, a);
        assert_eq!(sk.decrypt_raw(&cb)?, b);
        assert_eq!(sk.decrypt_raw(&pk.add(&ca, &cb))?, &a + &b);
        assert_eq!(sk.decrypt_raw(&pk.add_plain(&ca, &b)?)?, &a + &b);
        assert_eq!(sk.decrypt_raw(&pk.mul_plain(&ca, &BigInt::from(-3))?)?, pk.n() - 3u32 * &a);
        let again = pk.rerandomize(&ca, &mut rng);
        assert_ne!(again, ca);
        assert_eq!(sk.decrypt_raw(&again)?, a);
        // The CRT obfuscation factor is an n-th power: decrypting it alone gives 0.
        let f = sk.obfuscation_factor(&mut rng)?;
        assert!(sk.decrypt_raw(&Ciphertext(f))?.is_zero());
        assert!(pk.encrypt_raw(pk.n(), &mut rng).is_err());
        assert!(sk.decrypt_raw(&Ciphertext(pk.n_squared().clone())).is_err());
        assert!(!format!("{sk:?}").contains(&sk.factors().0.to_string()));
        Ok(())
    }

    #[test]
    fn keys_serialize_and_refuse_small_sizes() -> Result<()> {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        assert!(PrivateKey::generate(1024, &mut rng).is_err());
        // Refused before any prime search starts (the search would run for hours).
        assert_eq!(MAX_BITS, 16_384);
        for bits in [16_386, 100_000_000, u32::MAX - 1] {
            assert!(PrivateKey::generate(bits, &mut rng).is_err(), "{bits}");
            assert!(PrivateKey::generate_insecure_for_tests(bits, &mut rng).is_err(), "{bits}");
            assert!(crate::ThresholdKey::deal(bits, 3, 2, &mut rng).is_err(), "{bits}");
            assert!(crate::ThresholdKey::deal_insecure_for_tests(bits, 3, 2, &mut rng).is_err());
        }
        let sk = PrivateKey::generate_insecure_for_tests(192, &mut rng)?;
        let json = serde_json::to_string(sk.public_key())
            .map_err(|e| Error::Serialization(e.to_string()))?;
        let pk: PublicKey =
            serde_json::from_str(&json).map_err(|e| Error::Serialization(e.to_string()))?;
        assert_eq!(&pk, sk.public_key());
        let sk_json =
            serde_json::to_string(&sk).map_err(|e| Error::Serialization(e.to_string()))?;
        let sk2: PrivateKey =
            serde_json::from_str(&sk_json).map_err(|e| Error::Serialization(e.to_string()))?;
        assert_eq!(sk2.public_key(), sk.public_key());
        assert!(serde_json::from_str::<PublicKey>(r#"{"n":"12"}"#).is_err());
        Ok(())
    }
}
