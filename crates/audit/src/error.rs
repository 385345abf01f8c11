//! The fl-audit error type and the verification faults.

/// Result alias for fl-audit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the log could not be opened, appended to, or verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Verification found a fault; the log is not trustworthy from `fault.sequence()` on.
    #[error("audit log fails verification: {0}")]
    Tampered(Fault),
    /// Another process holds the log's writer lock.
    #[error("audit log {0} is locked by another writer")]
    Locked(String),
    /// A caller-supplied value is invalid (e.g. an empty batch, a genesis record out of place).
    #[error("invalid {name}: {reason}")]
    InvalidArgument {
        /// What.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// Reading or writing the log failed; an append that fails is removed again.
    #[error("audit log I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A key could not be parsed.
    #[error("invalid key or signature encoding")]
    BadKey,
    /// A broken internal invariant; please report it.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// The first thing wrong with a log, with the record it affects.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Fault {
    /// The file does not start with the audit log magic.
    #[error("not an audit log (bad magic)")]
    BadMagic,
    /// Record `sequence` (counting from 0 in file order) has a bad frame: impossible length or
    /// checksum mismatch.
    #[error("record {sequence} at byte {offset}: bad framing ({reason})")]
    BadFraming {
        /// Position of the record in the file.
        sequence: u64,
        /// Byte offset of its frame.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The file ends inside record `sequence`.
    #[error("record {sequence} at byte {offset} is truncated")]
    Truncated {
        /// Position of the record.
        sequence: u64,
        /// Byte offset of its frame.
        offset: u64,
    },
    /// Record `sequence` decodes to nothing valid.
    #[error("record {sequence}: undecodable")]
    Undecodable {
        /// Position of the record.
        sequence: u64,
    },
    /// The stored hash of record `sequence` does not match its content.
    #[error("record {sequence}: hash mismatch")]
    HashMismatch {
        /// The record.
        sequence: u64,
    },
    /// Record `sequence` does not point to the hash of the record before it.
    #[error("record {sequence}: broken link to the previous record")]
    BrokenLink {
        /// The record.
        sequence: u64,
    },
    /// Record at position `position` carries sequence number `found` (a gap: records missing).
    #[error("record at position {position} has sequence {found}: gap")]
    SequenceGap {
        /// Position in the file.
        position: u64,
        /// Sequence number found.
        found: u64,
    },
    /// Record at position `position` carries an earlier sequence number `found` (reordered or
    /// duplicated records).
    #[error("record at position {position} has sequence {found}: reordered")]
    Reordered {
        /// Position in the file.
        position: u64,
        /// Sequence number found.
        found: u64,
    },
    /// The first record is not a genesis record, or a genesis record appears later.
    #[error("record {sequence}: genesis misplaced")]
    Genesis {
        /// The record.
        sequence: u64,
    },
    /// A signed checkpoint covers record `checkpoint`, but the log ends at `log_len` records.
    #[error(
        "log has {log_len} records but a signed checkpoint covers record {checkpoint}: truncated"
    )]
    TruncatedBelowCheckpoint {
        /// Sequence covered by the checkpoint.
        checkpoint: u64,
        /// Records in the log.
        log_len: u64,
    },
    /// Record `sequence`'s hash differs from the one a valid signed checkpoint recorded: the log
    /// was rewritten up to there.
    #[error("record {sequence} differs from its signed checkpoint: rewritten")]
    CheckpointMismatch {
        /// The record.
        sequence: u64,
    },
    /// A checkpoint's signature does not verify under the trusted key.
    #[error("checkpoint {index}: bad signature")]
    BadCheckpointSignature {
        /// Position of the checkpoint in the checkpoint file.
        index: u64,
    },
}

impl Fault {
    /// The record the fault is first visible at (for checkpoint-file faults, the checkpoint's
    /// index; for a bad magic, 0).
    #[must_use]
    pub fn sequence(&self) -> u64 {
        match *self {
            Self::BadMagic => 0,
            Self::BadFraming { sequence, .. }
            | Self::Truncated { sequence, .. }
            | Self::Undecodable { sequence }
            | Self::HashMismatch { sequence }
            | Self::BrokenLink { sequence }
            | Self::Genesis { sequence }
            | Self::CheckpointMismatch { sequence } => sequence,
            Self::SequenceGap { position, .. } | Self::Reordered { position, .. } => position,
            Self::TruncatedBelowCheckpoint { log_len, .. } => log_len,
            Self::BadCheckpointSignature { index } => index,
        }
    }
}
