//! Federation settings the server fixes at start, validated as a whole so that incompatible
//! choices (a robust rule under secure aggregation, DP without clipping) fail before round 1.

use fl_agg::{Bulyan, FedAvg, FedOpt, FedProx, GeometricMedian, Krum, Median, TrimmedMean};
use fl_core::Aggregator;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How individual updates are hidden from the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PrivacyMode {
    /// Updates in the clear (any aggregation rule).
    None,
    /// Bonawitz et al. secure aggregation on the complete graph.
    SecAgg,
    /// SecAgg+ on a Harary graph with parameters from the finder.
    SecAggPlus,
    /// Packed updates encrypted under a threshold Paillier key; the server adds ciphertexts
    /// and t partners decrypt the sum ([`crate::paillier`]).
    Paillier,
}

impl PrivacyMode {
    /// Stable name for logs and the audit record.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SecAgg => "secagg",
            Self::SecAggPlus => "secagg+",
            Self::Paillier => "paillier",
        }
    }

    /// Parses `none`, `secagg`, `secagg+`, `paillier`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the accepted values.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "none" | "plaintext" => Ok(Self::None),
            "secagg" => Ok(Self::SecAgg),
            "secagg+" | "secagg-plus" => Ok(Self::SecAggPlus),
            "paillier" => Ok(Self::Paillier),
            other => Err(Error::config(
                "privacy",
                format!("unknown mode {other:?}; use none, secagg, secagg+ or paillier"),
            )),
        }
    }

    /// Whether the server only ever sees a sum.
    #[must_use]
    pub fn is_secure(self) -> bool {
        !matches!(self, Self::None)
    }

    /// The fewest partners a round of this mode can aggregate: 3 under SecAgg(+), where each
    /// input is masked with the keys of its neighbours and recovering a dropped partner needs
    /// t ≥ 2 of them (Bonawitz et al., CCS 2017, §4: 2 ≤ t ≤ n − 1 — with two partners the sum
    /// would also reveal each input to the other); 1 otherwise.
    #[must_use]
    pub fn min_partners(self) -> usize {
        match self {
            Self::SecAgg | Self::SecAggPlus => 3,
            Self::None | Self::Paillier => 1,
        }
    }
}

/// The server's aggregation rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AggregatorKind {
    /// FedAvg (McMahan et al. 2017).
    FedAvg,
    /// FedProx (Li et al. 2020): FedAvg on the server, proximal term μ at the clients.
    FedProx {
        /// μ.
        mu: f64,
    },
    /// FedAdam (Reddi et al. 2021).
    FedAdam,
    /// FedYogi.
    FedYogi,
    /// FedAdagrad.
    FedAdagrad,
    /// Krum with `f` Byzantine clients.
    Krum {
        /// f.
        f: usize,
    },
    /// Bulyan with `f` Byzantine clients.
    Bulyan {
        /// f.
        f: usize,
    },
    /// Coordinate-wise median.
    Median,
    /// Coordinate-wise trimmed mean cutting `beta` of each side.
    TrimmedMean {
        /// β.
        beta: f64,
    },
    /// Geometric median (RFA).
    GeometricMedian,
}

impl AggregatorKind {
    /// Parses a CLI name: `fedavg`, `fedprox`, `fedadam`, `fedyogi`, `fedadagrad`, `krum`,
    /// `bulyan`, `median`, `trimmed-mean`, `geomed`. `mu`, `f` and `beta` fill the parameters.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the accepted values.
    pub fn parse(s: &str, mu: f64, f: usize, beta: f64) -> Result<Self> {
        Ok(match s {
            "fedavg" => Self::FedAvg,
            "fedprox" => Self::FedProx { mu },
            "fedadam" => Self::FedAdam,
            "fedyogi" => Self::FedYogi,
            "fedadagrad" => Self::FedAdagrad,
            "krum" => Self::Krum { f },
            "bulyan" => Self::Bulyan { f },
            "median" => Self::Median,
            "trimmed-mean" => Self::TrimmedMean { beta },
            "geomed" | "geometric-median" => Self::GeometricMedian,
            other => {
                return Err(Error::config(
                    "aggregator",
                    format!(
                        "unknown rule {other:?}; use fedavg, fedprox, fedadam, fedyogi, fedadagrad, krum, bulyan, median, trimmed-mean or geomed"
                    ),
                ));
            }
        })
    }

