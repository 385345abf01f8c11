//! Coordinate-wise rules: median and trimmed mean (Yin, Chen, Ramchandran, Bartlett,
//! "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates", ICML 2018, §3),
//! and the sorting kernel they share with Bulyan.
//!
//! Each coordinate's n values must be ordered. Instead of a transpose plus one branchy
//! selection per coordinate, 16 neighbouring coordinates are sorted at once: row `i`'s slice
//! `x_i[c..c+16]` is one lane array, and a Batcher odd–even merge sorting network (Knuth, TAOCP
//! vol. 3, §5.3.4, Algorithm M) is applied to the n lane arrays with branch-free lane-wise
//! min/max, which the compiler turns into SIMD. Rows are read in place (no transpose), and the
//! network is pruned to the compare-exchanges that reach the ranks a statistic needs.

use fl_core::{ClientUpdate, ModelParams, Scalar};
use rayon::prelude::*;

use crate::validate::{check_structure, check_values, finish, in_range, rows};
use crate::{Aggregator, Error, Result};

/// Coordinates sorted together.
pub(crate) const LANES: usize = 16;

/// Coordinates per rayon task.
const TASK_COORDS: usize = LANES * 64;

/// A sorting network for `n` inputs, as compare-exchange pairs `(i, j)` with `i < j`.
#[derive(Clone, Debug)]
pub(crate) struct SortNetwork {
    n: usize,
    pairs: Vec<(u32, u32)>,
}

impl SortNetwork {
    /// Batcher's odd–even merge sort for any `n` (the iterative form; pairs reaching past `n`
    /// are dropped, which is exact because they would only compare against +∞ padding).
    pub(crate) fn sorting(n: usize) -> Self {
        let mut pairs = Vec::new();
        let mut p = 1;
        while p < n {
            let mut k = p;
            while k >= 1 {
                let mut j = k % p;
                while j + k < n {
                    for i in 0..k.min(n - j - k) {
                        if (i + j) / (2 * p) == (i + j + k) / (2 * p) {
                            #[allow(
                                clippy::cast_possible_truncation,
                                reason = "client counts are far below 2^32"
                            )]
                            pairs.push(((i + j) as u32, (i + j + k) as u32));
                        }
                    }
                    j += 2 * k;
                }
                k /= 2;
            }
            p *= 2;
        }
        Self { n, pairs }
    }

    /// The sorting network restricted to the compare-exchanges that can influence the outputs at
    /// `ranks`: after it runs, those positions hold exactly the values a full sort puts there.
    pub(crate) fn for_ranks(n: usize, ranks: &[usize]) -> Self {
        let full = Self::sorting(n);
        let mut needed = vec![false; n];
        for &r in ranks {
            needed[r] = true;
        }
        let mut kept: Vec<(u32, u32)> = full
            .pairs
            .iter()
            .rev()
            .filter(|&&(a, b)| {
                let keep = needed[a as usize] || needed[b as usize];
                if keep {
                    needed[a as usize] = true;
                    needed[b as usize] = true;
                }
                keep
            })
            .copied()
            .collect();
        kept.reverse();
        Self { n, pairs: kept }
    }

    #[inline(always)]
    fn run<T: Scalar>(&self, buf: &mut [[T; LANES]]) {
        for &(i, j) in &self.pairs {
            let (lo, hi) = buf.split_at_mut(j as usize);
            let (a, b) = (lo[i as usize], hi[0]);
            // Written as selects on `<` so they compile to SIMD min/max (inputs are finite).
            lo[i as usize] = std::array::from_fn(|l| if a[l] < b[l] { a[l] } else { b[l] });
            hi[0] = std::array::from_fn(|l| if a[l] < b[l] { b[l] } else { a[l] });
        }
    }
}

/// Sorts every coordinate's n values with `net` and maps the sorted column of each coordinate
/// (`sorted[r][lane]` is the rank-`r` value) to an output with `stat`. Returns `None` if any
/// input is non-finite; the check rides along with the copy instead of a separate pass.
pub(crate) fn sorted_columns<T: Scalar>(
    rows: &[&[T]],
    net: &SortNetwork,
    stat: impl Fn(&[[T; LANES]], usize) -> T + Sync,
) -> Option<Vec<T>> {
    let n = rows.len();
    debug_assert_eq!(n, net.n);
    let d = rows[0].len();
    let mut out = vec![T::zero(); d];
    let arch = pulp::Arch::new();
    // The task body runs under `Arch::dispatch`, compiled for the best instruction set the CPU
    // has (AVX2/AVX-512), so the lane-wise min/max use the widest vectors available.
    let kernel = |buf: &mut Vec<[T; LANES]>, task: (usize, &mut [T])| -> bool {
        arch.dispatch(|| sort_task(rows, net, &stat, buf, task))
    };
    let all_finite = if d * n >= fl_core::ops::PAR_THRESHOLD {
        out.par_chunks_mut(TASK_COORDS)
            .enumerate()
            .map_init(Vec::new, kernel)
            .reduce(|| true, |a, b| a & b)
    } else {
        let mut buf = Vec::new();
        out.chunks_mut(TASK_COORDS).enumerate().fold(true, |ok, x| ok & kernel(&mut buf, x))
    };
    all_finite.then_some(out)
}

