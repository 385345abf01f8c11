//! Byzantine update generators for robustness experiments. Each works on deltas from the global
//! model and returns full models, like honest clients send.
//!
//! - [`Attack::SignFlip`]: send `−s ·` one's own honest delta.
//! - [`Attack::GaussianNoise`]: send `N(0, σ²)` noise as the delta.
//! - [`Attack::Scaling`]: send `λ ·` one's own honest delta (model replacement / boosting,
//!   Bagdasaryan et al., AISTATS 2020).
//! - [`Attack::Alie`]: "A Little Is Enough" (Baruch, Baruch, Goldberg, NeurIPS 2019,
//!   Algorithm 3): per coordinate `μ_j − z·σ_j` over the honest deltas, with
//!   `z = Φ⁻¹((n − s)/n)`, `s = ⌊n/2 + 1⌋ − f`, so the shift hides inside the honest spread.
//! - [`Attack::Ipm`]: inner-product manipulation (Xie, Koyejo, Gupta, UAI 2020, §3):
//!   `−ε · μ`, making the aggregate's inner product with the true mean negative for large ε.

use fl_core::{ClientUpdate, ModelParams, PartnerId, Scalar};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::validate::{check_updates, in_range};
use crate::{Error, Result};

/// A Byzantine behaviour.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Attack {
    /// Negate (and scale by `scale`) the attacker's own honest delta.
    SignFlip {
        /// Multiplier `s > 0`.
        scale: f64,
    },
    /// Random Gaussian delta with standard deviation `sigma`.
    GaussianNoise {
        /// `σ > 0`.
        sigma: f64,
    },
    /// Multiply the attacker's own honest delta by `factor`.
    Scaling {
        /// `λ`.
        factor: f64,
    },
    /// A Little Is Enough; `z = None` derives `z` from `n` and `f` as in the paper.
    Alie {
        /// Override for the number of standard deviations.
        z: Option<f64>,
    },
    /// Inner-product manipulation with strength `epsilon > 0`.
    Ipm {
        /// `ε`.
        epsilon: f64,
    },
}

/// ALIE's `z_max` for `n` clients of which `f` are Byzantine (Baruch et al. 2019, Algorithm 3).
///
/// # Errors
///
/// [`Error::InvalidConfig`] if `f ≥ n` or the quantile is undefined (e.g. `s ≤ 0` or `s ≥ n`).
pub fn alie_z(n: usize, f: usize) -> Result<f64> {
    if f >= n || n == 0 {
        return Err(Error::config("f", format!("ALIE needs 0 <= f < n, got f = {f}, n = {n}")));
    }
    let s = (n / 2 + 1).checked_sub(f).filter(|&s| s > 0 && s < n).ok_or_else(|| {
        Error::config(
            "f",
            format!("ALIE's s = floor(n/2 + 1) - f is not in (0, n) for n = {n}, f = {f}"),
        )
    })?;
    #[allow(clippy::cast_precision_loss, reason = "client counts are small")]
    let p = (n - s) as f64 / n as f64;
    let normal = Normal::standard();
    Ok(normal.inverse_cdf(p))
}

