//! Side-by-side comparisons against the anchors in `../shared/anchors`, in one run, as ratios.
//!
//! `cargo xtask bench-compare agg` (also `dp`, `train`, `he`, `flower`):
//! 1. builds and runs `bw.c` (memory bandwidth, the FedAvg floor),
//! 2. runs Flower's own aggregation functions through `bench_flower.py`,
//! 3. runs `fl-benches`' `agg_timing` on the same shapes,
//! 4. prints each rule's time, Flower's, the ratio, and the goal from the issue.
//!
//! The Python side needs `flwr` and `numpy`: set `ANCHOR_PYTHON` to an interpreter that has
//! them, or a virtual environment is created in `target/anchor-venv` (needs the package index).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::run;

const CONFIGS: &str = "100:100000,100:1000000";

pub(crate) fn compare(root: &Path, what: Option<&str>) -> Result<()> {
    match what {
        Some("agg") => agg(root),
        Some("dp") => dp(root),
        Some("train") => train(root),
        Some("he") => he(root),
        Some("flower") => flower(root),
        _ => bail!("usage: cargo xtask bench-compare <agg | dp | train | he | flower>"),
    }
}

/// fl-dp's accountant against dp-accounting: ε for q = 0.01, σ = 1.1, 10,000 steps over the
/// default orders, and σ calibration for ε = 1 (goals: ≥ 100× and ≥ 50× faster).
fn dp(root: &Path) -> Result<()> {
    let python = anchor_python(root)?;
    let py = python.to_string_lossy().into_owned();
    ensure_packages(root, &py, "dp_accounting", &["dp-accounting"])?;
    let script = root.join("benches/anchors/bench_dp_accounting.py");
    let out = stdout_of(root, Command::new(&py).arg(&script).arg("7"), "dp-accounting bench")?;
    let theirs: HashMap<String, f64> = out
        .lines()
        .filter_map(|l| {
            let task = l.split("\"task\": \"").nth(1)?.split('"').next()?.to_owned();
            Some((task, json_number(l, "median_s")?))
        })
        .collect();
    run(
        root,
        "fl-dp",
        "cargo",
        &["bench", "-p", "fl-dp", "--bench", "accountant", "--", "--save-baseline", "compare"],
        &[],
    )?;
    let ours = |id: &str| -> Result<f64> {
        let path =
            root.join(format!("target/criterion/rdp_accountant/{id}/compare/estimates.json"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let ns: f64 = text
            .split("\"median\":{")
            .nth(1)
            .and_then(|s| s.split("\"point_estimate\":").nth(1))
            .and_then(|s| s.split([',', '}']).next())
            .and_then(|s| s.trim().parse().ok())
            .context("criterion estimates without a median")?;
        Ok(ns * 1e-9)
    };
    println!("\n| task | fl-dp | dp-accounting | speed-up | goal |\n|---|---:|---:|---:|---|");
    for (task, id, goal) in [
        ("epsilon", "epsilon_q0.01_sigma1.1_steps10000_default_orders", 100.0),
        ("calibrate", "calibrate_eps1_q0.01_steps10000", 50.0),
    ] {
        let (o, t) = (ours(id)?, *theirs.get(task).context("missing dp-accounting timing")?);
        let r = t / o;
        let verdict = if r >= goal { "met" } else { "MISSED" };
        println!(
            "| {task} | {:.3} ms | {:.1} ms | {r:.0}× | ≥ {goal}× {verdict} |",
            o * 1e3,
            t * 1e3
        );
    }
    Ok(())
}

/// fl-train's MLP 784-128-10 training throughput against PyTorch on CPU (goal: within 2×).
fn train(root: &Path) -> Result<()> {
    let python = anchor_python(root)?;
    let py = python.to_string_lossy().into_owned();
    ensure_packages(root, &py, "torch", &["torch"])?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "batch sizes")]
    let parse = |text: &str| -> HashMap<u64, f64> {
        text.lines()
            .filter_map(|l| {
                Some((json_number(l, "batch")? as u64, json_number(l, "examples_per_s")?))
            })
            .collect()
    };
    let script = root.join("benches/anchors/bench_torch_mlp.py");
    let torch = stdout_of(root, Command::new(&py).arg(&script).arg("5"), "PyTorch bench")?;
    let ours = stdout_of(
        root,
        Command::new("cargo").args(["run", "--release", "--quiet", "-p", "fl-benches"]).args([
            "--bin",
            "train_timing",
            "--",
            "5",
        ]),
        "train_timing",
    )?;
    let (t, o) = (parse(&torch), parse(&ours));
    println!(
        "\n| MLP 784-128-10, batch | fl-train (examples/s) | PyTorch CPU, 2 threads | ratio | goal |\n|---|---:|---:|---:|---|"
    );
    for b in [64, 128] {
        let (Some(&ours), Some(&theirs)) = (o.get(&b), t.get(&b)) else {
            bail!("missing timing for batch {b}")
        };
        let r = ours / theirs;
        let verdict = if r >= 0.5 { "within 2× met" } else { "MISSED" };
        println!("| {b} | {ours:.0} | {theirs:.0} | {r:.2}× | {verdict} |");
    }
    Ok(())
}

