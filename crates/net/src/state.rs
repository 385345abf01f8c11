//! State-directory helpers shared by the in-memory simulation and the network server.

use std::path::Path;

use fl_audit::{Digest, Entry, Record};
use fl_core::ModelParams;

use crate::Result;

/// Milliseconds since the Unix epoch (for audit timestamps).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes the global model as safetensors with [`write_atomic`], so a crash leaves the previous
/// checkpoint or this one, never a torn or empty file.
pub(crate) fn save_checkpoint(model: &ModelParams<f32>, path: &Path) -> Result<()> {
    write_atomic(path, &fl_core::to_safetensors(model)?)
}

/// The last round an audit log records: the checkpoint a restarted server finds must be the
/// model that round produced, or (after a crash between logging and checkpointing) the model it
/// started from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LoggedRound {
    pub(crate) round: u64,
    pub(crate) incoming: Digest,
    pub(crate) aggregate: Digest,
}

impl LoggedRound {
    /// The last round entry among `records`.
    pub(crate) fn last(records: &[Record]) -> Option<Self> {
        records.iter().rev().find_map(|r| match &r.entry {
            Entry::Round(e) => {
                Some(Self { round: e.round.0, incoming: e.incoming_model, aggregate: e.aggregate })
            }
            _ => None,
        })
    }
}

/// Where a restarted federation picks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResumePoint {
    /// The model is the aggregate of this round (0: no round was logged).
    After(u64),
    /// This round is in the log but its aggregate never reached the checkpoint: it runs again
    /// from the model it started from.
    Rerun(u64),
}

impl ResumePoint {
    /// Rounds completed with their model in hand.
    pub(crate) fn completed(self) -> u64 {
        match self {
            Self::After(r) => r,
            Self::Rerun(r) => r.saturating_sub(1),
        }
    }
}

/// Decides where to resume from the audit log's last round and the digest of the model the
/// server would resume from (`from_checkpoint`: the saved checkpoint; otherwise the configured
/// initial model, when no checkpoint was saved yet).
///
/// Each round is logged first and checkpointed second, so the checkpoint is either the last
/// logged aggregate or, after a crash between the two writes, the model that round started
/// from. Anything else is a checkpoint this federation's log does not account for (replaced,
/// restored from another run, or the log swapped), and resuming from it would put rounds into
/// the log that do not follow from its records: refused.
pub(crate) fn resume_point(
    last: Option<LoggedRound>,
    model: Digest,
    from_checkpoint: bool,
) -> Result<ResumePoint> {
    let refuse = |reason: String| Err(crate::Error::State(reason));
    match last {
        None if from_checkpoint => refuse(
            "model.safetensors exists but the audit log records no round: the checkpoint \
             belongs to another federation"
                .into(),
        ),
        None => Ok(ResumePoint::After(0)),
        Some(l) if model == l.aggregate => Ok(ResumePoint::After(l.round)),
        Some(l) if model == l.incoming => Ok(ResumePoint::Rerun(l.round)),
        Some(l) => refuse(format!(
            "{} (SHA-256 {model}) is neither the aggregate of round {} in the audit log ({}) nor \
             the model that round started from ({})",
            if from_checkpoint { "model.safetensors" } else { "the configured initial model" },
            l.round,
            l.aggregate,
            l.incoming
        )),
    }
}

/// Replaces `path` with `bytes` durably: written to a temporary file beside it, fsynced,
/// renamed over it, and the directory fsynced, so a crash leaves the old or the new content.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// [`write_atomic`] of a value as pretty JSON.
pub(crate) fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes =
        serde_json::to_vec_pretty(value).map_err(|e| crate::Error::Malformed(e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `N` bytes from `2N` hex digits.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim();
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Writes a secret (an identity, a key share) as pretty JSON to a new file with owner-only
/// permissions on Unix, refusing to overwrite one; the serialized text is wiped afterwards.
pub(crate) fn write_secret_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let body = zeroize::Zeroizing::new(
        serde_json::to_string_pretty(value).map_err(|e| crate::Error::Malformed(e.to_string()))?,
    );
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    std::io::Write::write_all(&mut f, body.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{LoggedRound, ResumePoint, resume_point};
    use fl_audit::Digest;

    fn d(b: u8) -> Digest {
        Digest([b; 32])
    }

    #[test]
    fn the_resume_point_follows_the_log() {
        let last = Some(LoggedRound { round: 4, incoming: d(3), aggregate: d(4) });
        assert_eq!(resume_point(None, d(0), false).unwrap(), ResumePoint::After(0));
        assert!(resume_point(None, d(0), true).is_err());
        assert_eq!(resume_point(last, d(4), true).unwrap(), ResumePoint::After(4));
        assert_eq!(resume_point(last, d(3), true).unwrap(), ResumePoint::Rerun(4));
        assert_eq!(ResumePoint::Rerun(4).completed(), 3);
        for from_checkpoint in [false, true] {
            assert!(resume_point(last, d(2), from_checkpoint).is_err());
        }
        // A round that left the model unchanged: its aggregate is what the checkpoint holds.
        let unchanged = Some(LoggedRound { round: 2, incoming: d(7), aggregate: d(7) });
        assert_eq!(resume_point(unchanged, d(7), true).unwrap(), ResumePoint::After(2));
    }
}
