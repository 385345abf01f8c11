#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        clippy::panic_in_result_fn,
        clippy::cast_possible_truncation,
        clippy::cast_precision_loss,
        clippy::cast_sign_loss,
        reason = "tests assert and return Result; test data is built with casts"
    )
)]

pub mod checkpoint;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod record;
mod store;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointSigner};
pub use error::{Error, Fault, Result};
pub use record::{Digest, Entry, Extension, PrivacyCharge, Record, RoundEntry};
pub use store::{Appended, AuditLog, Durability, Recovery, VerifiedLog};
pub use verify::{VerifyReport, read_records, verify_bytes, verify_file, verify_with_checkpoints};

/// The chain head: the last record's sequence and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Sequence of the last record.
    pub sequence: u64,
    /// Its hash.
    pub hash: Digest,
}

impl Head {
    /// A one-line string to publish for external anchoring:
    /// `mshale-fl-audit-head:v1:<sequence>:<hex hash>`.
    #[must_use]
    pub fn anchor(&self) -> String {
        format!("mshale-fl-audit-head:v1:{}:{}", self.sequence, self.hash.to_hex())
    }

    /// Parses [`Head::anchor`]'s format.
    #[must_use]
    pub fn parse_anchor(s: &str) -> Option<Self> {
        let rest = s.trim().strip_prefix("mshale-fl-audit-head:v1:")?;
        let (seq, hex) = rest.split_once(':')?;
        Some(Self { sequence: seq.parse().ok()?, hash: Digest::from_hex(hex)? })
    }
}

/// Checks that the log `bytes` verifies and still contains the anchored head.
///
/// # Errors
///
/// The chain's first [`Fault`]; [`Fault::TruncatedBelowCheckpoint`] if the log no longer reaches
/// the anchored record; [`Fault::CheckpointMismatch`] if that record's hash changed.
pub fn verify_anchor(bytes: &[u8], anchor: &Head) -> std::result::Result<VerifyReport, Fault> {
    let report = verify_bytes(bytes)?;
    let idx = usize::try_from(anchor.sequence).unwrap_or(usize::MAX);
    match report.hashes.get(idx) {
        None => Err(Fault::TruncatedBelowCheckpoint {
            checkpoint: anchor.sequence,
            log_len: report.records,
        }),
        Some(h) if *h != anchor.hash => {
            Err(Fault::CheckpointMismatch { sequence: anchor.sequence })
        }
        Some(_) => Ok(report),
    }
}
