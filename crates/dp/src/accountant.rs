//! The RDP accountant: compose privacy events, read off (ε, δ).
//!
//! State is the accumulated RDP per order (composition adds RDP order by order, Mironov 2017,
//! Prop. 1), so heterogeneous events — different q, σ, mechanisms, step counts — compose exactly.
//! Every addition and multiplication rounds **up** (`next_up`), so floating-point error can only
//! overstate the privacy loss, never understate it (OpenDP's `InfAdd`/`InfMul` discipline).

use serde::{Deserialize, Serialize};

use crate::conversion::{DeltaAt, EpsilonAt, delta_from_rdp, epsilon_from_rdp};
use crate::rdp::{
    default_orders, rdp_distributed_discrete_gaussian, rdp_laplace, rdp_pure_dp,
    rdp_subsampled_gaussian, validate_orders,
};
use crate::{Error, PrivacyBudget, Result};

/// A privacy-relevant event, as the accountant understands it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DpEvent {
    /// The Gaussian mechanism with noise multiplier σ (noise std over L2 sensitivity).
    Gaussian {
        /// σ.
        noise_multiplier: f64,
    },
    /// The Gaussian mechanism on a Poisson sample with rate q (DP-SGD steps, DP-FedAvg rounds
    /// with client sampling).
    PoissonSampledGaussian {
        /// q ∈ [0, 1].
        sampling_rate: f64,
        /// σ.
        noise_multiplier: f64,
    },
    /// The Laplace mechanism with scale `b` over L1 sensitivity 1.
    Laplace {
        /// b.
        scale: f64,
    },
    /// Any pure ε-DP mechanism (randomized response, k-ary RR, private histogram).
    PureDp {
        /// ε.
        epsilon: f64,
    },
    /// A sum of discrete Gaussians added by several clients before secure aggregation.
    DistributedDiscreteGaussian {
        /// Per-client standard deviation (in units of the integer grid).
        sigma: f64,
        /// L2 sensitivity of one client's quantized contribution.
        l2_sensitivity: f64,
        /// Vector dimension.
        dimension: u64,
        /// Clients whose noise is summed.
        clients: u64,
    },
}

impl DpEvent {
    /// One occurrence's RDP at `orders`.
    ///
    /// # Errors
    ///
    /// The parameter checks of the corresponding function in [`crate::rdp`].
    pub fn rdp(&self, orders: &[f64]) -> Result<Vec<f64>> {
        match *self {
            Self::Gaussian { noise_multiplier } => {
                rdp_subsampled_gaussian(1.0, noise_multiplier, orders)
            }
            Self::PoissonSampledGaussian { sampling_rate, noise_multiplier } => {
                rdp_subsampled_gaussian(sampling_rate, noise_multiplier, orders)
            }
            Self::Laplace { scale } => rdp_laplace(scale, orders),
            Self::PureDp { epsilon } => rdp_pure_dp(epsilon, orders),
            Self::DistributedDiscreteGaussian { sigma, l2_sensitivity, dimension, clients } => {
                rdp_distributed_discrete_gaussian(sigma, l2_sensitivity, dimension, clients, orders)
            }
        }
    }
}

/// `count · r + total`, each operation rounded up.
pub(crate) fn add_scaled_up(total: &mut [f64], per_step: &[f64], count: u64) {
    #[allow(
        clippy::cast_precision_loss,
        reason = "counts above 2^53 only round up the loss further"
    )]
    let c = (count as f64).next_up();
    for (t, r) in total.iter_mut().zip(per_step) {
        let x = if count == 1 { *r } else { (c * r).next_up() };
        *t = if x > 0.0 { (*t + x).next_up() } else { *t };
    }
}

/// An RDP accountant over a fixed list of orders. Serializable, so its state survives restarts.
///
/// ```
/// use fl_dp::{DpEvent, RdpAccountant};
///
/// // Opacus's published example: σ = 1.5, q = 0.04, 2250 steps, δ = 1e-5 → ε ≈ 7.329.
/// let mut acc = RdpAccountant::new(fl_dp::rdp::opacus_orders())?;
/// acc.compose(&DpEvent::PoissonSampledGaussian { sampling_rate: 0.04, noise_multiplier: 1.5 }, 2250)?;
/// let eps = acc.get_epsilon(1e-5)?;
/// assert!((eps.epsilon - 7.32911117143).abs() < 1e-8);
/// # Ok::<(), fl_dp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AccountantState", into = "AccountantState")]
pub struct RdpAccountant {
    orders: Vec<f64>,
    rdp: Vec<f64>,
}

#[derive(Serialize, Deserialize)]
struct AccountantState {
    orders: Vec<f64>,
    rdp: Vec<f64>,
}

impl TryFrom<AccountantState> for RdpAccountant {
    type Error = Error;
    fn try_from(s: AccountantState) -> Result<Self> {
        validate_orders(&s.orders)?;
        if s.orders.len() != s.rdp.len() || s.rdp.iter().any(|r| r.is_nan() || *r < 0.0) {
            return Err(Error::param(
                "accountant state",
                "RDP values must match the orders and be ≥ 0",
            ));
        }
        Ok(Self { orders: s.orders, rdp: s.rdp })
    }
}