/// fl-he's Paillier against python-paillier with gmpy2 (`../shared/anchors/bench_phe.py`),
/// 2048-bit keys. Goals (2 cores): encrypt ≥ 5×, decrypt ≥ 1.5× per operation; a 10,000-float
/// vector encrypted (packed) in ≤ 1 s; 100 such vectors summed and decrypted in ≤ 1 s.
fn he(root: &Path) -> Result<()> {
    let python = anchor_python(root)?;
    let py = python.to_string_lossy().into_owned();
    ensure_packages(root, &py, "phe, gmpy2", &["phe", "gmpy2"])?;
    let script = root.join("../shared/anchors/bench_phe.py");
    let phe_text = stdout_of(
        root,
        Command::new(&py)
            .arg(&script)
            .args(["--bits", "2048", "--reps", "3", "--batch", "10", "--vec", "1000"])
            .args(["--nvec", "10", "--keygen-runs", "3"]),
        "python-paillier bench",
    )?;
    // "encrypt_int   0.008005 cpu-s/op   124.93 ops/s ..."
    let theirs = |op: &str| -> Result<f64> {
        phe_text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(op))
            .and_then(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let at = words.iter().position(|w| *w == "ops/s")?;
                words.get(at.checked_sub(1)?)?.parse().ok()
            })
            .with_context(|| format!("python-paillier printed no rate for {op}"))
    };
    // "vector len 1000: encrypt 7.99 cpu-s ..." scaled to 10,000 values.
    let phe_vec_encrypt_s = phe_text
        .lines()
        .find(|l| l.starts_with("vector len"))
        .and_then(|l| l.split("encrypt ").nth(1)?.split_whitespace().next()?.parse::<f64>().ok())
        .context("python-paillier printed no vector timing")?
        * 10.0;
    let ours_text = stdout_of(
        root,
        Command::new("cargo")
            .args(["run", "--release", "--quiet", "-p", "fl-benches"])
            .args(["--bin", "he_timing"]),
        "he_timing",
    )?;
    let field = |op: &str, key: &str| -> Result<f64> {
        ours_text
            .lines()
            .find(|l| l.contains(&format!("\"op\": \"{op}\"")))
            .and_then(|l| json_number(l, key))
            .with_context(|| format!("he_timing printed no {key} for {op}"))
    };
    println!(
        "\n| operation (2048-bit) | fl-he, 2 cores (/s) | fl-he, 1 thread (/s) | phe+gmpy2 (/s) | ratio (2 cores) | goal |\n|---|---:|---:|---:|---:|---|"
    );
    for (ours_op, phe_op, goal) in [
        ("encrypt_obfuscator", "encrypt_int", Some(5.0)),
        ("encrypt_crt", "encrypt_int", None),
        ("encrypt_public", "encrypt_int", None),
        ("decrypt", "decrypt_int", Some(1.5)),
        ("add", "add_ct_ct", None),
        ("mul_int_scalar", "mul_ct_int_scalar", None),
    ] {
        let (two, one, t) = (
            field(ours_op, "ops_per_s_2cores")?,
            field(ours_op, "ops_per_s_1thread")?,
            theirs(phe_op)?,
        );
        let r = two / t;
        let verdict = match goal {
            Some(g) if r >= g => format!("≥ {g}× met"),
            Some(g) => format!("≥ {g}× MISSED"),
            None => String::new(),
        };
        println!("| {ours_op} | {two:.0} | {one:.0} | {t:.0} | {r:.2}× | {verdict} |");
    }
    let packed = field("vector_10k", "encrypt_packed_obfuscator_s")?;
    let packed_public = field("vector_10k", "encrypt_packed_public_s")?;
    let sum = field("sum_100_packed_10k", "total_s")?;
    println!("\n| task | fl-he | phe+gmpy2 | goal |\n|---|---:|---:|---|");
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "| 10,000 floats encrypted, packed (obfuscator) | {packed:.3} s | {phe_vec_encrypt_s:.1} s (element-wise, from 1,000) | ≤ 1 s {} |",
        met(packed <= 1.0)
    );
    println!(
        "| 10,000 floats encrypted, packed (public key only) | {packed_public:.3} s | | ≤ 1 s {} |",
        met(packed_public <= 1.0)
    );
    println!(
        "| 100 packed 10,000-float vectors summed + decrypted | {sum:.3} s | | ≤ 1 s {} |",
        met(sum <= 1.0)
    );
    Ok(())
}

