//! Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with
//! Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017, §4). Each update is scored by
//! the sum of its squared distances to its `n − f − 2` nearest neighbours; Krum returns the
//! lowest-scoring update, Multi-Krum the average of the `m` lowest.
//!
//! Flower's semantics are reproduced (`flower_agg_semantics.md` §4–§5): neighbours are the sorted
//! row without its first zero (self); `k = max(1, n − f − 2)`; the first index wins ties;
//! Multi-Krum averages with `num_examples` weights in Flower's reference order, summing from the
//! m-th best to the best. Unlike Flower, `n > 2f + 2` is enforced (the paper's condition) and
//! `m > n` is an error rather than Python's negative-index quirk.

use fl_core::{ClientUpdate, ModelParams, Scalar};

use crate::distance::{DistanceMatrix, pairwise_sq_distances_around};
use crate::fedavg::weighted_average_reference;
use crate::validate::{check_structure, check_values, finish, rows};
use crate::{Aggregator, Error, Result};

/// Krum scores of the points `subset` (indices into `dist`), with `f` Byzantine clients assumed.
#[must_use]
pub fn krum_scores(dist: &DistanceMatrix, subset: &[usize], f: usize) -> Vec<f64> {
    let m = subset.len();
    let k = m.saturating_sub(f + 2).max(1);
    let mut row = Vec::with_capacity(m);
    subset
        .iter()
        .map(|&i| {
            row.clear();
            row.extend(subset.iter().map(|&j| dist.get(i, j)));
            row.sort_by(f64::total_cmp);
            row.iter().skip(1).take(k).sum()
        })
        .collect()
}

/// Position of the smallest score, the first on ties.
pub(crate) fn argmin(scores: &[f64]) -> usize {
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if *s < scores[best] {
            best = i;
        }
    }
    best
}

/// The outcome of Krum selection.
#[derive(Clone, Debug, PartialEq)]
pub struct KrumSelection {
    /// Score of every update, in input order.
    pub scores: Vec<f64>,
    /// Selected updates: for Krum the single winner; for Multi-Krum the `m` best in summation
    /// order (m-th best first, best last).
    pub selected: Vec<usize>,
}

/// Scores and selects, without aggregating.
///
/// # Errors
///
/// [`Error::ByzantineBound`] unless `n > 2f + 2`; [`Error::InvalidConfig`] unless `1 ≤ m ≤ n`.
pub fn krum_select(dist: &DistanceMatrix, f: usize, m: usize) -> Result<KrumSelection> {
    let n = dist.len();
    if n <= f.saturating_mul(2).saturating_add(2) {
        return Err(Error::ByzantineBound { rule: "krum", n, f, bound: "n > 2f + 2" });
    }
    if m == 0 || m > n {
        return Err(Error::config("m", format!("Multi-Krum keeps 1..={n} updates, not {m}")));
    }
    let all: Vec<usize> = (0..n).collect();
    let scores = krum_scores(dist, &all, f);
    let selected = if m == 1 {
        vec![argmin(&scores)]
    } else {
        // numpy: argsort(scores)[::-1][n - m:] — the m lowest, from the m-th lowest down.
        let mut order = all;
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
        order.truncate(m);
        order.reverse();
        order
    };
    Ok(KrumSelection { scores, selected })
}

/// Distances between the updates, centered on the global model. Values are validated through the
/// result: a NaN or infinity in any input makes some distance non-finite, and only then are the
/// inputs scanned to name it — saving a full pass over `n·d` values on the normal path.
pub(crate) fn checked_distances<T: Scalar>(
    rule: &'static str,
    global: &ModelParams<T>,
    updates: &[ClientUpdate<T>],
    rows: &[&[T]],
) -> Result<DistanceMatrix> {
    global.ensure_finite()?;
    let dist = pairwise_sq_distances_around(rows, global.as_slice());
    if dist.is_finite() {
        return Ok(dist);
    }
    check_values(updates)?;
    Err(Error::NonFiniteOutput { rule })
}

/// Krum (`m = 1`) or Multi-Krum (`m > 1`) with `f` Byzantine clients tolerated.
#[derive(Clone, Copy, Debug)]
pub struct Krum {
    f: usize,
    m: usize,
}

impl Krum {
    /// Krum: return the single most central update.
    #[must_use]
    pub fn new(f: usize) -> Self {
        Self { f, m: 1 }
    }

    /// Multi-Krum: average the `m` most central updates, weighted by `num_examples`.
    #[must_use]
    pub fn multi(f: usize, m: usize) -> Self {
        Self { f, m }
    }
}

impl<T: Scalar> Aggregator<T> for Krum {
    type Error = Error;

    fn name(&self) -> &'static str {
        if self.m == 1 { "krum" } else { "multikrum" }
    }

    /// `2f + 3` (Blanchard et al. 2017, Prop. 1: Krum needs `n > 2f + 2`).
    fn min_updates(&self) -> usize {
        self.f.saturating_mul(2).saturating_add(3)
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        check_structure("krum", global, updates, Aggregator::<T>::min_updates(self))?;
        let rows = rows(updates);
        let dist = checked_distances("krum", global, updates, &rows)?;
        let sel = krum_select(&dist, self.f, self.m)?;
        if let [one] = sel.selected[..] {
            return Ok(updates[one].params.clone());
        }
        let chosen: Vec<&[T]> = sel.selected.iter().map(|&i| rows[i]).collect();
        let weights: Vec<u64> = sel.selected.iter().map(|&i| updates[i].num_examples).collect();
        let total =
            weights.iter().try_fold(0u64, |a, &w| a.checked_add(w)).ok_or(Error::WeightOverflow)?;
        if total == 0 {
            return Err(Error::ZeroTotalWeight);
        }
        finish(
            "multikrum",
            global.shared_spec(),
            weighted_average_reference(&chosen, &weights, total),
        )
    }
}
