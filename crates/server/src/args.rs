//! Federation settings shared by `simulate` and `serve`.

use clap::Args;
use fl_net::{AggregatorKind, DpSetting, FederationConfig, PrivacyMode};

/// How each round trains, aggregates and protects updates.
#[derive(Args, Debug, Clone)]
pub(crate) struct FederationArgs {
    /// Dataset from ../shared/data: mnist or digits (model shape, and held-out accuracy).
    #[arg(long, default_value = "mnist")]
    pub(crate) dataset: String,
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
    /// Update protection: none, secagg, secagg+, paillier.
    #[arg(long, default_value = "secagg")]
    privacy: String,
    /// Per-partner ε budget (per model version); 0 turns DP off.
    #[arg(long, default_value_t = 8.0)]
    dp_epsilon: f64,
    /// Where the noise is added: local (example-level DP-SGD at each partner) or central
    /// (partner-level DP-FedAvg: Poisson-sampled partners, server noise on the clipped sum).
    #[arg(long, default_value = "local")]
    dp_mode: String,
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
    /// Hidden layer widths, comma separated (`none`: softmax regression).
    #[arg(long, default_value = "128", value_parser = fl_net::simulation::parse_hidden)]
    pub(crate) hidden: ::std::vec::Vec<usize>,
    /// Local epochs per round.
    #[arg(long, default_value_t = 1)]
    local_epochs: u32,
    /// Local learning rate.
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// Local batch size (without DP).
    #[arg(long, default_value_t = 32)]
    batch: u32,
    /// Seed for the data split and the initial model.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

impl FederationArgs {
    pub(crate) fn aggregator_kind(&self) -> Result<AggregatorKind, fl_net::Error> {
        AggregatorKind::parse(&self.aggregator, self.mu, self.byzantine, self.trim)
    }

    pub(crate) fn config(
        &self,
        name: &str,
        rounds: u64,
        clients_per_round: usize,
        min_clients: usize,
    ) -> Result<FederationConfig, fl_net::Error> {
        // 0 is the documented way to turn DP off; NaN or a negative budget is a mistake, not that.
        if self.dp_epsilon.is_nan() || self.dp_epsilon < 0.0 {
            return Err(fl_net::Error::Config {
                name: "dp-epsilon",
                reason: format!("{} is not a budget (0 turns DP off)", self.dp_epsilon),
            });
        }
        let dp = match (self.dp_epsilon > 0.0, self.dp_mode.as_str()) {
            (false, _) => DpSetting::Off,
            (true, "local") => DpSetting::LocalSgd {
                epsilon: self.dp_epsilon,
                delta: self.dp_delta,
                clip: self.dp_clip,
                batch_size: self.dp_batch,
                plan_fraction: 0.85,
            },
            (true, "central") => DpSetting::Central {
                epsilon: self.dp_epsilon,
                delta: self.dp_delta,
                plan_fraction: 0.85,
            },
            (true, other) => {
                return Err(fl_net::Error::Config {
                    name: "dp-mode",
                    reason: format!("unknown mode {other:?}; use local or central"),
                });
            }
        };
        Ok(FederationConfig {
            name: name.into(),
            rounds,
            clients_per_round,
            min_clients,
            aggregator: self.aggregator_kind()?,
            privacy: PrivacyMode::parse(&self.privacy)?,
            dp,
            update_clip: Some(self.update_clip),
            quantization_bits: 16,
            learning_rate: self.lr,
            momentum: 0.9,
            batch_size: self.batch,
            local_epochs: self.local_epochs,
            model_version: 0,
        })
    }
}
