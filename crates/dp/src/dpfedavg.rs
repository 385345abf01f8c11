//! DP-FedAvg over any linear aggregation rule (McMahan, Ramage, Talwar, Zhang, "Learning
//! Differentially Private Recurrent Language Models", ICLR 2018, Algorithm 1), in three trust
//! models:
//!
//! - [`DpMode::Central`]: the server clips each client delta `Δᵢ = xᵢ − w` to C, averages,
//!   and adds `N(0, (σC/n)²)` — the server is trusted with individual updates.
//! - [`DpMode::ClientClipping`]: clients clip before sending (required under secure aggregation,
//!   where the server cannot); the server checks the bound on what it can see and adds the noise.
//! - [`DpMode::Local`]: each client clips and adds `N(0, (σC)²)` itself; the server only averages.
//!
//! The noisy average `x̃ = w + (Σ clip(Δᵢ))/n + noise` is handed to the wrapped linear rule as a
//! single update, so FedAvg returns it and FedAdam/FedYogi use `x̃ − w` as their pseudo-gradient.
//! Each round reports its event to the wrapper's [`RdpAccountant`]: the Poisson-subsampled
//! Gaussian with the configured client sampling rate q and noise multiplier σ (for local DP,
//! σ applies per client, unamplified when q = 1).
//!
//! Sensitivity: with a fixed denominator n (the configured expected number of clients per round,
//! or the actual count when none is set) one client moves the average by at most C/n.

use std::marker::PhantomData;

use fl_core::{Aggregator, ClientUpdate, ModelParams, Scalar, ops};
use rand::rngs::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::accountant::{DpEvent, RdpAccountant};
use crate::clipping::clip_l2;
use crate::{Error, Result};

/// Where clipping and noise happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpMode {
    /// Server clips and adds noise.
    Central,
    /// Clients clip; server verifies the bound and adds noise.
    ClientClipping,
    /// Clients clip and add their own noise; the server averages.
    Local,
}

/// DP-FedAvg configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DpConfig {
    /// Trust model.
    pub mode: DpMode,
    /// L2 clipping bound C on each client delta.
    pub clip: f64,
    /// Noise multiplier σ.
    pub noise_multiplier: f64,
    /// Client sampling rate q per round (1 if every client takes part).
    pub sampling_rate: f64,
    /// Fixed denominator (expected clients per round); `None` uses the actual count.
    pub expected_clients: Option<f64>,
}

impl DpConfig {
    fn validate(&self) -> Result<()> {
        let pos = |n: &'static str, x: f64| {
            if x.is_finite() && x > 0.0 {
                Ok(())
            } else {
                Err(Error::param(n, format!("{x} is not finite and positive")))
            }
        };
        pos("clip", self.clip)?;
        pos("noise multiplier", self.noise_multiplier)?;
        crate::rdp::check_rate(self.sampling_rate)?;
        if let Some(n) = self.expected_clients {
            pos("expected clients", n)?;
        }
        Ok(())
    }

    /// The privacy event of one round.
    #[must_use]
    pub fn event(&self) -> DpEvent {
        DpEvent::PoissonSampledGaussian {
            sampling_rate: self.sampling_rate,
            noise_multiplier: self.noise_multiplier,
        }
    }
}

/// A client's side of [`DpMode::ClientClipping`] and [`DpMode::Local`]: clip the delta from the
/// global model, and for local DP add `N(0, (σC)²)`; returns the model to send.
///
/// # Errors
///
/// Layout mismatch or non-finite values; invalid configuration.
pub fn privatize_client_update<T: Scalar>(
    global: &ModelParams<T>,
    local: &ModelParams<T>,
    config: &DpConfig,
    rng: &mut ChaCha20Rng,
) -> Result<ModelParams<T>> {
    config.validate()?;
    let mut delta = local.sub(global)?;
    clip_l2(delta.as_mut_slice(), config.clip)?;
    if config.mode == DpMode::Local {
        crate::GaussianMechanism::new(config.noise_multiplier, config.clip)?
            .add_noise(delta.as_mut_slice(), rng)?;
    }
    delta.add_assign(global)?;
    Ok(delta)
}

/// DP-FedAvg wrapping a linear rule `A`.
pub struct DpFedAvg<T: Scalar, A: Aggregator<T>> {
    inner: A,
    config: DpConfig,
    rng: ChaCha20Rng,
    accountant: RdpAccountant,
    _element: PhantomData<T>,
}

