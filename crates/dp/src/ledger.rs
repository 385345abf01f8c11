//! The per-partner privacy budget ledger, keyed by (partner id, model version).
//!
//! Each account holds its (ε, δ) budget and the accumulated **RDP vector** of every charge — not
//! a sum of ε's, which would compose loosely. A round's charge is first **reserved** (before any
//! update is released), then **committed** once the round is done, or **aborted** if nothing was
//! released. Reservations count as spent, and a reservation left open by a crash stays open after
//! recovery, so a crash can never let a partner exceed its budget; an operator (or the
//! orchestrator, which knows whether the round's output went out) resolves it later.
//!
//! A partner whose remaining ε falls below the pause fraction (10 % by default) of its budget is
//! **paused**: further reservations are refused with [`Error::Paused`].
//!
//! # Durability
//!
//! The file is append-only: an 8-byte magic, then records framed as `[len: u32 LE][crc32: u32 LE]
//! [postcard payload]`. An append is `fsync`ed before the call returns (so a returned reservation
//! is on disk), and a failed append is truncated away before the error is returned. On open, the
//! file is replayed; an incomplete or checksum-failing **final** record is a torn write and is
//! truncated, while a bad record followed by more data is corruption and refuses to open
//! ([`Error::Corrupt`]). An exclusive OS lock keeps a second process out (after a 250 ms grace
//! period that covers another thread's fork-then-exec briefly sharing the lock).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fl_core::{ModelVersion, PartnerId};
use serde::{Deserialize, Serialize};

use crate::accountant::{DpEvent, add_scaled_up};
use crate::conversion::epsilon_from_rdp;
use crate::rdp::{default_orders, validate_orders};
use crate::{Error, PrivacyBudget, Result};

pub(crate) const MAGIC: &[u8; 8] = b"MSFLLDG1";
/// Largest record accepted (a reservation carries one f64 per order).
const MAX_RECORD: u32 = 1 << 20;

/// Ledger settings, fixed when the file is created.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerConfig {
    /// RDP orders of every account.
    pub orders: Vec<f64>,
    /// Pause a partner when less than this fraction of its ε budget remains (default 0.10).
    pub pause_below: f64,
    /// `fsync` every append (default true; turn off only for tests of non-durable behaviour).
    pub sync: bool,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self { orders: default_orders(), pause_below: 0.10, sync: true }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Record {
    Init { orders: Vec<f64>, pause_below: f64 },
    Register { partner: PartnerId, version: u64, epsilon: f64, delta: f64 },
    Reserve { id: u64, partner: PartnerId, version: u64, rdp: Vec<f64>, label: String },
    Commit { id: u64 },
    Abort { id: u64 },
}

type Key = (PartnerId, ModelVersion);

#[derive(Clone, Debug)]
struct Account {
    budget: PrivacyBudget,
    committed: Vec<f64>,
    reserved: Vec<f64>,
}

#[derive(Clone, Debug)]
struct Pending {
    key: Key,
    rdp: Vec<f64>,
}

/// A partner's budget position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetStatus {
    /// The (ε, δ) budget.
    pub budget: PrivacyBudget,
    /// ε of committed charges at the budget's δ.
    pub committed_epsilon: f64,
    /// ε of committed plus open reservations: what counts against the budget.
    pub spent_epsilon: f64,
    /// `budget.ε − spent_epsilon`, at least 0.
    pub remaining_epsilon: f64,
    /// `remaining_epsilon / budget.ε` (0 for a zero budget).
    pub remaining_fraction: f64,
    /// Whether new charges are refused because the remaining fraction is below the threshold.
    pub paused: bool,
}

/// An open reservation; pass it to [`Ledger::commit`] or [`Ledger::abort`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reservation(pub u64);

struct Inner {
    file: File,
    len: u64,
    orders: Vec<f64>,
    pause_below: f64,
    sync: bool,
    accounts: HashMap<Key, Account>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    poisoned: bool,
}

/// The durable, thread-safe budget ledger.
pub struct Ledger {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish_non_exhaustive()
    }
}

fn frame(record: &Record) -> Result<Vec<u8>> {
    let payload =
        postcard::to_allocvec(record).map_err(|_| Error::Internal("record encoding failed"))?;
    if payload.len() > MAX_RECORD as usize {
        return Err(Error::Internal("record too large"));
    }
    Ok(checksummed(&payload))
}

