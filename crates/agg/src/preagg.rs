//! Pre-aggregation steps that run in front of any rule, and the [`Pipeline`] that composes them.
//!
//! - [`Bucketing`] (Karimireddy, He, Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets
//!   via Bucketing", ICLR 2022, Algorithm 1): shuffle, split into buckets of `s`, average each
//!   bucket; the robust rule then sees `⌈n/s⌉` averaged inputs with reduced heterogeneity.
//! - [`NearestNeighborMixing`] (Allouah, Farhadkhani, Guerraoui, Gupta, Pinot, Rizk, Stephan,
//!   "Fixing by Mixing: A Recipe for Optimal Byzantine ML under Heterogeneity", AISTATS 2023,
//!   Algorithm 1): replace each update by the average of its `n − f` nearest neighbours (itself
//!   included).
//! - [`crate::NormBound`]: clip deltas to an L2 ball.

use std::sync::Arc;

use fl_core::{ClientUpdate, ModelParams, Scalar};
use rand::rngs::ChaCha20Rng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::fedavg::BLOCK;
use crate::validate::{check_updates, rows};
use crate::{Aggregator, Error, Result};

/// A transformation of the round's updates applied before the aggregation rule.
pub trait PreAggregator<T: Scalar>: Send {
    /// Short name for logs and audit records.
    fn name(&self) -> &'static str;

    /// Transforms `updates` (already validated against `global`).
    ///
    /// # Errors
    ///
    /// A step-specific precondition, e.g. too few updates.
    fn apply(
        &mut self,
        global: &ModelParams<T>,
        updates: Vec<ClientUpdate<T>>,
    ) -> Result<Vec<ClientUpdate<T>>>;
}

/// Unweighted average of `members`; the result carries the first member's identity and the sum
/// of their `num_examples`.
fn average<T: Scalar>(
    spec: &Arc<fl_core::ModelSpec>,
    members: &[&ClientUpdate<T>],
) -> Result<ClientUpdate<T>> {
    let first =
        members.first().ok_or(Error::TooFewClients { rule: "average", needed: 1, got: 0 })?;
    let d = spec.num_params();
    #[allow(clippy::cast_precision_loss, reason = "client counts are small")]
    let inv = 1.0 / members.len() as f64;
    let mut out = vec![T::zero(); d];
    out.par_chunks_mut(BLOCK).enumerate().for_each(|(b, o)| {
        let s = b * BLOCK;
        let mut acc = vec![0.0f64; o.len()];
        for m in members {
            for (a, x) in acc.iter_mut().zip(&m.params.as_slice()[s..]) {
                *a += x.as_f64();
            }
        }
        o.iter_mut().zip(acc).for_each(|(o, a)| *o = T::from_f64(a * inv));
    });
    let examples = members
        .iter()
        .try_fold(0u64, |acc, m| acc.checked_add(m.num_examples))
        .ok_or(Error::WeightOverflow)?;
    Ok(ClientUpdate::new(
        first.partner_id.clone(),
        first.round,
        first.model_version,
        examples,
        ModelParams::from_flat(Arc::clone(spec), out)?,
    ))
}

/// Bucketing with bucket size `s` and a seeded shuffle (reproducible experiments; the shuffle is
/// not a secret).
#[derive(Debug)]
pub struct Bucketing {
    bucket_size: usize,
    rng: ChaCha20Rng,
}

impl Bucketing {
    /// Buckets of `bucket_size ≥ 1` updates, shuffled by a ChaCha20 stream seeded with `seed`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a zero bucket size.
    pub fn new(bucket_size: usize, seed: u64) -> Result<Self> {
        if bucket_size == 0 {
            return Err(Error::config("bucket_size", "must be at least 1"));
        }
        Ok(Self { bucket_size, rng: ChaCha20Rng::seed_from_u64(seed) })
    }

    /// Bucketing whose shuffle is drawn from `rng` (e.g. seeded from the OS).
    ///
    /// # Errors
    ///
    /// As [`Bucketing::new`].
    pub fn from_rng(bucket_size: usize, rng: &mut impl Rng) -> Result<Self> {
        Self::new(bucket_size, rng.next_u64())
    }
}