impl<T: Scalar, A: Aggregator<T>> DpFedAvg<T, A> {
    /// Wraps `inner`, drawing noise from `rng` (use [`crate::csprng`]) and accounting with
    /// `accountant`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if `inner` is not linear (its output would not be a function
    /// of the noisy sum) or the configuration is invalid.
    pub fn new(
        inner: A,
        config: DpConfig,
        rng: ChaCha20Rng,
        accountant: RdpAccountant,
    ) -> Result<Self> {
        if !inner.is_linear() {
            return Err(Error::param(
                "aggregator",
                format!(
                    "DP-FedAvg needs a linear rule; `{}` needs individual updates",
                    inner.name()
                ),
            ));
        }
        config.validate()?;
        Ok(Self { inner, config, rng, accountant, _element: PhantomData })
    }

    /// The accountant holding every round's privacy cost so far.
    #[must_use]
    pub fn accountant(&self) -> &RdpAccountant {
        &self.accountant
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &DpConfig {
        &self.config
    }
}

impl<T: Scalar, A: Aggregator<T>> Aggregator<T> for DpFedAvg<T, A> {
    type Error = Error;

    fn name(&self) -> &'static str {
        "dp_fedavg"
    }

    fn is_linear(&self) -> bool {
        true
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        let first = updates.first().ok_or_else(|| Error::param("updates", "no client updates"))?;
        global.ensure_finite()?;
        let d = global.len();
        let mut sum = vec![0.0f64; d];
        let mut delta = vec![T::zero(); d];
        for u in updates {
            global.ensure_same_spec(&u.params)?;
            u.params.ensure_finite()?;
            delta.copy_from_slice(u.params.as_slice());
            ops::sub_assign(&mut delta, global.as_slice())?;
            match self.config.mode {
                DpMode::Central => {
                    clip_l2(&mut delta, self.config.clip)?;
                }
                DpMode::ClientClipping => {
                    let norm = ops::l2_norm(&delta);
                    // Clients clip in their own precision; allow for one rounding of the norm.
                    if norm > self.config.clip * (1.0 + 1e-6) {
                        return Err(Error::param(
                            "client update",
                            format!(
                                "partner {} sent a delta of norm {norm} > clip {}",
                                u.partner_id, self.config.clip
                            ),
                        ));
                    }
                }
                DpMode::Local => {}
            }
            for (s, x) in sum.iter_mut().zip(&delta) {
                *s += x.as_f64();
            }
        }
        #[allow(clippy::cast_precision_loss, reason = "client counts are small")]
        let n = self.config.expected_clients.unwrap_or(updates.len() as f64);
        let noise_std = match self.config.mode {
            DpMode::Central | DpMode::ClientClipping => {
                self.config.noise_multiplier * self.config.clip / n
            }
            DpMode::Local => 0.0,
        };
        let noisy: Vec<T> = global
            .as_slice()
            .iter()
            .zip(&sum)
            .map(|(w, s)| {
                let z: f64 =
                    if noise_std > 0.0 { StandardNormal.sample(&mut self.rng) } else { 0.0 };
                T::from_f64(w.as_f64() + s / n + noise_std * z)
            })
            .collect();
        let averaged = ModelParams::from_flat(std::sync::Arc::clone(global.shared_spec()), noisy)?;
        // Noise of an absurd scale (σ·C/n near T's range) must not become a model of infinities.
        averaged.ensure_finite()?;
        let single = ClientUpdate::new(
            first.partner_id.clone(),
            first.round,
            first.model_version,
            1,
            averaged,
        );
        let next =
            self.inner.aggregate(global, &[single]).map_err(|e| Error::Aggregation(Box::new(e)))?;
        self.accountant.compose(&self.config.event(), 1)?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fl_core::{ModelSpec, ModelVersion, PartnerId, Round};
    use rand::SeedableRng;

    use super::*;

    /// The simplest linear rule, to keep fl-dp's tests free of fl-agg.
    struct Mean;

    impl Aggregator<f64> for Mean {
        type Error = fl_core::Error;
        fn name(&self) -> &'static str {
            "mean"
        }
        fn is_linear(&self) -> bool {
            true
        }
        fn aggregate(
            &mut self,
            _: &ModelParams<f64>,
            u: &[ClientUpdate<f64>],
        ) -> fl_core::Result<ModelParams<f64>> {
            let mut out = u[0].params.clone();
            for x in &u[1..] {
                out.add_assign(&x.params)?;
            }
            out.scale(1.0 / u.len() as f64);
            Ok(out)
        }
    }

