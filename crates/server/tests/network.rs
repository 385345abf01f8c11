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
/// directory. Build it (a no-op when `cargo test --workspace` already did) so it is never stale.
fn client_bin() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let profile_release = server_bin().parent().is_some_and(|d| d.ends_with("release"));
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "fl-client", "--bin", "fl-client"]);
        if profile_release {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "building fl-client");
    });
    server_bin().with_file_name(format!("fl-client{}", std::env::consts::EXE_SUFFIX))
}

/// Creates identities `lab-0.key` … with `fl-client keygen` and enrols them in each state
/// directory with `fl-server enrol`.
fn enrol_labs(d: &Path, n: usize, states: &[&str]) {
    for i in 0..n {
        let id = format!("lab-{i}");
        let o = run(
            &client_bin(),
            &["keygen", "--partner-id", &id, "--identity", &format!("{id}.key")],
            d,
        );
        assert!(o.status.success(), "{}", text(&o));
        let key = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        for state in states {
            let o = run(
                &server_bin(),
                &["enrol", "--state", state, "--partner-id", &id, "--public-key", &key],
                d,
            );
            assert!(o.status.success(), "{}", text(&o));
        }
    }
}

/// Kills a child process when dropped, so a failing assertion never leaves a server running.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(bin: &Path, args: &[&str], cwd: &Path) -> Output {
    Command::new(bin).args(args).current_dir(cwd).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `fl-client join` as `lab-{i}` with shard `i/n` of digits, trusting `state`'s certificate.
fn join(dir: &Path, state: &str, addr: &str, i: usize, n: usize) -> Child {
    join_with(dir, state, addr, i, n, &[])
}

