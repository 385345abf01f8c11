//! Tamper evidence and crash safety of the audit log.

#![allow(
    clippy::panic_in_result_fn,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    reason = "test code"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fl_audit::checkpoint::{CheckpointFile, checkpoint_path};
use fl_audit::{
    AuditLog, CheckpointSigner, Digest, Durability, Entry, Error, Extension, Fault, PrivacyCharge,
    Record, RoundEntry, read_records, verify_anchor, verify_bytes, verify_file,
    verify_with_checkpoints,
};
use fl_core::{ModelVersion, PartnerId, Round};
use proptest::prelude::*;
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn round_entry(r: u64, parties: usize) -> Entry {
    let participants: Vec<PartnerId> =
        (0..parties).map(|i| PartnerId::new(format!("lab-{i}")).unwrap()).collect();
    let charges = participants
        .iter()
        .map(|p| PrivacyCharge {
            partner: p.clone(),
            epsilon: 0.01 * r as f64,
            delta: 1e-5,
            event: format!("PoissonSampledGaussian(q=0.1, σ=1.1) x{r}"),
        })
        .collect();
    let mut extensions = BTreeMap::new();
    extensions.insert("accuracy".into(), Extension::Float(0.5 + r as f64 / 1000.0));
    extensions.insert("dropouts".into(), Extension::Int(i64::try_from(r % 3).unwrap()));
    Entry::Round(Box::new(RoundEntry {
        round: Round(r),
        model_version: ModelVersion(r),
        update_digests: participants
            .iter()
            .map(|p| (p.clone(), Digest::of(format!("{p}{r}").as_bytes())))
            .collect(),
        participants,
        charges,
        aggregator: "fedprox".into(),
        privacy_mode: "secagg".into(),
        incoming_model: Digest::of(&r.to_le_bytes()),
        aggregate: Digest::of(&(r + 1).to_le_bytes()),
        extensions,
    }))
}

fn build(path: &std::path::Path, rounds: u64) -> Result<AuditLog, Error> {
    let mut log = AuditLog::create(
        path,
        Entry::genesis("fed-1", r#"{"rounds":10,"privacy":"secagg"}"#),
        1_700_000_000_000,
        Durability::Unsynced,
    )?;
    for r in 1..=rounds {
        log.append(round_entry(r, 3), 1_700_000_000_000 + r)?;
    }
    Ok(log)
}

#[test]
fn append_reopen_read_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("audit.log");
    let head = build(&path, 20)?.head();
    let (mut log, rec) = AuditLog::open(&path, Durability::EveryAppend)?;
    assert_eq!((log.head(), rec.truncated_bytes), (head, 0));
    let more = log.append_batch(vec![(round_entry(21, 2), 5), (round_entry(22, 2), 6)])?;
    assert_eq!(more[1].sequence, 22);
    let records = read_records(&std::fs::read(&path)?)?;
    assert_eq!(records.len(), 23);
    assert_eq!(records[21].entry, round_entry(21, 2));
    assert!(matches!(records[0].entry, Entry::Genesis { .. }));
    assert!(matches!(log.append(Entry::genesis("x", "y"), 0), Err(Error::InvalidArgument { .. })));
    assert!(matches!(
        AuditLog::create(&path, Entry::genesis("x", "y"), 0, Durability::EveryAppend),
        Err(Error::InvalidArgument { .. })
    ));
    // A second writer is locked out.
    assert!(matches!(AuditLog::open(&path, Durability::EveryAppend), Err(Error::Locked(_))));
    Ok(())
}

/// The record index containing byte `pos` (the magic counts as record 0).
fn record_at(frames: &[fl_audit::verify::FrameSpan], pos: usize) -> u64 {
    frames.iter().position(|f| pos < f.offset + f.len).unwrap_or(frames.len() - 1) as u64
}

