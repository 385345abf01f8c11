//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci` — everything CI checks, in order: format, clippy, tests, docs, cargo-deny.
//! - `fuzz [SECONDS]` — every fuzz target for SECONDS each (default 10), on the stable toolchain.
//! - `bench-compare agg` — fl-agg and Flower's own aggregation functions on the same shapes in one
//!   run, with the memory-bandwidth floor; prints ratios against the goals.
//! - `bench-compare dp | train | he` — fl-dp against dp-accounting, fl-train against PyTorch,
//!   fl-he against python-paillier with gmpy2; each in one run, as ratios.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a task runner reports to the terminal"
)]

mod compare;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    match args.first().map(String::as_str) {
        Some("ci") => ci(&root),
        Some("bench-compare") => compare::compare(&root, args.get(1).map(String::as_str)),
        Some("fuzz") => {
            let secs = args.get(1).map_or(Ok(10), |s| s.parse::<u64>()).context("SECONDS")?;
            fuzz(&root, secs)
        }
        _ => {
            eprintln!("usage: cargo xtask <ci | fuzz [SECONDS] | bench-compare agg|dp|train|he>");
            bail!("unknown or missing command")
        }
    }
}

/// The workspace root: xtask sits one level below it.
fn project_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or(manifest.clone(), Path::to_path_buf)
}

pub(crate) fn run(
    root: &Path,
    label: &str,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<()> {
    let start = Instant::now();
    eprintln!("==> {label}: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root)
        .status()
        .with_context(|| format!("starting {program}"))?;
    eprintln!("<== {label}: {status} in {:.1}s", start.elapsed().as_secs_f64());
    if !status.success() {
        bail!("{label} failed ({status})");
    }
    Ok(())
}

pub(crate) fn have(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).output().is_ok_and(|o| o.status.success())
}

fn ci(root: &Path) -> Result<()> {
    let start = Instant::now();
    run(root, "format", "cargo", &["fmt", "--all", "--check"], &[])?;
    run(
        root,
        "clippy",
        "cargo",
        &["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"],
        &[],
    )?;
    run(root, "tests", "cargo", &["test", "--workspace", "--locked"], &[])?;
    run(
        root,
        "docs",
        "cargo",
        &["doc", "--workspace", "--no-deps", "--locked"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    if !have("cargo-deny", "--version") {
        run(root, "install cargo-deny", "cargo", &["install", "cargo-deny", "--locked"], &[])?;
    }
    // Advisories need the RustSec database, which cannot be fetched offline; they are reviewed
    // by hand (see deny.toml) rather than checked here.
    run(root, "cargo-deny", "cargo", &["deny", "check", "licenses", "bans", "sources"], &[])?;
    eprintln!("ci passed in {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}

fn fuzz(root: &Path, secs: u64) -> Result<()> {
    if !have("cargo-fuzz", "--version") {
        run(root, "install cargo-fuzz", "cargo", &["install", "cargo-fuzz", "--locked"], &[])?;
    }
    let fuzz_dir = root.join("fuzz");
    let targets = std::fs::read_dir(fuzz_dir.join("fuzz_targets"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect::<Vec<_>>();
    let time = format!("-max_total_time={secs}");
    for target in &targets {
        run(
            &fuzz_dir,
            &format!("fuzz {target}"),
            "cargo",
            &["fuzz", "run", "--sanitizer", "none", target, "--", &time],
            &[],
        )?;
    }
    Ok(())
}