/// The main job's federation (10 clients, MNIST, Dirichlet 0.5, MLP 784-128-10, FedProx) in
/// Flower's simulation engine and in `fl-server simulate`, seconds per round side by side.
fn flower(root: &Path) -> Result<()> {
    const ROUNDS: &str = "10";
    let python = anchor_python(root)?;
    let py = python.to_string_lossy().into_owned();
    ensure_packages(root, &py, "flwr, ray, torch", &["flwr[simulation]", "torch"])?;
    let text = stdout_of(
        root,
        Command::new(&py)
            .arg(root.join("benches/anchors/flower_federation.py"))
            .args(["--rounds", ROUNDS]),
        "Flower simulation",
    )?;
    let field = json_number;
    let flower_s = field(&text, "seconds_per_round").context("Flower printed no timing")?;
    let flower_acc = field(&text, "accuracy").unwrap_or(f64::NAN);
    run(root, "fl-server", "cargo", &["build", "--release", "-q", "-p", "fl-server"], &[])?;
    let mut rows = Vec::new();
    for (label, extra) in [
        ("fl-server simulate, no DP, no SecAgg", &["--privacy", "none", "--dp-epsilon", "0"][..]),
        ("fl-server simulate, SecAgg + DP-SGD (ε = 8)", &[][..]),
    ] {
        let dir = root.join("target/bench-compare-flower");
        let _ = std::fs::remove_dir_all(&dir);
        let status = Command::new(root.join("target/release/fl-server"))
            .args(["simulate", "--rounds", ROUNDS, "--dropout", "0", "--out"])
            .arg(&dir)
            .args(extra)
            .current_dir(root)
            .stdout(std::process::Stdio::null())
            .status()?;
        if !status.success() {
            bail!("fl-server simulate failed");
        }
        let run_dir = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .next()
            .context("no run")?;
        let report = std::fs::read_to_string(run_dir.join("report.json"))?;
        let mut secs: Vec<f64> = report
            .split("\"seconds\": ")
            .skip(1)
            .filter_map(|s| s.split([',', '}', '\n']).next()?.trim().parse().ok())
            .collect();
        secs.pop(); // the report's total
        let mut tail: Vec<f64> = secs.iter().skip(1).copied().collect();
        tail.sort_by(f64::total_cmp);
        let median = tail.get(tail.len() / 2).copied().unwrap_or(f64::NAN);
        let acc = field(&report, "final_accuracy").unwrap_or(f64::NAN);
        rows.push((label, median, acc));
    }
    println!(
        "\n| system ({ROUNDS} rounds, 10 clients) | s / round | final accuracy | Flower / ours |\n|---|---:|---:|---:|"
    );
    println!(
        "| Flower simulation (flwr + Ray, PyTorch) | {flower_s:.3} | {:.2} % | 1.0× |",
        100.0 * flower_acc
    );
    for (label, s, acc) in rows {
        println!("| {label} | {s:.3} | {:.2} % | {:.1}× |", 100.0 * acc, flower_s / s);
    }
    Ok(())
}

/// Installs `packages` into the anchor interpreter unless `import` already works there.
fn ensure_packages(root: &Path, py: &str, import: &str, packages: &[&str]) -> Result<()> {
    let probe = format!("import {import}");
    if !Command::new(py).args(["-c", &probe]).status().is_ok_and(|s| s.success()) {
        let mut args = vec!["-m", "pip", "install", "-q"];
        args.extend_from_slice(packages);
        run(root, "anchor packages", py, &args, &[])?;
    }
    Ok(())
}

/// Runs `cmd` in `root` and returns its standard output, or fails with its standard error.
fn stdout_of(root: &Path, cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.current_dir(root).output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The number after `"key": ` in a line of JSON the benchmarks print.
fn json_number(text: &str, key: &str) -> Option<f64> {
    text.split(&format!("\"{key}\": ")).nth(1)?.split([',', '}', '\n']).next()?.trim().parse().ok()
}

fn anchor_python(root: &Path) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ANCHOR_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let venv = root.join("target/anchor-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let v = venv.to_string_lossy().into_owned();
        run(root, "anchor venv", "python3", &["-m", "venv", &v], &[])?;
        let p = python.to_string_lossy().into_owned();
        run(root, "anchor packages", &p, &["-m", "pip", "install", "-q", "flwr", "numpy"], &[])?;
    }
    Ok(python)
}

fn read_csv(path: &Path) -> Result<Vec<HashMap<String, String>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("empty csv")?.split(',').collect();
    Ok(lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            header.iter().zip(l.split(',')).map(|(h, v)| ((*h).to_owned(), v.to_owned())).collect()
        })
        .collect())
}

