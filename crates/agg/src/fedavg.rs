//! FedAvg (McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized
//! Data", AISTATS 2017, Algorithm 1: the server takes the `n_k / n`-weighted average of client
//! models), FedProx's server side (Li et al., "Federated Optimization in Heterogeneous Networks",
//! MLSys 2020: identical aggregation; the proximal term lives in the client objective), and a
//! streaming accumulator.

use std::marker::PhantomData;
use std::sync::Arc;

use fl_core::{ClientUpdate, ModelParams, ModelSpec, Scalar};
use rayon::prelude::*;

use crate::validate::{check_structure, check_values, finish, in_range, rows, total_weight};
use crate::{Aggregator, Error, Result};

/// Coordinates per task of the streaming kernels: 8 K f32 = 32 KiB, an L1-sized output block
/// that every client's slice is added into before the block is written back once.
pub(crate) const BLOCK: usize = 1 << 13;

/// Which of Flower's two FedAvg operation orders to reproduce (see
/// `flower_agg_semantics.md` §1–§2). Both are a single streaming pass here: the output is cut
/// into cache-sized blocks and each client's slice is added into a block in client order, so
/// every coordinate sees exactly Flower's sequence of roundings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FedAvgOrder {
    /// `flwr...aggregate_inplace` (what Flower's `FedAvg` strategy runs): factors
    /// `s_i = n_i / N` in f64, each product `x·s_i` rounded to the element type, summed left to
    /// right.
    #[default]
    InPlace,
    /// `flwr...aggregate`: `((x_0·n_0 + x_1·n_1) + …) / N` in the element type (used by
    /// Multi-Krum).
    Reference,
}

/// Weighted average of `rows` in [`FedAvgOrder::InPlace`] order.
pub(crate) fn weighted_average_inplace<T: Scalar>(
    rows: &[&[T]],
    weights: &[u64],
    total: u64,
) -> Vec<T> {
    #[allow(clippy::cast_precision_loss, reason = "Flower divides the counts as doubles")]
    let factors: Vec<f64> = weights.iter().map(|&w| w as f64 / total as f64).collect();
    let d = rows[0].len();
    let mut out = vec![T::zero(); d];
    let arch = pulp::Arch::new();
    let kernel = |task: (usize, &mut [T])| arch.dispatch(|| inplace_block(rows, &factors, task));
    if d >= fl_core::ops::PAR_THRESHOLD {
        out.par_chunks_mut(BLOCK).enumerate().for_each(kernel);
    } else {
        out.chunks_mut(BLOCK).enumerate().for_each(kernel);
    }
    out
}

/// One output block of [`weighted_average_inplace`], inlined into a SIMD-dispatched context.
#[inline(always)]
fn inplace_block<T: Scalar>(rows: &[&[T]], factors: &[f64], (b, o): (usize, &mut [T])) {
    let s = b * BLOCK;
    let e = s + o.len();
    for (o, x) in o.iter_mut().zip(&rows[0][s..e]) {
        *o = T::from_f64(x.as_f64() * factors[0]);
    }
    // Four clients per pass: the same left-to-right sum per coordinate, a quarter of the
    // accumulator traffic, and four read streams in flight.
    let mut quads = rows[1..].chunks_exact(4).zip(factors[1..].chunks_exact(4));
    for (r, f) in quads.by_ref() {
        let (r0, r1, r2, r3) = (&r[0][s..e], &r[1][s..e], &r[2][s..e], &r[3][s..e]);
        for (c, o) in o.iter_mut().enumerate() {
            let mut acc = *o + T::from_f64(r0[c].as_f64() * f[0]);
            acc = acc + T::from_f64(r1[c].as_f64() * f[1]);
            acc = acc + T::from_f64(r2[c].as_f64() * f[2]);
            *o = acc + T::from_f64(r3[c].as_f64() * f[3]);
        }
    }
    let done = 1 + 4 * ((rows.len() - 1) / 4);
    for (row, &f) in rows[done..].iter().zip(&factors[done..]) {
        for (o, x) in o.iter_mut().zip(&row[s..e]) {
            *o = *o + T::from_f64(x.as_f64() * f);
        }
    }
}

