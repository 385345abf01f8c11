//! Shamir t-of-n secret sharing (Shamir, "How to Share a Secret", CACM 1979) over the prime field
//! of order ℓ = 2^252 + 27742317777372353535851937790883648493, using curve25519-dalek's
//! constant-time `Scalar` arithmetic. Holders are identified by their client id, used as the
//! x-coordinate (1..=n, far below ℓ, so any client count works — unlike GF(256), which caps at
//! 255 shares). A [`Secret`] is 16 bytes (< 2^128 < ℓ, one field element); longer secrets, such
//! as 32-byte keys, are shared chunk by chunk with [`split_bytes`]. The protocol itself shares
//! 16-byte seeds and derives its 32-byte keys and mask seeds from them with HKDF (128 bits, the
//! security level of X25519), so one polynomial per secret suffices.

use curve25519_dalek::Scalar;
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{ClientId, Error, Result};

/// One holder's share of a 16-byte secret. Wiped on drop; `Debug` shows only the holder.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Share {
    /// Holder (x-coordinate).
    #[zeroize(skip)]
    pub holder: ClientId,
    /// The share, a canonical little-endian scalar.
    y: [u8; 32],
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share").field("holder", &self.holder).finish_non_exhaustive()
    }
}

impl PartialEq for Share {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.holder == other.holder && bool::from(self.y.ct_eq(&other.y))
    }
}

/// A 16-byte secret.
pub type Secret = [u8; 16];

fn to_scalar(secret: &Secret) -> Scalar {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(secret);
    let s = Scalar::from_bytes_mod_order(b);
    b.zeroize();
    s
}

/// Splits `secret` so that any `threshold` of the `holders` can reconstruct it and fewer learn
/// nothing. Shares are evaluated in parallel.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if `threshold` is 0 or above the number of holders, or a holder
/// id is 0 or repeated.
pub fn split(
    secret: &Secret,
    holders: &[ClientId],
    threshold: usize,
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<Vec<Share>> {
    use rayon::prelude::*;
    if threshold == 0 || threshold > holders.len() {
        return Err(Error::param("threshold", format!("{threshold} of {} holders", holders.len())));
    }
    let mut seen = std::collections::BTreeSet::new();
    if holders.iter().any(|h| h.0 == 0 || !seen.insert(*h)) {
        return Err(Error::param("holders", "ids must be non-zero and distinct"));
    }
    // f(x) = secret + a₁x + … + a_{t−1}x^{t−1}.
    let mut coeffs: Vec<Scalar> = Vec::with_capacity(threshold);
    coeffs.push(to_scalar(secret));
    for _ in 1..threshold {
        coeffs.push(Scalar::random(rng));
    }
    let shares = holders
        .par_iter()
        .map(|&h| {
            let x = Scalar::from(u64::from(h.0));
            let mut y = Scalar::ZERO;
            for a in coeffs.iter().rev() {
                y = y * x + a;
            }
            Share { holder: h, y: y.to_bytes() }
        })
        .collect();
    coeffs.zeroize();
    Ok(shares)
}

/// Lagrange coefficients at 0 for the x-coordinates `xs`: `λᵢ = Π_{j≠i} x_j/(x_j − x_i)`. Reusable
/// for every secret shared among the same holders (the complete graph), so a server
/// reconstructing hundreds of secrets pays for them once.
///
/// # Errors
///
/// [`Error::InvalidParameter`] for repeated or zero coordinates.
pub fn lagrange_at_zero(xs: &[ClientId]) -> Result<Vec<Scalar>> {
    let mut seen = std::collections::BTreeSet::new();
    if xs.iter().any(|h| h.0 == 0 || !seen.insert(*h)) {
        return Err(Error::param("holders", "ids must be non-zero and distinct"));
    }
    let s: Vec<Scalar> = xs.iter().map(|x| Scalar::from(u64::from(x.0))).collect();
    let mut num = Vec::with_capacity(s.len());
    let mut den = Vec::with_capacity(s.len());
    for (i, xi) in s.iter().enumerate() {
        let (mut n, mut d) = (Scalar::ONE, Scalar::ONE);
        for (j, xj) in s.iter().enumerate() {
            if i != j {
                n *= xj;
                d *= xj - xi;
            }
        }
        num.push(n);
        den.push(d);
    }
    Scalar::invert_batch_alloc(&mut den);
    Ok(num.iter().zip(&den).map(|(n, d)| n * d).collect())
}

/// Reconstructs a secret from shares whose holders match `coefficients` (from
/// [`lagrange_at_zero`] over the same holders, in the same order).
///
/// # Errors
///
/// [`Error::InvalidParameter`] on a length mismatch; [`Error::Decryption`] (opaque) if the result
/// is not a valid secret (wrong or tampered shares).
pub fn reconstruct_with(
    shares: &[&Share],
    coefficients: &[Scalar],
) -> Result<zeroize::Zeroizing<Secret>> {
    if shares.len() != coefficients.len() || shares.is_empty() {
        return Err(Error::param("shares", "as many shares as coefficients, at least one"));
    }
    let mut acc = Scalar::ZERO;
    for (share, l) in shares.iter().zip(coefficients) {
        let y = Option::<Scalar>::from(Scalar::from_canonical_bytes(share.y))
            .ok_or(Error::Decryption)?;
        acc += y * l;
    }
    let mut bytes = acc.to_bytes();
    // A valid secret is below 2^128.
    let valid = bytes[16..].iter().all(|&b| b == 0);
    let mut out = zeroize::Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&bytes[..16]);
    bytes.zeroize();
    if valid { Ok(out) } else { Err(Error::Decryption) }
}