/// `[len: u32 LE][crc32: u32 LE][payload]` for a payload of at most [`MAX_RECORD`] bytes.
pub(crate) fn checksummed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A pause threshold is a fraction in [0, 1) (NaN is not one).
fn check_pause_below(x: f64) -> std::result::Result<(), String> {
    if (0.0..1.0).contains(&x) { Ok(()) } else { Err(format!("{x} is not in [0, 1)")) }
}

/// Parses the records of a ledger file; returns them with their offsets and the length of the
/// valid prefix (shorter than `bytes` only for a torn final record).
fn parse(bytes: &[u8]) -> Result<(Vec<(u64, Record)>, usize)> {
    if bytes.len() < MAGIC.len() {
        // Torn while writing the magic of a new file.
        return Ok((Vec::new(), 0));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(Error::Corrupt { offset: 0, reason: "not an mshale-fl budget ledger".into() });
    }
    let mut records = Vec::new();
    let mut pos = MAGIC.len();
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let torn = |records: Vec<(u64, Record)>| Ok((records, pos));
        let Some(head) = rest.first_chunk::<8>() else { return torn(records) };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let end = 8usize.saturating_add(len as usize);
        if rest.len() < end {
            return torn(records); // the final record is incomplete
        }
        let payload = &rest[8..end];
        let last = rest.len() == end;
        if len > MAX_RECORD || crc32fast::hash(payload) != crc {
            if last {
                return torn(records); // a torn final write
            }
            return Err(Error::Corrupt {
                offset: pos as u64,
                reason: "checksum mismatch before the end of the file".into(),
            });
        }
        match postcard::from_bytes::<Record>(payload) {
            Ok(r) => records.push((pos as u64, r)),
            Err(e) => {
                return Err(Error::Corrupt {
                    offset: pos as u64,
                    reason: format!("undecodable record: {e}"),
                });
            }
        }
        pos += end;
    }
    Ok((records, pos))
}

impl Inner {
    fn apply(&mut self, record: Record, offset: u64) -> Result<()> {
        let corrupt = |reason: String| Error::Corrupt { offset, reason };
        match record {
            Record::Init { .. } => return Err(corrupt("second Init record".into())),
            Record::Register { partner, version, epsilon, delta } => {
                let budget =
                    PrivacyBudget::new(epsilon, delta).map_err(|e| corrupt(e.to_string()))?;
                let n = self.orders.len();
                let key = (partner, ModelVersion(version));
                // `register` refuses a second account; replaying one would zero what was spent.
                if self.accounts.contains_key(&key) {
                    return Err(corrupt(format!("{} registered twice", key.0)));
                }
                self.accounts.insert(
                    key,
                    Account { budget, committed: vec![0.0; n], reserved: vec![0.0; n] },
                );
            }
            Record::Reserve { id, partner, version, rdp, .. } => {
                let key = (partner, ModelVersion(version));
                if self.pending.contains_key(&id) {
                    return Err(corrupt(format!("reservation {id} opened twice")));
                }
                let next_id =
                    id.checked_add(1).ok_or_else(|| corrupt(format!("reservation id {id}")))?;
                let acct = self
                    .accounts
                    .get_mut(&key)
                    .ok_or_else(|| corrupt("reservation for an unregistered partner".into()))?;
                if rdp.len() != self.orders.len() {
                    return Err(corrupt("reservation with the wrong number of orders".into()));
                }
                // RDP is ≥ 0 (+∞ where an order has no finite bound); a negative or NaN charge
                // would hand budget back.
                if rdp.iter().any(|x| x.is_nan() || *x < 0.0) {
                    return Err(corrupt("reservation with a negative or NaN RDP value".into()));
                }
                add_scaled_up(&mut acct.reserved, &rdp, 1);
                self.pending.insert(id, Pending { key, rdp });
                self.next_id = self.next_id.max(next_id);
            }
            Record::Commit { id } | Record::Abort { id } => {
                let commit = matches!(record, Record::Commit { .. });
                let p = self
                    .pending
                    .remove(&id)
                    .ok_or_else(|| corrupt(format!("settles unknown reservation {id}")))?;
                let acct = self
                    .accounts
                    .get_mut(&p.key)
                    .ok_or_else(|| corrupt("reservation without account".into()))?;
                Self::release(acct, &p.rdp);
                if commit {
                    add_scaled_up(&mut acct.committed, &p.rdp, 1);
                }
            }
        }
        Ok(())
    }

    /// Removes a reservation's RDP from the reserved total (rounded up: never below the truth).
    fn release(acct: &mut Account, rdp: &[f64]) {
        for (r, x) in acct.reserved.iter_mut().zip(rdp) {
            *r = (*r - x).next_up().max(0.0);
        }
    }

