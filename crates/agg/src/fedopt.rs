//! Adaptive server optimizers FedAdam, FedYogi and FedAdagrad (Reddi et al., "Adaptive Federated
//! Optimization", ICLR 2021, Algorithm 2). The FedAvg of the client models gives the pseudo-
//! gradient `Δ_t = x̄_t − x_t`; then
//!
//! ```text
//! m_t = β₁ m_{t−1} + (1 − β₁) Δ_t
//! v_t = v_{t−1} + Δ_t²                                    (Adagrad)
//! v_t = v_{t−1} − (1 − β₂) Δ_t² sign(v_{t−1} − Δ_t²)      (Yogi)
//! v_t = β₂ v_{t−1} + (1 − β₂) Δ_t²                        (Adam)
//! x_{t+1} = x_t + η_t m_t / (√v_t + τ)
//! ```
//!
//! with `η_t = η · √(1 − β₂ᵗ) / (1 − β₁ᵗ)` under bias correction (Kingma & Ba, "Adam", ICLR 2015,
//! §2, the "more efficient" form of Algorithm 1) and `η_t = η` without. Reddi et al. state the
//! algorithm without bias correction; Flower's `FedAdam` applies it with exponent `t + 1`
//! (`flower_agg_semantics.md` §9), which under-corrects every round. We default to the textbook
//! exponent `t` for Adam and offer [`BiasCorrection::FlowerCompat`] to reproduce Flower exactly;
//! Yogi and Adagrad default to none, as in the paper and in Flower.

use std::sync::Arc;

use fl_core::{ClientUpdate, ModelParams, ModelSpec, Scalar};

use crate::fedavg::{FedAvgOrder, weighted_average};
use crate::validate::{finish, in_range};
use crate::{Aggregator, Error, Result};

/// Which second-moment rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FedOptKind {
    /// FedAdam.
    Adam,
    /// FedYogi (Zaheer et al., NeurIPS 2018, additive second-moment update).
    Yogi,
    /// FedAdagrad.
    Adagrad,
}

/// How the server learning rate is bias-corrected in round `t` (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BiasCorrection {
    /// `η √(1 − β₂ᵗ) / (1 − β₁ᵗ)` (Kingma & Ba 2015, §2). The `√(1 − β₂ᵗ)` factor applies to Adam
    /// and Yogi only; Adagrad's sum has no decay to correct.
    Standard,
    /// Flower 1.41's `FedAdam`: the same formula with exponent `t + 1`.
    FlowerCompat,
    /// `η` as is.
    None,
}

/// FedAdam / FedYogi / FedAdagrad. Stateful: holds `m`, `v` and the round counter, which advance
/// only when an aggregation succeeds.
#[derive(Clone, Debug)]
pub struct FedOpt<T: Scalar = f32> {
    kind: FedOptKind,
    eta: f64,
    beta1: f64,
    beta2: f64,
    tau: f64,
    bias: BiasCorrection,
    fedavg_order: FedAvgOrder,
    state: Option<Moments<T>>,
    round: u64,
}

#[derive(Clone, Debug)]
struct Moments<T> {
    spec: Arc<ModelSpec>,
    m: Vec<T>,
    v: Vec<T>,
}

impl<T: Scalar> FedOpt<T> {
    fn with(
        kind: FedOptKind,
        eta: f64,
        beta1: f64,
        beta2: f64,
        tau: f64,
        bias: BiasCorrection,
    ) -> Self {
        Self {
            kind,
            eta,
            beta1,
            beta2,
            tau,
            bias,
            fedavg_order: FedAvgOrder::InPlace,
            state: None,
            round: 0,
        }
    }

    /// FedAdam with Flower's defaults (η = 0.1, β₁ = 0.9, β₂ = 0.99, τ = 1e-9) and standard bias
    /// correction.
    #[must_use]
    pub fn adam() -> Self {
        Self::with(FedOptKind::Adam, 0.1, 0.9, 0.99, 1e-9, BiasCorrection::Standard)
    }

    /// FedYogi with Flower's defaults (η = 0.01, β₁ = 0.9, β₂ = 0.99, τ = 1e-3), no bias correction.
    #[must_use]
    pub fn yogi() -> Self {
        Self::with(FedOptKind::Yogi, 1e-2, 0.9, 0.99, 1e-3, BiasCorrection::None)
    }

    /// FedAdagrad with Flower's defaults (η = 0.1, β₁ = 0, τ = 1e-9), no bias correction.
    #[must_use]
    pub fn adagrad() -> Self {
        Self::with(FedOptKind::Adagrad, 0.1, 0.0, 0.0, 1e-9, BiasCorrection::None)
    }

    /// Sets the server learning rate η.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] unless `0 < eta` and finite.
    pub fn with_eta(mut self, eta: f64) -> Result<Self> {
        self.eta = in_range("eta", eta, f64::MIN_POSITIVE..)?;
        Ok(self)
    }

    /// Sets β₁ and β₂.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] unless both are in `[0, 1)`.
    pub fn with_betas(mut self, beta1: f64, beta2: f64) -> Result<Self> {
        self.beta1 = in_range("beta1", beta1, 0.0..1.0)?;
        self.beta2 = in_range("beta2", beta2, 0.0..1.0)?;
        Ok(self)
    }

