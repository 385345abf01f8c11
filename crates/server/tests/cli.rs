//! The `fl-server` binary as a user runs it: a small simulation, its outputs, `audit verify` and
//! `budget` on its state, and one-line errors with documented exit codes.

#![allow(clippy::unwrap_used, clippy::panic_in_result_fn, reason = "test code")]

use std::path::Path;
use std::process::{Command, Output};

fn fl_server(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fl-server")).args(args).current_dir(cwd).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn simulate_writes_a_verifiable_run_and_errors_are_one_line()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let o = fl_server(
        &[
            "simulate",
            "--dataset",
            "digits",
            "--clients",
            "5",
            "--rounds",
            "3",
            "--hidden",
            "16",
            "--dp-epsilon",
            "20",
            "--out",
            out.to_str().unwrap(),
        ],
        Path::new(env!("CARGO_MANIFEST_DIR")),
    );
    assert!(o.status.success(), "{}", text(&o));
    let s = text(&o);
    assert!(s.contains("final test accuracy") && s.contains("verified"), "{s}");
    let run = std::fs::read_dir(&out)?.next().unwrap()?.path();
    for f in ["report.json", "accuracy.svg", "audit.log", "budget.ledger", "model.safetensors"] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("report.json"))?)?;
    assert_eq!(report["rounds"].as_array().unwrap().len(), 3);
    assert!(std::fs::read_to_string(run.join("accuracy.svg"))?.starts_with("<svg"));

    let o = fl_server(&["audit", "verify", run.to_str().unwrap()], dir.path());
    assert!(o.status.success() && text(&o).contains("chain intact"), "{}", text(&o));
    let o = fl_server(&["budget", "--state", run.to_str().unwrap()], dir.path());
    assert!(o.status.success() && text(&o).contains("partner-00"), "{}", text(&o));

    // Tampering with one byte of a record is found.
    let log = run.join("audit.log");
    let mut bytes = std::fs::read(&log)?;
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&log, bytes)?;
    let o = fl_server(&["audit", "verify", run.to_str().unwrap()], dir.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // Invalid settings: exit code 2 and one line naming the setting, no backtrace.
    for bad in [
        ["--privacy", "secagg", "--aggregator", "krum"],
        ["--privacy", "paillier", "--aggregator", "median"],
        ["--privacy", "he", "--aggregator", "fedavg"],
        ["--dataset", "cifar", "--aggregator", "fedavg"],
        // NaN or a negative ε is not "DP off" (that is 0): it once ran without DP.
        ["--dp-epsilon", "nan", "--aggregator", "fedavg"],
        ["--dp-epsilon=-1", "--aggregator", "fedavg", "--dp-mode=local"],
    ] {
        let mut args = vec!["simulate", "--out", out.to_str().unwrap()];
        args.extend(bad);
        let o = fl_server(&args, dir.path());
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.starts_with("error: invalid configuration"), "{err}");
    }
    let o = fl_server(&["simulate", "--clients", "many"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    Ok(())
}