    /// The FedProx μ clients should use (0 for other rules).
    #[must_use]
    pub fn prox_mu(&self) -> f64 {
        if let Self::FedProx { mu } = self { *mu } else { 0.0 }
    }

    /// Builds the rule.
    ///
    /// # Errors
    ///
    /// The rule's own parameter checks.
    pub fn build(&self) -> Result<Box<dyn Aggregator<f32, Error = fl_agg::Error>>> {
        Ok(match self {
            Self::FedAvg => Box::new(FedAvg::default()),
            Self::FedProx { mu } => Box::new(FedProx::new(*mu)?),
            Self::FedAdam => Box::new(FedOpt::adam()),
            Self::FedYogi => Box::new(FedOpt::yogi()),
            Self::FedAdagrad => Box::new(FedOpt::adagrad()),
            Self::Krum { f } => Box::new(Krum::new(*f)),
            Self::Bulyan { f } => Box::new(Bulyan::new(*f)),
            Self::Median => Box::new(Median),
            Self::TrimmedMean { beta } => Box::new(TrimmedMean::new(*beta)?),
            Self::GeometricMedian => Box::new(GeometricMedian::default()),
        })
    }
}

/// Differential privacy of the federation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DpSetting {
    /// No differential privacy.
    Off,
    /// Example-level DP-SGD at every partner (Abadi et al. 2016), the Opacus model: each partner's
    /// (ε, δ) covers its own examples. The server calibrates σ so that the planned rounds spend
    /// `plan_fraction` of each partner's budget `epsilon` (the rest keeps partners above the
    /// 10 % pause threshold until the last round).
    LocalSgd {
        /// Budget ε per partner and model version.
        epsilon: f64,
        /// δ.
        delta: f64,
        /// Per-example clipping bound.
        clip: f64,
        /// Expected batch size (sampling rate = batch / local examples).
        batch_size: u32,
        /// Share of the budget the planned rounds may use.
        plan_fraction: f64,
    },
    /// Partner-level DP of the released model: DP-FedAvg (McMahan, Ramage, Talwar, Zhang,
    /// "Learning Differentially Private Recurrent Language Models", ICLR 2018, Alg. 1). Each
    /// round every available partner is selected independently with probability
    /// `q = clients_per_round / partners` (Poisson sampling, so the subsampled-Gaussian
    /// accounting is exact, not an approximation of fixed-size sampling); each clips its delta
    /// to `update_clip`; the server adds `N(0, (σ·clip)²)` to the sum and divides by the
    /// expected count `q·N` (the paper's fixed-denominator estimator, §3). Every partner that
    /// could have been sampled is charged each round. σ is calibrated so that the planned rounds
    /// spend `plan_fraction` of `epsilon`.
    ///
    /// The noise is added by the server after it forms the sum: this protects what leaves the
    /// federation (the model), not partners from the server; combine it with secagg or
    /// paillier to hide individual updates from the server as well.
    Central {
        /// Budget ε per partner and model version.
        epsilon: f64,
        /// δ.
        delta: f64,
        /// Share of the budget the planned rounds may use.
        plan_fraction: f64,
    },
}

impl DpSetting {
    /// Stable name for logs: `off`, `local-sgd`, `central`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::LocalSgd { .. } => "local-sgd",
            Self::Central { .. } => "central",
        }
    }
}

/// Everything the server fixes for a federation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FederationConfig {
    /// Federation name (audit genesis).
    pub name: String,
    /// Rounds to run.
    pub rounds: u64,
    /// Clients selected per round (all available when larger).
    pub clients_per_round: usize,
    /// Smallest number of usable updates for a round to count.
    pub min_clients: usize,
    /// Aggregation rule.
    pub aggregator: AggregatorKind,
    /// Update protection.
    pub privacy: PrivacyMode,
    /// Differential privacy.
    pub dp: DpSetting,
    /// L2 bound on each client's delta (required under secure aggregation).
    pub update_clip: Option<f64>,
    /// Quantization levels `2^bits` for secure aggregation.
    pub quantization_bits: u8,
    /// Local learning rate.
    pub learning_rate: f32,
    /// Local momentum.
    pub momentum: f32,
    /// Local batch size (non-DP).
    pub batch_size: u32,
    /// Local epochs per round.
    pub local_epochs: u32,
    /// The model version being trained (budgets are kept per partner and model version).
    pub model_version: u64,
}

