//! Entry points for the fuzz targets in `fuzz/` (not a stable API).

use std::path::Path;

use crate::ledger::{MAGIC, checksummed};
use crate::{DpEvent, Ledger, LedgerConfig};

/// Replays arbitrary records as a budget ledger file and checks what a partner's budget rests on.
///
/// `data` is a list of chunks `[len: u16 LE][payload]`; each payload is framed with its correct
/// length and CRC-32, so the replay's checks on decoded records are reached (random bytes
/// would almost never pass the checksum). A last chunk shorter than its length is appended
/// as it is: a torn write. The file is written to `path` (overwritten).
///
/// # Panics
///
/// When an invariant breaks — that is the bug being hunted:
/// - a refused file is changed;
/// - an opened ledger reports a remaining fraction outside [0, 1], a NaN ε, or committed ε
///   above spent ε;
/// - a reopened ledger disagrees with the one that wrote it;
/// - a reservation that fits the budget is not charged, or its commit does not survive a reopen.
pub fn replay_ledger(data: &[u8], path: &Path) {
    let mut file = MAGIC.to_vec();
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_le_bytes(*len));
        if tail.len() < len {
            file.extend_from_slice(tail);
            break;
        }
        let (payload, tail) = tail.split_at(len);
        file.extend(checksummed(payload));
        rest = tail;
    }
    assert!(std::fs::write(path, &file).is_ok(), "writing the fuzz ledger");
    let config = LedgerConfig { sync: false, ..LedgerConfig::default() };
    let Ok(ledger) = Ledger::open(path, &config) else {
        assert_eq!(std::fs::read(path).ok(), Some(file), "a refused ledger was changed");
        return;
    };
    let before = snapshot(&ledger);
    // A charge small enough to fit any budget that is not already spent.
    let event = DpEvent::Gaussian { noise_multiplier: 1e3 };
    let first = ledger.accounts().ok().and_then(|a| a.into_iter().next());
    let reserved = first.as_ref().map(|(partner, version)| {
        let fits = ledger.would_exceed(partner, *version, &event, 1);
        let paused = ledger.is_paused(partner, *version);
        let r = ledger.reserve(partner, *version, &event, 1);
        if let (Ok(false), Ok(false)) = (fits, paused) {
            assert!(r.is_ok(), "a charge within the budget was refused: {r:?}");
        }
        r.and_then(|r| ledger.commit(r))
    });
    let after = snapshot(&ledger);
    drop(ledger);
    let reopened = Ledger::open(path, &config);
    assert!(reopened.is_ok(), "a ledger this build wrote does not reopen: {reopened:?}");
    if let Ok(l) = reopened {
        assert_eq!(snapshot(&l), after, "replay disagrees with the ledger that wrote the file");
    }
    if !matches!(reserved, Some(Ok(()))) {
        assert_eq!(after, before, "a refused charge changed the ledger");
    }
}

/// Every account's status and the open reservations, with the status invariants checked.
fn snapshot(ledger: &Ledger) -> String {
    let mut out = format!("{:?}\n", ledger.open_reservations());
    for (partner, version) in ledger.accounts().unwrap_or_default() {
        let status = ledger.status(&partner, version);
        if let Ok(s) = &status {
            assert!((0.0..=1.0).contains(&s.remaining_fraction), "{s:?}");
            assert!(!s.spent_epsilon.is_nan() && !s.committed_epsilon.is_nan(), "{s:?}");
            assert!(s.committed_epsilon <= s.spent_epsilon, "{s:?}");
        }
        out.push_str(&format!("{partner} {version:?} {status:?}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::replay_ledger;
    use crate::ledger::MAGIC;
    use crate::{DpEvent, Ledger, LedgerConfig, PrivacyBudget};
    use fl_core::{ModelVersion, PartnerId};

    /// A ledger this build wrote, re-chunked as the fuzz input layout.
    fn chunks_of_real_ledger(dir: &std::path::Path) -> Vec<u8> {
        let path = dir.join("real.ledger");
        let ledger =
            Ledger::open(&path, &LedgerConfig { sync: false, ..Default::default() }).unwrap();
        let lab = PartnerId::new("lab-a").unwrap();
        ledger.register(&lab, ModelVersion(1), PrivacyBudget::new(8.0, 1e-5).unwrap()).unwrap();
        let event = DpEvent::Gaussian { noise_multiplier: 4.0 };
        let r = ledger.reserve(&lab, ModelVersion(1), &event, 3).unwrap();
        ledger.commit(r).unwrap();
        ledger.reserve(&lab, ModelVersion(1), &event, 1).unwrap();
        drop(ledger);
        let bytes = std::fs::read(&path).unwrap();
        let mut out = Vec::new();
        let mut pos = MAGIC.len();
        while pos < bytes.len() {
            let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
            out.extend_from_slice(&u16::try_from(len).unwrap().to_le_bytes());
            out.extend_from_slice(&bytes[pos + 8..pos + 8 + len]);
            pos += 8 + len;
        }
        out
    }

    #[test]
    fn the_shim_replays_real_ledgers_refused_ones_and_torn_tails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.ledger");
        let real = chunks_of_real_ledger(dir.path());
        replay_ledger(&real, &path);
        // Replayed in full: one account, one open reservation (plus the shim's own charge).
        let ledger = Ledger::open(&path, &LedgerConfig::default()).unwrap();
        assert_eq!(ledger.accounts().unwrap().len(), 1);
        assert_eq!(ledger.open_reservations().unwrap().len(), 1);
        drop(ledger);
        // The Init record twice: refused, and the shim checks the file is untouched.
        let init_len = usize::from(u16::from_le_bytes([real[0], real[1]]));
        let doubled = [&real[..2 + init_len], &real[..]].concat();
        replay_ledger(&doubled, &path);
        assert!(Ledger::open(&path, &LedgerConfig::default()).is_err());
        // A torn tail after real records, and arbitrary bytes.
        replay_ledger(&[&real[..], &[200, 0, 1, 2, 3]].concat(), &path);
        replay_ledger(&[0xff; 64], &path);
        replay_ledger(&[], &path);
    }
}
