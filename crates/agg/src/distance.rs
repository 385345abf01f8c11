//! Pairwise squared Euclidean distances between client updates, as one blocked matrix product.
//!
//! `‖x_i − x_j‖² = G_ii + G_jj − 2 G_ij` with `G = X Xᵀ`, so all `n²` distances cost one Gram
//! matrix: BLAS-3 work that runs near the machine's floating-point peak (faer's kernels pick
//! AVX2/AVX-512 at run time), and only its lower triangle is formed, instead of `n²/2`
//! memory-bound passes.
//!
//! The Gram trick loses precision when distances are small next to the norms (cancellation), so:
//! - each block of coordinates is **centered** before the product (distances are translation
//!   invariant): on the global model when the caller has one — client models are the global model
//!   plus a delta, and a far outlier does not shift anyone else's centered row — or else on the
//!   coordinate mean,
//! - the product is formed in **f64** whatever the element type,
//! - any pair whose distance comes out below `1e-4 × (G_ii + G_jj)` — near-duplicates, e.g. Sybil
//!   copies — is **recomputed directly** (`Σ (x_i − x_j)²` in f64).
//!
//! Results are deterministic: blocks are summed in fixed groups and in fixed order, independent of
//! the number of threads.

use faer::linalg::matmul::triangular::{BlockStructure, matmul};
use faer::{Accum, Mat, MatRef, Par};
use fl_core::{DType, Scalar, ops};
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

    /// Whether every entry is finite (false if an input held NaN/∞ or a distance overflowed).
    #[must_use]
    pub fn is_finite(&self) -> bool {
        self.d.iter().all(|x| x.is_finite())
    }
}

/// Target bytes of one centered block (`n × block` values).
const BLOCK_BYTES: usize = 1 << 21;

/// Upper bound on f64 entries held in per-group partial Gram matrices.
const PARTIAL_BUDGET: usize = 1 << 23;

/// All pairwise squared distances of `rows` (equal lengths, checked by the caller), with blocks
/// centered on their coordinate mean.
#[must_use]
pub fn pairwise_sq_distances<T: Scalar>(rows: &[&[T]]) -> DistanceMatrix {
    distances_from_gram(rows, None)
}

/// All pairwise squared distances of `rows`, with blocks centered on `center` (the global model,
/// for client models). `center` must have the rows' length.
#[must_use]
pub fn pairwise_sq_distances_around<T: Scalar>(rows: &[&[T]], center: &[T]) -> DistanceMatrix {
    distances_from_gram(rows, Some(center))
}

