//! Signed checkpoints of the chain head, and export of the head for external anchoring.
//!
//! A checkpoint is an ed25519 signature (RFC 8032, via ed25519-dalek's strict verification) over
//! `"mshale-fl/audit/v1/checkpoint" ‖ sequence (u64 LE) ‖ head hash`. Anyone with the server's
//! public key can then detect that the log was truncated below the checkpoint (the record is
//! missing) or rewritten up to it (its hash differs) — which the chain alone cannot show if the
//! rewriter recomputes every hash. Checkpoints go to an append-only sidecar file
//! `<log>.checkpoints` of fixed-size entries.
//!
//! For protection even against someone holding the signing key, export the head
//! ([`crate::Head::anchor`]) to a medium the server cannot rewrite: a WORM object store bucket
//! with Object Lock (as the product runs it), a transparency log, a public repository commit, or a
//! ledger transaction. [`crate::verify_anchor`] later proves the log still contains that head.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::record::Digest;
use crate::{Error, Result};

const DOMAIN: &[u8] = b"mshale-fl/audit/v1/checkpoint";
const FILE_MAGIC: &[u8; 8] = b"MSFLCKP1";
const ENTRY: usize = 8 + 32 + 64;

/// The path of the checkpoint file of the log at `log`.
#[must_use]
pub fn checkpoint_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".checkpoints");
    PathBuf::from(s)
}

/// A signed head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Sequence of the record the checkpoint covers.
    pub sequence: u64,
    /// That record's hash.
    pub head: Digest,
    /// ed25519 signature over the domain-separated message.
    pub signature: [u8; 64],
}

fn message(sequence: u64, head: &Digest) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 40);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&sequence.to_le_bytes());
    m.extend_from_slice(&head.0);
    m
}

impl Checkpoint {
    /// Whether the signature verifies under `key` (strict RFC 8032 verification).
    #[must_use]
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        key.verify_strict(
            &message(self.sequence, &self.head),
            &Signature::from_bytes(&self.signature),
        )
        .is_ok()
    }

    fn to_bytes(self) -> [u8; ENTRY] {
        let mut b = [0u8; ENTRY];
        b[..8].copy_from_slice(&self.sequence.to_le_bytes());
        b[8..40].copy_from_slice(&self.head.0);
        b[40..].copy_from_slice(&self.signature);
        b
    }

    fn from_bytes(b: &[u8]) -> Option<Self> {
        let mut seq = [0u8; 8];
        seq.copy_from_slice(b.get(..8)?);
        let mut head = [0u8; 32];
        head.copy_from_slice(b.get(8..40)?);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(b.get(40..ENTRY)?);
        Some(Self { sequence: u64::from_le_bytes(seq), head: Digest(head), signature })
    }
}

/// The server's checkpoint signing key. The secret is wiped on drop (ed25519-dalek's
/// `ZeroizeOnDrop`) and never appears in `Debug`.
pub struct CheckpointSigner {
    key: SigningKey,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("public", &self.key.verifying_key())
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// A fresh key from a CSPRNG.
    pub fn generate(rng: &mut (impl rand::CryptoRng + ?Sized)) -> Self {
        Self { key: SigningKey::generate(rng) }
    }

    /// A key from its 32 secret bytes (e.g. read from the server's key file).
    #[must_use]
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(secret) }
    }

    /// The 32 secret bytes, to store in the server's key file (mode 0600). Handle with care.
    #[must_use]
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The public key verifiers need.
    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs a head.
    #[must_use]
    pub fn sign(&self, sequence: u64, head: Digest) -> Checkpoint {
        let signature = self.key.sign(&message(sequence, &head)).to_bytes();
        Checkpoint { sequence, head, signature }
    }
}

/// Reading and appending the checkpoint sidecar file.
pub struct CheckpointFile;

impl CheckpointFile {
    /// All checkpoints in `path` (none if the file does not exist). A trailing partial entry (a
    /// torn append) is ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Io`]; [`Error::InvalidArgument`] for a file that is not a checkpoint file.
    pub fn read(path: &Path) -> Result<Vec<Checkpoint>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if bytes.len() < FILE_MAGIC.len() || &bytes[..FILE_MAGIC.len()] != FILE_MAGIC {
            return Err(Error::InvalidArgument {
                name: "checkpoint file",
                reason: "bad magic".into(),
            });
        }
        Ok(bytes[FILE_MAGIC.len()..]
            .chunks_exact(ENTRY)
            .filter_map(Checkpoint::from_bytes)
            .collect())
    }

    /// Appends `cp` to `path` (creating it), durably.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn append(path: &Path, cp: &Checkpoint) -> Result<()> {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let len = f.metadata()?.len();
        if len == 0 {
            f.write_all(FILE_MAGIC)?;
        } else {
            // Drop a torn trailing entry before appending.
            let whole = (len - FILE_MAGIC.len() as u64) / ENTRY as u64;
            let clean = FILE_MAGIC.len() as u64 + whole * ENTRY as u64;
            if clean != len {
                f.set_len(clean)?;
            }
        }
        f.write_all(&cp.to_bytes())?;
        f.sync_data()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    use super::*;

    #[test]
    fn sign_verify_and_reject() {
        let signer = CheckpointSigner::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let cp = signer.sign(7, Digest::of(b"head"));
        assert!(cp.verify(&signer.verifying_key()));
        let mut bad = cp;
        bad.sequence = 8;
        assert!(!bad.verify(&signer.verifying_key()));
        let other = CheckpointSigner::generate(&mut ChaCha20Rng::seed_from_u64(2));
        assert!(!cp.verify(&other.verifying_key()));
        assert_eq!(Checkpoint::from_bytes(&cp.to_bytes()), Some(cp));
        let again = CheckpointSigner::from_secret_bytes(&signer.secret_bytes());
        assert_eq!(again.verifying_key(), signer.verifying_key());
        let dbg = format!("{signer:?}");
        assert!(!dbg.contains(&format!("{:?}", signer.secret_bytes())));
    }
}
