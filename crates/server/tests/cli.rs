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

/// Runs `fl-server simulate ARGS --out OUT` from the crate directory (the shipped data is at
/// `../shared` of the repository) and returns its output and the run directory it wrote.
fn simulate(args: &[&str], out: &Path) -> (Output, Option<std::path::PathBuf>) {
    let mut all = vec!["simulate"];
    all.extend(args);
    all.extend(["--out", out.to_str().unwrap()]);
    let o = fl_server(&all, Path::new(env!("CARGO_MANIFEST_DIR")));
    let run = std::fs::read_dir(out).ok().and_then(|mut d| d.next()).map(|e| e.unwrap().path());
    (o, run)
}

#[test]
fn simulate_writes_a_verifiable_run_and_errors_are_one_line()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let (o, run) = simulate(
        &[
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
        ],
        &out,
    );
    assert!(o.status.success(), "{}", text(&o));
    let s = text(&o);
    assert!(s.contains("final test accuracy") && s.contains("verified"), "{s}");
    let run = run.unwrap();
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
    let bad_settings: [&[&str]; 11] = [
        &["--privacy", "secagg", "--aggregator", "krum"],
        &["--privacy", "paillier", "--aggregator", "median"],
        &["--privacy", "he", "--aggregator", "fedavg"],
        &["--dataset", "cifar", "--aggregator", "fedavg"],
        // NaN or a negative ε is not "DP off" (that is 0): it once ran without DP.
        &["--dp-epsilon", "nan", "--aggregator", "fedavg"],
        &["--dp-epsilon=-1", "--aggregator", "fedavg", "--dp-mode=local"],
        // A rule's own parameter was a runtime failure (exit 1) instead of a setting.
        &["--aggregator", "fedprox", "--mu", "nan"],
        // Krum with 100 Byzantine clients needs 203 updates a round: it once started and then
        // ended the federation in its first round.
        &["--privacy", "none", "--aggregator", "krum", "--byzantine", "100"],
        &["--privacy", "none", "--aggregator", "krum", "--min-clients", "3"],
        // 4f + 3 overflowed for f = usize::MAX.
        &["--privacy", "none", "--aggregator", "bulyan", "--byzantine", "18446744073709551615"],
        // A mistyped width aborted the process on a 30 TB allocation.
        &["--dataset", "digits", "--hidden", "99999999999"],
    ];
    for bad in bad_settings {
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

/// Without `--min-clients`, the quorum is raised to what a robust rule aggregates (Bulyan with
/// f = 1: 7 of 10, not 60 % = 6), so a round that dropouts leave short is skipped and the
/// federation goes on; with a quorum of 6 a round of 6 updates ended it (exit 1).
#[test]
fn a_robust_rule_sets_the_default_quorum() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let (o, run) = simulate(
        &[
            "--dataset",
            "digits",
            "--privacy",
            "none",
            "--aggregator",
            "bulyan",
            "--clients",
            "10",
            "--rounds",
            "4",
            "--hidden",
            "none",
            "--dp-epsilon",
            "0",
            "--dropout",
            "0.4",
        ],
        &out,
    );
    assert!(o.status.success(), "{}", text(&o));
    let run = run.unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("report.json"))?)?;
    let rounds = report["rounds"].as_array().unwrap();
    assert!(rounds.iter().all(|r| r["aborted"].is_string() || r["included"].as_u64() >= Some(7)));
    // The seeded dropouts leave one round exactly 6 updates: the case a quorum of 6 let through.
    assert!(text(&o).contains("aborted: 6 usable updates, 7 needed"), "{}", text(&o));
    Ok(())
}

/// `serve` settings that cannot work are refused before anyone connects (exit 2): a timeout or
/// frame limit of 0, a timeout past the clock's range (it panicked adding it to `Instant::now`
/// once the quorum was enrolled), the Paillier mode without its public key, a model file of
/// another architecture (it failed once partners had joined).
#[test]
fn serve_refuses_unusable_settings_up_front() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    for (i, key) in [
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("p{i}");
        let o = fl_server(
            &["enrol", "--state", state, "--partner-id", &id, "--public-key", key],
            dir.path(),
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    // A softmax-regression model file, while `serve` evaluates the default 128-unit MLP.
    let out = dir.path().join("sim");
    let (o, run) = simulate(
        &[
            "--dataset",
            "digits",
            "--clients",
            "3",
            "--rounds",
            "1",
            "--hidden",
            "none",
            "--privacy",
            "none",
            "--dp-epsilon",
            "0",
        ],
        &out,
    );
    assert!(o.status.success(), "{}", text(&o));
    let model = run.unwrap().join("model.safetensors");
    let serve = ["serve", "--dataset", "digits", "--state", state, "--listen", "127.0.0.1:0"];
    for (bad, names) in [
        (&["--model", model.to_str().unwrap()][..], "model"),
        (&["--join-timeout", "0"], "join-timeout"),
        (&["--phase-timeout", "0"], "phase-timeout"),
        (&["--max-frame-mib", "0"], "max-frame-mib"),
        (&["--max-frame-mib", "4096"], "max-frame-mib"),
        (&["--privacy", "paillier"], "paillier-key"),
    ] {
        let mut args = serve.to_vec();
        args.extend(bad);
        let o = fl_server(&args, dir.path());
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o));
        assert!(text(&o).contains(names), "{bad:?}: {}", text(&o));
    }
    Ok(())
}