impl From<RdpAccountant> for AccountantState {
    fn from(a: RdpAccountant) -> Self {
        Self { orders: a.orders, rdp: a.rdp }
    }
}

impl Default for RdpAccountant {
    /// An accountant over dp-accounting's default orders.
    fn default() -> Self {
        let orders = default_orders();
        let rdp = vec![0.0; orders.len()];
        Self { orders, rdp }
    }
}

impl RdpAccountant {
    /// An empty accountant over `orders`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOrder`] or [`Error::InvalidParameter`] for an invalid or empty list.
    pub fn new(orders: Vec<f64>) -> Result<Self> {
        validate_orders(&orders)?;
        let rdp = vec![0.0; orders.len()];
        Ok(Self { orders, rdp })
    }

    /// The orders.
    #[must_use]
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// Accumulated RDP per order.
    #[must_use]
    pub fn rdp(&self) -> &[f64] {
        &self.rdp
    }

    /// Adds `count` occurrences of `event`.
    ///
    /// # Errors
    ///
    /// The event's parameter checks; nothing is added on error.
    pub fn compose(&mut self, event: &DpEvent, count: u64) -> Result<()> {
        let per = event.rdp(&self.orders)?;
        add_scaled_up(&mut self.rdp, &per, count);
        Ok(())
    }

    /// Adds another accountant's total (same orders): heterogeneous composition across sources.
    ///
    /// # Errors
    ///
    /// [`Error::OrderMismatch`] if the order lists differ.
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        if self.orders != other.orders {
            return Err(Error::OrderMismatch);
        }
        add_scaled_up(&mut self.rdp, &other.rdp, 1);
        Ok(())
    }

    /// The ε for `δ`, and the optimal order.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for δ ∉ (0, 1).
    pub fn get_epsilon(&self, delta: f64) -> Result<EpsilonAt> {
        epsilon_from_rdp(&self.orders, &self.rdp, delta)
    }

    /// The δ for `ε`, and the optimal order.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for negative or non-finite ε.
    pub fn get_delta(&self, epsilon: f64) -> Result<DeltaAt> {
        delta_from_rdp(&self.orders, &self.rdp, epsilon)
    }

    /// Whether `count` more occurrences of `event` would take ε (at the budget's δ) above the
    /// budget's ε.
    ///
    /// # Errors
    ///
    /// The event's parameter checks.
    pub fn would_exceed(&self, event: &DpEvent, count: u64, budget: PrivacyBudget) -> Result<bool> {
        let mut next = self.clone();
        next.compose(event, count)?;
        Ok(next.get_epsilon(budget.delta())?.epsilon > budget.epsilon())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composition_is_additive_and_rounds_up() -> Result<()> {
        let e = DpEvent::PoissonSampledGaussian { sampling_rate: 0.02, noise_multiplier: 1.3 };
        let mut a = RdpAccountant::default();
        a.compose(&e, 300)?;
        let mut b = RdpAccountant::default();
        for _ in 0..3 {
            b.compose(&e, 100)?;
        }
        let per = e.rdp(a.orders())?;
        for ((x, y), r) in a.rdp().iter().zip(b.rdp()).zip(&per) {
            assert!(*x >= 300.0 * r && *y >= 300.0 * r, "never below the exact sum");
            assert!((x - y).abs() <= 1e-12 * x);
        }
        let mut m = RdpAccountant::default();
        m.merge(&a)?;
        // Merging into an empty accountant rounds each value up by at most one ulp.
        assert!(m.rdp().iter().zip(a.rdp()).all(|(x, y)| *x >= *y && *x <= y.next_up()));
        assert!(m.merge(&RdpAccountant::new(vec![2.0])?).is_err());
        Ok(())
    }

    #[test]
    fn would_exceed_and_serde() -> Result<()> {
        let e = DpEvent::PoissonSampledGaussian { sampling_rate: 0.01, noise_multiplier: 1.1 };
        let mut a = RdpAccountant::default();
        a.compose(&e, 1000)?;
        let now = a.get_epsilon(1e-5)?.epsilon;
        assert!(!a.would_exceed(&e, 1, PrivacyBudget::new(now * 1.5, 1e-5)?)?);
        assert!(a.would_exceed(&e, 100_000, PrivacyBudget::new(now * 1.5, 1e-5)?)?);
        let json = serde_json::to_string(&a).map_err(|e| Error::param("json", e.to_string()))?;
        let back: RdpAccountant =
            serde_json::from_str(&json).map_err(|e| Error::param("json", e.to_string()))?;
        assert_eq!(back, a);
        assert!(serde_json::from_str::<RdpAccountant>(r#"{"orders":[0.5],"rdp":[0.0]}"#).is_err());
        assert!(serde_json::from_str::<RdpAccountant>(r#"{"orders":[2.0],"rdp":[-1.0]}"#).is_err());
        Ok(())
    }
}
