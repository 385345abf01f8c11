//! Multi-layer perceptrons (softmax regression is the one with no hidden layer), cross-entropy
//! loss and backpropagation on ndarray, with parameters as [`fl_core::ModelParams`] laid out as
//! PyTorch's `nn.Linear` layers (`fcN.weight` `[out, in]`, `fcN.bias` `[out]`), so a model moves
//! to and from PyTorch through safetensors unchanged.
//!
//! For DP-SGD, [`Mlp::clipped_gradient_sum`] computes each example's gradient norm exactly without
//! materializing per-example gradients: a dense layer's per-example weight gradient is the outer
//! product `δᵢ aᵢᵀ`, whose Frobenius norm is `‖δᵢ‖·‖aᵢ‖` (Goodfellow, "Efficient Per-Example
//! Gradient Computations", arXiv:1510.01799, 2015), and the clipped sum `Σ cᵢ δᵢ aᵢᵀ` is one matrix
//! product with the rows of δ scaled by `cᵢ = min(1, C/‖gᵢ‖)`.

use std::sync::Arc;

use ndarray::{Array2, ArrayView1, ArrayView2, Axis, Ix1, Ix2, linalg::general_mat_mul};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use rand_distr::{Distribution, Uniform};

use fl_core::{ModelParams, ModelSpec};

use crate::{Error, Result};

/// An MLP with ReLU hidden layers and a linear output (logits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mlp {
    widths: Vec<usize>,
    spec: Arc<ModelSpec>,
}

/// The forward pass, kept for backpropagation.
struct Forward {
    /// `acts[0]` is the input; `acts[l]` the ReLU output of hidden layer l; the last is logits.
    acts: Vec<Array2<f32>>,
}

impl Mlp {
    /// The most parameters an MLP may have: `u32::MAX`, the longest vector secure aggregation
    /// masks (and 16 GiB as `f32`), so a mistyped width is refused here instead of failing an
    /// allocation later.
    pub const MAX_PARAMS: usize = u32::MAX as usize;

    /// An MLP with layer widths `[inputs, hidden…, classes]`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for fewer than two widths, a zero width, or more than
    /// [`Mlp::MAX_PARAMS`] parameters.
    pub fn new(widths: &[usize]) -> Result<Self> {
        if widths.len() < 2 || widths.contains(&0) {
            return Err(Error::config("widths", format!("{widths:?}: need ≥ 2 non-zero widths")));
        }
        let params = widths.windows(2).try_fold(0usize, |total, w| {
            w[0].checked_add(1)?.checked_mul(w[1])?.checked_add(total)
        });
        if params.is_none_or(|p| p > Self::MAX_PARAMS) {
            return Err(Error::config(
                "widths",
                format!("{widths:?}: more than {} parameters", Self::MAX_PARAMS),
            ));
        }
        let spec = ModelSpec::from_pairs(widths.windows(2).enumerate().flat_map(|(i, w)| {
            [
                (format!("fc{}.weight", i + 1), vec![w[1], w[0]]),
                (format!("fc{}.bias", i + 1), vec![w[1]]),
            ]
        }))?;
        Ok(Self { widths: widths.to_vec(), spec: Arc::new(spec) })
    }

    /// Multinomial logistic regression: no hidden layer.
    ///
    /// # Errors
    ///
    /// As [`Mlp::new`].
    pub fn softmax_regression(inputs: usize, classes: usize) -> Result<Self> {
        Self::new(&[inputs, classes])
    }

    /// The parameter layout.
    #[must_use]
    pub fn spec(&self) -> &Arc<ModelSpec> {
        &self.spec
    }

    /// Layer widths.
    #[must_use]
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// Number of input features.
    #[must_use]
    pub fn inputs(&self) -> usize {
        self.widths[0]
    }

    /// Number of classes.
    #[must_use]
    pub fn classes(&self) -> usize {
        self.widths[self.widths.len() - 1]
    }

    fn layers(&self) -> usize {
        self.widths.len() - 1
    }

