//! `fl-client`: the partner's command-line front end. Everything here runs locally: `extract`
//! turns lab protocols into tier-1 specs (and tier-2 feature vectors), `inspect` shows exactly
//! what would be sent and whether the sensitivity policy lets it out.
//!
//! Exit codes: 0 success; 1 the command failed (unreadable input, unwritable output, invalid
//! files); 2 invalid arguments.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a CLI reports to the terminal")]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use fl_tiers::features::{features, privatize};
use fl_tiers::policy::{Agreement, AgreementKind, Sensitivity};
use fl_tiers::spec::ProtocolSpec;

#[derive(Parser, Debug)]
#[command(
    name = "fl-client",
    version,
    about = "mshale-fl partner client (local extraction and inspection)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Extract ProtocolSpec JSON (tier 1) and feature vectors (tier 2) from `*.txt` protocols,
    /// locally; nothing is sent.
    Extract {
        /// 1: `<name>.spec.json` per protocol; 2: also `<name>.features.json`.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        tier: u8,
        /// Directory of protocol text files (first line = title, one step per line).
        #[arg(long)]
        corpus: PathBuf,
        /// Output directory (created if missing).
        #[arg(long)]
        output: PathBuf,
        /// Local DP on feature vectors (tier 2): ε per vector; none when omitted.
        #[arg(long)]
        dp_epsilon: Option<f64>,
        /// δ of the local DP release.
        #[arg(long, default_value_t = 1e-5)]
        dp_delta: f64,
        /// L2 clip norm C of the feature vector before noise (sensitivity 2C).
        #[arg(long, default_value_t = 8.0)]
        dp_clip: f64,
    },
    /// Show what would be sent for a directory of specs, and the policy decision for each.
    Inspect {
        /// Directory of `*.spec.json` files.
        #[arg(long)]
        specs: PathBuf,
        /// Also list the non-zero feature-vector dimensions by name.
        #[arg(long)]
        show_features: bool,
        /// Sensitivity level of the source protocols: 0 public, 1 anonymised, 2 outcomes,
        /// 3 proprietary.
        #[arg(long, default_value_t = 0)]
        sensitivity: u8,
        /// A recorded agreement, `dpa:ID`, `irb:ID` or `training:ID` (repeatable).
        #[arg(long = "agreement")]
        agreements: Vec<String>,
    },
}

fn parse_agreement(s: &str) -> Result<Agreement> {
    let (kind, id) = s.split_once(':').context("an agreement is KIND:ID (dpa, irb, training)")?;
    let kind = match kind {
        "dpa" => AgreementKind::Dpa,
        "irb" => AgreementKind::Irb,
        "training" => AgreementKind::FederatedTraining,
        other => bail!("unknown agreement kind {other:?} (dpa, irb, training)"),
    };
    Ok(Agreement::new(kind, id)?)
}

fn extract(tier: u8, corpus: &Path, output: &Path, dp: Option<(f64, f64, f64)>) -> Result<()> {
    let report = fl_tiers::spec::extract_dir(corpus, output)?;
    if report.written == 0 {
        bail!("{}: no .txt protocols found", corpus.display());
    }
    #[allow(clippy::cast_precision_loss, reason = "file counts")]
    let rate = report.written as f64 / report.seconds.max(1e-9);
    println!(
        "tier 1: {} ProtocolSpec files in {} ({:.2} s, {rate:.0} protocols/s)",
        report.written,
        output.display(),
        report.seconds
    );
    if tier == 2 {
        let mut rng = rand::rngs::ChaCha20Rng::from_rng(&mut rand::rng());
        let mut n = 0;
        let mut paths: Vec<PathBuf> = std::fs::read_dir(output)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".spec.json"))
            .collect();
        paths.sort();
        for p in paths {
            let spec = ProtocolSpec::from_json(&std::fs::read_to_string(&p)?)
                .with_context(|| format!("reading {}", p.display()))?;
            let mut fv = features(&spec);
            if let Some((epsilon, delta, clip)) = dp {
                fv = privatize(&fv, epsilon, delta, clip, &mut rng)?;
            }
            let name =
                p.to_string_lossy().trim_end_matches(".spec.json").to_owned() + ".features.json";
            std::fs::write(&name, serde_json::to_string(&fv)?)
                .with_context(|| format!("writing {name}"))?;
            n += 1;
        }
        let dp_note = dp.map_or_else(
            || "no local DP".to_owned(),
            |(e, d, c)| format!("local DP ε = {e}, δ = {d}, C = {c}"),
        );
        println!("tier 2: {n} feature vectors (223 dims, {dp_note})");
    }
    Ok(())
}

use rand::SeedableRng;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Extract { tier, corpus, output, dp_epsilon, dp_delta, dp_clip } => {
            extract(tier, &corpus, &output, dp_epsilon.map(|e| (e, dp_delta, dp_clip)))
        }
        Command::Inspect { specs, show_features, sensitivity, agreements } => (|| {
            let level = Sensitivity::from_level(sensitivity)?;
            let agreements =
                agreements.iter().map(|a| parse_agreement(a)).collect::<Result<Vec<_>>>()?;
            let report = fl_tiers::inspect::inspect(&specs, level, &agreements, show_features)?;
            print!("{report}");
            Ok(())
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let usage = e
                .downcast_ref::<fl_tiers::Error>()
                .is_some_and(|e| matches!(e, fl_tiers::Error::InvalidParameter { .. }));
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