fn medians(rows: &[HashMap<String, String>]) -> HashMap<(String, u64, u64), f64> {
    rows.iter()
        .filter_map(|r| {
            Some((
                (
                    r.get("aggregator")?.clone(),
                    r.get("n_clients")?.parse().ok()?,
                    r.get("d")?.parse().ok()?,
                ),
                r.get("median_s")?.parse().ok()?,
            ))
        })
        .collect()
}

fn bandwidth(root: &Path, out: &Path) -> Result<f64> {
    let bin = out.join("bw");
    let src = root.join("../shared/anchors/bw.c");
    let (s, b) = (src.to_string_lossy().into_owned(), bin.to_string_lossy().into_owned());
    run(root, "build bw.c", "gcc", &["-O3", "-march=native", "-fopenmp", &s, "-o", &b], &[])?;
    let output = Command::new(&bin).env("OMP_NUM_THREADS", "2").output().context("running bw")?;
    let text = String::from_utf8_lossy(&output.stdout);
    println!("{}", text.trim());
    text.split_whitespace()
        .find_map(|kv| kv.strip_prefix("read_sum_GBps=").and_then(|v| v.parse().ok()))
        .context("bw printed no read_sum_GBps")
}

fn agg(root: &Path) -> Result<()> {
    let out = root.join("target/bench-compare");
    std::fs::create_dir_all(&out)?;
    let gbps = bandwidth(root, &out)?;
    let python = anchor_python(root)?;
    let flower_csv = out.join("flower.csv");
    let ours_csv = out.join("fl-agg.csv");
    let script = root.join("../shared/anchors/bench_flower.py");
    run(
        root,
        "Flower",
        &python.to_string_lossy(),
        &[
            &script.to_string_lossy(),
            "--reps",
            "3",
            "--only",
            CONFIGS,
            "--skip",
            "bulyan@100:1000000",
            "--out",
            &flower_csv.to_string_lossy(),
        ],
        &[],
    )?;
    run(
        root,
        "fl-agg",
        "cargo",
        &[
            "run",
            "--release",
            "--quiet",
            "-p",
            "fl-benches",
            "--bin",
            "agg_timing",
            "--",
            "--reps",
            "5",
            "--only",
            CONFIGS,
            "--out",
            &ours_csv.to_string_lossy(),
        ],
        &[],
    )?;
    let flower = medians(&read_csv(&flower_csv)?);
    let ours = medians(&read_csv(&ours_csv)?);
    let goals: HashMap<(&str, u64, u64), f64> = HashMap::from([
        (("fedavg", 100, 1_000_000), 8.0),
        (("krum", 100, 1_000_000), 30.0),
        (("bulyan", 100, 100_000), 100.0),
        (("median", 100, 100_000), 10.0),
        (("trimmed_mean", 100, 100_000), 10.0),
    ]);
    println!();
    println!("| rule | N | d | fl-agg (ms) | Flower (ms) | speed-up | goal |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    let mut keys: Vec<_> = ours.keys().cloned().collect();
    keys.sort_by(|a, b| (a.2, a.1, &a.0).cmp(&(b.2, b.1, &b.0)));
    let mut missed = Vec::new();
    for key in keys {
        let ours_s = ours[&key];
        let (name, n, d) = (&key.0, key.1, key.2);
        let Some(&theirs) = flower.get(&key) else {
            println!("| {name} | {n} | {d} | {:.2} | — | — | |", ours_s * 1e3);
            continue;
        };
        let ratio = theirs / ours_s;
        let goal = goals.get(&(name.as_str(), n, d));
        let verdict = match goal {
            Some(&g) if ratio >= g => format!("≥ {g}× met"),
            Some(&g) => {
                missed.push(format!("{name} N={n} d={d}: {ratio:.1}× < {g}×"));
                format!("≥ {g}× MISSED")
            }
            None => String::new(),
        };
        println!(
            "| {name} | {n} | {d} | {:.2} | {:.1} | {ratio:.1}× | {verdict} |",
            ours_s * 1e3,
            theirs * 1e3
        );
    }
    #[allow(clippy::cast_precision_loss, reason = "byte counts")]
    let floor_s = (100.0 * 1e6 * 4.0) / (gbps * 1e9);
    for name in ["fedavg", "fedavg_inplace_no_decode"] {
        if let Some(&t) = ours.get(&(name.to_owned(), 100, 1_000_000)) {
            let r = t / floor_s;
            println!(
                "{name} N=100 d=1e6: {:.2} ms vs bandwidth floor {:.2} ms ({gbps:.1} GB/s read): {r:.2}× floor (goal ≤ 1.3×)",
                t * 1e3,
                floor_s * 1e3
            );
            if r > 1.3 {
                missed.push(format!("{name}: {r:.2}× the bandwidth floor"));
            }
        }
    }
    if missed.is_empty() {
        println!("all goals met");
    } else {
        println!("goals missed: {}", missed.join("; "));
    }
    Ok(())
}