impl FederationConfig {
    /// The fewest usable updates a round needs: `min_clients`, and never fewer than the privacy
    /// mode can aggregate ([`PrivacyMode::min_partners`]).
    #[must_use]
    pub fn quorum(&self) -> usize {
        self.min_clients.max(self.privacy.min_partners())
    }

    /// Checks the settings together.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the setting and the reason, e.g. a robust rule under secure
    /// aggregation, which cannot see individual updates.
    pub fn validate(&self) -> Result<()> {
        if self.rounds == 0 {
            return Err(Error::config("rounds", "must be ≥ 1"));
        }
        if self.min_clients == 0 || self.min_clients > self.clients_per_round {
            return Err(Error::config(
                "min-clients",
                format!(
                    "{} is not in 1..={} (clients per round)",
                    self.min_clients, self.clients_per_round
                ),
            ));
        }
        if self.clients_per_round < self.privacy.min_partners() {
            return Err(Error::config(
                "clients-per-round",
                format!(
                    "{} partners a round, but {} aggregates at least {}",
                    self.clients_per_round,
                    self.privacy.name(),
                    self.privacy.min_partners()
                ),
            ));
        }
        let rule =
            self.aggregator.build().map_err(|e| Error::config("aggregator", e.to_string()))?;
        if let DpSetting::Central { epsilon, delta, plan_fraction } = self.dp {
            if !rule.is_linear() {
                return Err(Error::config(
                    "aggregator",
                    format!(
                        "central DP calibrates its noise to the sum of clipped updates, which {} does not use; use fedavg, fedprox, fedadam, fedyogi or fedadagrad",
                        rule.name()
                    ),
                ));
            }
            if self.update_clip.is_none() {
                return Err(Error::config(
                    "update-clip",
                    "central DP needs a finite positive update clip (its sensitivity)",
                ));
            }
            check_budget(epsilon, delta, plan_fraction)?;
        }
        if self.privacy.is_secure() && !rule.is_linear() {
            return Err(Error::config(
                "aggregator",
                format!(
                    "{} needs every individual update, but {} shows the server only their sum; use fedavg, fedprox, fedadam, fedyogi or fedadagrad, or --privacy none",
                    rule.name(),
                    self.privacy.name()
                ),
            ));
        }
        if self.min_clients < rule.min_updates() {
            return Err(Error::config(
                "min-clients",
                format!(
                    "{} aggregates at least {} updates, but a round counts with {}; raise the quorum or lower the Byzantine bound",
                    rule.name(),
                    rule.min_updates(),
                    self.min_clients
                ),
            ));
        }
        if self.privacy.is_secure() {
            match self.update_clip {
                Some(c) if c.is_finite() && c > 0.0 => {}
                _ => {
                    return Err(Error::config(
                        "update-clip",
                        "secure aggregation needs a finite positive update clip",
                    ));
                }
            }
            if !(4..=40).contains(&self.quantization_bits) {
                return Err(Error::config(
                    "quantization-bits",
                    format!("{} is not in 4..=40", self.quantization_bits),
                ));
            }
        }
        if let Some(c) = self.update_clip
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::config("update-clip", format!("{c} is not finite and positive")));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::config(
                "learning-rate",
                format!("{} is not finite and positive", self.learning_rate),
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::config("momentum", format!("{} is not in [0, 1)", self.momentum)));
        }
        if self.batch_size == 0 || self.local_epochs == 0 {
            return Err(Error::config("batch-size, local-epochs", "must be ≥ 1"));
        }
        if let DpSetting::LocalSgd { epsilon, delta, clip, batch_size, plan_fraction } = self.dp {
            check_budget(epsilon, delta, plan_fraction)?;
            if !(clip.is_finite() && clip > 0.0) {
                return Err(Error::config("dp-clip", format!("{clip} is not finite and positive")));
            }
            if batch_size == 0 {
                return Err(Error::config("dp batch size", "must be ≥ 1"));
            }
        }
        Ok(())
    }
}

