//! Partner identities and authentication, sans-IO.
//!
//! Each partner holds an ed25519 key (RFC 8032; `ed25519-dalek` with strict verification); the
//! server keeps a registry of partner ids and public keys (`fl-server enrol`). A connection
//! proves its identity by signing the server's fresh 32-byte challenge together with the
//! partner id, and every message after that is signed over the session challenge, a sequence
//! number that must strictly increase, the round, the model version and the message bytes.
//! So a captured message cannot be replayed in the same session (sequence), in another session
//! (challenge), or for another round or model version (both signed, and checked against the
//! server's current ones).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use fl_core::{ModelVersion, PartnerId, Round};
use rand::Rng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::state::{hex, unhex, write_json_atomic, write_secret_json};
use crate::{Error, Result};

const AUTH_DOMAIN: &[u8] = b"mshale-fl/v1/auth";
const MSG_DOMAIN: &[u8] = b"mshale-fl/v1/message";

/// A fresh server challenge.
pub type Challenge = [u8; 32];

/// Draws a challenge from a CSPRNG.
#[must_use]
pub fn new_challenge(rng: &mut impl Rng) -> Challenge {
    let mut c = [0u8; 32];
    rng.fill_bytes(&mut c);
    c
}

fn auth_transcript(challenge: &Challenge, partner: &PartnerId) -> Vec<u8> {
    let mut t = Vec::with_capacity(AUTH_DOMAIN.len() + 40 + partner.as_str().len());
    t.extend_from_slice(AUTH_DOMAIN);
    t.extend_from_slice(challenge);
    t.extend_from_slice(&(partner.as_str().len() as u64).to_le_bytes());
    t.extend_from_slice(partner.as_str().as_bytes());
    t
}

fn message_transcript(challenge: &Challenge, signed: &SignedMessage) -> Vec<u8> {
    let mut t = Vec::with_capacity(MSG_DOMAIN.len() + 64 + signed.body.len());
    t.extend_from_slice(MSG_DOMAIN);
    t.extend_from_slice(challenge);
    t.extend_from_slice(&signed.seq.to_le_bytes());
    t.extend_from_slice(&signed.round.0.to_le_bytes());
    t.extend_from_slice(&signed.model_version.0.to_le_bytes());
    t.extend_from_slice(&(signed.body.len() as u64).to_le_bytes());
    t.extend_from_slice(&signed.body);
    t
}

/// The client's answer to a challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResponse {
    /// Who the client claims to be.
    pub partner: PartnerId,
    /// Local training examples (the FedAvg weight).
    pub num_examples: u64,
    /// ed25519 signature of the challenge transcript.
    pub signature: Vec<u8>,
}

/// A client message with its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMessage {
    /// Strictly increasing within a session, from 1.
    pub seq: u64,
    /// The round it belongs to.
    pub round: Round,
    /// The model version it was computed from.
    pub model_version: ModelVersion,
    /// The encoded [`ClientMsg`](crate::messages::ClientMsg).
    pub body: Vec<u8>,
    /// ed25519 signature of the message transcript.
    pub signature: Vec<u8>,
}

/// A partner's signing identity. The secret is wiped on drop and never printed.
pub struct Identity {
    partner: PartnerId,
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("partner", &self.partner)
            .field("public_key", &self.public_key_hex())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct IdentityFile {
    partner_id: String,
    secret_key_hex: String,
}

/// Parses a hex ed25519 public key (64 hex digits), rejecting invalid points.
///
/// # Errors
///
/// [`Error::Auth`].
pub fn parse_public_key(hex_key: &str) -> Result<VerifyingKey> {
    let bytes: [u8; 32] =
        unhex(hex_key).ok_or_else(|| Error::Auth("public key is not 64 hex digits".into()))?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| Error::Auth("public key is not a valid ed25519 point".into()))?;
    if key.is_weak() {
        return Err(Error::Auth("public key has small order".into()));
    }
    Ok(key)
}

