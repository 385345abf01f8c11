//! Entry points for the fuzz targets in `fuzz/` (not a stable API).

use crate::verify::{frame, verify_bytes};

/// Verifies arbitrary bytes as a log; whatever verifies must re-frame to the same bytes.
///
/// # Panics
///
/// When a verified log does not round-trip: that is the bug being hunted.
pub fn verify_log(data: &[u8]) {
    if let Ok(report) = verify_bytes(data) {
        let mut out = crate::verify::MAGIC.to_vec();
        for (span, hash) in report.frames.iter().zip(&report.hashes) {
            let payload = &data[span.offset + 8..span.offset + span.len - 32];
            assert!(frame(payload, hash, &mut out).is_ok());
        }
        assert_eq!(out, data, "verified log does not re-frame to itself");
        assert!(crate::read_records(data).is_ok());
    }
}

/// Builds a log from arbitrary records, each framed with a correct checksum and hash, and
/// checks that verification, opening for append and appending agree.
///
/// `data` is a list of chunks `[flags: u8][len: u16 LE][payload]`. A payload that decodes as a
/// [`crate::Record`] has its sequence number (flag bit 0) and previous hash (bit 1) set to the
/// values the chain expects, is re-encoded canonically and hashed; one that does not decode is
/// framed as it is, with its own hash. So the checks behind the checksum and the hash — chain
/// links, sequence, genesis, decoding — are reached, which random bytes never pass. A last chunk
/// shorter than its length is appended as it is: a torn write. The log is written to `path`
/// (overwritten).
///
/// # Panics
///
/// When they disagree — that is the bug being hunted:
/// - a log that verifies does not re-frame to itself, does not open (unless it has no record),
///   or does not verify with one more record after an append;
/// - a log that does not verify opens without cutting a torn final record, or is changed
///   although it is refused.
pub fn chained_log(data: &[u8], path: &std::path::Path) {
    use crate::record::{Digest, Entry, Record};
    use crate::{AuditLog, Durability};

    let mut file = crate::verify::MAGIC.to_vec();
    let mut prev = Digest::default();
    let mut rest = data;
    for sequence in 0u64.. {
        let Some((&[flags, a, b], tail)) = rest.split_first_chunk::<3>() else { break };
        let len = usize::from(u16::from_le_bytes([a, b]));
        if tail.len() < len {
            file.extend_from_slice(tail);
            break;
        }
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        let canonical = match postcard::from_bytes::<Record>(payload) {
            Ok(mut r) => {
                if flags & 1 != 0 {
                    r.sequence = sequence;
                }
                if flags & 2 != 0 {
                    r.prev_hash = prev;
                }
                let Ok(c) = r.canonical() else { return };
                c
            }
            Err(_) => payload.to_vec(),
        };
        prev = Record::hash_of_canonical(&canonical);
        if frame(&canonical, &prev, &mut file).is_err() {
            return;
        }
    }
    verify_log(&file);
    assert!(std::fs::write(path, &file).is_ok(), "writing the fuzz log");
    let verified = verify_bytes(&file);
    match (AuditLog::open(path, Durability::Unsynced), &verified) {
        (Ok((mut log, recovery)), _) => {
            let kept = file.len() - usize::try_from(recovery.truncated_bytes).unwrap_or(usize::MAX);
            let clean = verify_bytes(&file[..kept]);
            assert!(clean.is_ok(), "opened a log whose kept part does not verify: {clean:?}");
            if recovery.truncated_bytes == 0 {
                assert!(verified.is_ok(), "opened a faulty log without cutting anything");
            }
            let event = Entry::Event { kind: "fuzz".into(), fields: Default::default() };
            let appended = log.append(event, 0);
            drop(log);
            assert!(appended.is_ok(), "append to an opened log failed: {appended:?}");
            let after = std::fs::read(path).map(|b| verify_bytes(&b));
            let records = clean.map(|r| r.records).unwrap_or_default();
            assert!(
                matches!(&after, Ok(Ok(r)) if r.records == records + 1),
                "log after an append: {after:?}"
            );
        }
        // A log without records (not even the genesis) has nothing to append to.
        (Err(e), Ok(report)) if report.records > 0 => panic!("a verified log does not open: {e}"),
        (Err(_), _) => {
            assert_eq!(std::fs::read(path).ok(), Some(file), "a refused log was changed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::chained_log;
    use crate::record::{Entry, Record};
    use crate::verify::read_records;
    use crate::{AuditLog, Durability, verify_file};

    /// The fuzz input of a real log's records, every chunk with `flags`.
    fn chunks(records: &[Record], flags: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            let c = r.canonical().unwrap();
            out.push(flags);
            out.extend_from_slice(&u16::try_from(c.len()).unwrap().to_le_bytes());
            out.extend_from_slice(&c);
        }
        out
    }

    #[test]
    fn the_shim_rebuilds_real_logs_and_reaches_the_chain_checks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.log");
        let mut log =
            AuditLog::create(&real, Entry::genesis("f", "{}"), 1, Durability::Unsynced).unwrap();
        for t in 2..5 {
            log.append(Entry::Event { kind: "e".into(), fields: Default::default() }, t).unwrap();
        }
        drop(log);
        let records = read_records(&std::fs::read(&real).unwrap()).unwrap();
        let path = dir.path().join("fuzz.log");
        // Rebuilt as written: it verifies, opens and takes the shim's append.
        chained_log(&chunks(&records, 3), &path);
        assert_eq!(verify_file(&path, None).unwrap().records, 5);
        // Records in another order with links and sequence patched: the genesis is misplaced.
        let swapped = [records[1].clone(), records[0].clone()];
        chained_log(&chunks(&swapped, 3), &path);
        assert!(verify_file(&path, None).is_err());
        // Unpatched records out of order: the links break; a torn tail; garbage.
        chained_log(&chunks(&[records[0].clone(), records[2].clone()], 0), &path);
        assert!(verify_file(&path, None).is_err());
        chained_log(&[&chunks(&records, 3)[..], &[3, 200, 0, 1]].concat(), &path);
        assert_eq!(verify_file(&path, None).unwrap().records, 5);
        chained_log(&[0xff; 40], &path);
    }
}