/// One rayon task of [`sorted_columns`]: the coordinates `o` starting at `t · TASK_COORDS`.
#[inline(always)]
fn sort_task<T: Scalar>(
    rows: &[&[T]],
    net: &SortNetwork,
    stat: &impl Fn(&[[T; LANES]], usize) -> T,
    buf: &mut Vec<[T; LANES]>,
    (t, o): (usize, &mut [T]),
) -> bool {
    buf.resize(rows.len(), [T::zero(); LANES]);
    let mut finite = true;
    for (g, og) in o.chunks_mut(LANES).enumerate() {
        let c = t * TASK_COORDS + g * LANES;
        let w = og.len();
        for (dst, r) in buf.iter_mut().zip(rows) {
            let src = &r[c..c + w];
            finite &= src.iter().fold(true, |ok, x| ok & x.is_finite());
            dst[..w].copy_from_slice(src);
        }
        net.run(buf);
        for (lane, o) in og.iter_mut().enumerate() {
            *o = stat(buf, lane);
        }
    }
    finite
}

/// Median of a sorted column; even lengths give `fl(fl(lo + hi) / 2)` as numpy does.
pub(crate) fn median_sorted<T: Scalar>(sorted: &[[T; LANES]], lane: usize) -> T {
    let n = sorted.len();
    let hi = sorted[n / 2][lane];
    if n % 2 == 1 { hi } else { (sorted[n / 2 - 1][lane] + hi) / T::from_f64(2.0) }
}

/// The median network for `n` values.
pub(crate) fn median_network(n: usize) -> SortNetwork {
    SortNetwork::for_ranks(n, &[(n - 1) / 2, n / 2])
}

/// Runs a coordinate-wise statistic, turning a non-finite input into the error naming it.
pub(crate) fn run_sorted_columns<T: Scalar>(
    rule: &'static str,
    global: &ModelParams<T>,
    updates: &[ClientUpdate<T>],
    rows: &[&[T]],
    net: &SortNetwork,
    stat: impl Fn(&[[T; LANES]], usize) -> T + Sync,
) -> Result<ModelParams<T>> {
    match sorted_columns(rows, net, stat) {
        Some(out) => finish(rule, global.shared_spec(), out),
        None => {
            check_values(updates)?;
            Err(Error::NonFiniteOutput { rule })
        }
    }
}

/// Coordinate-wise median (Yin et al. 2018), Flower's `FedMedian`. Unweighted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Median;

impl<T: Scalar> Aggregator<T> for Median {
    type Error = Error;

    fn name(&self) -> &'static str {
        "median"
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        check_structure("median", global, updates, 1)?;
        let net = median_network(updates.len());
        run_sorted_columns("median", global, updates, &rows(updates), &net, median_sorted)
    }
}

/// Coordinate-wise trimmed mean (Yin et al. 2018), Flower's `FedTrimmedAvg`: per coordinate,
/// drop `⌊p·n⌋` values at each end and average the rest. Unweighted.
#[derive(Clone, Copy, Debug)]
pub struct TrimmedMean {
    proportion: f64,
}

impl TrimmedMean {
    /// Cut proportion `p` per side, `0 ≤ p < 0.5` (Flower's `beta`; its default is 0.2).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] outside `[0, 0.5)`.
    pub fn new(proportion: f64) -> Result<Self> {
        Ok(Self { proportion: in_range("proportion", proportion, 0.0..0.5)? })
    }

    /// Values cut from each end for `n` clients: `⌊p·n⌋` computed in f64, as Flower does.
    #[must_use]
    pub fn cut(&self, n: usize) -> usize {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "Flower truncates the f64 product toward zero; p ≥ 0"
        )]
        let cut = (self.proportion * n as f64) as usize;
        cut
    }
}

impl<T: Scalar> Aggregator<T> for TrimmedMean {
    type Error = Error;