impl Identity {
    /// A new identity for `partner` from a CSPRNG.
    #[must_use]
    pub fn generate(partner: PartnerId, rng: &mut impl rand::CryptoRng) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self { partner, key: SigningKey::from_bytes(&seed) }
    }

    /// The partner id.
    #[must_use]
    pub fn partner(&self) -> &PartnerId {
        &self.partner
    }

    /// The public key, hex.
    #[must_use]
    pub fn public_key_hex(&self) -> String {
        hex(self.key.verifying_key().as_bytes())
    }

    /// Writes the identity (owner-only permissions on Unix), refusing to overwrite a file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let file = IdentityFile {
            partner_id: self.partner.as_str().to_owned(),
            secret_key_hex: hex(&self.key.to_bytes()),
        };
        let result = write_secret_json(path, &file);
        drop(Zeroizing::new(file.secret_key_hex));
        result
    }

    /// Reads an identity written by [`Identity::save`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`]; [`Error::Auth`] for a malformed file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = Zeroizing::new(std::fs::read_to_string(path)?);
        let f: IdentityFile = serde_json::from_str(&text)
            .map_err(|e| Error::Auth(format!("{}: {e}", path.display())))?;
        let secret_hex = Zeroizing::new(f.secret_key_hex);
        let seed = Zeroizing::new(
            unhex::<32>(&secret_hex)
                .ok_or_else(|| Error::Auth(format!("{}: bad secret key", path.display())))?,
        );
        Ok(Self { partner: PartnerId::new(f.partner_id)?, key: SigningKey::from_bytes(&seed) })
    }

    /// Answers a server challenge.
    #[must_use]
    pub fn respond(&self, challenge: &Challenge, num_examples: u64) -> AuthResponse {
        let sig = self.key.sign(&auth_transcript(challenge, &self.partner));
        AuthResponse {
            partner: self.partner.clone(),
            num_examples,
            signature: sig.to_bytes().to_vec(),
        }
    }

    /// Signs a message body for the session opened by `challenge`.
    #[must_use]
    pub fn sign(
        &self,
        challenge: &Challenge,
        seq: u64,
        round: Round,
        model_version: ModelVersion,
        body: Vec<u8>,
    ) -> SignedMessage {
        let mut m = SignedMessage { seq, round, model_version, body, signature: Vec::new() };
        m.signature = self.key.sign(&message_transcript(challenge, &m)).to_bytes().to_vec();
        m
    }
}

/// The partner enrolled with `key`, if any.
fn holder_of<'a>(
    partners: &'a BTreeMap<PartnerId, VerifyingKey>,
    key: &VerifyingKey,
) -> Option<&'a PartnerId> {
    partners.iter().find(|(_, k)| *k == key).map(|(p, _)| p)
}

fn signature(bytes: &[u8]) -> Result<Signature> {
    let b: [u8; 64] =
        bytes.try_into().map_err(|_| Error::Auth("signature is not 64 bytes".into()))?;
    Ok(Signature::from_bytes(&b))
}

/// The server's registry of enrolled partners, stored as JSON (`partners.json`).
#[derive(Debug, Default)]
pub struct Registry {
    path: Option<PathBuf>,
    partners: BTreeMap<PartnerId, VerifyingKey>,
}

#[derive(Serialize, Deserialize)]
struct RegistryFile {
    partners: BTreeMap<String, String>,
}