/// Weighted average of `rows` in [`FedAvgOrder::Reference`] order.
pub(crate) fn weighted_average_reference<T: Scalar>(
    rows: &[&[T]],
    weights: &[u64],
    total: u64,
) -> Vec<T> {
    #[allow(clippy::cast_precision_loss, reason = "numpy converts the Python int the same way")]
    let w: Vec<T> = weights.iter().map(|&n| T::from_f64(n as f64)).collect();
    #[allow(clippy::cast_precision_loss, reason = "as above")]
    let total = T::from_f64(total as f64);
    let d = rows[0].len();
    let mut out = vec![T::zero(); d];
    let arch = pulp::Arch::new();
    let kernel = |task: (usize, &mut [T])| arch.dispatch(|| reference_block(rows, &w, total, task));
    if d >= fl_core::ops::PAR_THRESHOLD {
        out.par_chunks_mut(BLOCK).enumerate().for_each(kernel);
    } else {
        out.chunks_mut(BLOCK).enumerate().for_each(kernel);
    }
    out
}

/// One output block of [`weighted_average_reference`], inlined into a SIMD-dispatched context.
#[inline(always)]
fn reference_block<T: Scalar>(rows: &[&[T]], w: &[T], total: T, (b, o): (usize, &mut [T])) {
    let s = b * BLOCK;
    let e = s + o.len();
    for (o, &x) in o.iter_mut().zip(&rows[0][s..e]) {
        *o = x * w[0];
    }
    let mut quads = rows[1..].chunks_exact(4).zip(w[1..].chunks_exact(4));
    for (r, wq) in quads.by_ref() {
        let (r0, r1, r2, r3) = (&r[0][s..e], &r[1][s..e], &r[2][s..e], &r[3][s..e]);
        for (c, o) in o.iter_mut().enumerate() {
            *o = (((*o + r0[c] * wq[0]) + r1[c] * wq[1]) + r2[c] * wq[2]) + r3[c] * wq[3];
        }
    }
    let done = 1 + 4 * ((rows.len() - 1) / 4);
    for (row, &wi) in rows[done..].iter().zip(&w[done..]) {
        for (o, &x) in o.iter_mut().zip(&row[s..e]) {
            *o = *o + x * wi;
        }
    }
    for o in o.iter_mut() {
        *o = *o / total;
    }
}

/// The `num_examples`-weighted average of the updates' parameters.
///
/// # Errors
///
/// The input checks of every rule ([`crate::validate::check_updates`]), [`Error::ZeroTotalWeight`],
/// [`Error::WeightOverflow`], [`Error::NonFiniteOutput`].
pub fn weighted_average<T: Scalar>(
    global: &ModelParams<T>,
    updates: &[ClientUpdate<T>],
    order: FedAvgOrder,
) -> Result<ModelParams<T>> {
    // Values are not checked up front: that would be a second pass over all N·d inputs. A NaN or
    // infinity in any input reaches the output (x·s with s ≥ 0 stays non-finite — ∞·0 is NaN —
    // and sums propagate it), so a finite output proves finite inputs; otherwise the inputs are
    // scanned to name the culprit.
    check_structure("FedAvg", global, updates, 1)?;
    let total = total_weight(updates)?;
    let weights: Vec<u64> = updates.iter().map(|u| u.num_examples).collect();
    let rows = rows(updates);
    let data = match order {
        FedAvgOrder::InPlace => weighted_average_inplace(&rows, &weights, total),
        FedAvgOrder::Reference => weighted_average_reference(&rows, &weights, total),
    };
    finish("FedAvg", global.shared_spec(), data).map_err(|e| match check_values(updates) {
        Err(culprit) => culprit,
        Ok(()) => e,
    })
}