    fn append(&mut self, record: &Record) -> Result<()> {
        if self.poisoned {
            return Err(Error::Io(std::io::Error::other(
                "ledger is read-only after a failed write",
            )));
        }
        let bytes = frame(record)?;
        let result = self
            .file
            .write_all(&bytes)
            .and_then(|()| if self.sync { self.file.sync_data() } else { Ok(()) });
        if let Err(e) = result {
            // Cut the partial record so the file stays a valid prefix.
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

    fn status(&self, acct: &Account) -> Result<BudgetStatus> {
        let delta = acct.budget.delta();
        let committed_epsilon = epsilon_from_rdp(&self.orders, &acct.committed, delta)?.epsilon;
        let mut total = acct.committed.clone();
        add_scaled_up(&mut total, &acct.reserved, 1);
        let spent_epsilon = epsilon_from_rdp(&self.orders, &total, delta)?.epsilon;
        let eps = acct.budget.epsilon();
        let remaining_epsilon = (eps - spent_epsilon).max(0.0);
        let remaining_fraction = if eps > 0.0 { remaining_epsilon / eps } else { 0.0 };
        Ok(BudgetStatus {
            budget: acct.budget,
            committed_epsilon,
            spent_epsilon,
            remaining_epsilon,
            remaining_fraction,
            paused: remaining_fraction < self.pause_below,
        })
    }

    fn account(&self, partner: &PartnerId, version: ModelVersion) -> Result<&Account> {
        self.accounts
            .get(&(partner.clone(), version))
            .ok_or_else(|| Error::UnknownPartner { partner: partner.clone(), version })
    }
}

impl Ledger {
    /// Opens the ledger at `path`, creating it with `config` if it does not exist; an existing
    /// ledger keeps the orders and pause threshold it was created with.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] if another process has it open; [`Error::Corrupt`] for damage other than
    /// a torn final record; [`Error::Io`]; [`Error::InvalidParameter`] for a bad configuration.
    pub fn open(path: impl AsRef<Path>, config: &LedgerConfig) -> Result<Self> {
        validate_orders(&config.orders)?;
        check_pause_below(config.pause_below).map_err(|e| Error::param("pause_below", e))?;
        let path = path.as_ref().to_path_buf();
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        // A process that forks (to spawn a program) briefly shares every open file, and with it
        // this lock, until the child execs; retry for a moment before calling it held.
        let mut attempts = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::Locked(path.display().to_string()));
                }
                Err(std::fs::TryLockError::Error(io)) => return Err(Error::Io(io)),
            }
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, valid) = parse(&bytes)?;
        let mut inner = Inner {
            file,
            len: valid as u64,
            orders: config.orders.clone(),
            pause_below: config.pause_below,
            sync: config.sync,
            accounts: HashMap::new(),
            pending: HashMap::new(),
            next_id: 1,
            poisoned: false,
        };
        let mut records = records.into_iter();
        // Replayed before anything is written, so a refused file is left as it was, torn tail
        // and all; only then is a torn final record cut.
        let fresh = match records.next() {
            None => true,
            Some((offset, Record::Init { orders, pause_below })) => {
                let corrupt = |reason: String| Error::Corrupt { offset, reason };
                validate_orders(&orders).map_err(|e| corrupt(e.to_string()))?;
                check_pause_below(pause_below)
                    .map_err(|e| corrupt(format!("pause threshold {e}")))?;
                inner.orders = orders;
                inner.pause_below = pause_below;
                for (offset, r) in records {
                    inner.apply(r, offset)?;
                }
                false
            }
            Some((offset, _)) => {
                return Err(Error::Corrupt { offset, reason: "first record is not Init".into() });
            }
        };
        if valid < bytes.len() {
            inner.file.set_len(valid as u64)?;
            inner.file.sync_all()?;
        }
        inner.file.seek(SeekFrom::Start(valid as u64))?;
        if fresh {
            if valid < MAGIC.len() {
                inner.file.set_len(0)?;
                inner.file.seek(SeekFrom::Start(0))?;
                inner.file.write_all(MAGIC)?;
                inner.len = MAGIC.len() as u64;
            }
            inner.append(&Record::Init {
                orders: config.orders.clone(),
                pause_below: config.pause_below,
            })?;
            inner.file.sync_all()?;
        }
        Ok(Self { path, inner: Mutex::new(inner) })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>> {
        self.inner.lock().map_err(|_| Error::Internal("ledger mutex poisoned"))
    }

    /// The RDP orders of every account.
    ///
    /// # Errors
    ///
    /// [`Error::Internal`] if another thread panicked while holding the ledger.
    pub fn orders(&self) -> Result<Vec<f64>> {
        Ok(self.lock()?.orders.clone())
    }

    /// Opens an account for `partner` on model `version` with `budget`.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyRegistered`]; [`Error::Io`].
    pub fn register(
        &self,
        partner: &PartnerId,
        version: ModelVersion,
        budget: PrivacyBudget,
    ) -> Result<()> {
        let mut inner = self.lock()?;
        let key = (partner.clone(), version);
        if inner.accounts.contains_key(&key) {
            return Err(Error::AlreadyRegistered { partner: partner.clone(), version });
        }
        let record = Record::Register {
            partner: partner.clone(),
            version: version.0,
            epsilon: budget.epsilon(),
            delta: budget.delta(),
        };
        inner.append(&record)?;
        inner.apply(record, 0)
    }

    /// The partner's budget position.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPartner`].
    pub fn status(&self, partner: &PartnerId, version: ModelVersion) -> Result<BudgetStatus> {
        let inner = self.lock()?;
        inner.status(inner.account(partner, version)?)
    }

    /// Whether the partner is paused (remaining ε below the pause fraction).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPartner`].
    pub fn is_paused(&self, partner: &PartnerId, version: ModelVersion) -> Result<bool> {
        Ok(self.status(partner, version)?.paused)
    }

    /// Whether charging `count` × `event` would exceed the partner's ε budget.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPartner`]; the event's parameter errors.
    pub fn would_exceed(
        &self,
        partner: &PartnerId,
        version: ModelVersion,
        event: &DpEvent,
        count: u64,
    ) -> Result<bool> {
        let inner = self.lock()?;
        let acct = inner.account(partner, version)?;
        let per = event.rdp(&inner.orders)?;
        let mut total = acct.committed.clone();
        add_scaled_up(&mut total, &acct.reserved, 1);
        add_scaled_up(&mut total, &per, count);
        Ok(epsilon_from_rdp(&inner.orders, &total, acct.budget.delta())?.epsilon
            > acct.budget.epsilon())
    }

    /// Reserves the charge of `count` × `event` for the partner; durable before it returns.
    ///
    /// # Errors
    ///
    /// [`Error::Paused`] if the partner is paused; [`Error::BudgetExceeded`] if the charge would
    /// pass the budget (nothing is reserved); [`Error::UnknownPartner`]; [`Error::Io`].
    pub fn reserve(
        &self,
        partner: &PartnerId,
        version: ModelVersion,
        event: &DpEvent,
        count: u64,
    ) -> Result<Reservation> {
        let mut inner = self.lock()?;
        let acct = inner.account(partner, version)?.clone();
        let status = inner.status(&acct)?;
        if status.paused {
            return Err(Error::Paused {
                partner: partner.clone(),
                version,
                remaining_fraction: status.remaining_fraction * 100.0,
            });
        }
        let per = event.rdp(&inner.orders)?;
        let mut rdp = vec![0.0; per.len()];
        add_scaled_up(&mut rdp, &per, count);
        let mut total = acct.committed.clone();
        add_scaled_up(&mut total, &acct.reserved, 1);
        add_scaled_up(&mut total, &rdp, 1);
        let would_be = epsilon_from_rdp(&inner.orders, &total, acct.budget.delta())?.epsilon;
        if would_be > acct.budget.epsilon() {
            return Err(Error::BudgetExceeded {
                partner: partner.clone(),
                version,
                would_be,
                budget: acct.budget.epsilon(),
            });
        }
        let id = inner.next_id;
        let record = Record::Reserve {
            id,
            partner: partner.clone(),
            version: version.0,
            rdp,
            label: format!("{event:?} x{count}"),
        };
        inner.append(&record)?;
        inner.apply(record, 0)?;
        Ok(Reservation(id))
    }

    fn settle(&self, reservation: Reservation, commit: bool) -> Result<()> {
        let mut inner = self.lock()?;
        if !inner.pending.contains_key(&reservation.0) {
            return Err(Error::UnknownReservation(reservation.0));
        }
        let record = if commit {
            Record::Commit { id: reservation.0 }
        } else {
            Record::Abort { id: reservation.0 }
        };
        inner.append(&record)?;
        inner.apply(record, 0)
    }

    /// Makes a reservation final (the round's output was released).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownReservation`]; [`Error::Io`].
    pub fn commit(&self, reservation: Reservation) -> Result<()> {
        self.settle(reservation, true)
    }

    /// Cancels a reservation (nothing derived from the partner's data was released).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownReservation`]; [`Error::Io`].
    pub fn abort(&self, reservation: Reservation) -> Result<()> {
        self.settle(reservation, false)
    }

    /// Open reservations (e.g. left by a crash), with their partner and model version.
    ///
    /// # Errors
    ///
    /// [`Error::Internal`] if the ledger mutex is poisoned.
    pub fn open_reservations(&self) -> Result<Vec<(Reservation, PartnerId, ModelVersion)>> {
        let inner = self.lock()?;
        let mut v: Vec<_> = inner
            .pending
            .iter()
            .map(|(&id, p)| (Reservation(id), p.key.0.clone(), p.key.1))
            .collect();
        v.sort_by_key(|(r, _, _)| r.0);
        Ok(v)
    }

    /// Every registered (partner, model version).
    ///
    /// # Errors
    ///
    /// [`Error::Internal`] if the ledger mutex is poisoned.
    pub fn accounts(&self) -> Result<Vec<(PartnerId, ModelVersion)>> {
        let inner = self.lock()?;
        let mut v: Vec<_> = inner.accounts.keys().cloned().collect();
        v.sort();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger file of `records` (each framed with a correct checksum), plus `tail`.
    fn file_of(records: &[Record], tail: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for r in records {
            out.extend(frame(r).unwrap());
        }
        out.extend_from_slice(tail);
        out
    }

    fn init(pause_below: f64) -> Record {
        Record::Init { orders: default_orders(), pause_below }
    }

    fn register(name: &str) -> Record {
        Record::Register {
            partner: PartnerId::new(name).unwrap(),
            version: 0,
            epsilon: 8.0,
            delta: 1e-5,
        }
    }

    fn reserve(id: u64, value: f64) -> Record {
        Record::Reserve {
            id,
            partner: PartnerId::new("p").unwrap(),
            version: 0,
            rdp: vec![value; default_orders().len()],
            label: String::new(),
        }
    }

    /// Records that pass their checksums but that the ledger itself never writes are
    /// corruption: refused, naming the record's offset, with the file left byte for byte as it
    /// was (torn tail included). Before, a second `Register` zeroed what the partner had spent,
    /// a negative or NaN charge handed budget back, a NaN pause threshold never paused, a
    /// repeated reservation id leaked its charge and id 2⁶⁴ − 1 overflowed.
    #[test]
    fn replay_refuses_records_the_ledger_never_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let second = (MAGIC.len() + frame(&init(0.1)).unwrap().len()) as u64;
        let third = second + frame(&register("p")).unwrap().len() as u64;
        let cases: [(Vec<Record>, u64); 9] = [
            (vec![init(f64::NAN)], 8),
            (vec![init(1.0)], 8),
            (vec![init(-0.1)], 8),
            (vec![init(0.1), register("p"), register("p")], third),
            (vec![init(0.1), register("p"), reserve(1, -1.0)], third),
            (vec![init(0.1), register("p"), reserve(1, f64::NAN)], third),
            (vec![init(0.1), register("p"), reserve(u64::MAX, 1.0)], third),
            (vec![init(0.1), register("p"), reserve(1, 1.0), reserve(1, 1.0)], {
                third + frame(&reserve(1, 1.0)).unwrap().len() as u64
            }),
            (vec![register("p")], 8),
        ];
        for (records, offset) in cases {
            let bytes = file_of(&records, &[0x30, 0, 0, 0, 1]);
            std::fs::write(&path, &bytes).unwrap();
            match Ledger::open(&path, &LedgerConfig::default()) {
                Err(Error::Corrupt { offset: at, .. }) => assert_eq!(at, offset, "{records:?}"),
                other => panic!("{records:?} opened: {other:?}"),
            }
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{records:?}");
        }
        // An infinite RDP value (an order without a finite bound) is a charge, not corruption.
        let bytes = file_of(&[init(0.1), register("p"), reserve(1, f64::INFINITY)], &[]);
        std::fs::write(&path, &bytes).unwrap();
        let ledger = Ledger::open(&path, &LedgerConfig::default()).unwrap();
        let status = ledger.status(&PartnerId::new("p").unwrap(), ModelVersion(0)).unwrap();
        assert!(status.spent_epsilon > 0.0 && status.paused, "{status:?}");
    }
}
