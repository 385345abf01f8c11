//! The real binaries on loopback: `fl-server serve` and five `fl-client join` processes over
//! TLS with SecAgg and DP-SGD; one client is killed with SIGKILL while the federation runs.
//! The federation completes, the model improves, the audit log verifies, and the budgets the
//! server charged match what the surviving clients were told.

#![allow(clippy::unwrap_used, clippy::panic_in_result_fn, reason = "test code")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fl-server"))
}

/// `fl-client` is another package's binary: it sits beside `fl-server` in the target
/// directory; build it if this test runs alone.
fn client_bin() -> PathBuf {
    let path = server_bin().with_file_name(format!("fl-client{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let profile_release = server_bin().parent().is_some_and(|d| d.ends_with("release"));
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "fl-client", "--bin", "fl-client"]);
        if profile_release {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "building fl-client");
    }
    path
}

fn run(bin: &Path, args: &[&str], cwd: &Path) -> Output {
    Command::new(bin).args(args).current_dir(cwd).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn join(dir: &Path, addr: &str, i: usize) -> Child {
    let shard = format!("{i}/5");
    Command::new(client_bin())
        .args([
            "join",
            "--server",
            addr,
            "--ca",
            "state/tls/cert.pem",
            "--identity",
            &format!("lab-{i}.key"),
        ])
        .args(["--dataset", "digits", "--hidden", "16", "--shard", &shard, "--idle-timeout", "60"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn five_processes_federate_over_tls_and_survive_a_killed_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..5 {
        let id = format!("lab-{i}");
        let o = run(
            &client_bin(),
            &["keygen", "--partner-id", &id, "--identity", &format!("{id}.key")],
            d,
        );
        assert!(o.status.success(), "{}", text(&o));
        let key = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        let o = run(
            &server_bin(),
            &["enrol", "--state", "state", "--partner-id", &id, "--public-key", &key],
            d,
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = run(
        &server_bin(),
        &["enrol", "--state", "state", "--partner-id", "lab-0", "--public-key", &"ab".repeat(32)],
        d,
    );
    assert_eq!(o.status.code(), Some(2), "re-enrolling with another key: {}", text(&o));

    let mut server = Command::new(server_bin())
        .args([
            "serve",
            "--state",
            "state",
            "--listen",
            "127.0.0.1:0",
            "--dataset",
            "digits",
            "--hidden",
            "16",
        ])
        .args(["--rounds", "8", "--min-clients", "3", "--privacy", "secagg", "--dp-epsilon", "30"])
        .args(["--phase-timeout", "10", "--join-timeout", "60"])
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.split_whitespace().nth(2).unwrap().to_owned();
    assert!(first.starts_with("listening on 127.0.0.1:"), "{first}");

    let mut clients: Vec<Child> = (0..5).map(|i| join(d, &addr, i)).collect();
    // Kill lab-4 once the federation is under way.
    let mut out = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let started = line.starts_with("round");
        out.push(line);
        if started {
            std::thread::sleep(Duration::from_millis(20));
            clients[4].kill().unwrap();
            break;
        }
    }
    out.extend(lines.map(Result::unwrap));
    let status = server.wait().unwrap();
    let log = out.join("\n");
    assert!(status.success(), "{log}");
    let rounds: Vec<&String> = out.iter().filter(|l| l.starts_with("round")).collect();
    assert_eq!(rounds.iter().filter(|l| !l.contains("aborted")).count(), 8, "{log}");
    let acc = out.iter().find(|l| l.starts_with("accuracy:")).unwrap();
    let nums: Vec<f64> = acc.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(nums[1] > nums[0] + 20.0, "{acc}");

    let mut client_eps = Vec::new();
    for (i, c) in clients.into_iter().enumerate().take(4) {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "lab-{i}: {}", text(&o));
        let done = String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.starts_with("done"))
            .unwrap()
            .to_owned();
        client_eps.push(done.rsplit(' ').next().unwrap().to_owned());
    }
    let o = run(&server_bin(), &["audit", "verify", "state"], d);
    assert!(o.status.success() && text(&o).contains("chain intact"), "{}", text(&o));
    let o = run(&server_bin(), &["budget", "--state", "state"], d);
    assert!(o.status.success(), "{}", text(&o));
    let budget = text(&o);
    for (i, eps) in client_eps.iter().enumerate() {
        let row = budget.lines().find(|l| l.starts_with(&format!("lab-{i} "))).unwrap();
        let spent = row.split_whitespace().nth(2).unwrap();
        assert_eq!(spent, eps, "server's ledger and lab-{i}'s report differ:\n{budget}");
    }
}