    /// Sets the adaptivity constant τ.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidConfig`] unless `0 < tau` and finite.
    pub fn with_tau(mut self, tau: f64) -> Result<Self> {
        self.tau = in_range("tau", tau, f64::MIN_POSITIVE..)?;
        Ok(self)
    }

    /// Sets the bias correction.
    #[must_use]
    pub fn with_bias_correction(mut self, bias: BiasCorrection) -> Self {
        self.bias = bias;
        self
    }

    /// Sets the FedAvg order used for `x̄` (Flower uses [`FedAvgOrder::InPlace`], the default).
    #[must_use]
    pub fn with_fedavg_order(mut self, order: FedAvgOrder) -> Self {
        self.fedavg_order = order;
        self
    }

    /// Rounds completed so far.
    #[must_use]
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The first and second moments, once a round has run.
    #[must_use]
    pub fn moments(&self) -> Option<(&[T], &[T])> {
        self.state.as_ref().map(|s| (s.m.as_slice(), s.v.as_slice()))
    }

    /// Forgets the moments and the round counter.
    pub fn reset(&mut self) {
        self.state = None;
        self.round = 0;
    }

    fn step_size(&self, t: u64) -> f64 {
        let exponent = match self.bias {
            BiasCorrection::None => return self.eta,
            BiasCorrection::Standard => t,
            BiasCorrection::FlowerCompat => t + 1,
        };
        #[allow(clippy::cast_precision_loss, reason = "round numbers are small")]
        let e = exponent as f64;
        let second = match self.kind {
            FedOptKind::Adam | FedOptKind::Yogi => (1.0 - self.beta2.powf(e)).sqrt(),
            FedOptKind::Adagrad => 1.0,
        };
        self.eta * second / (1.0 - self.beta1.powf(e))
    }
}

impl<T: Scalar> Aggregator<T> for FedOpt<T> {
    type Error = Error;

    fn name(&self) -> &'static str {
        match self.kind {
            FedOptKind::Adam => "fedadam",
            FedOptKind::Yogi => "fedyogi",
            FedOptKind::Adagrad => "fedadagrad",
        }
    }

    fn is_linear(&self) -> bool {
        // The server step is non-linear, but it acts on the FedAvg of the updates only, so it
        // runs unchanged on a securely aggregated sum.
        true
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        let xbar = weighted_average(global, updates, self.fedavg_order)?;
        if let Some(state) = &self.state {
            state.spec.ensure_same(global.spec())?;
        }
        let d = global.len();
        let zeros = || vec![T::zero(); d];
        let (mut m, mut v) = match &self.state {
            Some(s) => (s.m.clone(), s.v.clone()),
            None => (zeros(), zeros()),
        };
        let t = self.round + 1;
        let eta_t = T::from_f64(self.step_size(t));
        let (b1, b2) = (T::from_f64(self.beta1), T::from_f64(self.beta2));
        let (one_b1, one_b2) = (T::from_f64(1.0 - self.beta1), T::from_f64(1.0 - self.beta2));
        let tau = T::from_f64(self.tau);
        let mut out = global.as_slice().to_vec();
        // Operation order follows flwr's strategy code term by term, so f64 results match it.
        for (((w, &xb), m), v) in out.iter_mut().zip(xbar.as_slice()).zip(&mut m).zip(&mut v) {
            let delta = xb - *w;
            *m = b1 * *m + one_b1 * delta;
            let sq = delta * delta;
            *v = match self.kind {
                FedOptKind::Adam => b2 * *v + one_b2 * sq,
                FedOptKind::Yogi => *v - one_b2 * sq * signum0(*v - sq),
                FedOptKind::Adagrad => *v + sq,
            };
            *w = *w + eta_t * *m / (v.sqrt() + tau);
        }
        let next = finish(Aggregator::<T>::name(self), global.shared_spec(), out)?;
        self.state = Some(Moments { spec: Arc::clone(global.shared_spec()), m, v });
        self.round = t;
        Ok(next)
    }
}

/// numpy's `sign`: 0 at 0 (Rust's `signum` gives ±1 there).
fn signum0<T: Scalar>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        T::zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_sizes() {
        let adam = FedOpt::<f64>::adam();
        let expect = 0.1 * (1.0 - 0.99f64).sqrt() / (1.0 - 0.9);
        assert!((adam.step_size(1) - expect).abs() < 1e-15);
        let flower = FedOpt::<f64>::adam().with_bias_correction(BiasCorrection::FlowerCompat);
        assert!(
            (flower.step_size(1) - 0.1 * (1.0 - 0.99f64.powi(2)).sqrt() / (1.0 - 0.81)).abs()
                < 1e-15
        );
        assert_eq!(FedOpt::<f64>::yogi().step_size(3), 0.01);
    }

    #[test]
    fn config_is_validated() {
        assert!(FedOpt::<f32>::adam().with_eta(0.0).is_err());
        assert!(FedOpt::<f32>::adam().with_betas(1.0, 0.5).is_err());
        assert!(FedOpt::<f32>::adam().with_tau(f64::NAN).is_err());
        assert!(FedOpt::<f32>::yogi().with_betas(0.5, 0.9).is_ok());
        assert_eq!(signum0(0.0f64), 0.0);
    }
}
