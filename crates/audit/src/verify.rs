//! Parsing and verification of log bytes. Pure functions over `&[u8]`: the store uses them for
//! recovery, `fl-server audit verify` and the fuzz target use them as they are.
//!
//! File format: the 8-byte magic `MSFLAUD1`, then one frame per record:
//!
//! ```text
//! [len: u32 LE][crc32(payload ‖ hash): u32 LE][payload: len bytes, canonical postcard Record][hash: 32 bytes]
//! ```

use crate::checkpoint::{Checkpoint, CheckpointFile};
use crate::record::{Digest, Entry, Record};
use crate::{Fault, Head};

/// File magic.
pub const MAGIC: &[u8; 8] = b"MSFLAUD1";
/// Frame overhead besides the payload.
pub const FRAME_OVERHEAD: usize = 8 + 32;
/// Largest record payload accepted.
pub const MAX_RECORD: usize = 16 << 20;

/// A frame's place in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameSpan {
    /// Byte offset of the frame.
    pub offset: usize,
    /// Total frame length.
    pub len: usize,
}

/// What verification found in a sound log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of records.
    pub records: u64,
    /// The last record's sequence and hash.
    pub head: Option<Head>,
    /// Checkpoints whose signature and hash were checked.
    pub checkpoints_verified: u64,
    /// Where each record's frame lies.
    pub frames: Vec<FrameSpan>,
    /// Each record's hash, in order.
    pub hashes: Vec<Digest>,
}

/// Builds the frame of a record whose canonical encoding is `payload` and hash `hash`.
pub(crate) fn frame(payload: &[u8], hash: &Digest, out: &mut Vec<u8>) -> crate::Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| (l as usize) <= MAX_RECORD)
        .ok_or_else(|| crate::Error::InvalidArgument {
            name: "entry",
            reason: "record larger than 16 MiB".into(),
        })?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(payload);
    crc.update(&hash.0);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&hash.0);
    Ok(())
}

/// Verifies a whole log: framing, checksums, hashes, sequence numbers, genesis and links.
///
/// # Errors
///
/// The first [`Fault`], naming the record it is first visible at.
pub fn verify_bytes(bytes: &[u8]) -> Result<VerifyReport, Fault> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(Fault::BadMagic);
    }
    let mut pos = MAGIC.len();
    let mut frames = Vec::new();
    let mut hashes: Vec<Digest> = Vec::new();
    let mut seq: u64 = 0;
    while pos < bytes.len() {
        let (span, record, hash) = check_frame(bytes, pos, seq)?;
        if record.sequence != seq {
            return Err(if record.sequence > seq {
                Fault::SequenceGap { position: seq, found: record.sequence }
            } else {
                Fault::Reordered { position: seq, found: record.sequence }
            });
        }
        let is_genesis = matches!(record.entry, Entry::Genesis { .. });
        if (seq == 0) != is_genesis || (seq == 0 && record.prev_hash != Digest::default()) {
            return Err(Fault::Genesis { sequence: seq });
        }
        if hashes.last().is_some_and(|prev| record.prev_hash != *prev) {
            return Err(Fault::BrokenLink { sequence: seq });
        }
        hashes.push(hash);
        frames.push(span);
        pos += span.len;
        seq += 1;
    }
    let head = hashes.last().map(|h| Head { sequence: seq - 1, hash: *h });
    Ok(VerifyReport { records: seq, head, checkpoints_verified: 0, frames, hashes })
}