impl Registry {
    /// Opens (or starts) the registry at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`]; [`Error::Auth`] for a malformed file or key.
    pub fn open(path: &Path) -> Result<Self> {
        let partners = match std::fs::read_to_string(path) {
            Ok(text) => {
                let f: RegistryFile = serde_json::from_str(&text)
                    .map_err(|e| Error::Auth(format!("{}: {e}", path.display())))?;
                let mut partners = BTreeMap::new();
                for (id, key) in f.partners {
                    let (id, key) = (PartnerId::new(id)?, parse_public_key(&key)?);
                    if let Some(other) = holder_of(&partners, &key) {
                        return Err(Error::Auth(format!(
                            "{}: {other} and {id} are enrolled with the same key",
                            path.display()
                        )));
                    }
                    partners.insert(id, key);
                }
                partners
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Self { path: Some(path.to_owned()), partners })
    }

    /// Enrols `partner` with `key` and saves the registry (atomically: temp file + rename).
    /// Enrolling the same key again is a no-op; a different key for an enrolled id is refused,
    /// and so is a key enrolled under another id (its holder would count as two partners: two
    /// updates a round, two privacy budgets). If saving fails, nothing is enrolled.
    ///
    /// # Errors
    ///
    /// [`Error::Auth`] for a conflicting key; [`Error::Io`].
    pub fn enrol(&mut self, partner: PartnerId, key: VerifyingKey) -> Result<()> {
        if let Some(old) = self.partners.get(&partner) {
            if *old == key {
                return Ok(());
            }
            return Err(Error::Auth(format!("{partner} is already enrolled with another key")));
        }
        if let Some(other) = holder_of(&self.partners, &key) {
            return Err(Error::Auth(format!("this key is already enrolled for {other}")));
        }
        let mut partners = self.partners.clone();
        partners.insert(partner, key);
        self.save(&partners)?;
        self.partners = partners;
        Ok(())
    }

    fn save(&self, partners: &BTreeMap<PartnerId, VerifyingKey>) -> Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let file = RegistryFile {
            partners: partners
                .iter()
                .map(|(p, k)| (p.as_str().to_owned(), hex(k.as_bytes())))
                .collect(),
        };
        write_json_atomic(path, &file)
    }

    /// Enrolled partners.
    #[must_use]
    pub fn len(&self) -> usize {
        self.partners.len()
    }

    /// Whether nobody is enrolled.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.partners.is_empty()
    }

    /// Checks a challenge response: an enrolled partner and a valid signature.
    ///
    /// # Errors
    ///
    /// [`Error::Auth`].
    pub fn verify(&self, challenge: &Challenge, response: &AuthResponse) -> Result<VerifyingKey> {
        let key = self
            .partners
            .get(&response.partner)
            .ok_or_else(|| Error::Auth(format!("{} is not enrolled", response.partner)))?;
        key.verify_strict(
            &auth_transcript(challenge, &response.partner),
            &signature(&response.signature)?,
        )
        .map_err(|_| Error::Auth(format!("bad signature from {}", response.partner)))?;
        Ok(*key)
    }
}

/// The server side of one authenticated session: checks every message's signature and that
/// sequence numbers strictly increase.
#[derive(Debug)]
pub struct Session {
    partner: PartnerId,
    key: VerifyingKey,
    challenge: Challenge,
    last_seq: u64,
}

impl Session {
    /// A session for a partner that answered `challenge`.
    #[must_use]
    pub fn new(partner: PartnerId, key: VerifyingKey, challenge: Challenge) -> Self {
        Self { partner, key, challenge, last_seq: 0 }
    }

    /// The authenticated partner.
    #[must_use]
    pub fn partner(&self) -> &PartnerId {
        &self.partner
    }