impl Attack {
    /// Generates `count` Byzantine updates given the `honest` ones (the attackers are assumed
    /// omniscient, as in the papers). Attacker `i` bases its own delta on `honest[i % h]`.
    ///
    /// # Errors
    ///
    /// The usual input checks on `honest`, [`Error::InvalidConfig`] for a bad attack parameter,
    /// and [`Error::TooFewClients`] for ALIE with fewer than two honest updates.
    pub fn generate<T: Scalar>(
        &self,
        global: &ModelParams<T>,
        honest: &[ClientUpdate<T>],
        count: usize,
        rng: &mut impl Rng,
    ) -> Result<Vec<ClientUpdate<T>>> {
        check_updates("attack", global, honest, 1)?;
        let w = global.as_slice();
        let d = w.len();
        let h = honest.len();
        let delta =
            |i: usize, c: usize| honest[i % h].params.as_slice()[c].as_f64() - w[c].as_f64();
        #[allow(clippy::cast_precision_loss, reason = "client counts are small")]
        let mean_of = |c: usize| (0..h).map(|i| delta(i, c)).sum::<f64>() / h as f64;
        let deltas: Vec<Vec<f64>> = match *self {
            Attack::SignFlip { scale } => {
                let s = in_range("scale", scale, f64::MIN_POSITIVE..)?;
                (0..count).map(|i| (0..d).map(|c| -s * delta(i, c)).collect()).collect()
            }
            Attack::Scaling { factor } => {
                let l = in_range("factor", factor, ..)?;
                (0..count).map(|i| (0..d).map(|c| l * delta(i, c)).collect()).collect()
            }
            Attack::GaussianNoise { sigma } => {
                let s = in_range("sigma", sigma, f64::MIN_POSITIVE..)?;
                (0..count)
                    .map(|_| {
                        (0..d)
                            .map(|_| {
                                let z: f64 = StandardNormal.sample(rng);
                                s * z
                            })
                            .collect()
                    })
                    .collect()
            }
            Attack::Ipm { epsilon } => {
                let e = in_range("epsilon", epsilon, f64::MIN_POSITIVE..)?;
                let one: Vec<f64> = (0..d).map(|c| -e * mean_of(c)).collect();
                vec![one; count]
            }
            Attack::Alie { z } => {
                if h < 2 {
                    return Err(Error::TooFewClients { rule: "alie", needed: 2, got: h });
                }
                let z = match z {
                    Some(z) => in_range("z", z, ..)?,
                    None => alie_z(h + count, count)?,
                };
                #[allow(clippy::cast_precision_loss, reason = "client counts are small")]
                let one: Vec<f64> = (0..d)
                    .map(|c| {
                        let mu = mean_of(c);
                        let var =
                            (0..h).map(|i| (delta(i, c) - mu).powi(2)).sum::<f64>() / h as f64;
                        mu - z * var.sqrt()
                    })
                    .collect();
                vec![one; count]
            }
        };
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "mean of counts"
        )]
        let typical =
            (honest.iter().map(|u| u.num_examples as f64).sum::<f64>() / h as f64).round() as u64;
        deltas
            .into_iter()
            .enumerate()
            .map(|(i, dlt)| {
                let data: Vec<T> =
                    w.iter().zip(dlt).map(|(wc, dc)| T::from_f64(wc.as_f64() + dc)).collect();
                Ok(ClientUpdate::new(
                    PartnerId::new(format!("byzantine-{i}"))?,
                    honest[0].round,
                    honest[0].model_version,
                    typical.max(1),
                    ModelParams::from_flat(std::sync::Arc::clone(global.shared_spec()), data)?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fl_core::{ModelSpec, ModelVersion, Round};
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    use super::*;

    fn setup(h: usize, d: usize) -> (ModelParams<f64>, Vec<ClientUpdate<f64>>) {
        let spec = Arc::new(ModelSpec::from_pairs([("w", vec![d])]).unwrap());
        let global =
            ModelParams::from_flat(Arc::clone(&spec), (0..d).map(|c| c as f64 * 0.1).collect())
                .unwrap();
        let honest = (0..h)
            .map(|i| {
                let data = (0..d)
                    .map(|c| c as f64 * 0.1 + ((i * 7 + c * 3) % 11) as f64 * 0.05 - 0.2)
                    .collect();
                ClientUpdate::new(
                    PartnerId::new(format!("h{i}")).unwrap(),
                    Round(4),
                    ModelVersion(1),
                    10 + i as u64,
                    ModelParams::from_flat(Arc::clone(&spec), data).unwrap(),
                )
            })
            .collect();
        (global, honest)
    }

    fn delta(global: &ModelParams<f64>, u: &ClientUpdate<f64>) -> Vec<f64> {
        u.params.as_slice().iter().zip(global.as_slice()).map(|(x, w)| x - w).collect()
    }

    #[test]
    fn sign_flip_and_scaling_transform_own_delta() {
        let (g, honest) = setup(4, 9);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let flipped = Attack::SignFlip { scale: 2.0 }.generate(&g, &honest, 6, &mut rng).unwrap();
        let scaled = Attack::Scaling { factor: 10.0 }.generate(&g, &honest, 6, &mut rng).unwrap();
        for i in 0..6 {
            let own = delta(&g, &honest[i % 4]);
            for ((f, s), o) in delta(&g, &flipped[i]).iter().zip(delta(&g, &scaled[i])).zip(&own) {
                assert!((f + 2.0 * o).abs() < 1e-12 && (s - 10.0 * o).abs() < 1e-12);
            }
            assert_eq!(flipped[i].round, Round(4));
        }
    }

    #[test]
    fn ipm_has_negative_inner_product_with_honest_mean() {
        let (g, honest) = setup(5, 20);
        let mean: Vec<f64> =
            (0..20).map(|c| honest.iter().map(|u| delta(&g, u)[c]).sum::<f64>() / 5.0).collect();
        let byz = Attack::Ipm { epsilon: 0.5 }
            .generate(&g, &honest, 2, &mut ChaCha20Rng::seed_from_u64(2))
            .unwrap();
        let b = delta(&g, &byz[0]);
        let ip: f64 = b.iter().zip(&mean).map(|(x, y)| x * y).sum();
        let norm2: f64 = mean.iter().map(|x| x * x).sum();
        assert!((ip + 0.5 * norm2).abs() < 1e-12 * (1.0 + norm2), "⟨byz, μ⟩ = −ε‖μ‖²");
        assert!(ip < 0.0);
    }

    #[test]
    fn alie_sits_z_standard_deviations_below_the_mean() {
        // Baruch et al.: n = 50, f = 10 → s = 16, z = Φ⁻¹(34/50) ≈ 0.4677.
        let z = alie_z(50, 10).unwrap();
        assert!((z - 0.467_698_799_114_508_5).abs() < 1e-9, "{z}");
        assert!(alie_z(10, 10).is_err() && alie_z(4, 3).is_err());
        let (g, honest) = setup(8, 15);
        let byz = Attack::Alie { z: None }
            .generate(&g, &honest, 2, &mut ChaCha20Rng::seed_from_u64(3))
            .unwrap();
        let z = alie_z(10, 2).unwrap();
        let b = delta(&g, &byz[1]);
        for c in 0..15 {
            let col: Vec<f64> = honest.iter().map(|u| delta(&g, u)[c]).collect();
            let mu = col.iter().sum::<f64>() / 8.0;
            let sd = (col.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / 8.0).sqrt();
            assert!((b[c] - (mu - z * sd)).abs() < 1e-12);
        }
    }

    #[test]
    fn gaussian_noise_has_the_declared_moments() {
        // Mean and variance tests with false-alarm rate ~1e-6 (|N(0,1)| > 4.9).
        let d = 200_000;
        let (g, honest) = setup(2, d);
        let sigma = 0.3;
        let byz = Attack::GaussianNoise { sigma }
            .generate(&g, &honest, 1, &mut ChaCha20Rng::seed_from_u64(4))
            .unwrap();
        let x = delta(&g, &byz[0]);
        let n = d as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        assert!(mean.abs() < 4.9 * sigma / n.sqrt(), "mean {mean}");
        assert!((var / (sigma * sigma) - 1.0).abs() < 4.9 * (2.0 / n).sqrt(), "variance {var}");
    }

    #[test]
    fn bad_parameters_are_errors() {
        let (g, honest) = setup(3, 4);
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        assert!(Attack::SignFlip { scale: 0.0 }.generate(&g, &honest, 1, &mut rng).is_err());
        assert!(
            Attack::GaussianNoise { sigma: f64::NAN }.generate(&g, &honest, 1, &mut rng).is_err()
        );
        assert!(Attack::Alie { z: None }.generate(&g, &honest[..1], 1, &mut rng).is_err());
        assert!(Attack::Ipm { epsilon: 1.0 }.generate(&g, &[], 1, &mut rng).is_err());
    }
}
