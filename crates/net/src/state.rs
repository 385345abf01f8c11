//! State-directory helpers shared by the in-memory simulation and the network server.

use std::path::Path;

use fl_core::ModelParams;

use crate::Result;

/// Milliseconds since the Unix epoch (for audit timestamps).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes the global model as safetensors: to a temporary file, then renamed, so a crash never
/// leaves a torn checkpoint.
pub(crate) fn save_checkpoint(model: &ModelParams<f32>, path: &Path) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    fl_core::save_safetensors(model, &tmp)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
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
