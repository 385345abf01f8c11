//! Pairwise squared Euclidean distances between client updates, as one blocked matrix product.
//!
//! `‖x_i − x_j‖² = G_ii + G_jj − 2 G_ij` with `G = X Xᵀ`, so all `n²` distances cost one Gram
//! matrix: BLAS-3 work that runs at the machine's floating-point peak (ndarray's `matrixmultiply`
//! picks AVX2/FMA kernels at run time) instead of `n²/2` memory-bound passes.
//!
//! The Gram trick loses precision when distances are small next to the norms (cancellation), so:
//! - each block of coordinates is **centered** on its coordinate mean before the product
//!   (distances are translation invariant; this removes the large common component that full
//!   models share),
//! - the product is formed in **f64** whatever the element type,
//! - any pair whose distance comes out below `1e-4 × (G_ii + G_jj)` — near-duplicates, e.g. Sybil
//!   copies — is **recomputed directly** (`Σ (x_i − x_j)²` in f64).
//!
//! Results are deterministic: blocks are summed in fixed groups and in fixed order, independent of
//! the number of threads.

use fl_core::{Scalar, ops};
use ndarray::{Array2, ArrayView2, linalg::general_mat_mul};
use rayon::prelude::*;

/// A symmetric `n × n` matrix of squared distances with an exact zero diagonal.
#[derive(Clone, Debug, PartialEq)]
pub struct DistanceMatrix {
    n: usize,
    d: Vec<f64>,
}

impl DistanceMatrix {
    /// Number of points.
    #[must_use]
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no points.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// `‖x_i − x_j‖²`.
    ///
    /// # Panics
    ///
    /// If `i` or `j` is out of range.
    #[must_use]
    pub fn get(&self, i: usize, j: usize) -> f64 {
        assert!(i < self.n && j < self.n, "distance index out of range");
        self.d[i * self.n + j]
    }

    /// Row `i`: the squared distances from point `i` to every point.
    ///
    /// # Panics
    ///
    /// If `i` is out of range.
    #[must_use]
    pub fn row(&self, i: usize) -> &[f64] {
        &self.d[i * self.n..(i + 1) * self.n]
    }

    /// Builds the matrix from a full row-major `n × n` buffer (e.g. a reference's values).
    #[must_use]
    pub fn from_row_major(n: usize, d: Vec<f64>) -> Option<Self> {
        (d.len() == n * n).then_some(Self { n, d })
    }
}

/// Relative threshold under which a Gram-derived distance is recomputed directly.
const RECOMPUTE_BELOW: f64 = 1e-4;

/// Target bytes of one centered f64 block (`n × block` values).
const BLOCK_BYTES: usize = 1 << 20;

/// Upper bound on f64 entries held in per-group partial Gram matrices.
const PARTIAL_BUDGET: usize = 1 << 23;

/// All pairwise squared distances of `rows` (equal lengths, checked by the caller).
#[must_use]
pub fn pairwise_sq_distances<T: Scalar>(rows: &[&[T]]) -> DistanceMatrix {
    let n = rows.len();
    if n == 0 {
        return DistanceMatrix { n, d: Vec::new() };
    }
    let g = gram_centered(rows);
    let mut d = vec![0.0; n * n];
    let mut close = Vec::new();
    for i in 0..n {
        for j in (i + 1)..n {
            let scale = g[i * n + i] + g[j * n + j];
            let v = (scale - 2.0 * g[i * n + j]).max(0.0);
            if v < RECOMPUTE_BELOW * scale || scale == 0.0 {
                close.push((i, j));
            }
            d[i * n + j] = v;
            d[j * n + i] = v;
        }
    }
    let exact: Vec<f64> = close
        .par_iter()
        .map(|&(i, j)| ops::dist_sq(rows[i], rows[j]).unwrap_or(f64::INFINITY))
        .collect();
    for (&(i, j), v) in close.iter().zip(exact) {
        d[i * n + j] = v;
        d[j * n + i] = v;
    }
    DistanceMatrix { n, d }
}

/// Squared distances computed directly, pair by pair (`O(n² d)`; the reference for tests).
#[must_use]
pub fn pairwise_sq_distances_direct<T: Scalar>(rows: &[&[T]]) -> DistanceMatrix {
    let n = rows.len();
    let pairs: Vec<(usize, usize)> =
        (0..n).flat_map(|i| ((i + 1)..n).map(move |j| (i, j))).collect();
    let vals: Vec<f64> = pairs
        .par_iter()
        .map(|&(i, j)| ops::dist_sq(rows[i], rows[j]).unwrap_or(f64::INFINITY))
        .collect();
    let mut d = vec![0.0; n * n];
    for (&(i, j), v) in pairs.iter().zip(vals) {
        d[i * n + j] = v;
        d[j * n + i] = v;
    }
    DistanceMatrix { n, d }
}