fn check_budget(epsilon: f64, delta: f64, plan_fraction: f64) -> Result<()> {
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return Err(Error::config("dp-epsilon", format!("{epsilon} is not finite and positive")));
    }
    if !(delta > 0.0 && delta < 1.0) {
        return Err(Error::config("dp-delta", format!("{delta} is not in (0, 1)")));
    }
    if !(plan_fraction > 0.0 && plan_fraction <= 1.0) {
        return Err(Error::config("dp plan fraction", format!("{plan_fraction} is not in (0, 1]")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn base() -> FederationConfig {
        FederationConfig {
            name: "t".into(),
            rounds: 2,
            clients_per_round: 4,
            min_clients: 2,
            aggregator: AggregatorKind::FedProx { mu: 0.01 },
            privacy: PrivacyMode::SecAgg,
            dp: DpSetting::Off,
            update_clip: Some(5.0),
            quantization_bits: 16,
            learning_rate: 0.05,
            momentum: 0.9,
            batch_size: 32,
            local_epochs: 1,
            model_version: 0,
        }
    }

    #[test]
    fn secure_aggregation_needs_three_partners_a_round() {
        let mut c = base();
        c.clients_per_round = 2;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("clients-per-round") && e.contains("at least 3"), "{e}");
        c.privacy = PrivacyMode::SecAggPlus;
        assert!(c.validate().is_err());
        c.privacy = PrivacyMode::None;
        c.validate().unwrap();
        assert_eq!(c.quorum(), 2);
        // A quorum below the mode's minimum is raised to it at round start.
        let mut c = base();
        c.min_clients = 2;
        c.clients_per_round = 3;
        c.validate().unwrap();
        assert_eq!(c.quorum(), 3);
    }

    #[test]
    fn robust_rules_are_refused_under_secure_aggregation_with_the_reason() {
        base().validate().unwrap();
        let mut c = base();
        c.aggregator = AggregatorKind::Krum { f: 1 };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("krum") && e.contains("secagg"), "{e}");
        c.privacy = PrivacyMode::None;
        // Krum with f = 1 aggregates at least 2f + 3 = 5: a quorum of 4 is refused up front.
        c.clients_per_round = 5;
        c.min_clients = 4;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("min-clients") && e.contains("at least 5"), "{e}");
        c.min_clients = 5;
        c.validate().unwrap();
        c.aggregator = AggregatorKind::FedProx { mu: f64::NAN };
        let e = c.validate().unwrap_err();
        assert!(matches!(e, Error::Config { name: "aggregator", .. }), "{e}");
        let mut c = base();
        c.update_clip = None;
        assert!(c.validate().unwrap_err().to_string().contains("update-clip"));
        let mut c = base();
        c.min_clients = 5;
        assert!(c.validate().is_err());
        assert!(AggregatorKind::parse("krumm", 0.0, 1, 0.1).is_err());
        assert!(PrivacyMode::parse("paillier").is_ok_and(PrivacyMode::is_secure));
        assert!(PrivacyMode::parse("he").is_err());
        let central = DpSetting::Central { epsilon: 2.0, delta: 1e-5, plan_fraction: 0.9 };
        let mut c = base();
        c.dp = central;
        c.validate().unwrap();
        c.privacy = PrivacyMode::None;
        c.aggregator = AggregatorKind::Krum { f: 1 };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("central DP") && e.contains("krum"), "{e}");
        c.aggregator = AggregatorKind::FedAvg;
        c.update_clip = None;
        assert!(c.validate().unwrap_err().to_string().contains("update-clip"));
        c.update_clip = Some(1.0);
        c.dp = DpSetting::Central { epsilon: f64::NAN, delta: 1e-5, plan_fraction: 0.9 };
        assert!(c.validate().is_err());
        let mut c = base();
        c.privacy = PrivacyMode::Paillier;
        c.aggregator = AggregatorKind::Median;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("median") && e.contains("paillier"), "{e}");
    }
}
