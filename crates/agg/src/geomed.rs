//! Geometric median by the smoothed Weiszfeld algorithm — RFA (Pillutla, Kakade, Harchaoui,
//! "Robust Aggregation for Federated Learning", IEEE Trans. Signal Processing 2022, Algorithm 3):
//! minimise `Σ α_i max(ν, ‖z − x_i‖)` by iterating
//! `β_i = α_i / max(ν, ‖z − x_i‖)`, `z ← Σ β_i x_i / Σ β_i`, from the weighted mean, with
//! `α_i ∝ num_examples`. Each step never increases the objective (their Lemma 4); we stop when
//! its relative decrease falls below `tolerance` or after `max_iterations`.

use fl_core::{ClientUpdate, ModelParams, Scalar};
use rayon::prelude::*;

use crate::fedavg::BLOCK;
use crate::validate::{check_updates, finish, in_range, rows, total_weight};
use crate::{Aggregator, Error, Result};

/// The geometric median (RFA). Weighted by `num_examples`.
#[derive(Clone, Copy, Debug)]
pub struct GeometricMedian {
    smoothing: f64,
    max_iterations: usize,
    tolerance: f64,
    last_iterations: usize,
}

impl Default for GeometricMedian {
    /// ν = 1e-6, 100 iterations, relative tolerance 1e-10.
    fn default() -> Self {
        Self { smoothing: 1e-6, max_iterations: 100, tolerance: 1e-10, last_iterations: 0 }
    }
}

impl GeometricMedian {
    /// Custom smoothing ν, iteration cap and relative tolerance.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] unless `ν > 0`, `max_iterations ≥ 1` and `tolerance ≥ 0`.
    pub fn new(smoothing: f64, max_iterations: usize, tolerance: f64) -> Result<Self> {
        if max_iterations == 0 {
            return Err(Error::config("max_iterations", "must be at least 1"));
        }
        Ok(Self {
            smoothing: in_range("smoothing", smoothing, f64::MIN_POSITIVE..)?,
            max_iterations,
            tolerance: in_range("tolerance", tolerance, 0.0..)?,
            last_iterations: 0,
        })
    }

    /// Weiszfeld iterations used by the last aggregation.
    #[must_use]
    pub fn last_iterations(&self) -> usize {
        self.last_iterations
    }
}

/// `Σ w_i x_i / Σ w_i` in f64, blocked over coordinates.
fn weighted_mean<T: Scalar>(rows: &[&[T]], w: &[f64]) -> Vec<f64> {
    let total: f64 = w.iter().sum();
    let mut z = vec![0.0; rows[0].len()];
    z.par_chunks_mut(BLOCK).enumerate().for_each(|(b, zb)| {
        let s = b * BLOCK;
        for (r, &wi) in rows.iter().zip(w) {
            for (o, x) in zb.iter_mut().zip(&r[s..]) {
                *o += wi * x.as_f64();
            }
        }
        zb.iter_mut().for_each(|o| *o /= total);
    });
    z
}

fn distances<T: Scalar>(rows: &[&[T]], z: &[f64]) -> Vec<f64> {
    rows.par_iter()
        .map(|r| {
            let mut acc = 0.0;
            for (x, zc) in r.iter().zip(z) {
                let d = x.as_f64() - zc;
                acc += d * d;
            }
            acc.sqrt()
        })
        .collect()
}

impl<T: Scalar> Aggregator<T> for GeometricMedian {
    type Error = Error;

    fn name(&self) -> &'static str {
        "geometric_median"
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        check_updates("geometric_median", global, updates, 1)?;
        #[allow(clippy::cast_precision_loss, reason = "example counts are far below 2^53")]
        let total = total_weight(updates)? as f64;
        #[allow(clippy::cast_precision_loss, reason = "as above")]
        let alpha: Vec<f64> = updates.iter().map(|u| u.num_examples as f64 / total).collect();
        let rows = rows(updates);
        let mut z = weighted_mean(&rows, &alpha);
        let objective = |dist: &[f64]| -> f64 {
            dist.iter().zip(&alpha).map(|(d, a)| a * d.max(self.smoothing)).sum()
        };
        let mut dist = distances(&rows, &z);
        let mut obj = objective(&dist);
        let mut iterations = 0;
        while iterations < self.max_iterations {
            iterations += 1;
            let beta: Vec<f64> =
                alpha.iter().zip(&dist).map(|(a, d)| a / d.max(self.smoothing)).collect();
            let next = weighted_mean(&rows, &beta);
            let next_dist = distances(&rows, &next);
            let next_obj = objective(&next_dist);
            let done = obj - next_obj <= self.tolerance * obj;
            z = next;
            dist = next_dist;
            obj = next_obj;
            if done {
                break;
            }
        }
        self.last_iterations = iterations;
        let out: Vec<T> = z.into_iter().map(T::from_f64).collect();
        finish("geometric_median", global.shared_spec(), out)
    }
}