    fn name(&self) -> &'static str {
        "trimmed_mean"
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        check_structure("trimmed_mean", global, updates, 1)?;
        let cut = self.cut(updates.len());
        if 2 * cut >= updates.len() {
            return Err(Error::TooFewClients {
                rule: "trimmed_mean",
                needed: 2 * cut + 1,
                got: updates.len(),
            });
        }
        let n = updates.len();
        #[allow(clippy::cast_precision_loss, reason = "client counts are small")]
        let count = (n - 2 * cut) as f64;
        let net = SortNetwork::sorting(n);
        run_sorted_columns("trimmed_mean", global, updates, &rows(updates), &net, |sorted, lane| {
            T::from_f64(sorted[cut..n - cut].iter().map(|r| r[lane].as_f64()).sum::<f64>() / count)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column_stat(
        values: &[f64],
        net: &SortNetwork,
        stat: impl Fn(&[[f64; LANES]], usize) -> f64,
    ) -> f64 {
        let mut buf: Vec<[f64; LANES]> = values.iter().map(|&v| [v; LANES]).collect();
        net.run(&mut buf);
        stat(&buf, 3)
    }

    #[test]
    fn networks_sort_every_zero_one_input() {
        // The 0-1 principle (Knuth 5.3.4, Theorem Z): a network that sorts all 2^n binary inputs
        // sorts everything. Checked exhaustively for n ≤ 12, 16 lanes at a time.
        for n in 1..=12usize {
            let net = SortNetwork::sorting(n);
            for base in (0..1u32 << n).step_by(LANES) {
                let mut buf: Vec<[f64; LANES]> = (0..n)
                    .map(|i| std::array::from_fn(|l| f64::from(((base + l as u32) >> i) & 1)))
                    .collect();
                net.run(&mut buf);
                for l in 0..LANES {
                    assert!(
                        buf.windows(2).all(|w| w[0][l] <= w[1][l]),
                        "n = {n}, input {}",
                        base + l as u32
                    );
                }
            }
        }
    }

    #[test]
    fn networks_sort_random_inputs_of_many_sizes() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for n in (13..=130).chain([257, 300]) {
            let full = SortNetwork::sorting(n);
            let med = median_network(n);
            assert!(med.pairs.len() <= full.pairs.len());
            let mut values: Vec<f64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 11) as f64
                })
                .collect();
            let mut buf: Vec<[f64; LANES]> = values.iter().map(|&v| [v; LANES]).collect();
            full.run(&mut buf);
            values.sort_by(f64::total_cmp);
            assert!(buf.iter().zip(&values).all(|(b, v)| b[5] == *v), "n = {n}");
            let mut buf: Vec<[f64; LANES]> = values.iter().rev().map(|&v| [v; LANES]).collect();
            med.run(&mut buf);
            assert_eq!(
                median_sorted(&buf, 0),
                median_sorted(&values.iter().map(|&v| [v; LANES]).collect::<Vec<_>>(), 0)
            );
        }
    }

    #[test]
    fn median_and_trim_on_small_sets() {
        let med = |v: &[f64]| column_stat(v, &median_network(v.len()), median_sorted);
        assert_eq!(med(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(med(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(med(&[-4.0, -1.0, -3.0, -2.0]), -2.5);
        assert_eq!(med(&[7.0]), 7.0);
        let t = TrimmedMean::new(0.29).unwrap();
        assert_eq!(t.cut(100), 28);
        assert_eq!(TrimmedMean::new(0.2).unwrap().cut(11), 2);
        assert!(TrimmedMean::new(0.5).is_err());
    }

    #[test]
    fn sorted_columns_match_naive_and_flag_non_finite() {
        let n = 7;
        let d = 100_003;
        let data: Vec<Vec<f32>> = (0..n)
            .map(|i| (0..d).map(|c| ((c * 31 + i * 17) % 101) as f32 - 50.0).collect())
            .collect();
        let rows: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
        let got = sorted_columns(&rows, &median_network(n), median_sorted).unwrap();
        for c in (0..d).step_by(997).chain([d - 1]) {
            let mut col: Vec<f32> = data.iter().map(|r| r[c]).collect();
            col.sort_by(f32::total_cmp);
            assert_eq!(got[c], col[n / 2], "coordinate {c}");
        }
        let mut bad = data.clone();
        bad[3][77_777] = f32::NAN;
        let rows: Vec<&[f32]> = bad.iter().map(Vec::as_slice).collect();
        assert!(sorted_columns(&rows, &median_network(n), median_sorted).is_none());
    }
}