/// FedAvg: the `num_examples`-weighted average of client models (McMahan et al. 2017,
/// Algorithm 1). Bit-identical to Flower's `FedAvg` strategy in the default order.
///
/// ```
/// use fl_agg::{Aggregator, FedAvg};
/// use fl_core::{ClientUpdate, ModelParams, ModelSpec, ModelVersion, PartnerId, Round};
///
/// let spec = std::sync::Arc::new(ModelSpec::from_pairs([("w", vec![2])])?);
/// let global = ModelParams::<f64>::zeros(spec.clone());
/// let update = |id: &str, n, w: Vec<f64>| -> Result<_, fl_core::Error> {
///     Ok(ClientUpdate::new(PartnerId::new(id)?, Round(1), ModelVersion(0), n,
///                          ModelParams::from_flat(spec.clone(), w)?))
/// };
/// let updates = [update("a", 1, vec![0.0, 4.0])?, update("b", 3, vec![4.0, 0.0])?];
/// let next = FedAvg::default().aggregate(&global, &updates)?;
/// assert_eq!(next.as_slice(), &[3.0, 1.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct FedAvg {
    order: FedAvgOrder,
}

impl FedAvg {
    /// FedAvg in the given operation order.
    #[must_use]
    pub fn with_order(order: FedAvgOrder) -> Self {
        Self { order }
    }
}

impl<T: Scalar> Aggregator<T> for FedAvg {
    type Error = Error;

    fn name(&self) -> &'static str {
        "fedavg"
    }

    fn is_linear(&self) -> bool {
        true
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        weighted_average(global, updates, self.order)
    }
}

/// FedProx's server side: FedAvg aggregation, carrying the proximal coefficient μ that the
/// server sends to clients, whose local objective becomes `F_i(w) + μ/2‖w − w_global‖²`
/// (Li et al. 2020, §3, Algorithm 2; the client term is in fl-train).
#[derive(Clone, Copy, Debug)]
pub struct FedProx {
    mu: f64,
    fedavg: FedAvg,
}

impl FedProx {
    /// FedProx with proximal coefficient `mu` (the product documentation's default is 0.01).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] unless `mu` is finite and non-negative.
    pub fn new(mu: f64) -> Result<Self> {
        Ok(Self { mu: in_range("mu", mu, 0.0..)?, fedavg: FedAvg::default() })
    }

    /// The proximal coefficient μ to send to clients.
    #[must_use]
    pub fn proximal_mu(&self) -> f64 {
        self.mu
    }
}

impl<T: Scalar> Aggregator<T> for FedProx {
    type Error = Error;

    fn name(&self) -> &'static str {
        "fedprox"
    }

    fn is_linear(&self) -> bool {
        true
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        Aggregator::<T>::aggregate(&mut self.fedavg, global, updates)
    }
}

/// A streaming FedAvg: add updates as they arrive in O(d) memory (f64 sums), merge partial
/// accumulators from several threads or shards, and finish into the weighted average.
///
/// Sums are kept in f64, so the result is within f64 rounding of the exact weighted average
/// whatever the arrival or merge order (it is not bit-identical to Flower's fixed order).
#[derive(Clone, Debug)]
pub struct FedAvgAccumulator<T: Scalar = f32> {
    spec: Arc<ModelSpec>,
    sum: Vec<f64>,
    weight: u64,
    count: usize,
    _element: PhantomData<T>,
}

impl<T: Scalar> FedAvgAccumulator<T> {
    /// An empty accumulator for models of `spec`.
    #[must_use]
    pub fn new(spec: Arc<ModelSpec>) -> Self {
        let sum = vec![0.0; spec.num_params()];
        Self { spec, sum, weight: 0, count: 0, _element: PhantomData }
    }