#[test]
fn ten_thousand_mutations_are_each_detected_at_the_first_affected_record() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("audit.log");
    drop(build(&path, 40)?);
    let good = std::fs::read(&path)?;
    let report = verify_bytes(&good)?;
    let mut rng = ChaCha20Rng::seed_from_u64(2026);
    let mut counts = [0usize; 3];
    for _ in 0..12_000 {
        let mut bad = good.clone();
        let kind = rng.random_range(0..3);
        let first = match kind {
            0 => {
                let i = rng.random_range(0..bad.len());
                let old = bad[i];
                bad[i] = loop {
                    let v: u8 = rng.random();
                    if v != old {
                        break v;
                    }
                };
                i
            }
            1 => {
                let i = rng.random_range(0..bad.len());
                bad.remove(i);
                i
            }
            _ => {
                let (i, j) = loop {
                    let i = rng.random_range(0..bad.len());
                    let j = rng.random_range(0..bad.len());
                    if bad[i] != bad[j] {
                        break (i.min(j), i.max(j));
                    }
                };
                bad.swap(i, j);
                i
            }
        };
        counts[kind] += 1;
        let fault = verify_bytes(&bad).expect_err("mutation not detected");
        let want = record_at(&report.frames, first);
        assert_eq!(
            fault.sequence(),
            want,
            "mutation kind {kind} at byte {first}: reported {fault:?}"
        );
    }
    assert!(counts.iter().all(|&c| c > 3000), "{counts:?}");
    Ok(())
}

#[test]
fn whole_record_deletion_reordering_and_rewrites() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("audit.log");
    drop(build(&path, 10)?);
    let good = std::fs::read(&path)?;
    let r = verify_bytes(&good)?;
    let f = |i: usize| &good[r.frames[i].offset..r.frames[i].offset + r.frames[i].len];
    // Delete record 4.
    let mut deleted = good[..r.frames[4].offset].to_vec();
    deleted.extend_from_slice(&good[r.frames[5].offset..]);
    assert_eq!(verify_bytes(&deleted), Err(Fault::SequenceGap { position: 4, found: 5 }));
    // Swap records 6 and 7.
    let mut swapped = good[..r.frames[6].offset].to_vec();
    swapped.extend_from_slice(f(7));
    swapped.extend_from_slice(f(6));
    swapped.extend_from_slice(&good[r.frames[8].offset..]);
    assert_eq!(verify_bytes(&swapped), Err(Fault::SequenceGap { position: 6, found: 7 }));
    // Duplicate record 3.
    let mut dup = good[..r.frames[4].offset].to_vec();
    dup.extend_from_slice(f(3));
    dup.extend_from_slice(&good[r.frames[4].offset..]);
    assert_eq!(verify_bytes(&dup), Err(Fault::Reordered { position: 4, found: 3 }));
    // A consistent rewrite of record 5 (new content, recomputed hash) breaks record 6's link.
    let mut records = read_records(&good)?;
    records[5].time_unix_ms += 1;
    let rewritten = reframe(&records, 0..records.len(), &good, &r);
    assert_eq!(verify_bytes(&rewritten), Err(Fault::BrokenLink { sequence: 6 }));
    Ok(())
}