/// Reconstructs a secret from at least `threshold` shares (the first `threshold` are used).
///
/// # Errors
///
/// [`Error::InvalidParameter`] for too few shares; as [`reconstruct_with`].
pub fn reconstruct(shares: &[Share], threshold: usize) -> Result<zeroize::Zeroizing<Secret>> {
    if threshold == 0 || shares.len() < threshold {
        return Err(Error::param(
            "shares",
            format!("{} shares for threshold {threshold}", shares.len()),
        ));
    }
    let used: Vec<&Share> = shares[..threshold].iter().collect();
    let xs: Vec<ClientId> = used.iter().map(|s| s.holder).collect();
    reconstruct_with(&used, &lagrange_at_zero(&xs)?)
}

/// Lagrange coefficients for many reconstructions among the same responders. Around a base set
/// `B` of `t + 1` holders, the coefficients for `B ∖ {r}` follow from those of `B` in O(t):
/// `λᵢ^{B∖r} = λᵢ^B · (x_r − xᵢ)/x_r`. In the complete graph every secret is held by all
/// responders except its owner, so every reconstruction uses `B` minus one point and the
/// server's cost is O(t) per secret instead of O(t²).
pub struct LagrangeCache {
    threshold: usize,
    base: Vec<ClientId>,
    base_coeffs: Vec<Scalar>,
    reduced: std::collections::HashMap<ClientId, Vec<Scalar>>,
    other: std::collections::HashMap<Vec<ClientId>, Vec<Scalar>>,
}

impl LagrangeCache {
    /// A cache for threshold `t` around the first `t + 1` of `responders` (sorted).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for zero or repeated ids.
    pub fn new(threshold: usize, responders: &[ClientId]) -> Result<Self> {
        let mut base: Vec<ClientId> = responders.to_vec();
        base.sort_unstable();
        base.truncate(threshold + 1);
        let base_coeffs =
            if base.len() == threshold + 1 { lagrange_at_zero(&base)? } else { Vec::new() };
        Ok(Self {
            threshold,
            base,
            base_coeffs,
            reduced: std::collections::HashMap::new(),
            other: std::collections::HashMap::new(),
        })
    }