    /// Adds one update, weighted by its `num_examples`. On error nothing is added.
    ///
    /// # Errors
    ///
    /// Layout mismatch or non-finite value ([`fl_core::Error`]), or [`Error::WeightOverflow`].
    pub fn add(&mut self, update: &ClientUpdate<T>) -> Result<()> {
        self.spec.ensure_same(update.params.spec())?;
        update.params.ensure_finite()?;
        let weight = self.weight.checked_add(update.num_examples).ok_or(Error::WeightOverflow)?;
        #[allow(clippy::cast_precision_loss, reason = "example counts are far below 2^53")]
        let n = update.num_examples as f64;
        let x = update.params.as_slice();
        let kernel = |(s, x): (&mut [f64], &[T])| {
            s.iter_mut().zip(x).for_each(|(s, x)| *s += n * x.as_f64());
        };
        if x.len() >= fl_core::ops::PAR_THRESHOLD {
            self.sum.par_chunks_mut(BLOCK).zip(x.par_chunks(BLOCK)).for_each(kernel);
        } else {
            kernel((&mut self.sum, x));
        }
        self.weight = weight;
        self.count += 1;
        Ok(())
    }

    /// Folds another accumulator of the same model into this one.
    ///
    /// # Errors
    ///
    /// Layout mismatch ([`fl_core::Error`]) or [`Error::WeightOverflow`].
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        self.spec.ensure_same(&other.spec)?;
        let weight = self.weight.checked_add(other.weight).ok_or(Error::WeightOverflow)?;
        fl_core::ops::add_assign(&mut self.sum, &other.sum)?;
        self.weight = weight;
        self.count += other.count;
        Ok(())
    }

    /// Updates added so far (including merged ones).
    #[must_use]
    pub fn count(&self) -> usize {
        self.count
    }

    /// Sum of `num_examples` so far.
    #[must_use]
    pub fn total_weight(&self) -> u64 {
        self.weight
    }

    /// The weighted average of everything added.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroTotalWeight`] if nothing (or only zero-weight updates) was added;
    /// [`Error::NonFiniteOutput`] if the average overflows the element type.
    pub fn finish(&self) -> Result<ModelParams<T>> {
        if self.weight == 0 {
            return Err(Error::ZeroTotalWeight);
        }
        #[allow(clippy::cast_precision_loss, reason = "example counts are far below 2^53")]
        let total = self.weight as f64;
        let data = self.sum.iter().map(|s| T::from_f64(s / total)).collect();
        finish("FedAvgAccumulator", &self.spec, data)
    }
}

#[cfg(test)]
mod tests {
    use fl_core::{ModelVersion, PartnerId, Round};

    use super::*;

    fn spec(d: usize) -> Arc<ModelSpec> {
        Arc::new(ModelSpec::from_pairs([("w", vec![d])]).unwrap())
    }

    fn update(spec: &Arc<ModelSpec>, n: u64, data: Vec<f64>) -> ClientUpdate<f64> {
        let id = PartnerId::new(format!("p{n}")).unwrap();
        ClientUpdate::new(
            id,
            Round(1),
            ModelVersion(0),
            n,
            ModelParams::from_flat(Arc::clone(spec), data).unwrap(),
        )
    }

    #[test]
    fn weights_by_examples() -> Result<()> {
        let s = spec(2);
        let g = ModelParams::zeros(Arc::clone(&s));
        let ups = [update(&s, 1, vec![0.0, 4.0]), update(&s, 3, vec![4.0, 0.0])];
        for order in [FedAvgOrder::InPlace, FedAvgOrder::Reference] {
            assert_eq!(weighted_average(&g, &ups, order)?.as_slice(), &[3.0, 1.0]);
        }
        Ok(())
    }