    /// PyTorch's default `nn.Linear` initialization: weights and biases uniform on
    /// `±1/√fan_in` (Kaiming-uniform with a = √5), from a seeded ChaCha20 stream.
    #[must_use]
    pub fn init(&self, seed: u64) -> ModelParams<f32> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut p = ModelParams::zeros(Arc::clone(&self.spec));
        for l in 0..self.layers() {
            #[allow(clippy::cast_precision_loss, reason = "layer widths are small")]
            let bound = 1.0 / (self.widths[l] as f32).sqrt();
            if let Ok(dist) = Uniform::new_inclusive(-bound, bound) {
                for idx in [2 * l, 2 * l + 1] {
                    if let Ok(mut layer) = p.layer_mut(idx) {
                        layer.iter_mut().for_each(|x| *x = dist.sample(&mut rng));
                    }
                }
            }
        }
        p
    }

    fn check(&self, params: &ModelParams<f32>, x: &ArrayView2<'_, f32>) -> Result<()> {
        self.spec.ensure_same(params.spec())?;
        if x.ncols() != self.inputs() {
            return Err(Error::DataMismatch(format!(
                "{} features, model takes {}",
                x.ncols(),
                self.inputs()
            )));
        }
        Ok(())
    }

    fn weight<'a>(&self, params: &'a ModelParams<f32>, l: usize) -> Result<ArrayView2<'a, f32>> {
        params
            .layer(2 * l)?
            .into_dimensionality::<Ix2>()
            .map_err(|e| Error::DataMismatch(e.to_string()))
    }

    fn bias<'a>(&self, params: &'a ModelParams<f32>, l: usize) -> Result<ArrayView1<'a, f32>> {
        params
            .layer(2 * l + 1)?
            .into_dimensionality::<Ix1>()
            .map_err(|e| Error::DataMismatch(e.to_string()))
    }

    fn forward_pass(&self, params: &ModelParams<f32>, x: ArrayView2<'_, f32>) -> Result<Forward> {
        let mut acts = Vec::with_capacity(self.layers() + 1);
        acts.push(x.to_owned());
        for l in 0..self.layers() {
            let w = self.weight(params, l)?;
            let b = self.bias(params, l)?;
            let a = &acts[l];
            let mut z = Array2::<f32>::zeros((a.nrows(), w.nrows()));
            general_mat_mul(1.0, a, &w.t(), 0.0, &mut z);
            z += &b;
            if l + 1 < self.layers() {
                z.mapv_inplace(|v| v.max(0.0));
            }
            acts.push(z);
        }
        Ok(Forward { acts })
    }

    /// Logits for each row of `x`.
    ///
    /// # Errors
    ///
    /// Layout or feature-count mismatch.
    pub fn logits(&self, params: &ModelParams<f32>, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        self.check(params, &x)?;
        let mut f = self.forward_pass(params, x)?;
        f.acts.pop().ok_or(Error::DataMismatch("no layers".into()))
    }

    /// Softmax probabilities in place; returns each row's `−log p[label]` when `labels` is given.
    fn softmax_ce(logits: &mut Array2<f32>, labels: &[u32]) -> Vec<f64> {
        let mut losses = Vec::with_capacity(labels.len());
        for (i, mut row) in logits.rows_mut().into_iter().enumerate() {
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f64;
            for v in row.iter_mut() {
                *v = (*v - m).exp();
                sum += f64::from(*v);
            }
            #[allow(clippy::cast_possible_truncation, reason = "probabilities to f32")]
            let inv = (1.0 / sum) as f32;
            row.iter_mut().for_each(|v| *v *= inv);
            if let Some(&y) = labels.get(i) {
                losses.push(-(f64::from(row[y as usize]).max(1e-30)).ln());
            }
        }
        losses
    }

    /// Backpropagates `delta` (∂loss/∂logits, one row per example) and returns the δ of every
    /// layer, last layer first.
    fn backward(
        &self,
        params: &ModelParams<f32>,
        f: &Forward,
        delta: Array2<f32>,
    ) -> Result<Vec<Array2<f32>>> {
        let mut deltas = vec![delta];
        for l in (1..self.layers()).rev() {
            let w = self.weight(params, l)?;
            let d = &deltas[deltas.len() - 1];
            let mut prev = Array2::<f32>::zeros((d.nrows(), w.ncols()));
            general_mat_mul(1.0, d, &w, 0.0, &mut prev);
            // ReLU'(z) = [a > 0].
            prev.zip_mut_with(&f.acts[l], |g, &a| {
                if a <= 0.0 {
                    *g = 0.0;
                }
            });
            deltas.push(prev);
        }
        deltas.reverse();
        Ok(deltas)
    }

    /// Writes `Σᵢ scale·δᵢ aᵢᵀ` and `Σᵢ scale·δᵢ` for every layer into `grad`.
    fn accumulate(
        &self,
        grad: &mut ModelParams<f32>,
        f: &Forward,
        deltas: &[Array2<f32>],
        scale: f32,
    ) -> Result<()> {
        for (l, delta) in deltas.iter().enumerate().take(self.layers()) {
            let mut gw = grad
                .layer_mut(2 * l)?
                .into_dimensionality::<Ix2>()
                .map_err(|e| Error::DataMismatch(e.to_string()))?;
            general_mat_mul(scale, &delta.t(), &f.acts[l], 0.0, &mut gw);
            let mut gb = grad
                .layer_mut(2 * l + 1)?
                .into_dimensionality::<Ix1>()
                .map_err(|e| Error::DataMismatch(e.to_string()))?;
            let sums = delta.sum_axis(Axis(0));
            gb.zip_mut_with(&sums, |g, s| *g = scale * s);
        }
        Ok(())
    }

    fn check_labels(&self, labels: &[u32], rows: usize) -> Result<()> {
        if labels.len() != rows {
            return Err(Error::DataMismatch(format!("{rows} rows, {} labels", labels.len())));
        }
        match labels.iter().find(|&&y| y as usize >= self.classes()) {
            Some(y) => {
                Err(Error::DataMismatch(format!("label {y} for a {}-class model", self.classes())))
            }
            None => Ok(()),
        }
    }

    /// Mean cross-entropy over the batch and its gradient.
    ///
    /// # Errors
    ///
    /// Layout, feature-count or label mismatch; an empty batch.
    pub fn loss_and_gradient(
        &self,
        params: &ModelParams<f32>,
        x: ArrayView2<'_, f32>,
        labels: &[u32],
    ) -> Result<(f64, ModelParams<f32>)> {
        self.check(params, &x)?;
        self.check_labels(labels, x.nrows())?;
        if labels.is_empty() {
            return Err(Error::DataMismatch("empty batch".into()));
        }
        let mut f = self.forward_pass(params, x)?;
        let mut probs = f.acts.pop().ok_or(Error::DataMismatch("no layers".into()))?;
        let losses = Self::softmax_ce(&mut probs, labels);
        for (mut row, &y) in probs.rows_mut().into_iter().zip(labels) {
            row[y as usize] -= 1.0;
        }
        let deltas = self.backward(params, &f, probs)?;
        let mut grad = ModelParams::zeros(Arc::clone(&self.spec));
        #[allow(clippy::cast_precision_loss, reason = "batch sizes are small")]
        let scale = 1.0 / labels.len() as f32;
        self.accumulate(&mut grad, &f, &deltas, scale)?;
        #[allow(clippy::cast_precision_loss, reason = "as above")]
        let loss = losses.iter().sum::<f64>() / labels.len() as f64;
        Ok((loss, grad))
    }

    /// For DP-SGD: the sum over the batch of each example's gradient clipped to L2 norm `clip`,
    /// the examples' unclipped gradient norms, and the summed loss.
    ///
    /// # Errors
    ///
    /// As [`Mlp::loss_and_gradient`] (an empty batch gives a zero sum, not an error).
    pub fn clipped_gradient_sum(
        &self,
        params: &ModelParams<f32>,
        x: ArrayView2<'_, f32>,
        labels: &[u32],
        clip: f64,
    ) -> Result<(ModelParams<f32>, Vec<f64>, f64)> {
        self.check(params, &x)?;
        self.check_labels(labels, x.nrows())?;
        let mut grad = ModelParams::zeros(Arc::clone(&self.spec));
        if labels.is_empty() {
            return Ok((grad, Vec::new(), 0.0));
        }
        let mut f = self.forward_pass(params, x)?;
        let mut probs = f.acts.pop().ok_or(Error::DataMismatch("no layers".into()))?;
        let losses = Self::softmax_ce(&mut probs, labels);
        for (mut row, &y) in probs.rows_mut().into_iter().zip(labels) {
            row[y as usize] -= 1.0;
        }
        let mut deltas = self.backward(params, &f, probs)?;
        // ‖gᵢ‖² = Σ_l ‖δᵢˡ‖² (‖aᵢˡ‖² + 1): weights (outer product) plus bias.
        let n = labels.len();
        let mut sq = vec![0.0f64; n];
        for (delta, act) in deltas.iter().zip(&f.acts) {
            for (i, (d, a)) in delta.rows().into_iter().zip(act.rows()).enumerate() {
                let dd: f64 = d.iter().map(|v| f64::from(*v) * f64::from(*v)).sum();
                let aa: f64 = a.iter().map(|v| f64::from(*v) * f64::from(*v)).sum();
                sq[i] += dd * (aa + 1.0);
            }
        }
        let norms: Vec<f64> = sq.iter().map(|s| s.sqrt()).collect();
        #[allow(clippy::cast_possible_truncation, reason = "clip factors in (0, 1]")]
        let factors: Vec<f32> =
            norms.iter().map(|&nrm| if nrm > clip { (clip / nrm) as f32 } else { 1.0 }).collect();
        for d in &mut deltas {
            for (mut row, &c) in d.rows_mut().into_iter().zip(&factors) {
                row.mapv_inplace(|v| v * c);
            }
        }
        self.accumulate(&mut grad, &f, &deltas, 1.0)?;
        Ok((grad, norms, losses.iter().sum()))
    }

    /// One example's gradient, materialized (for tests and inspection; DP-SGD does not need it).
    ///
    /// # Errors
    ///
    /// As [`Mlp::loss_and_gradient`].
    pub fn per_example_gradient(
        &self,
        params: &ModelParams<f32>,
        x: ArrayView1<'_, f32>,
        label: u32,
    ) -> Result<ModelParams<f32>> {
        let row = x.insert_axis(Axis(0));
        Ok(self.loss_and_gradient(params, row, &[label])?.1)
    }

    /// Class probabilities for each row of `x`.
    ///
    /// # Errors
    ///
    /// Layout or feature-count mismatch.
    pub fn probabilities(
        &self,
        params: &ModelParams<f32>,
        x: ArrayView2<'_, f32>,
    ) -> Result<Array2<f32>> {
        let mut l = self.logits(params, x)?;
        Self::softmax_ce(&mut l, &[]);
        Ok(l)
    }

    /// Mean cross-entropy over `x`.
    ///
    /// # Errors
    ///
    /// As [`Mlp::loss_and_gradient`].
    pub fn loss(
        &self,
        params: &ModelParams<f32>,
        x: ArrayView2<'_, f32>,
        labels: &[u32],
    ) -> Result<f64> {
        self.check_labels(labels, x.nrows())?;
        let mut l = self.logits(params, x)?;
        let losses = Self::softmax_ce(&mut l, labels);
        #[allow(clippy::cast_precision_loss, reason = "example counts are small")]
        Ok(losses.iter().sum::<f64>() / labels.len().max(1) as f64)
    }

    /// Predicted class (argmax of the logits) per row.
    ///
    /// # Errors
    ///
    /// Layout or feature-count mismatch.
    pub fn predict(&self, params: &ModelParams<f32>, x: ArrayView2<'_, f32>) -> Result<Vec<u32>> {
        let l = self.logits(params, x)?;
        Ok(l.rows()
            .into_iter()
            .map(|r| {
                let best = r
                    .iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
                u32::try_from(best.0).unwrap_or(0)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> (Mlp, ModelParams<f32>, Array2<f32>, Vec<u32>) {
        let m = Mlp::new(&[5, 7, 4, 3]).unwrap();
        let p = m.init(3);
        let x = Array2::from_shape_fn((6, 5), |(i, j)| ((i * 5 + j) as f32 * 0.37).sin());
        (m, p, x, vec![0, 2, 1, 1, 0, 2])
    }

    #[test]
    fn layout_matches_pytorch() {
        let m = Mlp::new(&[784, 128, 10]).unwrap();
        let names: Vec<_> =
            m.spec().layers().iter().map(|l| (l.name().to_owned(), l.shape().to_vec())).collect();
        assert_eq!(names[0], ("fc1.weight".into(), vec![128, 784]));
        assert_eq!(names[3], ("fc2.bias".into(), vec![10]));
        assert!(Mlp::new(&[5]).is_err() && Mlp::new(&[5, 0]).is_err());
        assert_eq!(m.spec().num_params(), 784 * 128 + 128 + 128 * 10 + 10);
        // A mistyped width is refused before anything is allocated; the bound counts biases.
        assert!(Mlp::new(&[64, 99_999_999_999, 10]).is_err());
        assert!(Mlp::new(&[usize::MAX, 2]).is_err());
        assert!(Mlp::new(&[65_535, 65_537]).is_err(), "(65,535 + 1) · 65,537 = 2³² + 2¹⁶");
        assert!(Mlp::new(&[65_535, 65_535]).is_ok(), "65,536 · 65,535 < 2³²");
    }

    /// Per-example gradients against central finite differences, in f64 to avoid f32 noise:
    /// the loss is evaluated at ±h on every parameter.
    #[test]
    fn per_example_gradients_equal_finite_differences() -> Result<()> {
        let (m, p, x, y) = toy();
        for i in 0..x.nrows() {
            let g = m.per_example_gradient(&p, x.row(i), y[i])?;
            let h = 1e-2f32;
            for k in (0..p.len()).step_by(3) {
                let mut plus = p.clone();
                plus.as_mut_slice()[k] += h;
                let mut minus = p.clone();
                minus.as_mut_slice()[k] -= h;
                let row = x.row(i).insert_axis(Axis(0));
                let fd = (m.loss(&plus, row, &y[i..=i])? - m.loss(&minus, row, &y[i..=i])?)
                    / (2.0 * f64::from(h));
                let an = f64::from(g.as_slice()[k]);
                assert!(
                    (fd - an).abs() <= 2e-3 * (1.0 + an.abs()),
                    "example {i} param {k}: fd {fd} vs {an}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn clipped_sum_equals_sum_of_clipped_materialized_gradients() -> Result<()> {
        let (m, p, x, y) = toy();
        for clip in [0.05, 0.5, 1e9] {
            let (sum, norms, _) = m.clipped_gradient_sum(&p, x.view(), &y, clip)?;
            let mut want = ModelParams::zeros(Arc::clone(m.spec()));
            for i in 0..x.nrows() {
                let mut g = m.per_example_gradient(&p, x.row(i), y[i])?;
                let n = g.l2_norm();
                assert!((n - norms[i]).abs() <= 1e-5 * n, "norm {n} vs {}", norms[i]);
                if n > clip {
                    g.scale((clip / n) as f32);
                }
                want.add_assign(&g)?;
            }
            for (a, b) in sum.as_slice().iter().zip(want.as_slice()) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()));
            }
        }
        Ok(())
    }

    #[test]
    fn mean_gradient_is_mean_of_per_example() -> Result<()> {
        let (m, p, x, y) = toy();
        let (_, g) = m.loss_and_gradient(&p, x.view(), &y)?;
        let (sum, _, _) = m.clipped_gradient_sum(&p, x.view(), &y, f64::INFINITY)?;
        for (a, b) in g.as_slice().iter().zip(sum.as_slice()) {
            assert!((a - b / 6.0).abs() <= 1e-6);
        }
        assert!(m.loss_and_gradient(&p, x.view(), &[0, 1]).is_err());
        assert!(m.loss_and_gradient(&p, x.view(), &[9; 6]).is_err());
        Ok(())
    }
}