    /// Reconstructs from `shares` (at least t, distinct holders).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for fewer than t shares; as [`reconstruct_with`].
    pub fn reconstruct(&mut self, shares: &[&Share]) -> Result<zeroize::Zeroizing<Secret>> {
        let t = self.threshold;
        if shares.len() < t {
            return Err(Error::param(
                "shares",
                format!("{} shares for threshold {t}", shares.len()),
            ));
        }
        let by_holder: std::collections::HashMap<ClientId, &Share> =
            shares.iter().map(|s| (s.holder, *s)).collect();
        // Fast path: all of the base set but at most one point are among the holders.
        if !self.base_coeffs.is_empty() {
            let missing: Vec<ClientId> =
                self.base.iter().filter(|x| !by_holder.contains_key(x)).copied().collect();
            let drop = match missing.as_slice() {
                [] => self.base.last().copied(),
                [one] => Some(*one),
                _ => None,
            };
            if let Some(r) = drop {
                if !self.reduced.contains_key(&r) {
                    let xr = Scalar::from(u64::from(r.0));
                    let inv = xr.invert();
                    let coeffs = self
                        .base
                        .iter()
                        .zip(&self.base_coeffs)
                        .filter(|(x, _)| **x != r)
                        .map(|(x, l)| l * (xr - Scalar::from(u64::from(x.0))) * inv)
                        .collect();
                    self.reduced.insert(r, coeffs);
                }
                let used: Vec<&Share> = self
                    .base
                    .iter()
                    .filter(|x| **x != r)
                    .filter_map(|x| by_holder.get(x).copied())
                    .collect();
                if let Some(coeffs) = self.reduced.get(&r) {
                    return reconstruct_with(&used, coeffs);
                }
            }
        }
        let mut used: Vec<&Share> = shares.to_vec();
        used.sort_by_key(|s| s.holder);
        used.truncate(t);
        let xs: Vec<ClientId> = used.iter().map(|s| s.holder).collect();
        if !self.other.contains_key(&xs) {
            let c = lagrange_at_zero(&xs)?;
            self.other.insert(xs.clone(), c);
        }
        let coeffs = self.other.get(&xs).ok_or(Error::Internal("cache"))?;
        reconstruct_with(&used, coeffs)
    }
}