fn distances_from_gram<T: Scalar>(rows: &[&[T]], center: Option<&[T]>) -> DistanceMatrix {
    let n = rows.len();
    if n == 0 {
        return DistanceMatrix { n, d: Vec::new() };
    }
    let (g, recompute_below) = match T::DTYPE {
        DType::F32 => (gram_centered::<T, f32>(rows, center), 1e-3),
        _ => (gram_centered::<T, f64>(rows, center), 1e-6),
    };
    let mut d = vec![0.0; n * n];
    let mut close = Vec::new();
    for i in 0..n {
        for j in (i + 1)..n {
            let scale = g[i * n + i] + g[j * n + j];
            let raw = scale - 2.0 * g[i * n + j];
            // Non-finite Gram entries (NaN/∞ inputs) must reach the direct computation, which
            // keeps them non-finite; `max` below would turn a NaN into 0.
            if !raw.is_finite() || raw < recompute_below * scale || scale == 0.0 {
                close.push((i, j));
            }
            let v = raw.max(0.0);
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

/// The element type a Gram block is formed in: the input's own precision.
trait GramElem:
    faer::traits::RealField + Copy + Send + Sync + std::ops::Sub<Output = Self> + 'static
{
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn block_gram(acc: &mut Mat<Self>, x: MatRef<'_, Self>);
}

impl GramElem for f64 {
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn block_gram(acc: &mut Mat<Self>, x: MatRef<'_, Self>) {
        // Lower triangle only: half the flops.
        matmul(
            acc.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Replace,
            x,
            BlockStructure::Rectangular,
            x.transpose(),
            BlockStructure::Rectangular,
            1.0,
            Par::Seq,
        );
    }
}

impl GramElem for f32 {
    #[allow(clippy::cast_possible_truncation, reason = "centered f32 data, rounded once")]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn block_gram(acc: &mut Mat<Self>, x: MatRef<'_, Self>) {
        // faer's f32 rectangular kernel outruns its triangular one. Its AVX-512 micro-kernels
        // take rows in multiples of 16; leftover rows (e.g. 4 of 100) would run a whole 16-row
        // kernel over all columns, so they are handled as a narrow right-hand side instead:
        // [A; B] Xᵀ = [A Aᵀ, A Bᵀ; B Aᵀ, B Bᵀ] with A Aᵀ square and X Bᵀ only r columns wide.
        use faer::linalg::matmul::matmul as gemm;
        let n = x.nrows();
        let m0 = n - n % 16;
        if m0 == 0 || m0 == n {
            gemm(acc.as_mut(), Accum::Replace, x, x.transpose(), 1.0, Par::Seq);
            return;
        }
        let a = x.subrows(0, m0);
        let b = x.subrows(m0, n - m0);
        gemm(
            acc.as_mut().submatrix_mut(0, 0, m0, m0),
            Accum::Replace,
            a,
            a.transpose(),
            1.0,
            Par::Seq,
        );
        gemm(
            acc.as_mut().submatrix_mut(0, m0, n, n - m0),
            Accum::Replace,
            x,
            b.transpose(),
            1.0,
            Par::Seq,
        );
        // The lower-left block is the transpose of the upper-right one just formed.
        for i in m0..n {
            for j in 0..m0 {
                acc[(i, j)] = acc[(j, i)];
            }
        }
    }
}

/// Writes `rows[i][start..start + w] − center` into row `i` of the `n × w` buffer `x`, in `E`;
/// inlined into a SIMD-dispatched context.
#[inline(always)]
fn center_block<T: Scalar, E: GramElem>(rows: &[&[T]], start: usize, center: &[E], x: &mut [E]) {
    let w = center.len();
    for (xr, r) in x.chunks_exact_mut(w).zip(rows) {
        for ((o, v), c) in xr.iter_mut().zip(&r[start..start + w]).zip(center) {
            *o = E::from_f64(v.as_f64()) - *c;
        }
    }
}

/// The Gram matrix of the rows after centering each coordinate block (both triangles filled).
///
/// Each block's product is formed in the element type `E` and added into an f64 total, so
/// rounding error stays that of one block (≲ √block · ε_E relative to `‖x_i‖‖x_j‖`, typically
/// far less), never that of the whole dimension.
fn gram_centered<T: Scalar, E: GramElem>(rows: &[&[T]], center: Option<&[T]>) -> Vec<f64> {
    let n = rows.len();
    let dim = rows[0].len();
    let block = (BLOCK_BYTES / (size_of::<E>() * n)).clamp(64, 8192).min(dim.max(1));
    let nblocks = dim.div_ceil(block);
    let groups = (PARTIAL_BUDGET / (n * n)).clamp(1, 16).min(nblocks.max(1));
    let arch = pulp::Arch::new();
    let partials: Vec<Vec<f64>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let (first, last) = (g * nblocks / groups, (g + 1) * nblocks / groups);
            let mut total = vec![0.0f64; n * n];
            let mut prod = Mat::<E>::zeros(n, n);
            let mut x = vec![E::from_f64(0.0); n * block];
            let mut mean = vec![0.0; block];
            let mut center_e = vec![E::from_f64(0.0); block];
            for blk in first..last {
                let start = blk * block;
                let w = block.min(dim - start);
                let mean = &mut mean[..w];
                match center {
                    Some(c) => {
                        mean.iter_mut().zip(&c[start..start + w]).for_each(|(m, v)| *m = v.as_f64())
                    }
                    None => {
                        mean.fill(0.0);
                        for r in rows {
                            for (m, v) in mean.iter_mut().zip(&r[start..start + w]) {
                                *m += v.as_f64();
                            }
                        }
                        #[allow(clippy::cast_precision_loss, reason = "client counts are small")]
                        let inv = 1.0 / n as f64;
                        mean.iter_mut().for_each(|m| *m *= inv);
                    }
                }
                // The centre is rounded to E once; the subtraction then runs in E (for f32 data in
                // f32, which is exact to one rounding, like the f64 route, and vectorizes 2× wider).
                let center_e = &mut center_e[..w];
                center_e.iter_mut().zip(mean.iter()).for_each(|(c, m)| *c = E::from_f64(*m));
                arch.dispatch(|| center_block(rows, start, center_e, &mut x));
                E::block_gram(&mut prod, MatRef::from_row_major_slice(&x[..n * w], n, w));
                for i in 0..n {
                    for j in 0..=i {
                        total[i * n + j] += prod[(i, j)].to_f64();
                    }
                }
            }
            total
        })
        .collect();
    let mut total = vec![0.0; n * n];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    for i in 0..n {
        for j in 0..i {
            total[j * n + i] = total[i * n + j];
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
    fn f32_client_models_match_direct_f64_distances() {
        // Realistic f32 models: a shared global model of magnitude ~1, client deltas of ~1e-3
        // (some nearly parallel), one outlier far away, one Sybil copy. Every distance must be
        // within 1e-3 relative of the direct f64 computation; most are far closer.
        let d = 300_000;
        let global: Vec<f32> = pseudo(1, d, 2.0, 0.0).into_iter().map(|v| v as f32).collect();
        let common = pseudo(2, d, 2e-3, 0.0);
        let mut data: Vec<Vec<f32>> = (0..40)
            .map(|i| {
                let own = pseudo(100 + i, d, 2e-3, 0.0);
                let mix = if i < 10 { 0.05 } else { 1.0 };
                global
                    .iter()
                    .zip(&common)
                    .zip(&own)
                    .map(|((g, c), o)| (f64::from(*g) + c + mix * o) as f32)
                    .collect()
            })
            .collect();
        data[7] = data[6].clone();
        data[20] = pseudo(9, d, 1.0, 1e4).into_iter().map(|v| v as f32).collect();
        let rows: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
        let fast = pairwise_sq_distances_around(&rows, &global);
        let slow = pairwise_sq_distances_direct(&rows);
        let mut worst = 0.0f64;
        for i in 0..rows.len() {
            for j in 0..rows.len() {
                let (a, b) = (fast.get(i, j), slow.get(i, j));
                if b > 0.0 {
                    worst = worst.max((a - b).abs() / b);
                } else {
                    assert_eq!(a, 0.0);
                }
            }
        }
        assert!(worst < 1e-3, "worst relative error {worst:e}");
    }

    #[test]
    fn f32_rows_match_direct() {
        let d = 70_001;
        let data: Vec<Vec<f32>> = (0..9)
            .map(|i| pseudo(i, d, 2.0, 5.0).into_iter().map(|v| v as f32).collect())
            .collect();
        let rows: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
        assert_close(&pairwise_sq_distances(&rows), &pairwise_sq_distances_direct(&rows), 1e-6);
    }

    #[test]
    fn centering_on_a_point_gives_the_same_distances() {
        let d = 30_000;
        let mut data: Vec<Vec<f64>> = (0..20).map(|i| pseudo(i, d, 1.0, 7.0)).collect();
        data[11] = pseudo(5, d, 1.0, -1e6);
        let center = pseudo(77, d, 0.5, 7.0);
        let rows: Vec<&[f64]> = data.iter().map(Vec::as_slice).collect();
        assert_close(
            &pairwise_sq_distances_around(&rows, &center),
            &pairwise_sq_distances_direct(&rows),
            1e-9,
        );
        let mut bad = data.clone();
        bad[2][9] = f64::NAN;
        let rows: Vec<&[f64]> = bad.iter().map(Vec::as_slice).collect();
        assert!(!pairwise_sq_distances(&rows).is_finite());
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