    /// Verifies a signed message and returns its body.
    ///
    /// # Errors
    ///
    /// [`Error::Auth`] for a bad signature or a replayed (non-increasing) sequence number.
    pub fn open<'a>(&mut self, m: &'a SignedMessage) -> Result<&'a [u8]> {
        self.key
            .verify_strict(&message_transcript(&self.challenge, m), &signature(&m.signature)?)
            .map_err(|_| Error::Auth(format!("bad message signature from {}", self.partner)))?;
        if m.seq <= self.last_seq {
            return Err(Error::Auth(format!(
                "replayed message {} from {} (last {})",
                m.seq, self.partner, self.last_seq
            )));
        }
        self.last_seq = m.seq;
        Ok(&m.body)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    use super::*;

    #[test]
    fn one_key_enrols_one_partner_and_a_failed_save_enrols_nobody() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partners.json");
        let alice = Identity::generate(PartnerId::new("alice").unwrap(), &mut rng);
        let key = parse_public_key(&alice.public_key_hex()).unwrap();
        let mut reg = Registry::open(&path).unwrap();
        reg.enrol(alice.partner().clone(), key).unwrap();
        let err = reg.enrol(PartnerId::new("alice-2").unwrap(), key).unwrap_err();
        assert!(err.to_string().contains("already enrolled for alice"), "{err}");
        assert_eq!(Registry::open(&path).unwrap().len(), 1);

        // A file that gives two ids one key (edited by hand) is refused.
        let k = alice.public_key_hex();
        std::fs::write(&path, format!(r#"{{"partners": {{"alice": "{k}", "bob": "{k}"}}}}"#))
            .unwrap();
        let err = Registry::open(&path).unwrap_err();
        assert!(err.to_string().contains("alice and bob are enrolled with the same key"), "{err}");

        // The registry's directory is gone: the enrolment fails and is not half-made.
        let gone = dir.path().join("gone");
        std::fs::create_dir(&gone).unwrap();
        let mut reg = Registry::open(&gone.join("partners.json")).unwrap();
        std::fs::remove_dir(&gone).unwrap();
        assert!(reg.enrol(alice.partner().clone(), key).is_err());
        assert!(reg.is_empty());
    }

    #[test]
    fn challenge_response_signed_messages_and_replays() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let dir = tempfile::tempdir().unwrap();
        let alice = Identity::generate(PartnerId::new("alice").unwrap(), &mut rng);
        let mallory = Identity::generate(PartnerId::new("mallory").unwrap(), &mut rng);
        let path = dir.path().join("alice.key");
        alice.save(&path).unwrap();
        assert!(alice.save(&path).is_err(), "never overwrites a key");
        let alice2 = Identity::load(&path).unwrap();
        assert_eq!(alice2.public_key_hex(), alice.public_key_hex());
        assert!(!format!("{alice:?}").contains(&hex(&alice.key.to_bytes())));

        let mut reg = Registry::open(&dir.path().join("partners.json")).unwrap();
        reg.enrol(alice.partner().clone(), parse_public_key(&alice.public_key_hex()).unwrap())
            .unwrap();
        assert!(
            reg.enrol(
                alice.partner().clone(),
                parse_public_key(&mallory.public_key_hex()).unwrap()
            )
            .is_err()
        );
        let reg = Registry::open(&dir.path().join("partners.json")).unwrap();
        assert_eq!(reg.len(), 1);

        let c = new_challenge(&mut rng);
        let key = reg.verify(&c, &alice2.respond(&c, 10)).unwrap();
        assert!(
            reg.verify(&new_challenge(&mut rng), &alice.respond(&c, 10)).is_err(),
            "old challenge"
        );
        assert!(reg.verify(&c, &mallory.respond(&c, 10)).is_err(), "not enrolled");
        let mut forged = mallory.respond(&c, 10);
        forged.partner = alice.partner().clone();
        assert!(reg.verify(&c, &forged).is_err(), "mallory's key for alice's id");

        let mut s = Session::new(alice.partner().clone(), key, c);
        let m1 = alice.sign(&c, 1, Round(1), ModelVersion(0), vec![1, 2, 3]);
        assert_eq!(s.open(&m1).unwrap(), &[1, 2, 3]);
        assert!(s.open(&m1).is_err(), "replay");
        let mut m2 = alice.sign(&c, 2, Round(1), ModelVersion(0), vec![4]);
        m2.round = Round(2);
        assert!(s.open(&m2).is_err(), "round is signed");
        let other_session =
            alice.sign(&new_challenge(&mut rng), 3, Round(1), ModelVersion(0), vec![5]);
        assert!(s.open(&other_session).is_err(), "bound to the session challenge");
        for bad in ["", "zz", &"0".repeat(64)] {
            assert!(parse_public_key(bad).is_err(), "{bad}");
        }
    }
}