    struct NotLinear;

    impl Aggregator<f64> for NotLinear {
        type Error = fl_core::Error;
        fn name(&self) -> &'static str {
            "not_linear"
        }
        fn aggregate(
            &mut self,
            g: &ModelParams<f64>,
            _: &[ClientUpdate<f64>],
        ) -> fl_core::Result<ModelParams<f64>> {
            Ok(g.clone())
        }
    }

    fn setup(d: usize, n: usize) -> (ModelParams<f64>, Vec<ClientUpdate<f64>>) {
        let spec = Arc::new(ModelSpec::from_pairs([("w", vec![d])]).unwrap());
        let g = ModelParams::zeros(Arc::clone(&spec));
        let ups = (0..n)
            .map(|i| {
                let p = ModelParams::from_flat(Arc::clone(&spec), vec![10.0 * (i + 1) as f64; d])
                    .unwrap();
                ClientUpdate::new(
                    PartnerId::new(format!("p{i}")).unwrap(),
                    Round(1),
                    ModelVersion(0),
                    5,
                    p,
                )
            })
            .collect();
        (g, ups)
    }

    fn config(mode: DpMode, sigma: f64) -> DpConfig {
        DpConfig {
            mode,
            clip: 1.0,
            noise_multiplier: sigma,
            sampling_rate: 0.1,
            expected_clients: None,
        }
    }

    #[test]
    fn central_clips_adds_calibrated_noise_and_accounts() -> Result<()> {
        let d = 100_000;
        let (g, ups) = setup(d, 4);
        let mut dp = DpFedAvg::new(
            Mean,
            config(DpMode::Central, 2.0),
            ChaCha20Rng::seed_from_u64(1),
            RdpAccountant::default(),
        )?;
        let out = dp.aggregate(&g, &ups)?;
        // Each delta is clipped to norm 1 along (1, …, 1)/√d; the mean is that direction.
        let mean_clipped = 1.0 / (d as f64).sqrt();
        let residual: Vec<f64> = out.as_slice().iter().map(|x| x - mean_clipped).collect();
        let var = residual.iter().map(|r| r * r).sum::<f64>() / d as f64;
        let want = (2.0 * 1.0 / 4.0f64).powi(2);
        assert!(
            (var / want - 1.0).abs() < 4.9 * (2.0 / d as f64).sqrt(),
            "variance {var} vs {want}"
        );
        let eps = dp.accountant().get_epsilon(1e-5)?.epsilon;
        let mut expect = RdpAccountant::default();
        expect.compose(&config(DpMode::Central, 2.0).event(), 1)?;
        assert_eq!(eps, expect.get_epsilon(1e-5)?.epsilon);
        Ok(())
    }

    #[test]
    fn client_clipping_rejects_unclipped_and_local_adds_no_server_noise() -> Result<()> {
        let (g, ups) = setup(8, 3);
        let mut dp = DpFedAvg::new(
            Mean,
            config(DpMode::ClientClipping, 1.0),
            ChaCha20Rng::seed_from_u64(2),
            RdpAccountant::default(),
        )?;
        assert!(dp.aggregate(&g, &ups).is_err(), "unclipped deltas must be refused");
        assert_eq!(dp.accountant().rdp()[0], 0.0, "a refused round costs no privacy");
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let cfg = config(DpMode::Local, 1.0);
        let private: Vec<_> = ups
            .iter()
            .map(|u| {
                let p = privatize_client_update(&g, &u.params, &cfg, &mut rng).unwrap();
                ClientUpdate::new(u.partner_id.clone(), u.round, u.model_version, 1, p)
            })
            .collect();
        let mut local =
            DpFedAvg::new(Mean, cfg, ChaCha20Rng::seed_from_u64(4), RdpAccountant::default())?;
        let out = local.aggregate(&g, &private)?;
        let avg: Vec<f64> = (0..8)
            .map(|c| private.iter().map(|u| u.params.as_slice()[c]).sum::<f64>() / 3.0)
            .collect();
        assert!(out.as_slice().iter().zip(&avg).all(|(a, b)| (a - b).abs() < 1e-12));
        assert!(
            DpFedAvg::new(NotLinear, cfg, ChaCha20Rng::seed_from_u64(5), RdpAccountant::default())
                .is_err()
        );
        Ok(())
    }
}
