//! FLTrust (Cao, Fang, Liu, Gong, "FLTrust: Byzantine-robust Federated Learning via Trust
//! Bootstrapping", NDSS 2021, §III-B, Algorithm 1). The server trains on a small clean root
//! dataset to get its own update `g₀` each round; client update `g_i` (here `x_i − global`)
//! gets trust score `TS_i = ReLU(cos(g_i, g₀))`, is rescaled to `‖g₀‖`, and the aggregate is
//! `Σ TS_i · (‖g₀‖/‖g_i‖) g_i / Σ TS_i`, applied with server learning rate `η`.
//!
//! Flower has no FLTrust; the test suite checks it against the paper's formula computed
//! independently. If every trust score is zero the paper's aggregate is the zero vector, so the
//! global model is returned unchanged.

use fl_core::{ClientUpdate, ModelParams, Scalar, ops};
use rayon::prelude::*;

use crate::fedavg::BLOCK;
use crate::validate::{check_updates, finish, in_range, rows};
use crate::{Aggregator, Error, Result};

/// FLTrust with a per-round server root update.
#[derive(Clone, Debug)]
pub struct FlTrust<T: Scalar = f32> {
    server_lr: f64,
    root_update: Option<ModelParams<T>>,
    last_trust: Vec<f64>,
}

impl<T: Scalar> FlTrust<T> {
    /// FLTrust applying the aggregate with server learning rate `server_lr` (1.0: add it as is).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] unless `server_lr > 0` and finite.
    pub fn new(server_lr: f64) -> Result<Self> {
        Ok(Self {
            server_lr: in_range("server_lr", server_lr, f64::MIN_POSITIVE..)?,
            root_update: None,
            last_trust: Vec::new(),
        })
    }

    /// Sets this round's server update `g₀` (the server's model after training on the root
    /// dataset, minus the global model). Consumed by the next aggregation.
    pub fn set_root_update(&mut self, root_delta: ModelParams<T>) {
        self.root_update = Some(root_delta);
    }

    /// Trust scores `TS_i` of the last aggregation, in input order.
    #[must_use]
    pub fn last_trust_scores(&self) -> &[f64] {
        &self.last_trust
    }
}

impl<T: Scalar> Aggregator<T> for FlTrust<T> {
    type Error = Error;

    fn name(&self) -> &'static str {
        "fltrust"
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        check_updates("fltrust", global, updates, 1)?;
        let root = self.root_update.as_ref().ok_or(Error::MissingRootUpdate)?;
        global.ensure_same_spec(root)?;
        root.ensure_finite()?;
        let g0 = root.as_slice();
        let g0_norm = ops::l2_norm(g0);
        let w = global.as_slice();
        let rows = rows(updates);
        // cos(g_i, g0) and ‖g_i‖ with g_i = x_i − w, without materialising g_i.
        let stats: Vec<(f64, f64)> = rows
            .par_iter()
            .map(|x| {
                let (mut dot, mut sq) = (0.0, 0.0);
                for ((xi, wi), gi) in x.iter().zip(w).zip(g0) {
                    let d = xi.as_f64() - wi.as_f64();
                    dot += d * gi.as_f64();
                    sq += d * d;
                }
                (dot, sq.sqrt())
            })
            .collect();
        let trust: Vec<f64> =
            stats
                .iter()
                .map(|&(dot, norm)| {
                    if norm > 0.0 && g0_norm > 0.0 {
                        (dot / (norm * g0_norm)).max(0.0)
                    } else {
                        0.0
                    }
                })
                .collect();
        let total: f64 = trust.iter().sum();
        let mut out = w.to_vec();
        if total > 0.0 {
            let coef: Vec<f64> =
                trust
                    .iter()
                    .zip(&stats)
                    .map(|(ts, &(_, norm))| {
                        if *ts > 0.0 { self.server_lr * ts * g0_norm / (norm * total) } else { 0.0 }
                    })
                    .collect();
            out.par_chunks_mut(BLOCK).enumerate().for_each(|(b, o)| {
                let s = b * BLOCK;
                let mut acc = vec![0.0f64; o.len()];
                for (x, &c) in rows.iter().zip(&coef) {
                    if c == 0.0 {
                        continue;
                    }
                    for ((a, xi), wi) in acc.iter_mut().zip(&x[s..]).zip(&w[s..]) {
                        *a += c * (xi.as_f64() - wi.as_f64());
                    }
                }
                for (o, a) in o.iter_mut().zip(acc) {
                    *o = T::from_f64(o.as_f64() + a);
                }
            });
        }
        self.root_update = None;
        self.last_trust = trust;
        finish("fltrust", global.shared_spec(), out)
    }
}