    #[test]
    fn bad_inputs_are_errors() {
        let s = spec(2);
        let g = ModelParams::<f64>::zeros(Arc::clone(&s));
        assert!(matches!(
            weighted_average(&g, &[], FedAvgOrder::InPlace),
            Err(Error::TooFewClients { .. })
        ));
        let zero = [update(&s, 0, vec![1.0, 1.0])];
        assert!(matches!(
            weighted_average(&g, &zero, FedAvgOrder::InPlace),
            Err(Error::ZeroTotalWeight)
        ));
        let over = [update(&s, u64::MAX, vec![1.0, 1.0]), update(&s, 1, vec![1.0, 1.0])];
        assert!(matches!(
            weighted_average(&g, &over, FedAvgOrder::InPlace),
            Err(Error::WeightOverflow)
        ));
        let nan = [update(&s, 1, vec![1.0, f64::NAN])];
        assert!(matches!(
            weighted_average(&g, &nan, FedAvgOrder::InPlace),
            Err(Error::Core(fl_core::Error::NonFinite { .. }))
        ));
        let other = spec(3);
        let wrong = [update(&other, 1, vec![1.0; 3])];
        assert!(matches!(
            weighted_average(&g, &wrong, FedAvgOrder::InPlace),
            Err(Error::Core(fl_core::Error::ShapeMismatch { .. }))
        ));
        let mut late = update(&s, 1, vec![1.0, 1.0]);
        late.round = Round(2);
        assert!(matches!(
            weighted_average(&g, &[update(&s, 1, vec![1.0, 1.0]), late], FedAvgOrder::InPlace),
            Err(Error::MixedRounds { index: 1, .. })
        ));
        // Overflowing f32 inputs give an error, not infinity (the reference order forms
        // x·n sums, which overflow where the in-place order's x·(n/N) would not).
        let s32 = spec(1);
        let g32 = ModelParams::<f32>::zeros(Arc::clone(&s32));
        let big = |n| {
            ClientUpdate::new(
                PartnerId::new("b").unwrap(),
                Round(1),
                ModelVersion(0),
                n,
                ModelParams::from_flat(Arc::clone(&s32), vec![f32::MAX]).unwrap(),
            )
        };
        assert!(matches!(
            weighted_average(&g32, &[big(1), big(1)], FedAvgOrder::Reference),
            Err(Error::NonFiniteOutput { .. })
        ));
        assert!(FedProx::new(-1.0).is_err() && FedProx::new(f64::NAN).is_err());
    }

    #[test]
    fn accumulator_matches_batch_and_merges() -> Result<()> {
        let s = spec(50_000);
        let ups: Vec<_> = (1..=6u64)
            .map(|n| {
                update(
                    &s,
                    n * 7,
                    (0..50_000).map(|i| ((i as f64) * 0.01 + n as f64).sin()).collect(),
                )
            })
            .collect();
        let g = ModelParams::zeros(Arc::clone(&s));
        let batch = weighted_average(&g, &ups, FedAvgOrder::InPlace)?;
        let mut a = FedAvgAccumulator::new(Arc::clone(&s));
        let mut b = FedAvgAccumulator::new(Arc::clone(&s));
        for (i, u) in ups.iter().enumerate() {
            if i % 2 == 0 { a.add(u)? } else { b.add(u)? }
        }
        a.merge(&b)?;
        assert_eq!((a.count(), a.total_weight()), (6, 7 * 21));
        let streamed = a.finish()?;
        for (x, y) in streamed.as_slice().iter().zip(batch.as_slice()) {
            assert!((x - y).abs() <= 1e-14 * (1.0 + y.abs()));
        }
        let empty = FedAvgAccumulator::<f64>::new(Arc::clone(&s));
        assert!(matches!(empty.finish(), Err(Error::ZeroTotalWeight)));
        let mut bad = update(&s, 1, vec![0.0; 50_000]);
        bad.params.as_mut_slice()[3] = f64::INFINITY;
        assert!(a.add(&bad).is_err());
        assert_eq!(a.count(), 6, "a refused update leaves the accumulator unchanged");
        Ok(())
    }
}
