//! The durable, single-writer log file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::checkpoint::{Checkpoint, CheckpointFile, CheckpointSigner, checkpoint_path};
use crate::record::{Digest, Entry, Record};
use crate::verify::{MAGIC, VerifyReport, decode_verified, frame, verify_bytes};
use crate::{Error, Fault, Head, Result};

/// When an append is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `fsync` before every append returns (the default).
    #[default]
    EveryAppend,
    /// No `fsync` (tests, benchmarks of the write path only). Not crash-safe.
    Unsynced,
}

/// What [`AuditLog::open`] had to repair.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes of an incomplete or checksum-failing final record that were cut.
    pub truncated_bytes: u64,
}

/// An appended record's position and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number.
    pub sequence: u64,
    /// Its chain hash.
    pub hash: Digest,
}

/// The audit log, open for appending. Holds an exclusive lock on the file.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    len: u64,
    head: Head,
    durability: Durability,
    poisoned: bool,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

/// A log that [`AuditLog::verify_for_open`] has locked and verified but not changed.
pub struct VerifiedLog {
    path: PathBuf,
    file: File,
    bytes: Vec<u8>,
    /// Length of the verified part; any bytes after it are a torn final record.
    keep: usize,
    report: VerifyReport,
    head: Head,
}

impl std::fmt::Debug for VerifiedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedLog")
            .field("path", &self.path)
            .field("head", &self.head)
            .field("torn_bytes", &self.torn_bytes())
            .finish_non_exhaustive()
    }
}

impl VerifiedLog {
    /// The verified records, genesis first (a torn final record is not among them).
    ///
    /// # Errors
    ///
    /// [`Error::Tampered`] if a verified record does not decode (not expected: verification
    /// decodes each one).
    pub fn records(&self) -> Result<Vec<Record>> {
        decode_verified(&self.bytes[..self.keep], &self.report).map_err(Error::Tampered)
    }

    /// The last verified record's sequence and hash.
    #[must_use]
    pub fn head(&self) -> Head {
        self.head
    }

    /// Bytes of a torn final record that [`VerifiedLog::open`] will cut (0 for an intact log).
    #[must_use]
    pub fn torn_bytes(&self) -> u64 {
        (self.bytes.len() - self.keep) as u64
    }

    /// Cuts a torn final record (fsynced) and opens the log for appending after its head.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn open(mut self, durability: Durability) -> Result<(AuditLog, Recovery)> {
        let mut recovery = Recovery::default();
        if self.keep < self.bytes.len() {
            recovery.truncated_bytes = self.torn_bytes();
            self.file.set_len(self.keep as u64)?;
            self.file.sync_all()?;
        }
        self.file.seek(SeekFrom::Start(self.keep as u64))?;
        let log = AuditLog {
            path: self.path,
            file: self.file,
            len: self.keep as u64,
            head: self.head,
            durability,
            poisoned: false,
        };
        Ok((log, recovery))
    }
}