/// Checks the frame at `pos` (record position `seq`): framing, checksum, decoding, hash.
fn check_frame(bytes: &[u8], pos: usize, seq: u64) -> Result<(FrameSpan, Record, Digest), Fault> {
    let offset = pos as u64;
    let rest = &bytes[pos..];
    let Some(head) = rest.first_chunk::<8>() else {
        return Err(Fault::Truncated { sequence: seq, offset });
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > MAX_RECORD {
        return Err(if rest.len() < FRAME_OVERHEAD + len.min(rest.len()) {
            Fault::Truncated { sequence: seq, offset }
        } else {
            Fault::BadFraming { sequence: seq, offset, reason: "length out of range" }
        });
    }
    let total = FRAME_OVERHEAD + len;
    if rest.len() < total {
        return Err(Fault::Truncated { sequence: seq, offset });
    }
    let payload = &rest[8..8 + len];
    let mut stored = [0u8; 32];
    stored.copy_from_slice(&rest[8 + len..total]);
    let mut c = crc32fast::Hasher::new();
    c.update(payload);
    c.update(&stored);
    if c.finalize() != crc {
        return Err(Fault::BadFraming { sequence: seq, offset, reason: "checksum mismatch" });
    }
    let hash = Record::hash_of_canonical(payload);
    if hash != Digest(stored) {
        return Err(Fault::HashMismatch { sequence: seq });
    }
    let record: Record =
        postcard::from_bytes(payload).map_err(|_| Fault::Undecodable { sequence: seq })?;
    Ok((FrameSpan { offset: pos, len: total }, record, hash))
}

/// Decodes every record of a verified log.
///
/// # Errors
///
/// As [`verify_bytes`].
pub fn read_records(bytes: &[u8]) -> Result<Vec<Record>, Fault> {
    decode_verified(bytes, &verify_bytes(bytes)?)
}

/// Decodes the records of `bytes`, which `report` verified.
pub(crate) fn decode_verified(bytes: &[u8], report: &VerifyReport) -> Result<Vec<Record>, Fault> {
    report
        .frames
        .iter()
        .enumerate()
        .map(|(i, span)| {
            let payload = &bytes[span.offset + 8..span.offset + span.len - 32];
            postcard::from_bytes(payload).map_err(|_| Fault::Undecodable { sequence: i as u64 })
        })
        .collect()
}

/// Verifies a log against signed checkpoints: each checkpoint's signature must verify under
/// `key`, the log must reach its sequence, and the record hash there must match.
///
/// # Errors
///
/// The first chain [`Fault`], or [`Fault::BadCheckpointSignature`],
/// [`Fault::TruncatedBelowCheckpoint`], [`Fault::CheckpointMismatch`].
pub fn verify_with_checkpoints(
    log: &[u8],
    checkpoints: &[Checkpoint],
    key: &ed25519_dalek::VerifyingKey,
) -> Result<VerifyReport, Fault> {
    // A truncation below a checkpoint shows up as a short but otherwise sound chain; a rewrite
    // as a hash that differs from the signed one.
    let mut report = verify_bytes(log)?;
    for (i, cp) in checkpoints.iter().enumerate() {
        if !cp.verify(key) {
            return Err(Fault::BadCheckpointSignature { index: i as u64 });
        }
        let Ok(idx) = usize::try_from(cp.sequence) else {
            return Err(Fault::TruncatedBelowCheckpoint {
                checkpoint: cp.sequence,
                log_len: report.records,
            });
        };
        match report.hashes.get(idx) {
            None => {
                return Err(Fault::TruncatedBelowCheckpoint {
                    checkpoint: cp.sequence,
                    log_len: report.records,
                });
            }
            Some(h) if *h != cp.head => {
                return Err(Fault::CheckpointMismatch { sequence: cp.sequence });
            }
            Some(_) => report.checkpoints_verified += 1,
        }
    }
    Ok(report)
}

/// Verifies the log file at `path`, and its checkpoint file (`<path>.checkpoints`) if `key` is
/// given and the file exists.
///
/// # Errors
///
/// [`crate::Error::Tampered`] with the first fault; [`crate::Error::Io`].
pub fn verify_file(
    path: impl AsRef<std::path::Path>,
    key: Option<&ed25519_dalek::VerifyingKey>,
) -> crate::Result<VerifyReport> {
    let path = path.as_ref();
    let bytes = std::fs::read(path)?;
    let report = match key {
        Some(k) => {
            let cps = CheckpointFile::read(&crate::checkpoint::checkpoint_path(path))?;
            verify_with_checkpoints(&bytes, &cps, k)
        }
        None => verify_bytes(&bytes),
    };
    report.map_err(crate::Error::Tampered)
}