fn join_with(dir: &Path, state: &str, addr: &str, i: usize, n: usize, extra: &[&str]) -> Child {
    Command::new(client_bin())
        .args(["join", "--server", addr, "--ca", &format!("{state}/tls/cert.pem")])
        .args(["--identity", &format!("lab-{i}.key"), "--dataset", "digits", "--hidden", "16"])
        .args(["--shard", &format!("{i}/{n}"), "--idle-timeout", "60"])
        .args(extra)
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
    enrol_labs(d, 5, &["state"]);
    let o = run(
        &server_bin(),
        &["enrol", "--state", "state", "--partner-id", "lab-0", "--public-key", &"ab".repeat(32)],
        d,
    );
    assert_eq!(o.status.code(), Some(2), "re-enrolling with another key: {}", text(&o));

    let (mut server, mut lines, addr) = serve(d, "state", "8", "3", "secagg");

    let mut clients: Vec<Child> = (0..5).map(|i| join(d, "state", &addr, i, 5)).collect();
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
    let status = server.0.wait().unwrap();
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
        let b = run(&client_bin(), &["budget", "--identity", &format!("lab-{i}.key")], d);
        assert!(
            b.status.success() && text(&b).contains(client_eps.last().unwrap()),
            "{}",
            text(&b)
        );
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

#[test]
fn tier_one_and_two_submissions_are_checked_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let corpus = d.join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    let wlp =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/protocols/wlp/test");
    for n in ["protocol_103", "protocol_106", "protocol_122"] {
        std::fs::copy(wlp.join(format!("{n}.txt")), corpus.join(format!("{n}.txt"))).unwrap();
    }
    let o = run(
        &client_bin(),
        &["extract", "--tier", "2", "--corpus", "corpus", "--output", "specs"],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&server_bin(), &["apikey", "--state", "state", "--partner-id", "lab-a"], d);
    assert!(o.status.success(), "{}", text(&o));
    let key = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(!std::fs::read_to_string(d.join("state/apikeys.json")).unwrap().contains(&key));

    let mut server = Reaper(
        Command::new(server_bin())
            .args(["ingest", "--state", "state", "--listen", "127.0.0.1:0"])
            .current_dir(d)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.split_whitespace().nth(3).unwrap().to_owned();
    let submit = |extra: &[&str], key: &str| {
        let mut args = vec![
            "submit",
            "--specs",
            "specs",
            "--server",
            &addr,
            "--ca",
            "state/tls/cert.pem",
            "--api-key",
            key,
        ];
        args.extend_from_slice(extra);
        run(&client_bin(), &args, d)
    };
    let o = submit(&[], &key);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).matches("stored").count(), 3, "{}", text(&o));
    // Level 1 forbids specs: refused locally, nothing is sent.
    let o = submit(&["--sensitivity", "1"], &key);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("feature vectors only"), "{}", text(&o));
    // Feature vectors at level 1 need a DPA.
    let o = submit(&["--tier", "2", "--sensitivity", "1", "--agreement", "dpa:DPA-7"], &key);
    assert!(o.status.success(), "{}", text(&o));
    let o = submit(&[], &"0".repeat(64));
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("unknown API key"), "{}", text(&o));
    drop(server);
    let stored: Vec<String> = std::fs::read_dir(d.join("state/submissions/lab-a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(stored.iter().filter(|n| n.starts_with("ProtocolSpec-")).count(), 3, "{stored:?}");
    assert_eq!(stored.iter().filter(|n| n.starts_with("FeatureVector-")).count(), 3, "{stored:?}");
}

type Served = (Reaper, std::io::Lines<BufReader<std::process::ChildStdout>>, String);

fn serve(d: &Path, state: &str, rounds: &str, min_clients: &str, privacy: &str) -> Served {
    serve_with(d, state, rounds, min_clients, privacy, &[])
}

fn serve_with(
    d: &Path,
    state: &str,
    rounds: &str,
    min_clients: &str,
    privacy: &str,
    extra: &[&str],
) -> Served {
    let mut server = Reaper(
        Command::new(server_bin())
            .args([
                "serve",
                "--state",
                state,
                "--listen",
                "127.0.0.1:0",
                "--dataset",
                "digits",
                "--hidden",
                "16",
            ])
            .args([
                "--rounds",
                rounds,
                "--min-clients",
                min_clients,
                "--privacy",
                privacy,
                "--dp-epsilon",
                if privacy == "none" { "0" } else { "30" },
            ])
            .args(["--phase-timeout", "10", "--join-timeout", "60"])
            .args(extra)
            .current_dir(d)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let listening =
        lines.by_ref().map(Result::unwrap).find(|l| l.starts_with("listening on")).unwrap();
    let addr = listening.split_whitespace().nth(2).unwrap().to_owned();
    (server, lines, addr)
}

fn spent(d: &Path, state: &str) -> Vec<String> {
    let o = run(&server_bin(), &["budget", "--state", state], d);
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn a_killed_server_resumes_from_its_checkpoint_without_double_charging() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    enrol_labs(d, 4, &["state", "reference"]);
    // An uninterrupted 6-round federation, for the budgets.
    let (mut server, lines, addr) = serve(d, "reference", "6", "4", "secagg");
    let clients: Vec<Reaper> = (0..4).map(|i| Reaper(join(d, "reference", &addr, i, 4))).collect();
    assert_eq!(
        lines
            .map(Result::unwrap)
            .filter(|l| l.starts_with("round") && !l.contains("aborted"))
            .count(),
        6
    );
    assert!(server.0.wait().unwrap().success());
    drop(clients);

    // The same federation, with the server killed (SIGKILL) right after round 3.
    let (server, mut lines, addr) = serve(d, "state", "6", "4", "secagg");
    let clients: Vec<Reaper> = (0..4).map(|i| Reaper(join(d, "state", &addr, i, 4))).collect();
    assert!(lines.by_ref().map(Result::unwrap).any(|l| l.starts_with("round   3")));
    drop(server);
    drop(clients);
    let (mut server, lines, addr) = serve(d, "state", "6", "4", "secagg");
    let clients: Vec<Reaper> = (0..4).map(|i| Reaper(join(d, "state", &addr, i, 4))).collect();
    let out: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(server.0.wait().unwrap().success(), "{out:?}");
    drop(clients);
    let rounds: Vec<&String> =
        out.iter().filter(|l| l.starts_with("round") && !l.contains("aborted")).collect();
    assert_eq!(rounds.len(), 3, "{out:?}");
    assert!(rounds[0].starts_with("round   4"), "{out:?}");
    // Genesis, six rounds and the restart's `resumed` event.
    let o = run(&server_bin(), &["audit", "verify", "state"], d);
    assert!(o.status.success() && text(&o).contains("8 records"), "{}", text(&o));
    assert_eq!(spent(d, "state"), spent(d, "reference"));
}

#[test]
fn the_server_process_refuses_bad_clients_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    enrol_labs(d, 3, &["state"]);
    let mut rng = fl_dp::csprng().unwrap();
    let mallory =
        fl_net::auth::Identity::generate(fl_core::PartnerId::new("mallory").unwrap(), &mut rng);
    let o = run(
        &server_bin(),
        &[
            "enrol",
            "--state",
            "state",
            "--partner-id",
            "mallory",
            "--public-key",
            &mallory.public_key_hex(),
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        &client_bin(),
        &["keygen", "--partner-id", "stranger", "--identity", "stranger.key"],
        d,
    );
    assert!(o.status.success());

    let (mut server, lines, addr) = serve(d, "state", "3", "3", "none");
    let ca = d.join("state/tls/cert.pem");
    let o = run(
        &client_bin(),
        &[
            "join",
            "--server",
            &addr,
            "--ca",
            "state/tls/cert.pem",
            "--identity",
            "stranger.key",
            "--dataset",
            "digits",
            "--hidden",
            "16",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not enrolled"), "{}", text(&o));
    let rt = tokio::runtime::Runtime::new().unwrap();
    for bytes in [&[7, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3][..], &(1u32 << 20).to_le_bytes()] {
        assert!(rt.block_on(fl_net::adversary::garbage(&addr, &ca, bytes)).unwrap());
    }
    assert!(rt.block_on(fl_net::adversary::oversized(&addr, &ca, &mallory)).unwrap());
    let in_round = {
        let (addr, ca) = (addr.clone(), ca.clone());
        rt.spawn(async move { fl_net::adversary::in_round(&addr, &ca, &mallory).await })
    };
    std::thread::sleep(Duration::from_millis(500));
    let clients: Vec<Reaper> = (0..3).map(|i| Reaper(join(d, "state", &addr, i, 3))).collect();
    let out: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(server.0.wait().unwrap().success(), "{out:?}");
    for mut c in clients {
        assert!(c.0.wait().unwrap().success());
    }
    assert!(rt.block_on(in_round).unwrap().unwrap(), "the replay closes mallory's session");
    let log = out.join("\n");
    assert_eq!(
        out.iter().filter(|l| l.starts_with("round") && !l.contains("aborted")).count(),
        3,
        "{log}"
    );
    for needle in ["not enrolled", "non-finite", "signed round", "replayed", "exceeds", "malformed"]
    {
        assert!(
            out.iter().any(|l| l.starts_with("refused") && l.contains(needle)),
            "no refusal for {needle:?}:\n{log}"
        );
    }
}

#[test]
fn three_processes_federate_under_threshold_paillier() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    enrol_labs(d, 3, &["state"]);
    let deal = ["paillier-deal", "--partners", "lab-0,lab-1,lab-2", "--threshold", "2"];
    let o = run(&server_bin(), &[&deal[..], &["--out", "keys"]].concat(), d);
    assert!(o.status.success(), "{}", text(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("keys/lab-0.paillier-key")).unwrap().permissions();
        assert_eq!(mode.mode() & 0o777, 0o600, "a secret key file readable by others");
    }
    let again = run(&server_bin(), &[&deal[..], &["--out", "keys"]].concat(), d);
    assert_eq!(again.status.code(), Some(2), "re-dealt over existing keys: {}", text(&again));
    let small = run(&server_bin(), &[&deal[..], &["--out", "weak", "--bits", "1024"]].concat(), d);
    assert_eq!(small.status.code(), Some(2), "dealt a 1024-bit key: {}", text(&small));

    let key = ["--paillier-key", "keys/paillier-public.json"];
    let (mut server, lines, addr) = serve_with(d, "state", "3", "2", "paillier", &key);
    let clients: Vec<Child> = (0..3)
        .map(|i| {
            let k = format!("keys/lab-{i}.paillier-key");
            join_with(d, "state", &addr, i, 3, &["--paillier-key", &k])
        })
        .collect();
    let out: Vec<String> = lines.map(Result::unwrap).collect();
    let status = server.0.wait().unwrap();
    let log = out.join("\n");
    assert!(status.success(), "{log}");
    let rounds: Vec<&String> = out.iter().filter(|l| l.starts_with("round")).collect();
    assert_eq!(rounds.len(), 3, "{log}");
    assert!(rounds.iter().all(|l| !l.contains("aborted")), "{log}");
    let acc = out.iter().find(|l| l.starts_with("accuracy:")).unwrap();
    let nums: Vec<f64> = acc.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(nums[1] > nums[0] + 20.0, "{acc}");
    for (i, c) in clients.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "lab-{i}: {}", text(&o));
    }
    let v = run(&server_bin(), &["audit", "verify", "state"], d);
    assert!(v.status.success(), "{}", text(&v));
}