fn lock(file: &File, path: &Path) -> Result<()> {
    // A fork (another thread spawning a program) briefly shares the lock until exec.
    for _ in 0..50 {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
    Err(Error::Locked(path.display().to_string()))
}

impl AuditLog {
    /// Creates a new log at `path` whose genesis record binds `genesis` (an [`Entry::Genesis`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the file exists or `genesis` is not a genesis entry;
    /// [`Error::Io`].
    pub fn create(
        path: impl AsRef<Path>,
        genesis: Entry,
        time_unix_ms: u64,
        durability: Durability,
    ) -> Result<Self> {
        if !matches!(genesis, Entry::Genesis { .. }) {
            return Err(Error::InvalidArgument {
                name: "genesis",
                reason: "the first record must be a genesis entry".into(),
            });
        }
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(
            |e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::InvalidArgument {
                        name: "path",
                        reason: format!("{} already exists", path.display()),
                    }
                } else {
                    e.into()
                }
            },
        )?;
        lock(&file, &path)?;
        let record =
            Record { sequence: 0, time_unix_ms, prev_hash: Digest::default(), entry: genesis };
        let canonical = record.canonical()?;
        let hash = Record::hash_of_canonical(&canonical);
        let mut bytes = MAGIC.to_vec();
        frame(&canonical, &hash, &mut bytes)?;
        let mut log = Self {
            path,
            file,
            len: 0,
            head: Head { sequence: 0, hash },
            durability,
            poisoned: false,
        };
        log.write(&bytes)?;
        log.file.sync_all()?;
        Ok(log)
    }

    /// Opens an existing log for appending, verifying it completely. An incomplete or
    /// checksum-failing **final** record (a write cut short by a crash) is truncated and reported;
    /// any other fault refuses to open.
    ///
    /// # Errors
    ///
    /// [`Error::Tampered`] with the fault; [`Error::Locked`]; [`Error::Io`].
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<(Self, Recovery)> {
        Self::verify_for_open(path)?.open(durability)
    }

    /// The first half of [`AuditLog::open`]: locks and verifies the log and finds a torn final
    /// record, but changes nothing. The caller can read the records and decide: go on with
    /// [`VerifiedLog::open`] (which cuts the torn record), or drop the value and leave the file
    /// exactly as it was (e.g. a server that refuses to resume from what the log says).
    ///
    /// # Errors
    ///
    /// As [`AuditLog::open`].
    pub fn verify_for_open(path: impl AsRef<Path>) -> Result<VerifiedLog> {
        let path = path.as_ref().to_path_buf();
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        lock(&file, &path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (report, keep) = match verify_bytes(&bytes) {
            Ok(r) => (r, bytes.len()),
            Err(fault @ (Fault::Truncated { offset, .. } | Fault::BadFraming { offset, .. })) => {
                // Only a final frame may be cut: check that it extends to the end of the file.
                let off = usize::try_from(offset).map_err(|_| Error::Internal("offset"))?;
                if !is_final_frame(&bytes, off) {
                    return Err(Error::Tampered(fault));
                }
                (verify_bytes(&bytes[..off]).map_err(Error::Tampered)?, off)
            }
            Err(fault) => return Err(Error::Tampered(fault)),
        };
        let head = report.head.ok_or(Error::Tampered(Fault::Genesis { sequence: 0 }))?;
        Ok(VerifiedLog { path, file, bytes, keep, report, head })
    }

    /// The last record's sequence and hash.
    #[must_use]
    pub fn head(&self) -> Head {
        self.head
    }

    /// The log's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.poisoned {
            return Err(Error::Io(std::io::Error::other(
                "audit log is read-only after a failed write",
            )));
        }
        let sync = self.durability == Durability::EveryAppend;
        let res = self
            .file
            .write_all(bytes)
            .and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
        if let Err(e) = res {
            if self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(|_| ()))
                .is_err()
            {
                self.poisoned = true;
            }
            return Err(e.into());
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Appends one record; durable (with [`Durability::EveryAppend`]) when it returns.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a genesis entry; [`Error::Io`] (the partial record is
    /// removed).
    pub fn append(&mut self, entry: Entry, time_unix_ms: u64) -> Result<Appended> {
        let mut out = self.append_batch(vec![(entry, time_unix_ms)])?;
        out.pop().ok_or(Error::Internal("empty batch result"))
    }

    /// Group commit: appends several records with one write and one `fsync`; all are durable
    /// when it returns, none if it fails.
    ///
    /// # Errors
    ///
    /// As [`AuditLog::append`]; [`Error::InvalidArgument`] for an empty batch.
    pub fn append_batch(&mut self, entries: Vec<(Entry, u64)>) -> Result<Vec<Appended>> {
        if entries.is_empty() {
            return Err(Error::InvalidArgument { name: "batch", reason: "empty".into() });
        }
        let mut bytes = Vec::new();
        let mut head = self.head;
        let mut out = Vec::with_capacity(entries.len());
        for (entry, time_unix_ms) in entries {
            if matches!(entry, Entry::Genesis { .. }) {
                return Err(Error::InvalidArgument {
                    name: "entry",
                    reason: "only the first record is a genesis".into(),
                });
            }
            let record =
                Record { sequence: head.sequence + 1, time_unix_ms, prev_hash: head.hash, entry };
            let canonical = record.canonical()?;
            let hash = Record::hash_of_canonical(&canonical);
            frame(&canonical, &hash, &mut bytes)?;
            head = Head { sequence: record.sequence, hash };
            out.push(Appended { sequence: head.sequence, hash });
        }
        self.write(&bytes)?;
        self.head = head;
        Ok(out)
    }

    /// `fsync`s everything written so far (for [`Durability::Unsynced`] writers).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync_data()?;
        Ok(())
    }

    /// Signs the current head and appends the checkpoint to `<log>.checkpoints`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn checkpoint(&mut self, signer: &CheckpointSigner) -> Result<Checkpoint> {
        self.file.sync_data()?;
        let cp = signer.sign(self.head.sequence, self.head.hash);
        CheckpointFile::append(&checkpoint_path(&self.path), &cp)?;
        Ok(cp)
    }
}

/// Whether the frame at `off` is the last one, i.e. it reaches (or would reach) the end of the
/// file: its declared length is beyond the end, or ends exactly there.
fn is_final_frame(bytes: &[u8], off: usize) -> bool {
    let rest = &bytes[off..];
    match rest.first_chunk::<4>() {
        None => true,
        Some(len) => {
            let len = u32::from_le_bytes(*len) as usize;
            crate::verify::FRAME_OVERHEAD.saturating_add(len) >= rest.len()
        }
    }
}
