//! Bulyan (El Mhamdi, Guerraoui, Rouault, "The Hidden Vulnerability of Distributed Learning in
//! Byzantium", ICML 2018, §4): select `θ = n − 2f` updates by repeated Krum, then per coordinate
//! average the `β = θ − 2f` values closest to the selected set's median.
//!
//! Flower semantics (`flower_agg_semantics.md` §6): Krum is re-run on the shrinking set with the
//! same `f` (`k = max(1, |remaining| − f − 2)`), and when several remaining updates are exactly
//! equal to the winner, the first of them is taken. Flower recomputes every distance θ times
//! (`O(θ n² d)`); the distances do not depend on the set, so we compute the matrix once and
//! re-score sub-matrices (`O(n² d + θ n² log n)`).

use fl_core::{ClientUpdate, ModelParams, Scalar};

use crate::coordinate::{LANES, SortNetwork, median_sorted, run_sorted_columns};
use crate::distance::DistanceMatrix;
use crate::krum::{argmin, checked_distances, krum_scores};
use crate::validate::{check_structure, rows};
use crate::{Aggregator, Error, Result};

/// Bulyan's selection: `θ` update indices in selection order.
///
/// `equal(a, b)` reports whether updates `a` and `b` are exactly equal; it is consulted only for
/// pairs at distance zero.
///
/// # Errors
///
/// [`Error::ByzantineBound`] unless `n ≥ 4f + 3`.
pub fn bulyan_select(
    dist: &DistanceMatrix,
    f: usize,
    equal: impl Fn(usize, usize) -> bool,
) -> Result<Vec<usize>> {
    let n = dist.len();
    if n < f.saturating_mul(4).saturating_add(3) {
        return Err(Error::ByzantineBound { rule: "bulyan", n, f, bound: "n >= 4f + 3" });
    }
    let theta = n - 2 * f;
    let mut remaining: Vec<usize> = (0..n).collect();
    let mut selected = Vec::with_capacity(theta);
    for _ in 0..theta {
        let scores = krum_scores(dist, &remaining, f);
        let best = argmin(&scores);
        let winner = remaining[best];
        // np.array_equal: the first remaining update equal to the winner is removed.
        let pos = remaining[..best]
            .iter()
            .position(|&i| dist.get(i, winner) == 0.0 && equal(i, winner))
            .unwrap_or(best);
        selected.push(remaining.remove(pos));
    }
    Ok(selected)
}

/// Mean of the `beta` values of a sorted column closest to its median. In sorted order they form
/// a window around the median, grown one value at a time towards the closer side (ties to the
/// smaller value; numpy's argpartition breaks them arbitrarily).
fn closest_to_median_mean<T: Scalar>(sorted: &[[T; LANES]], lane: usize, beta: usize) -> T {
    let n = sorted.len();
    let med = median_sorted(sorted, lane);
    let (mut lo, mut hi) = (n / 2, n / 2); // window [lo, hi)
    while hi - lo < beta {
        let take_low = hi == n || (lo > 0 && med - sorted[lo - 1][lane] <= sorted[hi][lane] - med);
        if take_low {
            lo -= 1;
        } else {
            hi += 1;
        }
    }
    #[allow(clippy::cast_precision_loss, reason = "client counts are small")]
    let count = beta as f64;
    T::from_f64(sorted[lo..hi].iter().map(|r| r[lane].as_f64()).sum::<f64>() / count)
}

/// Bulyan with Krum as the selection rule, tolerating `f` Byzantine clients (needs `n ≥ 4f + 3`).
#[derive(Clone, Copy, Debug)]
pub struct Bulyan {
    f: usize,
}

impl Bulyan {
    /// Bulyan for `f` Byzantine clients.
    #[must_use]
    pub fn new(f: usize) -> Self {
        Self { f }
    }
}

impl<T: Scalar> Aggregator<T> for Bulyan {
    type Error = Error;

    fn name(&self) -> &'static str {
        "bulyan"
    }

    /// `4f + 3` (El Mhamdi et al. 2018, §4: Bulyan needs `n ≥ 4f + 3`).
    fn min_updates(&self) -> usize {
        self.f.saturating_mul(4).saturating_add(3)
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        check_structure("bulyan", global, updates, Aggregator::<T>::min_updates(self))?;
        let rows = rows(updates);
        let dist = checked_distances("bulyan", global, updates, &rows)?;
        let selected = bulyan_select(&dist, self.f, |a, b| rows[a] == rows[b])?;
        let beta = selected.len() - 2 * self.f;
        let chosen: Vec<&[T]> = selected.iter().map(|&i| rows[i]).collect();
        let net = SortNetwork::sorting(chosen.len());
        run_sorted_columns("bulyan", global, updates, &chosen, &net, |sorted, lane| {
            closest_to_median_mean(sorted, lane, beta)
        })
    }
}
