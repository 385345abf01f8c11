//! `fl-server simulate`: a whole federation in this process (fl-net's in-memory transport).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use fl_net::SimulationConfig;
use fl_net::simulation::{AttackKind as Attack, Partition, RoundReport, SimAttack, SimDataset};
use indicatif::{ProgressBar, ProgressStyle};

use crate::Failure;
use crate::args::FederationArgs;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum AttackArg {
    None,
    SignFlip,
    Gaussian,
    Scaling,
    Alie,
    Ipm,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum PartitionArg {
    Iid,
    Dirichlet,
    Shards,
}

/// Defaults: 10 clients on MNIST with Dirichlet(0.5) label skew, FedProx (μ = 0.01), SecAgg,
/// DP-SGD with a per-partner budget, 10 % dropout, the audit log.
#[derive(Args, Debug)]
pub(crate) struct SimulateArgs {
    #[command(flatten)]
    federation: FederationArgs,
    /// Number of clients.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Clients selected per round (default: all).
    #[arg(long)]
    clients_per_round: Option<usize>,
    /// Smallest number of updates for a round to count (default: 60 % of those selected).
    #[arg(long)]
    min_clients: Option<usize>,
    /// Rounds.
    #[arg(long, default_value_t = 30)]
    rounds: u64,
    /// How the training set is split.
    #[arg(long, value_enum, default_value = "dirichlet")]
    partition: PartitionArg,
    /// Dirichlet α (smaller: more skew).
    #[arg(long, default_value_t = 0.5)]
    alpha: f64,
    /// Shards per client (--partition shards).
    #[arg(long, default_value_t = 2)]
    shards: usize,
    /// Probability that a selected client drops out of a round (at a random phase).
    #[arg(long, default_value_t = 0.1)]
    dropout: f64,
    /// Byzantine attack (needs --privacy none).
    #[arg(long, value_enum, default_value = "none")]
    attack: AttackArg,
    /// Number of attacking clients.
    #[arg(long, default_value_t = 1)]
    attackers: usize,
    /// Output directory; each run writes a new `run-<time>` directory inside it.
    #[arg(long, default_value = "simulate-out")]
    out: PathBuf,
}

impl PartitionArg {
    pub(crate) fn partition(self, alpha: f64, shards: usize) -> Partition {
        match self {
            Self::Iid => Partition::Iid,
            Self::Dirichlet => Partition::Dirichlet { alpha },
            Self::Shards => Partition::Shards { per_client: shards },
        }
    }
}

impl SimulateArgs {
    fn config(&self, state_dir: PathBuf) -> Result<SimulationConfig, fl_net::Error> {
        let selected = self.clients_per_round.unwrap_or(self.clients);
        // Default quorum: 60 % of those selected, but never below what the rule aggregates
        // (Krum's 2f + 3, Bulyan's 4f + 3), so dropouts skip a round rather than end the run.
        let min_clients = match self.min_clients {
            Some(m) => m,
            None => {
                let rule =
                    self.federation.aggregator_kind()?.build().map_or(1, |r| r.min_updates());
                (selected * 3).div_ceil(5).max(rule).min(selected.max(1))
            }
        };
        let attack = match self.attack {
            AttackArg::None => None,
            AttackArg::SignFlip => Some(Attack::SignFlip { scale: 1.0 }),
            AttackArg::Gaussian => Some(Attack::GaussianNoise { sigma: 1.0 }),
            AttackArg::Scaling => Some(Attack::Scaling { factor: 10.0 }),
            AttackArg::Alie => Some(Attack::Alie { z: None }),
            AttackArg::Ipm => Some(Attack::Ipm { epsilon: 0.5 }),
        }
        .map(|attack| SimAttack { attack, attackers: self.attackers });
        Ok(SimulationConfig {
            federation: self.federation.config(
                "fl-server simulate",
                self.rounds,
                selected,
                min_clients,
            )?,
            dataset: SimDataset::parse(&self.federation.dataset)?,
            num_clients: self.clients,
            partition: self.partition.partition(self.alpha, self.shards),
            hidden: self.federation.hidden.clone(),
            dropout_rate: self.dropout,
            attack,
            seed: self.federation.seed,
            state_dir,
        })
    }
}

fn fmt_eps(e: Option<f64>) -> String {
    e.map_or_else(|| "-".into(), |e| format!("{e:.3}"))
}

fn row(r: &RoundReport) -> String {
    match &r.aborted {
        Some(reason) => format!("{:>5}  aborted: {reason}", r.round),
        None => format!(
            "{:>5} {:>9.2}% {:>8.4} {:>9} {:>8} {:>8} {:>9} {:>8.2}s",
            r.round,
            100.0 * r.accuracy,
            r.loss,
            format!("{}/{}", r.included, r.selected),
            r.dropped,
            fmt_eps(r.epsilon_max),
            fmt_eps(r.epsilon_mean),
            r.seconds
        ),
    }
}

pub(crate) fn run(args: &SimulateArgs) -> Result<(), Failure> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let dir = args.out.join(format!("run-{stamp}"));
    let cfg = args.config(dir.clone())?;
    cfg.federation.validate()?;
    println!(
        "simulating {} clients on {} ({:?}), {} rounds, {:?}, privacy {}, DP {}",
        cfg.num_clients,
        args.federation.dataset,
        cfg.partition,
        cfg.federation.rounds,
        cfg.federation.aggregator,
        cfg.federation.privacy.name(),
        match cfg.federation.dp {
            fl_net::DpSetting::LocalSgd { epsilon, delta, .. } =>
                format!("DP-SGD, budget ε = {epsilon}, δ = {delta} per partner"),
            fl_net::DpSetting::Central { epsilon, delta, .. } => format!(
                "central (DP-FedAvg: server noise on the sum), budget ε = {epsilon}, δ = {delta} per partner"
            ),
            _ => "off".into(),
        }
    );
    println!("state and reports: {}", dir.display());
    let bar = ProgressBar::new(cfg.federation.rounds);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} round {pos}/{len} [{bar:30}] {elapsed_precise} (eta {eta})",
        )
        .map_err(|e| anyhow::anyhow!("progress template: {e}"))?
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    // Without a terminal the bar is hidden, and so is its println: print the table directly.
    let line = |s: String| if bar.is_hidden() { println!("{s}") } else { bar.println(s) };
    line(format!(
        "{:>5} {:>10} {:>8} {:>9} {:>8} {:>8} {:>9} {:>9}",
        "round", "accuracy", "loss", "included", "dropped", "ε max", "ε mean", "time"
    ));
    let report = fl_net::simulate(&cfg, &mut |r| {
        line(row(r));
        bar.inc(1);
    });
    bar.finish_and_clear();
    let report = report?;
    let json = dir.join("report.json");
    let svg = dir.join("accuracy.svg");
    fl_net::report::write_json(&report, &json)?;
    fl_net::report::write_svg(&report, &svg)?;
    println!(
        "final test accuracy {:.2} % (initial {:.2} %), {} parameters, {:.1} s",
        100.0 * report.final_accuracy,
        100.0 * report.initial_accuracy,
        report.model_parameters,
        report.seconds
    );
    if let Some(max) = report.budgets.iter().map(|b| b.epsilon_spent).reduce(f64::max) {
        let paused = report.budgets.iter().filter(|b| b.paused).count();
        println!(
            "privacy: largest ε spent {max:.3} of {} per partner; {paused} partner(s) paused",
            report.budgets[0].epsilon_budget
        );
    }
    println!(
        "audit log: {} records, {}, head {}",
        report.audit_records,
        if report.audit_verified { "verified" } else { "VERIFICATION FAILED" },
        report.audit_head
    );
    println!("wrote {} and {}", json.display(), svg.display());
    if !report.audit_verified {
        return Err(anyhow::anyhow!("the audit log did not verify").into());
    }
    Ok(())
}