impl<T: Scalar> PreAggregator<T> for Bucketing {
    fn name(&self) -> &'static str {
        "bucketing"
    }

    fn apply(
        &mut self,
        global: &ModelParams<T>,
        updates: Vec<ClientUpdate<T>>,
    ) -> Result<Vec<ClientUpdate<T>>> {
        let mut order: Vec<usize> = (0..updates.len()).collect();
        order.shuffle(&mut self.rng);
        order
            .chunks(self.bucket_size)
            .map(|bucket| {
                let members: Vec<&ClientUpdate<T>> = bucket.iter().map(|&i| &updates[i]).collect();
                average(global.shared_spec(), &members)
            })
            .collect()
    }
}

/// Nearest-neighbour mixing for `f` Byzantine clients.
#[derive(Clone, Copy, Debug)]
pub struct NearestNeighborMixing {
    f: usize,
}

impl NearestNeighborMixing {
    /// NNM assuming at most `f` Byzantine clients.
    #[must_use]
    pub fn new(f: usize) -> Self {
        Self { f }
    }
}

impl<T: Scalar> PreAggregator<T> for NearestNeighborMixing {
    fn name(&self) -> &'static str {
        "nnm"
    }

    fn apply(
        &mut self,
        global: &ModelParams<T>,
        updates: Vec<ClientUpdate<T>>,
    ) -> Result<Vec<ClientUpdate<T>>> {
        let n = updates.len();
        if n <= self.f {
            return Err(Error::ByzantineBound { rule: "nnm", n, f: self.f, bound: "n > f" });
        }
        let dist = crate::krum::checked_distances("nnm", global, &updates, &rows(&updates))?;
        let keep = n - self.f;
        (0..n)
            .map(|i| {
                let mut near: Vec<usize> = (0..n).collect();
                // Self first (distance 0), then by distance, ties by index.
                near.sort_by(|&a, &b| {
                    (a != i)
                        .cmp(&(b != i))
                        .then(dist.get(i, a).total_cmp(&dist.get(i, b)))
                        .then(a.cmp(&b))
                });
                let members: Vec<&ClientUpdate<T>> =
                    near[..keep].iter().map(|&j| &updates[j]).collect();
                let mut mixed = average(global.shared_spec(), &members)?;
                mixed.partner_id = updates[i].partner_id.clone();
                mixed.num_examples = updates[i].num_examples;
                Ok(mixed)
            })
            .collect()
    }
}

/// Pre-aggregation steps followed by a rule; itself an [`Aggregator`].
///
/// ```
/// use fl_agg::{Aggregator, Bucketing, Krum, NearestNeighborMixing, NormBound, Pipeline};
///
/// let robust: Pipeline<f32> = Pipeline::new(Box::new(Krum::new(1)))
///     .then(Box::new(NormBound::new(10.0)?))
///     .then(Box::new(NearestNeighborMixing::new(1)));
/// assert_eq!(robust.name(), "pipeline");
/// # let _ = Bucketing::new(2, 7)?;
/// # Ok::<(), fl_agg::Error>(())
/// ```
pub struct Pipeline<T: Scalar = f32> {
    steps: Vec<Box<dyn PreAggregator<T>>>,
    rule: Box<dyn Aggregator<T, Error = Error>>,
}

impl<T: Scalar> Pipeline<T> {
    /// A pipeline that runs `rule` with no steps yet.
    #[must_use]
    pub fn new(rule: Box<dyn Aggregator<T, Error = Error>>) -> Self {
        Self { steps: Vec::new(), rule }
    }

    /// Appends a step (steps run in the order added, before the rule).
    #[must_use]
    pub fn then(mut self, step: Box<dyn PreAggregator<T>>) -> Self {
        self.steps.push(step);
        self
    }

    /// Names of the steps and the rule, in order.
    #[must_use]
    pub fn describe(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.name()).chain([self.rule.name()]).collect()
    }
}

impl<T: Scalar> std::fmt::Debug for Pipeline<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("stages", &self.describe()).finish()
    }
}

impl<T: Scalar> Aggregator<T> for Pipeline<T> {
    type Error = Error;

    fn name(&self) -> &'static str {
        "pipeline"
    }

    fn is_linear(&self) -> bool {
        self.steps.is_empty() && self.rule.is_linear()
    }

    /// The rule's bound (steps such as bucketing only ever shrink the count, so it is a lower
    /// bound; [`aggregate`](Aggregator::aggregate) checks what reaches the rule).
    fn min_updates(&self) -> usize {
        self.rule.min_updates()
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        check_updates("pipeline", global, updates, 1)?;
        let mut current = updates.to_vec();
        for step in &mut self.steps {
            current = step.apply(global, current)?;
        }
        self.rule.aggregate(global, &current)
    }
}