/// Splits a secret of any length into 16-byte chunks (the last zero-padded), each shared with its
/// own polynomial; holder `i` gets `result[i]`, one [`Share`] per chunk.
///
/// # Errors
///
/// As [`split`]; [`Error::InvalidParameter`] for an empty secret.
pub fn split_bytes(
    secret: &[u8],
    holders: &[ClientId],
    threshold: usize,
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<Vec<Vec<Share>>> {
    if secret.is_empty() {
        return Err(Error::param("secret", "empty"));
    }
    let mut per_holder: Vec<Vec<Share>> =
        holders.iter().map(|_| Vec::with_capacity(secret.len().div_ceil(16))).collect();
    for chunk in secret.chunks(16) {
        let mut padded = zeroize::Zeroizing::new([0u8; 16]);
        padded[..chunk.len()].copy_from_slice(chunk);
        for (mine, share) in per_holder.iter_mut().zip(split(&padded, holders, threshold, rng)?) {
            mine.push(share);
        }
    }
    Ok(per_holder)
}

/// Reconstructs a `len`-byte secret from at least `threshold` holders' chunk shares (from
/// [`split_bytes`]).
///
/// # Errors
///
/// [`Error::InvalidParameter`] for too few holders or chunk counts that do not match `len`;
/// [`Error::Decryption`] (opaque) for wrong or tampered shares, including non-zero padding.
pub fn reconstruct_bytes(
    shares: &[Vec<Share>],
    threshold: usize,
    len: usize,
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let chunks = len.div_ceil(16);
    if len == 0 || shares.iter().any(|s| s.len() != chunks) {
        return Err(Error::param(
            "shares",
            format!("{chunks} chunk shares per holder for {len} bytes"),
        ));
    }
    if threshold == 0 || shares.len() < threshold {
        return Err(Error::param(
            "shares",
            format!("{} holders for threshold {threshold}", shares.len()),
        ));
    }
    let used = &shares[..threshold];
    let xs: Vec<ClientId> = used.iter().map(|s| s[0].holder).collect();
    if used.iter().any(|s| s.iter().any(|c| c.holder != s[0].holder)) {
        return Err(Error::param("shares", "one holder per share list"));
    }
    let coefficients = lagrange_at_zero(&xs)?;
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(chunks * 16));
    for c in 0..chunks {
        let column: Vec<&Share> = used.iter().map(|s| &s[c]).collect();
        out.extend_from_slice(&*reconstruct_with(&column, &coefficients)?);
    }
    if out[len..].iter().any(|&b| b != 0) {
        return Err(Error::Decryption);
    }
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    use super::*;

    proptest! {
        #[test]
        fn any_t_of_n_reconstructs(secret in any::<[u8; 16]>(), n in 1usize..40, t_frac in 0.0..1.0f64, pick in any::<u64>()) {
            let t = 1 + ((n - 1) as f64 * t_frac) as usize;
            let holders: Vec<ClientId> = (1..=n as u32).map(|i| ClientId(i * 3 + 1)).collect();
            let mut rng = ChaCha20Rng::seed_from_u64(pick);
            let shares = split(&secret, &holders, t, &mut rng).unwrap();
            // A random subset of exactly t shares, in random order.
            let mut idx: Vec<usize> = (0..n).collect();
            rand::seq::SliceRandom::shuffle(&mut idx[..], &mut rng);
            let subset: Vec<Share> = idx[..t].iter().map(|&i| shares[i].clone()).collect();
            prop_assert_eq!(*reconstruct(&subset, t).unwrap(), secret);
            // The cache around a base set of the first t + 1 holders gives the same answer for
            // every subset that misses at most one base point, and falls back otherwise.
            let mut cache = LagrangeCache::new(t, &holders).unwrap();
            let refs: Vec<&Share> = subset.iter().collect();
            prop_assert_eq!(*cache.reconstruct(&refs).unwrap(), secret);
            let all: Vec<&Share> = shares.iter().collect();
            for skip in 0..n.min(t + 1) {
                let without: Vec<&Share> = all.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, s)| *s).collect();
                if without.len() >= t {
                    prop_assert_eq!(*cache.reconstruct(&without).unwrap(), secret);
                }
            }
        }

        #[test]
        fn fewer_than_t_shares_give_a_different_value(secret in any::<[u8; 16]>(), seed in any::<u64>()) {
            let holders: Vec<ClientId> = (1..=5).map(ClientId).collect();
            let shares = split(&secret, &holders, 3, &mut ChaCha20Rng::seed_from_u64(seed)).unwrap();
            // Interpolating 2 of 3 needed points gives (with overwhelming probability) not the secret,
            // or an invalid chunk.
            if let Ok(v) = reconstruct(&shares[..2], 2) {
                prop_assert_ne!(*v, secret);
            }
        }
    }

    #[test]
    fn thirty_two_byte_secrets_are_shared_in_chunks() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let holders: Vec<ClientId> = (1..=600).map(ClientId).collect();
        for secret in [[0xffu8; 32], [0u8; 32], core::array::from_fn(|i| i as u8)] {
            let shares = split_bytes(&secret, &holders, 301, &mut rng).unwrap();
            // Any 301 holders, here the last ones, reconstruct it.
            let tail = &shares[299..];
            assert_eq!(&reconstruct_bytes(tail, 301, 32).unwrap()[..], &secret[..]);
            assert!(reconstruct_bytes(&shares[..300], 301, 32).is_err());
        }
        // An odd length pads the last chunk; tampering with a share is detected or changes the result.
        let shares = split_bytes(b"seventeen bytes!!", &holders[..5], 3, &mut rng).unwrap();
        assert_eq!(&reconstruct_bytes(&shares[2..], 3, 17).unwrap()[..], b"seventeen bytes!!");
        assert!(reconstruct_bytes(&shares, 3, 33).is_err());
        let mut bad = shares.clone();
        bad[0][1].y[3] ^= 1;
        assert!(reconstruct_bytes(&bad, 3, 17).map_or(true, |v| &v[..] != b"seventeen bytes!!"));
        assert!(split_bytes(&[], &holders[..3], 2, &mut rng).is_err());
    }

    #[test]
    fn bad_inputs() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        assert!(split(&[1; 16], &[ClientId(1), ClientId(1)], 1, &mut rng).is_err());
        assert!(split(&[1; 16], &[ClientId(0)], 1, &mut rng).is_err());
        assert!(split(&[1; 16], &[ClientId(1)], 2, &mut rng).is_err());
        let shares = split(&[7; 16], &[ClientId(1), ClientId(2)], 2, &mut rng).unwrap();
        assert!(reconstruct(&shares[..1], 2).is_err());
        let mut tampered = shares.clone();
        tampered[0].y[0] ^= 1;
        assert!(reconstruct(&tampered, 2).map_or(true, |v| *v != [7; 16]));
        assert!(!format!("{:?}", shares[0]).contains("y:"));
    }
}