/// The Gram matrix of the rows after centering each coordinate block on its mean, in f64.
fn gram_centered<T: Scalar>(rows: &[&[T]]) -> Vec<f64> {
    let n = rows.len();
    let dim = rows[0].len();
    let block = (BLOCK_BYTES / (8 * n)).clamp(64, 8192).min(dim.max(1));
    let nblocks = dim.div_ceil(block);
    let groups = (PARTIAL_BUDGET / (n * n)).clamp(1, 16).min(nblocks.max(1));
    let partials: Vec<Vec<f64>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let (first, last) = (g * nblocks / groups, (g + 1) * nblocks / groups);
            let mut acc = vec![0.0; n * n];
            let mut x = vec![0.0f64; n * block];
            let mut prod = Array2::<f64>::zeros((n, n));
            let mut mean = vec![0.0; block];
            for b in first..last {
                let start = b * block;
                let w = block.min(dim - start);
                let mean = &mut mean[..w];
                mean.fill(0.0);
                for r in rows {
                    for (m, v) in mean.iter_mut().zip(&r[start..start + w]) {
                        *m += v.as_f64();
                    }
                }
                #[allow(clippy::cast_precision_loss, reason = "client counts are small")]
                let inv = 1.0 / n as f64;
                mean.iter_mut().for_each(|m| *m *= inv);
                for (xr, r) in x.chunks_exact_mut(w).zip(rows) {
                    for ((o, v), m) in xr.iter_mut().zip(&r[start..start + w]).zip(mean.iter()) {
                        *o = v.as_f64() - m;
                    }
                }
                let Ok(xb) = ArrayView2::from_shape((n, w), &x[..n * w]) else { continue };
                general_mat_mul(1.0, &xb, &xb.t(), 0.0, &mut prod);
                for (a, p) in acc.iter_mut().zip(prod.iter()) {
                    *a += p;
                }
            }
            acc
        })
        .collect();
    let mut total = vec![0.0; n * n];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(seed: u64, d: usize, scale: f64, offset: f64) -> Vec<f64> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..d)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                #[allow(clippy::cast_precision_loss)]
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                offset + scale * (u - 0.5)
            })
            .collect()
    }

    fn assert_close(a: &DistanceMatrix, b: &DistanceMatrix, rel: f64) {
        for i in 0..a.len() {
            for j in 0..a.len() {
                let (x, y) = (a.get(i, j), b.get(i, j));
                assert!((x - y).abs() <= rel * y.abs() + 1e-300, "({i},{j}): {x} vs {y}");
            }
        }
    }

    #[test]
    fn gram_matches_direct_with_large_common_offset_and_outlier() {
        // Full models share a large offset (1e3) and differ by O(1); one outlier sits 1e6 away;
        // two rows are exact duplicates. Every distance must match the direct computation.
        let d = 20_000;
        let mut data: Vec<Vec<f64>> = (0..12).map(|i| pseudo(i, d, 1.0, 1e3)).collect();
        data[5] = pseudo(99, d, 1.0, 1e6);
        data[7] = data[3].clone();
        let rows: Vec<&[f64]> = data.iter().map(Vec::as_slice).collect();
        let fast = pairwise_sq_distances(&rows);
        let slow = pairwise_sq_distances_direct(&rows);
        assert_close(&fast, &slow, 1e-9);
        assert_eq!(fast.get(3, 7), 0.0);
        assert_eq!(fast.get(4, 4), 0.0);
    }

    #[test]
    fn f32_rows_match_direct() {
        let d = 70_001;
        let data: Vec<Vec<f32>> = (0..9)
            .map(|i| pseudo(i, d, 2.0, 5.0).into_iter().map(|v| v as f32).collect())
            .collect();
        let rows: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
        assert_close(&pairwise_sq_distances(&rows), &pairwise_sq_distances_direct(&rows), 1e-9);
    }

    #[test]
    fn deterministic() {
        let data: Vec<Vec<f64>> = (0..30).map(|i| pseudo(i, 50_000, 1.0, 0.0)).collect();
        let rows: Vec<&[f64]> = data.iter().map(Vec::as_slice).collect();
        let a = pairwise_sq_distances(&rows);
        for _ in 0..3 {
            assert_eq!(pairwise_sq_distances(&rows), a);
        }
    }
}
