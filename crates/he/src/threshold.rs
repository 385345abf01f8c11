//! Threshold decryption: t of l parties must cooperate to decrypt, and no single party (nor the
//! server) holds the key. Damgård and Jurik, "A Generalisation, a Simplification and Some
//! Applications of Paillier's Probabilistic Public-Key System", PKC 2001, §4 (threshold variant,
//! s = 1), built on Shoup's threshold RSA (EUROCRYPT 2000) with a trusted dealer:
//!
//! - n = pq with safe primes p = 2p' + 1, q = 2q' + 1; m = p'q';
//! - the secret `d` with `d ≡ 0 (mod m)`, `d ≡ 1 (mod n)` is shared with a random polynomial f
//!   of degree t − 1 over `Z_{nm}`: party i holds `sᵢ = f(i)`;
//! - a decryption share is `cᵢ = c^{2Δsᵢ} mod n²` with Δ = l!;
//! - any t shares combine to `c' = Π cᵢ^{2μᵢ}` with the integer Lagrange coefficients
//!   `μᵢ = Δ·Π_{j≠i} j/(j − i)`, and `m = L(c')·(4Δ²)^{−1} mod n`.
//!
//! The parties are trusted to compute their shares correctly (honest but curious): the
//! zero-knowledge proofs of correct share computation from the paper are not implemented, so a
//! malicious party can make decryption fail or return garbage, though never learn the key.

use num_bigint::{BigInt, BigRng010 as BigRng, BigUint};
use num_traits::{One, Signed, Zero};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::bigint::{CtModulus, dec};
use crate::keys::wipe;
use crate::{Ciphertext, Error, PublicKey, Result};

/// The public parameters of a threshold key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThresholdKey {
    /// The Paillier public key.
    pub public: PublicKey,
    /// Number of parties l.
    pub parties: u32,
    /// Shares needed t.
    pub threshold: u32,
}

/// One party's secret key share. Wiped on drop; `Debug` shows only the index.
pub struct KeyShare {
    index: u32,
    share: BigUint,
    n_sq: CtModulus,
    exponent_bits: u64,
}

impl std::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyShare({}, redacted)", self.index)
    }
}

impl Drop for KeyShare {
    fn drop(&mut self) {
        wipe(&mut self.share);
    }
}

/// A party's decryption share of one ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecryptionShare {
    /// The party (1..=l).
    pub index: u32,
    /// `c^{2Δsᵢ} mod n²`.
    #[serde(with = "dec")]
    pub value: BigUint,
}

/// Most parties a threshold key may have. Δ = l! enters every decryption share's exponent
/// (4096! has about 43,000 bits, ten times a 2048-bit key's n²), so a key read from a file with
/// l near 2³² would compute l! for days instead of failing.
pub const MAX_PARTIES: u32 = 4096;

fn check_counts(l: u32, t: u32) -> Result<()> {
    if t == 0 || t > l || l > MAX_PARTIES {
        return Err(Error::param(
            "threshold",
            format!("{t} of {l} parties; needs 1 ≤ t ≤ l ≤ {MAX_PARTIES}"),
        ));
    }
    Ok(())
}

fn factorial(l: u32) -> BigUint {
    (1..=l).fold(BigUint::one(), |acc, i| acc * i)
}

impl ThresholdKey {
    /// Checks `1 ≤ t ≤ l ≤` [`MAX_PARTIES`] (the fields are public and read from files).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming the counts.
    pub fn validate(&self) -> Result<()> {
        check_counts(self.parties, self.threshold)
    }

    /// Δ = l!, which clears the Lagrange denominators; computed only for a key that
    /// [`Self::validate`] accepts, so a corrupt party count fails instead of running for days.
    fn delta(&self) -> Result<BigUint> {
        self.validate()?;
        Ok(factorial(self.parties))
    }

