//! Key material of the Paillier privacy mode.
//!
//! Clients encrypt their quantized, packed updates under a threshold Paillier key
//! ([`fl_he::ThresholdKey`]: Damgård–Jurik, PKC 2001, §4); the server adds the ciphertexts and
//! asks the partners of the round for decryption shares of the *sum* only; any t shares decrypt
//! it. Nobody holds the whole key: the server sees ciphertexts and the sum, a partner sees its own
//! update and the sum, and fewer than t partners together with the server learn nothing more.
//!
//! The key is dealt once by a trusted dealer ([`deal`], the `fl-server paillier-deal` command):
//! run it away from the server (the dealer momentarily knows every share), give each partner
//! its [`PartyKey`] file over a confidential channel, and the server the public
//! [`PaillierSetup`].

use std::collections::BTreeMap;
use std::path::Path;

use fl_core::PartnerId;
use fl_he::{PartyKey, ThresholdKey};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// What the server holds: the public threshold key and which share index belongs to which
/// partner (decryption shares carrying another partner's index are refused).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaillierSetup {
    /// The public parameters.
    pub key: ThresholdKey,
    /// Share index (1..=parties) of each partner.
    pub parties: BTreeMap<PartnerId, u32>,
}

impl PaillierSetup {
    /// Checks the key's counts ([`ThresholdKey::validate`]: 1 ≤ t ≤ l ≤ 4096), that every index
    /// is distinct and in range, and that there are as many partners as shares.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the inconsistency.
    pub fn validate(&self) -> Result<()> {
        let k = &self.key;
        k.validate().map_err(|e| Error::config("paillier-key", e.to_string()))?;
        if self.parties.len() != k.parties as usize {
            return Err(Error::config(
                "paillier-key",
                format!("{} partners listed for {} shares", self.parties.len(), k.parties),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (p, &i) in &self.parties {
            if i == 0 || i > k.parties || !seen.insert(i) {
                return Err(Error::config(
                    "paillier-key",
                    format!(
                        "partner {p} has share index {i}, not a distinct one in 1..={}",
                        k.parties
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reads and validates a setup written by [`Self::save`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`], [`Error::Malformed`], or [`Self::validate`]'s errors.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let setup: Self = serde_json::from_str(&text)
            .map_err(|e| Error::Malformed(format!("{}: {e}", path.display())))?;
        setup.validate()?;
        Ok(setup)
    }

    /// Writes the setup as JSON (public: no secret in it).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let text =
            serde_json::to_string_pretty(self).map_err(|e| Error::Malformed(e.to_string()))?;
        crate::state::write_atomic(path, text.as_bytes())
    }
}

/// SHA-256 of the key's modulus: sent with each round so a client can tell that the server
/// expects the key it holds, and refuse otherwise.
#[must_use]
pub fn fingerprint(key: &ThresholdKey) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"mshale-fl paillier key v1");
    h.update(key.public.n().to_bytes_be());
    h.update(key.parties.to_be_bytes());
    h.update(key.threshold.to_be_bytes());
    h.finalize().into()
}

/// Deals a `bits`-bit threshold key for `partners` (share i + 1 to the i-th), of which any
/// `threshold` can decrypt a sum. Safe-prime generation takes from a fraction of a second to a
/// few seconds at 2048 bits.
///
/// # Errors
///
/// [`Error::Config`] for an empty or duplicated partner list or a threshold outside
/// `1..=partners`; fl-he's errors (e.g. fewer than 2048 bits).
pub fn deal(
    partners: &[PartnerId],
    threshold: u32,
    bits: u32,
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<(PaillierSetup, Vec<(PartnerId, PartyKey)>)> {
    deal_with(partners, threshold, |l, t| ThresholdKey::deal(bits, l, t, rng))
}

/// As [`deal`] with keys below the secure size, for tests and quick simulations. Never use
/// these keys for real data.
///
/// # Errors
///
/// As [`deal`].
pub fn deal_insecure_for_tests(
    partners: &[PartnerId],
    threshold: u32,
    bits: u32,
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<(PaillierSetup, Vec<(PartnerId, PartyKey)>)> {
    deal_with(partners, threshold, |l, t| ThresholdKey::deal_insecure_for_tests(bits, l, t, rng))
}

type Dealt = (ThresholdKey, Vec<fl_he::KeyShare>);

fn deal_with(
    partners: &[PartnerId],
    threshold: u32,
    dealer: impl FnOnce(u32, u32) -> fl_he::Result<Dealt>,
) -> Result<(PaillierSetup, Vec<(PartnerId, PartyKey)>)> {
    let l = u32::try_from(partners.len())
        .map_err(|_| Error::config("partners", "too many for one key"))?;
    let distinct: std::collections::BTreeSet<&PartnerId> = partners.iter().collect();
    if l == 0 || distinct.len() != partners.len() {
        return Err(Error::config("partners", "a non-empty list of distinct partner ids"));
    }
    if threshold == 0 || threshold > l {
        return Err(Error::config("threshold", format!("{threshold} is not in 1..={l}")));
    }
    let (key, shares) = dealer(l, threshold).map_err(|e| match e {
        fl_he::Error::InvalidParameter { name, reason } => Error::config(name, reason),
        other => other.into(),
    })?;
    let parties = partners.iter().cloned().zip(1..=l).collect();
    let setup = PaillierSetup { key: key.clone(), parties };
    let keys = partners
        .iter()
        .cloned()
        .zip(shares)
        .map(|(p, share)| (p, PartyKey { key: key.clone(), share }))
        .collect();
    Ok((setup, keys))
}

/// Writes a partner's key file with owner-only permissions, refusing to overwrite a file.
///
/// # Errors
///
/// [`Error::Io`].
pub fn save_party_key(party: &PartyKey, path: &Path) -> Result<()> {
    crate::state::write_secret_json(path, party)
}

/// Reads a partner's key file written by [`save_party_key`].
///
/// # Errors
///
/// [`Error::Io`]; [`Error::Malformed`] for a file that is not a valid party key.
pub fn load_party_key(path: &Path) -> Result<PartyKey> {
    let text = Zeroizing::new(std::fs::read_to_string(path)?);
    serde_json::from_str(&text).map_err(|e| Error::Malformed(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    use super::*;

    #[test]
    fn dealt_setups_validate_and_round_trip() {
        let ps: Vec<PartnerId> = (0..4).map(|i| PartnerId::new(format!("p{i}")).unwrap()).collect();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (setup, keys) = deal_insecure_for_tests(&ps, 3, 256, &mut rng).unwrap();
        setup.validate().unwrap();
        assert_eq!(keys.len(), 4);
        let dir = tempfile::tempdir().unwrap();
        setup.save(&dir.path().join("setup.json")).unwrap();
        assert_eq!(PaillierSetup::load(&dir.path().join("setup.json")).unwrap(), setup);
        let path = dir.path().join("p0.key");
        save_party_key(&keys[0].1, &path).unwrap();
        assert!(save_party_key(&keys[0].1, &path).is_err(), "overwrote a key file");
        let back = load_party_key(&path).unwrap();
        assert_eq!(fingerprint(&back.key), fingerprint(&setup.key));
        assert_eq!(back.share.index(), setup.parties[&ps[0]]);
        let mut dup = setup.clone();
        dup.parties.insert(ps[1].clone(), 1);
        assert!(dup.validate().is_err());
        let mut short = setup;
        short.parties.remove(&ps[3]);
        assert!(short.validate().is_err());
        assert!(deal_insecure_for_tests(&ps, 5, 256, &mut rng).is_err());
        assert!(
            deal_insecure_for_tests(&[ps[0].clone(), ps[0].clone()], 1, 256, &mut rng).is_err()
        );
        assert!(deal(&ps, 2, 1024, &mut rng).is_err(), "an insecure key size was dealt");
    }
}