/// Re-frames `records` (recomputing hashes but keeping every prev_hash as given).
fn reframe(
    records: &[Record],
    _range: std::ops::Range<usize>,
    _good: &[u8],
    _r: &fl_audit::VerifyReport,
) -> Vec<u8> {
    let mut out = fl_audit::verify::MAGIC.to_vec();
    for rec in records {
        let c = rec.canonical().unwrap();
        let h = Record::hash_of_canonical(&c);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&c);
        crc.update(&h.0);
        out.extend_from_slice(&(c.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(&c);
        out.extend_from_slice(&h.0);
    }
    out
}

#[test]
fn checkpoints_catch_truncation_and_full_rewrites() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("audit.log");
    let signer = CheckpointSigner::generate(&mut ChaCha20Rng::seed_from_u64(3));
    let key = signer.verifying_key();
    let mut log = build(&path, 10)?;
    log.checkpoint(&signer)?; // covers record 10
    log.append(round_entry(11, 1), 11)?;
    let anchor = log.head();
    drop(log);
    let good = std::fs::read(&path)?;
    let cps = CheckpointFile::read(&checkpoint_path(&path))?;
    assert_eq!(verify_with_checkpoints(&good, &cps, &key)?.checkpoints_verified, 1);
    assert_eq!(verify_file(&path, Some(&key))?.records, 12);

    // Truncation to 8 records: a sound chain, but below the checkpoint.
    let r = verify_bytes(&good)?;
    let short = &good[..r.frames[8].offset];
    assert!(verify_bytes(short).is_ok(), "the chain alone cannot see a truncation");
    assert_eq!(
        verify_with_checkpoints(short, &cps, &key),
        Err(Fault::TruncatedBelowCheckpoint { checkpoint: 10, log_len: 8 })
    );

    // Rewriting history consistently (every hash and link recomputed) fools the chain alone but
    // not the signed checkpoint.
    let mut records = read_records(&good)?;
    records[2].time_unix_ms = 42;
    let mut prev = Digest::default();
    let mut fixed = Vec::new();
    for mut rec in records {
        rec.prev_hash = prev;
        prev = Record::hash_of_canonical(&rec.canonical()?);
        fixed.push(rec);
    }
    let forged = reframe(&fixed, 0..fixed.len(), &good, &r);
    assert!(verify_bytes(&forged).is_ok());
    assert_eq!(
        verify_with_checkpoints(&forged, &cps, &key),
        Err(Fault::CheckpointMismatch { sequence: 10 })
    );
    assert_eq!(verify_anchor(&forged, &anchor), Err(Fault::CheckpointMismatch { sequence: 11 }));
    assert!(verify_anchor(&good, &fl_audit::Head::parse_anchor(&anchor.anchor()).unwrap()).is_ok());

    // A checkpoint signed by someone else.
    let other = CheckpointSigner::generate(&mut ChaCha20Rng::seed_from_u64(4));
    let forged_cp = other.sign(11, anchor.hash);
    assert_eq!(
        verify_with_checkpoints(&good, &[cps[0], forged_cp], &key),
        Err(Fault::BadCheckpointSignature { index: 1 })
    );
    Ok(())
}

#[test]
fn recovery_cuts_only_a_torn_final_record() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("audit.log");
    drop(build(&path, 5)?);
    let good = std::fs::read(&path)?;
    let r = verify_bytes(&good)?;
    let last = r.frames[5];
    // Every cut inside the final record is repaired back to record 4.
    for cut in (last.offset + 1..good.len()).step_by(5) {
        std::fs::write(&path, &good[..cut])?;
        let (log, rec) = AuditLog::open(&path, Durability::EveryAppend)?;
        assert_eq!(log.head().sequence, 4);
        assert_eq!(rec.truncated_bytes, (cut - last.offset) as u64);
    }
    // Verifying for an open changes nothing until `open`: the caller may still walk away.
    let cut = &good[..last.offset + 7];
    std::fs::write(&path, cut)?;
    let verified = AuditLog::verify_for_open(&path)?;
    assert_eq!((verified.head().sequence, verified.torn_bytes()), (4, 7));
    assert_eq!(verified.records()?.len(), 5);
    assert!(matches!(AuditLog::open(&path, Durability::EveryAppend), Err(Error::Locked(_))));
    drop(verified);
    assert_eq!(std::fs::read(&path)?, cut);
    let (log, rec) = AuditLog::verify_for_open(&path)?.open(Durability::EveryAppend)?;
    assert_eq!((log.head().sequence, rec.truncated_bytes), (4, 7));
    drop(log);
    assert_eq!(std::fs::read(&path)?, &good[..last.offset]);
    // A complete final record with a bad checksum (torn data, length intact) is cut too.
    let mut torn = good.clone();
    let n = torn.len();
    torn[n - 40] ^= 1;
    std::fs::write(&path, &torn)?;
    assert_eq!(AuditLog::open(&path, Durability::EveryAppend)?.0.head().sequence, 4);
    // Damage before the final record refuses to open, and leaves the file untouched.
    let mut bad = good.clone();
    bad[r.frames[2].offset + 12] ^= 1;
    std::fs::write(&path, &bad)?;
    assert!(matches!(
        AuditLog::open(&path, Durability::EveryAppend),
        Err(Error::Tampered(Fault::BadFraming { sequence: 2, .. }))
    ));
    assert_eq!(std::fs::read(&path)?, bad);
    // A torn genesis (a crash inside `create`) leaves nothing to append to: refused, and the
    // torn bytes stay for the operator to inspect.
    let torn_genesis = &good[..r.frames[0].offset + 10];
    std::fs::write(&path, torn_genesis)?;
    assert!(matches!(
        AuditLog::open(&path, Durability::EveryAppend),
        Err(Error::Tampered(Fault::Genesis { sequence: 0 }))
    ));
    assert_eq!(std::fs::read(&path)?, torn_genesis);
    Ok(())
}

