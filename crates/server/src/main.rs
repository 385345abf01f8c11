//! `fl-server`: thin command-line front end. Each command parses its arguments and calls one
//! library function; errors are one line on stderr.
//!
//! Exit codes: 0 success; 1 the command failed (bad data, a failed round, a tampered log);
//! 2 invalid arguments (clap's usage errors and invalid configurations).

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a CLI reports to the terminal")]

mod args;
mod serve;
mod simulate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "fl-server", version, about = "mshale-fl federation server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a whole federation in this process on the shipped data (the README's main job).
    Simulate(Box<simulate::SimulateArgs>),
    /// Run a federation over the network (TLS, enrolled partners, signed updates).
    Serve(Box<serve::ServeArgs>),
    /// Enrol a partner: record its id and ed25519 public key in the state directory.
    Enrol(serve::EnrolArgs),
    /// Deal a threshold Paillier key (trusted dealer): the public file for `serve
    /// --paillier-key` and one secret key file per partner for `fl-client join --paillier-key`.
    PaillierDeal(serve::PaillierDealArgs),
    /// Issue an API key for a partner's tier-1/2 submissions (printed once; only its hash is kept).
    Apikey(serve::ApiKeyArgs),
    /// Accept tier-1/2 submissions (ProtocolSpec JSON, feature vectors) until stopped.
    Ingest(serve::IngestArgs),
    /// Show the privacy budget of a partner (or of all partners) from a state directory.
    Budget {
        /// State directory holding `budget.ledger`.
        #[arg(long, default_value = "fl-state")]
        state: PathBuf,
        /// Partner id; all partners when omitted.
        #[arg(long)]
        partner_id: Option<String>,
        /// Model version the budget is kept for.
        #[arg(long, default_value_t = 0)]
        model_version: u64,
    },
    /// Audit log commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Verify a hash-chain audit log (a state directory or the log file itself).
    Verify {
        /// State directory or `audit.log` path.
        path: PathBuf,
    },
}

/// A failure and the exit code it maps to.
pub(crate) struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error = e.into();
        let code = match error.downcast_ref::<fl_net::Error>() {
            Some(fl_net::Error::Config { .. } | fl_net::Error::Auth(_)) => 2,
            _ => 1,
        };
        Self { code, error }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => simulate::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Enrol(args) => serve::enrol(&args),
        Command::Apikey(args) => serve::apikey(&args),
        Command::PaillierDeal(args) => serve::paillier_deal(&args),
        Command::Ingest(args) => serve::ingest(&args),
        Command::Budget { state, partner_id, model_version } => {
            budget(&state, partner_id.as_deref(), model_version)
        }
        Command::Audit { command: AuditCommand::Verify { path } } => audit_verify(&path),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", fl_core::display_chain(f.error.as_ref()));
            ExitCode::from(f.code)
        }
    }
}

fn budget(state: &std::path::Path, partner: Option<&str>, version: u64) -> Result<(), Failure> {
    let path = state.join("budget.ledger");
    if !path.exists() {
        return Err(anyhow::anyhow!("no budget ledger at {}", path.display()).into());
    }
    let ledger = fl_dp::Ledger::open(&path, &fl_dp::LedgerConfig::default())?;
    let version = fl_core::ModelVersion(version);
    let partners: Vec<fl_core::PartnerId> = match partner {
        Some(p) => vec![fl_core::PartnerId::new(p)?],
        None => {
            ledger.accounts()?.into_iter().filter(|(_, v)| *v == version).map(|(p, _)| p).collect()
        }
    };
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>8}  status",
        "partner", "ε budget", "ε spent", "remaining", "δ"
    );
    for p in partners {
        let s = ledger.status(&p, version)?;
        println!(
            "{:<24} {:>10.4} {:>10.4} {:>9.1}% {:>8.0e}  {}",
            p.as_str(),
            s.budget.epsilon(),
            s.spent_epsilon,
            s.remaining_fraction * 100.0,
            s.budget.delta(),
            if s.paused { "paused (below 10 % remaining)" } else { "active" }
        );
    }
    Ok(())
}

fn audit_verify(path: &std::path::Path) -> Result<(), Failure> {
    let file = if path.is_dir() { path.join("audit.log") } else { path.to_path_buf() };
    let report = fl_audit::verify_file(&file, None)?;
    let head = report.head.map(|h| h.anchor()).unwrap_or_default();
    println!("{}: {} records, chain intact, head {head}", file.display(), report.records);
    Ok(())
}
