//! The budget ledger: semantics, concurrency, torn-tail recovery, corruption detection, and a
//! child process killed with SIGKILL while it writes.

#![allow(
    clippy::panic_in_result_fn,
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "test code"
)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fl_core::{ModelVersion, PartnerId};
use fl_dp::{DpEvent, Error, Ledger, LedgerConfig, PrivacyBudget};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn partner(s: &str) -> PartnerId {
    PartnerId::new(s).unwrap()
}

/// One DP-SGD-like round.
fn round() -> DpEvent {
    DpEvent::PoissonSampledGaussian { sampling_rate: 0.1, noise_multiplier: 1.0 }
}

#[test]
fn reserve_commit_abort_and_pause() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ledger.bin");
    let ledger = Ledger::open(&path, &LedgerConfig::default())?;
    let (a, v) = (partner("lab-a"), ModelVersion(3));
    ledger.register(&a, v, PrivacyBudget::new(10.0, 1e-5)?)?;
    assert!(matches!(
        ledger.register(&a, v, PrivacyBudget::new(10.0, 1e-5)?),
        Err(Error::AlreadyRegistered { .. })
    ));
    assert!(matches!(ledger.status(&partner("nobody"), v), Err(Error::UnknownPartner { .. })));
    assert!(matches!(ledger.status(&a, ModelVersion(4)), Err(Error::UnknownPartner { .. })));

    // Reserved charges count immediately; aborted ones stop counting; committed ones stay.
    let r1 = ledger.reserve(&a, v, &round(), 10)?;
    let after_reserve = ledger.status(&a, v)?;
    assert!(after_reserve.spent_epsilon > 0.0 && after_reserve.committed_epsilon == 0.0);
    ledger.abort(r1)?;
    assert_eq!(ledger.status(&a, v)?.spent_epsilon, 0.0);
    assert!(matches!(ledger.commit(r1), Err(Error::UnknownReservation(_))));
    let r2 = ledger.reserve(&a, v, &round(), 10)?;
    ledger.commit(r2)?;
    let committed = ledger.status(&a, v)?;
    assert!((committed.committed_epsilon - committed.spent_epsilon).abs() < 1e-12);

    // The accountant's ε for the same charges, recomputed independently.
    let mut acc = fl_dp::RdpAccountant::default();
    acc.compose(&round(), 10)?;
    assert!((committed.committed_epsilon - acc.get_epsilon(1e-5)?.epsilon).abs() < 1e-9);

    // Charge until refused: never beyond the budget, and paused below 10 % remaining.
    let mut refused = None;
    for _ in 0..1000 {
        match ledger.reserve(&a, v, &round(), 10) {
            Ok(r) => ledger.commit(r)?,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let s = ledger.status(&a, v)?;
    assert!(s.spent_epsilon <= 10.0, "{s:?}");
    match refused {
        Some(Error::Paused { .. }) => assert!(s.remaining_fraction < 0.10 && s.paused),
        Some(Error::BudgetExceeded { would_be, budget, .. }) => {
            assert!(would_be > budget);
            assert!(!s.paused);
            assert!(ledger.would_exceed(&a, v, &round(), 10)?);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Bad budgets are typed errors.
    assert!(PrivacyBudget::new(-1.0, 1e-5).is_err() && PrivacyBudget::new(1.0, 1.5).is_err());
    drop(ledger);

    // Everything survives a reopen.
    let reopened = Ledger::open(&path, &LedgerConfig::default())?;
    assert_eq!(reopened.status(&a, v)?, s);
    Ok(())
}

#[test]
fn pause_threshold_is_respected() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ledger = Ledger::open(dir.path().join("l"), &LedgerConfig::default())?;
    let (p, v) = (partner("p"), ModelVersion(0));
    // One big charge leaves less than 10 % of a budget sized just above it.
    let mut acc = fl_dp::RdpAccountant::default();
    acc.compose(&round(), 100)?;
    let eps = acc.get_epsilon(1e-5)?.epsilon;
    ledger.register(&p, v, PrivacyBudget::new(eps * 1.05, 1e-5)?)?;
    let r = ledger.reserve(&p, v, &round(), 100)?;
    ledger.commit(r)?;
    assert!(ledger.is_paused(&p, v)?);
    assert!(matches!(ledger.reserve(&p, v, &round(), 1), Err(Error::Paused { .. })));
    Ok(())
}

#[test]
fn second_process_is_locked_out() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("l");
    let _first = Ledger::open(&path, &LedgerConfig::default())?;
    assert!(matches!(Ledger::open(&path, &LedgerConfig::default()), Err(Error::Locked(_))));
    Ok(())
}

#[test]
fn concurrent_charges_never_exceed_the_budget() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LedgerConfig { sync: false, ..LedgerConfig::default() };
    let ledger = Arc::new(Ledger::open(dir.path().join("l"), &config)?);
    let (p, v) = (partner("shared"), ModelVersion(1));
    let mut acc = fl_dp::RdpAccountant::default();
    // A budget worth 500 rounds: about 100 of the 320 attempted charges of 5 fit.
    acc.compose(&round(), 500)?;
    ledger.register(&p, v, PrivacyBudget::new(acc.get_epsilon(1e-5)?.epsilon, 1e-5)?)?;
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (ledger, p) = (Arc::clone(&ledger), p.clone());
            std::thread::spawn(move || {
                let mut ok = 0;
                for _ in 0..40 {
                    match ledger.reserve(&p, v, &round(), 5) {
                        Ok(r) => {
                            ledger.commit(r).unwrap();
                            ok += 1;
                        }
                        Err(Error::BudgetExceeded { .. } | Error::Paused { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                ok
            })
        })
        .collect();
    let granted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let s = ledger.status(&p, v)?;
    assert!(s.spent_epsilon <= s.budget.epsilon());
    // The granted charges are exactly what the ledger holds.
    let mut check = fl_dp::RdpAccountant::default();
    check.compose(&round(), 5 * granted as u64)?;
    assert!(
        (check.get_epsilon(1e-5)?.epsilon - s.committed_epsilon).abs()
            <= 1e-9 * s.committed_epsilon
    );
    assert!(granted > 0 && granted < 320);
    Ok(())
}

#[test]
fn torn_tail_is_truncated_but_corruption_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("l");
    let (p, v) = (partner("p"), ModelVersion(0));
    {
        let ledger = Ledger::open(&path, &LedgerConfig::default())?;
        ledger.register(&p, v, PrivacyBudget::new(100.0, 1e-5)?)?;
        for _ in 0..3 {
            let r = ledger.reserve(&p, v, &round(), 1)?;
            ledger.commit(r)?;
        }
    }
    let good = std::fs::read(&path)?;
    let status = Ledger::open(&path, &LedgerConfig::default())?.status(&p, v)?;

    // Every strict prefix opens: records cut mid-write are dropped, complete ones kept.
    for cut in (8..good.len()).step_by(7) {
        std::fs::write(&path, &good[..cut])?;
        let l = Ledger::open(&path, &LedgerConfig::default())?;
        if let Ok(s) = l.status(&p, v) {
            assert!(s.spent_epsilon <= status.spent_epsilon * (1.0 + 1e-12));
        }
        drop(l);
        // Recovery only ever cuts back to a record boundary (re-adding the same Init if that
        // was torn): the file is again a prefix of the intact one.
        assert!(good.starts_with(&std::fs::read(&path)?), "cut at {cut}");
    }
    // Garbage appended after the last record is a torn tail too.
    let mut torn = good.clone();
    torn.extend_from_slice(&[0x30, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&path, &torn)?;
    assert_eq!(Ledger::open(&path, &LedgerConfig::default())?.status(&p, v)?, status);
    assert_eq!(std::fs::read(&path)?, good, "exactly the torn bytes were removed");

    // A flipped byte inside an earlier record is corruption: refuse, and change nothing.
    let mut bad = good.clone();
    bad[20] ^= 0x40;
    std::fs::write(&path, &bad)?;
    assert!(matches!(Ledger::open(&path, &LedgerConfig::default()), Err(Error::Corrupt { .. })));
    assert_eq!(std::fs::read(&path)?, bad);
    // Not a ledger at all.
    std::fs::write(&path, b"hello, world")?;
    assert!(matches!(Ledger::open(&path, &LedgerConfig::default()), Err(Error::Corrupt { .. })));
    Ok(())
}

/// Entry point of the child process: loops reserve → commit, printing each id once its commit
/// returned (durably written). Runs only when spawned by the kill test.
#[test]
fn ledger_child_process_entry() -> TestResult {
    let Ok(path) = std::env::var("FL_DP_LEDGER_CHILD") else { return Ok(()) };
    let ledger = Ledger::open(&path, &LedgerConfig::default())?;
    let (p, v) = (partner("victim"), ModelVersion(0));
    let _ = ledger.register(&p, v, PrivacyBudget::new(1e6, 1e-5)?);
    let mut out = std::io::stdout().lock();
    loop {
        let r = ledger.reserve(&p, v, &DpEvent::Gaussian { noise_multiplier: 50.0 }, 1)?;
        writeln!(out, "reserved {}", r.0)?;
        out.flush()?;
        ledger.commit(r)?;
        writeln!(out, "committed {}", r.0)?;
        out.flush()?;
    }
}

#[test]
fn killed_writer_never_loses_an_acknowledged_charge() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ledger.bin");
    let exe = std::env::current_exe()?;
    let kills: u64 = 40;
    let mut acked_total = 0u64;
    // Charges known to be committed so far: every acknowledged reservation that is not open
    // after recovery must have been committed (its Reserve record was durable).
    let mut committed_at_least = 0u64;
    let event = DpEvent::Gaussian { noise_multiplier: 50.0 };
    let epsilon_of = |charges: u64| -> Result<f64, Error> {
        let mut a = fl_dp::RdpAccountant::default();
        a.compose(&event, charges)?;
        Ok(a.get_epsilon(1e-5)?.epsilon)
    };
    for i in 0..kills {
        let mut child = Command::new(&exe)
            .args(["--exact", "ledger_child_process_entry", "--nocapture", "--test-threads", "1"])
            .env("FL_DP_LEDGER_CHILD", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let it write for a varying while, then SIGKILL.
        let deadline = Instant::now() + Duration::from_millis(30 + (i * 37) % 200);
        let mut committed = Vec::new();
        let mut reserved = Vec::new();
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(5)) {
                if let Some(id) = line.strip_prefix("committed ") {
                    committed.push(id.parse::<u64>()?);
                } else if let Some(id) = line.strip_prefix("reserved ") {
                    reserved.push(id.parse::<u64>()?);
                }
            }
        }
        child.kill()?;
        child.wait()?;
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(20)) {
            if let Some(id) = line.strip_prefix("committed ") {
                committed.push(id.parse::<u64>()?);
            } else if let Some(id) = line.strip_prefix("reserved ") {
                reserved.push(id.parse::<u64>()?);
            }
        }
        // Reopen: every acknowledged commit is committed, every acknowledged reservation is
        // either committed or still open (counted as spent) — never lost.
        let ledger = Ledger::open(&path, &LedgerConfig::default())?;
        let (p, v) = (partner("victim"), ModelVersion(0));
        let open: Vec<u64> = ledger.open_reservations()?.into_iter().map(|(r, _, _)| r.0).collect();
        for id in &committed {
            assert!(!open.contains(id), "acknowledged commit {id} is open after recovery");
        }
        for id in &reserved {
            if !open.contains(id) {
                committed_at_least += 1;
            }
        }
        let status = ledger.status(&p, v)?;
        let slack = 1.0 - 1e-12;
        assert!(
            status.committed_epsilon >= epsilon_of(committed_at_least)? * slack,
            "a durable charge was lost"
        );
        assert!(
            status.spent_epsilon >= epsilon_of(committed_at_least + open.len() as u64)? * slack
        );
        // Settle leftovers so the next child starts clean.
        for (r, _, _) in ledger.open_reservations()? {
            ledger.abort(r)?;
        }
        acked_total += committed.len() as u64;
    }
    assert!(
        acked_total > kills,
        "children acknowledged too few commits to test anything ({acked_total})"
    );
    Ok(())
}