/// Child process: appends records forever, printing each sequence once `append` returned.
#[test]
fn audit_child_process_entry() -> TestResult {
    let Ok(path) = std::env::var("FL_AUDIT_CHILD") else { return Ok(()) };
    let mut log = match AuditLog::open(&path, Durability::EveryAppend) {
        Ok((log, _)) => log,
        Err(_) => {
            AuditLog::create(&path, Entry::genesis("kill-test", "{}"), 0, Durability::EveryAppend)?
        }
    };
    let mut out = std::io::stdout().lock();
    let mut r = log.head().sequence;
    loop {
        r += 1;
        let a = log.append(round_entry(r, 2), r)?;
        writeln!(out, "{}", a.sequence)?;
        out.flush()?;
    }
}

#[test]
fn sigkilled_writer_never_loses_an_acknowledged_record() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("audit.log");
    let exe = std::env::current_exe()?;
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let kills = 200;
    let mut max_acked = 0u64;
    for _ in 0..kills {
        let mut child = Command::new(&exe)
            .args(["--exact", "audit_child_process_entry", "--nocapture", "--test-threads", "1"])
            .env("FL_AUDIT_CHILD", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(n) = line.parse()
                    && tx.send(n).is_err()
                {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_millis(rng.random_range(5..60));
        while Instant::now() < deadline {
            if let Ok(n) = rx.recv_timeout(Duration::from_millis(2)) {
                max_acked = max_acked.max(n);
            }
        }
        child.kill()?;
        child.wait()?;
        while let Ok(n) = rx.recv_timeout(Duration::from_millis(10)) {
            max_acked = max_acked.max(n);
        }
        if !path.exists() {
            continue; // killed before it created the log
        }
        // Reopen (recovering a torn tail), then verify the whole chain.
        let (log, _) = AuditLog::open(&path, Durability::EveryAppend)?;
        assert!(
            log.head().sequence >= max_acked,
            "acknowledged record {max_acked} lost (head {})",
            log.head().sequence
        );
        drop(log);
        assert!(verify_file(&path, None).is_ok());
    }
    assert!(max_acked > 200, "children wrote too little to test anything: {max_acked}");
    Ok(())
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        (1u64..1000, 0usize..5).prop_map(|(r, p)| round_entry(r, p)),
        (
            "[a-z]{1,8}",
            proptest::collection::btree_map(
                "[a-z]{1,6}",
                any::<i64>().prop_map(Extension::Int),
                0..4
            )
        )
            .prop_map(|(kind, fields)| Entry::Event { kind, fields }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn random_sequences_verify_and_any_byte_flip_is_caught(
        entries in proptest::collection::vec((arb_entry(), any::<u64>()), 1..20),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut log = AuditLog::create(&path, Entry::genesis("p", "{}"), 0, Durability::Unsynced).unwrap();
        log.append_batch(entries.clone()).unwrap();
        drop(log);
        let bytes = std::fs::read(&path).unwrap();
        let records = read_records(&bytes).unwrap();
        prop_assert_eq!(records.len(), entries.len() + 1);
        for (rec, (e, t)) in records[1..].iter().zip(&entries) {
            prop_assert_eq!(&rec.entry, e);
            prop_assert_eq!(rec.time_unix_ms, *t);
        }
        let report = verify_bytes(&bytes).unwrap();
        let i = flip.index(bytes.len());
        let mut bad = bytes.clone();
        bad[i] ^= 1 << bit;
        let fault = verify_bytes(&bad).unwrap_err();
        prop_assert_eq!(fault.sequence(), record_at(&report.frames, i));
    }
}
