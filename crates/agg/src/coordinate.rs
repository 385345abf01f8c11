//! Coordinate-wise rules: median and trimmed mean (Yin, Chen, Ramchandran, Bartlett,
//! "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates", ICML 2018, §3),
//! and the cache-blocked transpose they share with Bulyan.
//!
//! Updates arrive client-major; a statistic needs each coordinate's n values together. The
//! output is cut into blocks sized so that the transposed `block × n` buffer stays in L2; each
//! rayon task gathers one block from every client (contiguous reads) and runs a linear-time
//! selection per coordinate.

use std::cmp::Ordering;

use fl_core::{ClientUpdate, ModelParams, Scalar};
use rayon::prelude::*;

use crate::validate::{check_updates, finish, in_range, rows};
use crate::{Aggregator, Error, Result};

/// Bytes of one transposed block.
const BLOCK_BYTES: usize = 1 << 17;

pub(crate) fn cmp<T: Scalar>(a: &T, b: &T) -> Ordering {
    a.partial_cmp(b).unwrap_or(Ordering::Equal)
}

/// Applies `stat` to every coordinate's values (in client order, then permuted freely by `stat`).
pub(crate) fn coordinatewise<T: Scalar>(
    rows: &[&[T]],
    stat: impl Fn(&mut [T]) -> T + Sync,
) -> Vec<T> {
    let n = rows.len();
    let d = rows[0].len();
    let block = (BLOCK_BYTES / (n * size_of::<T>())).clamp(16, 4096);
    let mut out = vec![T::zero(); d];
    let kernel = |buf: &mut Vec<T>, (b, o): (usize, &mut [T])| {
        let start = b * block;
        let w = o.len();
        buf.resize(n * w, T::zero());
        for (i, r) in rows.iter().enumerate() {
            for (c, &v) in r[start..start + w].iter().enumerate() {
                buf[c * n + i] = v;
            }
        }
        for (c, o) in o.iter_mut().enumerate() {
            *o = stat(&mut buf[c * n..(c + 1) * n]);
        }
    };
    if d * n >= fl_core::ops::PAR_THRESHOLD {
        out.par_chunks_mut(block).enumerate().for_each_init(Vec::new, kernel);
    } else {
        let mut buf = Vec::new();
        out.chunks_mut(block).enumerate().for_each(|x| kernel(&mut buf, x));
    }
    out
}

/// Median of `v` (reordered in place); even lengths give `fl(fl(lo + hi) / 2)` as numpy does.
pub(crate) fn median_of<T: Scalar>(v: &mut [T]) -> T {
    let n = v.len();
    let (left, hi, _) = v.select_nth_unstable_by(n / 2, cmp);
    let hi = *hi;
    if n % 2 == 1 {
        return hi;
    }
    let lo = left.iter().copied().fold(T::neg_infinity(), T::max);
    (lo + hi) / T::from_f64(2.0)
}

/// Mean of `v` without its `cut` smallest and `cut` largest values (reordered in place).
fn trimmed_mean_of<T: Scalar>(v: &mut [T], cut: usize) -> T {
    let n = v.len();
    let kept = if cut == 0 {
        &v[..]
    } else {
        v.select_nth_unstable_by(cut, cmp);
        let upper = &mut v[cut..];
        upper.select_nth_unstable_by(n - 2 * cut - 1, cmp);
        &upper[..n - 2 * cut]
    };
    #[allow(clippy::cast_precision_loss, reason = "client counts are small")]
    let count = kept.len() as f64;
    T::from_f64(kept.iter().map(|x| x.as_f64()).sum::<f64>() / count)
}

/// Coordinate-wise median (Yin et al. 2018), Flower's `FedMedian`. Unweighted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Median;

impl<T: Scalar> Aggregator<T> for Median {
    fn name(&self) -> &'static str {
        "median"
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        check_updates("median", global, updates, 1)?;
        finish("median", global.shared_spec(), coordinatewise(&rows(updates), median_of))
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
    fn name(&self) -> &'static str {
        "trimmed_mean"
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        check_updates("trimmed_mean", global, updates, 1)?;
        let cut = self.cut(updates.len());
        if 2 * cut >= updates.len() {
            return Err(Error::TooFewClients {
                rule: "trimmed_mean",
                needed: 2 * cut + 1,
                got: updates.len(),
            });
        }
        let out = coordinatewise(&rows(updates), |v| trimmed_mean_of(v, cut));
        finish("trimmed_mean", global.shared_spec(), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_trim_on_small_sets() {
        assert_eq!(median_of(&mut [3.0f64, 1.0, 2.0]), 2.0);
        assert_eq!(median_of(&mut [4.0f64, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median_of(&mut [7.0f64]), 7.0);
        assert_eq!(trimmed_mean_of(&mut [100.0f64, 1.0, 2.0, 3.0, -50.0], 1), 2.0);
        assert_eq!(trimmed_mean_of(&mut [1.0f64, 2.0], 0), 1.5);
        let t = TrimmedMean::new(0.29).unwrap();
        assert_eq!(t.cut(100), 28);
        assert_eq!(TrimmedMean::new(0.2).unwrap().cut(11), 2);
        assert!(TrimmedMean::new(0.5).is_err());
    }

    #[test]
    fn blocked_transpose_matches_naive() {
        let n = 7;
        let d = 100_003;
        let data: Vec<Vec<f32>> = (0..n)
            .map(|i| (0..d).map(|c| ((c * 31 + i * 17) % 101) as f32 - 50.0).collect())
            .collect();
        let rows: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
        let got = coordinatewise(&rows, median_of);
        for c in (0..d).step_by(997) {
            let mut col: Vec<f32> = data.iter().map(|r| r[c]).collect();
            col.sort_by(f32::total_cmp);
            assert_eq!(got[c], col[n / 2], "coordinate {c}");
        }
    }
}