    /// Deals a threshold key with safe primes of `bits / 2` bits each: generating safe primes
    /// takes a few seconds at 2048 bits (0.2–3 s measured on 2 cores). Returns the public parameters and the l shares.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless `1 ≤ t ≤ l ≤` [`MAX_PARTIES`] and `bits` is even and in
    /// [`MIN_SECURE_BITS`](crate::keys::MIN_SECURE_BITS)`..=`[`MAX_BITS`](crate::keys::MAX_BITS).
    pub fn deal(
        bits: u32,
        parties: u32,
        threshold: u32,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<(Self, Vec<KeyShare>)> {
        let (min, max) = (crate::keys::MIN_SECURE_BITS, crate::keys::MAX_BITS);
        if !(min..=max).contains(&u64::from(bits)) {
            return Err(Error::param("bits", format!("{bits}: must be in {min}..={max}")));
        }
        Self::deal_unchecked(bits, parties, threshold, rng)
    }

    /// As [`Self::deal`] without the size floor, for tests. Never use these keys.
    ///
    /// # Errors
    ///
    /// As [`Self::deal`] (with a 64-bit floor).
    pub fn deal_insecure_for_tests(
        bits: u32,
        parties: u32,
        threshold: u32,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<(Self, Vec<KeyShare>)> {
        if !(64..=crate::keys::MAX_BITS).contains(&u64::from(bits)) {
            return Err(Error::param(
                "bits",
                format!("{bits}: must be in 64..={}", crate::keys::MAX_BITS),
            ));
        }
        Self::deal_unchecked(bits, parties, threshold, rng)
    }

    fn deal_unchecked(
        bits: u32,
        parties: u32,
        threshold: u32,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<(Self, Vec<KeyShare>)> {
        if bits % 2 == 1 {
            return Err(Error::param("bits", format!("{bits}: must be even")));
        }
        check_counts(parties, threshold)?;
        let (p, q) = loop {
            let p = crate::primes::random_prime(bits / 2, true, rng);
            let q = crate::primes::random_prime(bits / 2, true, rng);
            if p != q && (&p * &q).bits() == u64::from(bits) {
                break (p, q);
            }
        };
        let n = &p * &q;
        let m = (&p >> 1u32) * (&q >> 1u32);
        let nm = &n * &m;
        // d ≡ 0 (mod m), d ≡ 1 (mod n).
        let m_inv = m.modinv(&n).ok_or_else(|| Error::param("primes", "m not invertible mod n"))?;
        let mut d = &m * m_inv % &nm;
        let mut coeffs: Vec<BigUint> =
            (1..threshold).map(|_| rng.random_biguint_below(&nm)).collect();
        let public = PublicKey::from_n(n)?;
        let n_sq = CtModulus::new(public.n_squared())?;
        let exponent_bits = nm.bits() + 64;
        let shares = (1..=parties)
            .map(|i| {
                // Horner over Z_{nm}.
                let x = BigUint::from(i);
                let mut y = BigUint::zero();
                for a in coeffs.iter().rev() {
                    y = (y + a) * &x % &nm;
                }
                KeyShare { index: i, share: (y + &d) % &nm, n_sq: n_sq.clone(), exponent_bits }
            })
            .collect();
        wipe(&mut d);
        for c in &mut coeffs {
            wipe(c);
        }
        Ok((Self { public, parties, threshold }, shares))
    }

    /// Combines at least t decryption shares (distinct parties) into the raw plaintext.
    ///
    /// # Errors
    ///
    /// [`Error::Threshold`] for too few, repeated or out-of-range shares, or a combination that
    /// is not a valid decryption (a wrong share); [`Self::validate`]'s error for a key whose
    /// counts are out of range (with t = 0, no shares at all had "decrypted" to 0).
    pub fn combine(&self, shares: &[DecryptionShare]) -> Result<BigUint> {
        let delta = BigInt::from(self.delta()?);
        let t = self.threshold as usize;
        let mut used: Vec<&DecryptionShare> = Vec::with_capacity(t);
        for s in shares {
            if s.index == 0 || s.index > self.parties {
                return Err(Error::Threshold(format!(
                    "party {} not in 1..={}",
                    s.index, self.parties
                )));
            }
            if used.iter().any(|u| u.index == s.index) {
                return Err(Error::Threshold(format!("two shares from party {}", s.index)));
            }
            if used.len() < t {
                used.push(s);
            }
        }
        if used.len() < t {
            return Err(Error::Threshold(format!("{} shares, {t} needed", used.len())));
        }
        let n = self.public.n();
        let n_sq = self.public.n_squared();
        let mut acc = BigUint::one();
        for s in &used {
            let i = BigInt::from(s.index);
            // μᵢ = Δ·Π j/(j − i): the division is exact because Δ = l! clears the denominators.
            let (mut num, mut den) = (delta.clone(), BigInt::one());
            for o in &used {
                if o.index != s.index {
                    let j = BigInt::from(o.index);
                    num *= &j;
                    den *= &j - &i;
                }
            }
            if s.value.is_zero() || &s.value >= n_sq {
                return Err(Error::Threshold(format!(
                    "share of party {} is not in [1, n²)",
                    s.index
                )));
            }
            let mu = num / den;
            let base = if mu.is_negative() {
                s.value.modinv(n_sq).ok_or_else(|| {
                    Error::Threshold(format!("share of party {} is not invertible", s.index))
                })?
            } else {
                s.value.clone()
            };
            acc = acc * base.modpow(&(mu.magnitude() * 2u32), n_sq) % n_sq;
        }
        // c' = (1 + n)^{4Δ²·M}: L(c') = 4Δ²·M mod n.
        if acc.is_zero() || !((&acc - 1u32) % n).is_zero() {
            return Err(Error::Threshold("shares do not combine to a valid decryption".into()));
        }
        let l = (&acc - 1u32) / n;
        let four_delta_sq = (delta.magnitude() * delta.magnitude() * 4u32) % n;
        let inv = four_delta_sq
            .modinv(n)
            .ok_or_else(|| Error::Threshold("4Δ² not invertible mod n".into()))?;
        Ok(l * inv % n)
    }
}

impl KeyShare {
    /// The party index (1..=l).
    #[must_use]
    pub fn index(&self) -> u32 {
        self.index
    }

    /// This party's decryption share of `c`: `c^{2Δsᵢ} mod n²` (constant time in the share).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCiphertext`] for a ciphertext that is not a unit below n²;
    /// [`ThresholdKey::validate`]'s error for a key whose counts are out of range.
    pub fn decrypt_share(&self, key: &ThresholdKey, c: &Ciphertext) -> Result<DecryptionShare> {
        key.public.validate(c)?;
        let delta = key.delta()?;
        let mut e = self.share.clone() * &delta * 2u32;
        let value = self.n_sq.pow(c.value(), &e, self.exponent_bits + delta.bits() + 1)?;
        wipe(&mut e);
        Ok(DecryptionShare { index: self.index, value })
    }
}

/// What the dealer hands one party: the public parameters and that party's secret share.
///
/// Serializes the share in the clear (a decimal string): store the file like a private key
/// (owner-only permissions) and hand it over on a confidential channel. `Debug` redacts it.
pub struct PartyKey {
    /// The public parameters.
    pub key: ThresholdKey,
    /// This party's share.
    pub share: KeyShare,
}

impl std::fmt::Debug for PartyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartyKey").field("key", &self.key).field("share", &self.share).finish()
    }
}

#[derive(Serialize, Deserialize)]
struct PartyKeyWire {
    key: ThresholdKey,
    index: u32,
    #[serde(with = "dec")]
    share: BigUint,
}

impl Drop for PartyKeyWire {
    fn drop(&mut self) {
        wipe(&mut self.share);
    }
}

impl PartyKey {
    /// Rebuilds a party's key from its parts (e.g. read back from storage).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for a key [`ThresholdKey::validate`] refuses, an index
    /// outside `1..=parties`, or a zero share or one not below `n²`.
    pub fn from_parts(key: ThresholdKey, index: u32, share: &BigUint) -> Result<Self> {
        key.validate()?;
        if index == 0 || index > key.parties {
            return Err(Error::param("index", format!("{index} is not in 1..={}", key.parties)));
        }
        // sᵢ ∈ [0, nm) and nm < n².
        let n_sq = key.public.n_squared();
        if share.is_zero() || share >= n_sq {
            return Err(Error::param("share", "not in [1, n²)"));
        }
        let share = KeyShare {
            index,
            share: share.clone(),
            n_sq: CtModulus::new(n_sq)?,
            exponent_bits: n_sq.bits() + 64,
        };
        Ok(Self { key, share })
    }
}

impl Serialize for PartyKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        PartyKeyWire {
            key: self.key.clone(),
            index: self.share.index,
            share: self.share.share.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for PartyKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = PartyKeyWire::deserialize(d)?;
        Self::from_parts(w.key.clone(), w.index, &w.share).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::panic_in_result_fn, reason = "test code")]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    use super::*;

    /// A toy t-of-l key dealt from `seed`, its shares, and an encryption of `m` under it.
    fn dealt(
        seed: u64,
        parties: u32,
        threshold: u32,
        m: u64,
    ) -> Result<(ThresholdKey, Vec<KeyShare>, Ciphertext, ChaCha20Rng)> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (key, shares) =
            ThresholdKey::deal_insecure_for_tests(256, parties, threshold, &mut rng)?;
        let c = key.public.encrypt_raw(&BigUint::from(m), &mut rng)?;
        Ok((key, shares, c, rng))
    }

    #[test]
    fn any_t_of_l_decrypt_and_fewer_cannot() -> Result<()> {
        let m = BigUint::from(123_456_789u64);
        let (key, shares, c, mut rng) = dealt(4, 5, 3, 123_456_789)?;
        let pk = &key.public;
        // A sum, decrypted by different subsets.
        let c2 = pk.add(&c, &pk.encrypt_raw(&BigUint::from(1u32), &mut rng)?);
        let all: Vec<DecryptionShare> =
            shares.iter().map(|s| s.decrypt_share(&key, &c2)).collect::<Result<_>>()?;
        for subset in [[0usize, 1, 2], [2, 3, 4], [4, 0, 3], [1, 4, 2]] {
            let picked: Vec<DecryptionShare> = subset.iter().map(|&i| all[i].clone()).collect();
            assert_eq!(key.combine(&picked)?, &m + 1u32);
        }
        assert!(key.combine(&all[..2]).is_err());
        assert!(key.combine(&[all[0].clone(), all[0].clone(), all[1].clone()]).is_err());
        // A corrupted share does not silently decrypt to the right value.
        let mut bad = all[..3].to_vec();
        bad[1].value = &bad[1].value + 1u32;
        assert!(key.combine(&bad).map_or(true, |v| v != &m + 1u32));
        // Forged shares from the network: zero, n² and out-of-range indices are errors.
        for (index, value) in [
            (1, BigUint::ZERO),
            (1, pk.n_squared().clone()),
            (0, BigUint::one()),
            (6, BigUint::one()),
        ] {
            let mut forged = all[..3].to_vec();
            forged[0] = DecryptionShare { index, value };
            assert!(key.combine(&forged).is_err(), "index {index}");
        }
        assert!(!format!("{:?}", shares[0]).contains(&shares[0].share.to_string()));
        Ok(())
    }

    #[test]
    fn party_keys_round_trip_through_json_and_reject_bad_parts() -> Result<()> {
        let (key, shares, c, mut rng) = dealt(5, 3, 2, 77)?;
        let mut restored = Vec::new();
        for s in shares {
            let party = PartyKey { key: key.clone(), share: s };
            let json =
                serde_json::to_string(&party).map_err(|e| Error::param("json", e.to_string()))?;
            assert!(!format!("{party:?}").contains(&party.share.share.to_string()));
            let back: PartyKey =
                serde_json::from_str(&json).map_err(|e| Error::param("json", e.to_string()))?;
            assert_eq!(back.key, key);
            restored.push(back.share.decrypt_share(&key, &c)?);
        }
        assert_eq!(key.combine(&restored[1..])?, BigUint::from(77u32));
        let n_sq = key.public.n_squared().clone();
        assert!(PartyKey::from_parts(key.clone(), 0, &BigUint::one()).is_err());
        assert!(PartyKey::from_parts(key.clone(), 4, &BigUint::one()).is_err());
        assert!(PartyKey::from_parts(key.clone(), 1, &BigUint::ZERO).is_err());
        assert!(PartyKey::from_parts(key.clone(), 1, &n_sq).is_err());
        let mut bad = key.clone();
        bad.threshold = 4;
        assert!(PartyKey::from_parts(bad, 1, &BigUint::one()).is_err());
        // A key file claiming 2³² − 1 parties would make every decryption share compute
        // (2³² − 1)! first; it is refused when read.
        let mut huge = key;
        huge.parties = u32::MAX;
        let e = PartyKey::from_parts(huge.clone(), 1, &BigUint::one()).map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("4096"), "{e}");
        huge.parties = MAX_PARTIES + 1;
        assert!(PartyKey::from_parts(huge, 1, &BigUint::one()).is_err());
        assert!(ThresholdKey::deal_insecure_for_tests(256, MAX_PARTIES + 1, 2, &mut rng).is_err());
        Ok(())
    }

    #[test]
    fn a_key_with_a_threshold_of_zero_decrypts_nothing() -> Result<()> {
        let (key, shares, c, _) = dealt(6, 3, 2, 5)?;
        let share = shares[0].decrypt_share(&key, &c)?;
        // Before the check, t = 0 combined no shares into the "plaintext" 0.
        for (parties, threshold) in [(3, 0), (3, 4), (0, 0)] {
            let bad = ThresholdKey { parties, threshold, ..key.clone() };
            assert!(bad.combine(&[]).is_err(), "{threshold} of {parties}");
            assert!(bad.combine(std::slice::from_ref(&share)).is_err(), "{threshold} of {parties}");
        }
        // A share holder handed a key claiming 2³² − 1 parties refuses it rather than compute
        // (2³² − 1)!.
        let huge = ThresholdKey { parties: u32::MAX, ..key };
        assert!(shares[0].decrypt_share(&huge, &c).is_err());
        Ok(())
    }
}
