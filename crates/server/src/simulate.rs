//! `fl-server simulate`: a whole federation in this process (fl-net's in-memory transport).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use fl_net::simulation::{AttackKind as Attack, Partition, RoundReport, SimAttack, SimDataset};
use fl_net::{AggregatorKind, DpSetting, FederationConfig, PrivacyMode, SimulationConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::Failure;

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
    /// Dataset from ../shared/data: mnist or digits.
    #[arg(long, default_value = "mnist")]
    dataset: String,
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
    /// Aggregation rule: fedavg, fedprox, fedadam, fedyogi, fedadagrad, krum, bulyan, median,
    /// trimmed-mean, geomed.
    #[arg(long, default_value = "fedprox")]
    aggregator: String,
    /// FedProx μ.
    #[arg(long, default_value_t = 0.01)]
    mu: f64,
    /// Byzantine clients the robust rules tolerate (Krum, Bulyan).
    #[arg(long, default_value_t = 1)]
    byzantine: usize,
    /// Trimmed-mean β.
    #[arg(long, default_value_t = 0.1)]
    trim: f64,
    /// Update protection: none, secagg, secagg+.
    #[arg(long, default_value = "secagg")]
    privacy: String,
    /// Per-partner ε budget for DP-SGD; 0 turns DP off.
    #[arg(long, default_value_t = 8.0)]
    dp_epsilon: f64,
    /// δ of the budget.
    #[arg(long, default_value_t = 1e-5)]
    dp_delta: f64,
    /// Per-example clipping bound of DP-SGD.
    #[arg(long, default_value_t = 1.0)]
    dp_clip: f64,
    /// Expected DP-SGD batch size.
    #[arg(long, default_value_t = 64)]
    dp_batch: u32,
    /// L2 bound on each client's model delta (the secure-aggregation quantizer's range).
    #[arg(long, default_value_t = 10.0)]
    update_clip: f64,
    /// Probability that a selected client drops out of a round (at a random phase).
    #[arg(long, default_value_t = 0.1)]
    dropout: f64,
    /// Byzantine attack (needs --privacy none).
    #[arg(long, value_enum, default_value = "none")]
    attack: AttackArg,
    /// Number of attacking clients.
    #[arg(long, default_value_t = 1)]
    attackers: usize,
    /// Hidden layer widths, comma separated (empty: softmax regression).
    #[arg(long, default_value = "128", value_delimiter = ',')]
    hidden: Vec<usize>,
    /// Local epochs per round.
    #[arg(long, default_value_t = 1)]
    local_epochs: u32,
    /// Local learning rate.
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// Local batch size (without DP).
    #[arg(long, default_value_t = 32)]
    batch: u32,
    /// Seed for the split, the initial model, selection and dropouts.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory; each run writes a new `run-<time>` directory inside it.
    #[arg(long, default_value = "simulate-out")]
    out: PathBuf,
}

impl SimulateArgs {
    fn config(&self, state_dir: PathBuf) -> Result<SimulationConfig, fl_net::Error> {
        let selected = self.clients_per_round.unwrap_or(self.clients);
        let min_clients = self.min_clients.unwrap_or_else(|| (selected * 3).div_ceil(5).max(1));
        let dp = if self.dp_epsilon > 0.0 {
            DpSetting::LocalSgd {
                epsilon: self.dp_epsilon,
                delta: self.dp_delta,
                clip: self.dp_clip,
                batch_size: self.dp_batch,
                plan_fraction: 0.85,
            }
        } else {
            DpSetting::Off
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
            federation: FederationConfig {
                name: "fl-server simulate".into(),
                rounds: self.rounds,
                clients_per_round: selected,
                min_clients,
                aggregator: AggregatorKind::parse(
                    &self.aggregator,
                    self.mu,
                    self.byzantine,
                    self.trim,
                )?,
                privacy: PrivacyMode::parse(&self.privacy)?,
                dp,
                update_clip: Some(self.update_clip),
                quantization_bits: 16,
                learning_rate: self.lr,
                momentum: 0.9,
                batch_size: self.batch,
                local_epochs: self.local_epochs,
                model_version: 0,
            },
            dataset: SimDataset::parse(&self.dataset)?,
            num_clients: self.clients,
            partition: match self.partition {
                PartitionArg::Iid => Partition::Iid,
                PartitionArg::Dirichlet => Partition::Dirichlet { alpha: self.alpha },
                PartitionArg::Shards => Partition::Shards { per_client: self.shards },
            },
            hidden: self.hidden.clone(),
            dropout_rate: self.dropout,
            attack,
            seed: self.seed,
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
        "simulating {} clients on {} ({:?}), {} rounds, {}, privacy {}, DP {}",
        cfg.num_clients,
        args.dataset,
        cfg.partition,
        cfg.federation.rounds,
        args.aggregator,
        cfg.federation.privacy.name(),
        match cfg.federation.dp {
            DpSetting::LocalSgd { epsilon, delta, .. } =>
                format!("DP-SGD, budget ε = {epsilon}, δ = {delta} per partner"),
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
