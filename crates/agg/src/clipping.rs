//! Norm-based defences.
//!
//! - [`NormBound`]: clip each client delta to an L2 ball (Sun, Kairouz, Suresh, McMahan, "Can You
//!   Really Backdoor Federated Learning?", 2019, §4 "norm thresholding"), a pre-aggregation step.
//! - [`CenteredClipping`]: Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust
//!   Optimization", ICML 2021, §4, Algorithm 2: starting from the previous round's aggregate
//!   `v`, repeat `L` times `v ← v + (1/n) Σ (Δ_i − v) · min(1, τ/‖Δ_i − v‖)`.

use fl_core::{ClientUpdate, ModelParams, Scalar, ops};
use rayon::prelude::*;

use crate::fedavg::BLOCK;
use crate::preagg::PreAggregator;
use crate::validate::{check_updates, finish, in_range, rows};
use crate::{Aggregator, Error, Result};

/// Scales `delta` so that `‖delta‖ ≤ max_norm`; returns the factor applied (1 if none).
fn clip_in_place<T: Scalar>(delta: &mut [T], max_norm: f64) -> f64 {
    let norm = ops::l2_norm(delta);
    if norm > max_norm {
        let factor = max_norm / norm;
        ops::scale(delta, T::from_f64(factor));
        factor
    } else {
        1.0
    }
}

/// Clips every client delta `x_i − global` to L2 norm at most `max_norm`, in front of any rule.
#[derive(Clone, Copy, Debug)]
pub struct NormBound {
    max_norm: f64,
}

impl NormBound {
    /// Clipping radius `max_norm > 0`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] unless `max_norm > 0` and finite.
    pub fn new(max_norm: f64) -> Result<Self> {
        Ok(Self { max_norm: in_range("max_norm", max_norm, f64::MIN_POSITIVE..)? })
    }
}

impl<T: Scalar> PreAggregator<T> for NormBound {
    fn name(&self) -> &'static str {
        "norm_bound"
    }

    fn apply(
        &mut self,
        global: &ModelParams<T>,
        mut updates: Vec<ClientUpdate<T>>,
    ) -> Result<Vec<ClientUpdate<T>>> {
        for u in &mut updates {
            let p = u.params.as_mut_slice();
            ops::sub_assign(p, global.as_slice()).map_err(Error::Core)?;
            clip_in_place(p, self.max_norm);
            ops::add_assign(p, global.as_slice()).map_err(Error::Core)?;
        }
        Ok(updates)
    }
}

/// Centered clipping. Stateful: remembers the last aggregate delta as the next round's centre.
#[derive(Clone, Debug)]
pub struct CenteredClipping<T: Scalar = f32> {
    tau: f64,
    iterations: usize,
    last_delta: Option<Vec<T>>,
}

impl<T: Scalar> CenteredClipping<T> {
    /// Radius `tau > 0` and `iterations ≥ 1` (the paper uses `L = 1` with momentum).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad radius or zero iterations.
    pub fn new(tau: f64, iterations: usize) -> Result<Self> {
        if iterations == 0 {
            return Err(Error::config("iterations", "must be at least 1"));
        }
        Ok(Self { tau: in_range("tau", tau, f64::MIN_POSITIVE..)?, iterations, last_delta: None })
    }
}

impl<T: Scalar> Aggregator<T> for CenteredClipping<T> {
    type Error = Error;

    fn name(&self) -> &'static str {
        "centered_clipping"
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        check_updates("centered_clipping", global, updates, 1)?;
        let w = global.as_slice();
        let d = w.len();
        let mut v: Vec<f64> = match &self.last_delta {
            Some(last) if last.len() == d => last.iter().map(|x| x.as_f64()).collect(),
            _ => vec![0.0; d],
        };
        let rows = rows(updates);
        #[allow(clippy::cast_precision_loss, reason = "client counts are small")]
        let inv_n = 1.0 / rows.len() as f64;
        for _ in 0..self.iterations {
            // ‖Δ_i − v‖ with Δ_i = x_i − w.
            let norms: Vec<f64> = rows
                .par_iter()
                .map(|x| {
                    let mut acc = 0.0;
                    for ((xi, wi), vi) in x.iter().zip(w).zip(&v) {
                        let e = xi.as_f64() - wi.as_f64() - vi;
                        acc += e * e;
                    }
                    acc.sqrt()
                })
                .collect();
            let coef: Vec<f64> = norms
                .iter()
                .map(|&nm| inv_n * if nm > self.tau { self.tau / nm } else { 1.0 })
                .collect();
            v.par_chunks_mut(BLOCK).enumerate().for_each(|(b, vb)| {
                let s = b * BLOCK;
                let mut step = vec![0.0; vb.len()];
                for (x, &c) in rows.iter().zip(&coef) {
                    for (((st, xi), wi), vi) in
                        step.iter_mut().zip(&x[s..]).zip(&w[s..]).zip(vb.iter())
                    {
                        *st += c * (xi.as_f64() - wi.as_f64() - vi);
                    }
                }
                vb.iter_mut().zip(step).for_each(|(vi, st)| *vi += st);
            });
        }
        let out: Vec<T> = w.iter().zip(&v).map(|(wi, vi)| T::from_f64(wi.as_f64() + vi)).collect();
        let next = finish("centered_clipping", global.shared_spec(), out)?;
        self.last_delta = Some(v.into_iter().map(T::from_f64).collect());
        Ok(next)
    }
}
