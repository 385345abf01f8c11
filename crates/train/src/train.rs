//! Local training: SGD with momentum and weight decay (PyTorch's `torch.optim.SGD` update), the
//! FedProx proximal term, DP-SGD, and evaluation.
//!
//! - FedProx (Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020, Eq. (2)):
//!   the local objective gains `μ/2 ‖w − w_global‖²`, i.e. `μ(w − w_global)` in the gradient.
//! - DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016, Algorithm 1): each
//!   step samples every example independently with probability q (Poisson sampling, which the RDP
//!   analysis of Mironov et al. 2019 assumes), clips each example's gradient to C, adds
//!   `N(0, σ²C²)` to the sum, divides by the expected batch size qN, and reports the step to the
//!   accountant. The proximal and weight-decay terms do not touch the data and cost no privacy.

use ndarray::Axis;
use rand::rngs::ChaCha20Rng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use fl_core::ModelParams;
use fl_dp::{DpEvent, RdpAccountant};

use crate::{Dataset, Error, Mlp, Result};

/// SGD hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub learning_rate: f32,
    /// Momentum (0 for plain SGD).
    pub momentum: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// FedProx μ (0 for FedAvg clients).
    pub prox_mu: f32,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Passes over the data.
    pub epochs: usize,
    /// Shuffling seed.
    pub seed: u64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            learning_rate: 0.05,
            momentum: 0.9,
            weight_decay: 0.0,
            prox_mu: 0.0,
            batch_size: 64,
            epochs: 1,
            seed: 0,
        }
    }
}

impl SgdConfig {
    fn validate(&self) -> Result<()> {
        let nonneg = |n: &'static str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::config(n, format!("{v} is not finite and ≥ 0")))
            }
        };
        nonneg("learning rate", self.learning_rate)?;
        nonneg("weight decay", self.weight_decay)?;
        nonneg("prox μ", self.prox_mu)?;
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::config("momentum", format!("{} is not in [0, 1)", self.momentum)));
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch size", "must be ≥ 1"));
        }
        Ok(())
    }
}

/// What a training call did.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    /// Optimizer steps taken.
    pub steps: u64,
    /// Examples processed (with repetition).
    pub examples: u64,
    /// Mean training loss over the steps.
    pub mean_loss: f64,
}

/// The SGD update with momentum buffer `velocity` (allocated on first use):
/// `g ← g + λw + μ(w − w_g)`, `v ← βv + g`, `w ← w − ηv`.
fn sgd_step(
    params: &mut ModelParams<f32>,
    grad: &ModelParams<f32>,
    velocity: &mut Vec<f32>,
    cfg: &SgdConfig,
    global: Option<&ModelParams<f32>>,
) {
    if velocity.len() != params.len() {
        *velocity = vec![0.0; params.len()];
    }
    let g0 = global.map(ModelParams::as_slice);
    let w = params.as_mut_slice();
    for (i, ((wi, gi), vi)) in
        w.iter_mut().zip(grad.as_slice()).zip(velocity.iter_mut()).enumerate()
    {
        let mut g = gi + cfg.weight_decay * *wi;
        if let Some(g0) = g0 {
            g += cfg.prox_mu * (*wi - g0[i]);
        }
        *vi = if cfg.momentum > 0.0 { cfg.momentum * *vi + g } else { g };
        *wi -= cfg.learning_rate * *vi;
    }
}

fn check_data(
    model: &Mlp,
    params: &ModelParams<f32>,
    data: &Dataset,
    global: Option<&ModelParams<f32>>,
) -> Result<()> {
    model.spec().ensure_same(params.spec())?;
    if let Some(g) = global {
        model.spec().ensure_same(g.spec())?;
    }
    if data.is_empty() {
        return Err(Error::DataMismatch("no training data".into()));
    }
    if data.num_features() != model.inputs() || data.num_classes > model.classes() {
        return Err(Error::DataMismatch(format!(
            "data has {} features / {} classes, model {} / {}",
            data.num_features(),
            data.num_classes,
            model.inputs(),
            model.classes()
        )));
    }
    Ok(())
}

/// Mini-batch SGD for `cfg.epochs` epochs; with `global` and `cfg.prox_mu > 0` this is a FedProx
/// client.
///
/// # Errors
///
/// Invalid configuration, data/model mismatch, or [`Error::Diverged`] on a non-finite loss.
pub fn train(
    model: &Mlp,
    params: &mut ModelParams<f32>,
    data: &Dataset,
    cfg: &SgdConfig,
    global: Option<&ModelParams<f32>>,
) -> Result<TrainReport> {
    cfg.validate()?;
    check_data(model, params, data, global)?;
    let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
    let mut velocity = Vec::new();
    let mut order: Vec<usize> = (0..data.len()).collect();
    let (mut steps, mut examples, mut loss_sum) = (0u64, 0u64, 0.0);
    for _ in 0..cfg.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(cfg.batch_size) {
            let x = data.features.select(Axis(0), batch);
            let y: Vec<u32> = batch.iter().map(|&i| data.labels[i]).collect();
            let (loss, grad) = model.loss_and_gradient(params, x.view(), &y)?;
            if !loss.is_finite() {
                return Err(Error::Diverged(format!("loss {loss} at step {steps}")));
            }
            sgd_step(params, &grad, &mut velocity, cfg, global);
            steps += 1;
            examples += batch.len() as u64;
            loss_sum += loss;
        }
    }
    params.ensure_finite().map_err(|e| Error::Diverged(e.to_string()))?;
    #[allow(clippy::cast_precision_loss, reason = "step counts are small")]
    let mean_loss = loss_sum / steps.max(1) as f64;
    Ok(TrainReport { steps, examples, mean_loss })
}

/// DP-SGD hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct DpSgdConfig {
    /// Optimizer settings (`batch_size` and `epochs` are ignored; sampling is Poisson).
    pub sgd: SgdConfig,
    /// Per-step sampling probability q.
    pub sampling_rate: f64,
    /// Noise multiplier σ.
    pub noise_multiplier: f64,
    /// Per-example clipping bound C.
    pub clip: f64,
    /// Number of steps.
    pub steps: u64,
}

/// DP-SGD: `cfg.steps` noisy steps, each reported to `accountant` as a Poisson-subsampled
/// Gaussian event. Sampling and noise both draw from `rng` (seed it with [`fl_dp::csprng`]).
///
/// # Errors
///
/// Invalid configuration, data/model mismatch, [`Error::Diverged`].
pub fn train_dp(
    model: &Mlp,
    params: &mut ModelParams<f32>,
    data: &Dataset,
    cfg: &DpSgdConfig,
    global: Option<&ModelParams<f32>>,
    accountant: &mut RdpAccountant,
    rng: &mut ChaCha20Rng,
) -> Result<TrainReport> {
    cfg.sgd.validate()?;
    check_data(model, params, data, global)?;
    if !(cfg.sampling_rate > 0.0 && cfg.sampling_rate <= 1.0) {
        return Err(Error::config(
            "sampling rate",
            format!("{} is not in (0, 1]", cfg.sampling_rate),
        ));
    }
    if !(cfg.clip.is_finite() && cfg.clip > 0.0) {
        return Err(Error::config("clip", format!("{} is not finite and positive", cfg.clip)));
    }
    let event = DpEvent::PoissonSampledGaussian {
        sampling_rate: cfg.sampling_rate,
        noise_multiplier: cfg.noise_multiplier,
    };
    // Validate the event before any step touches the data.
    event.rdp(accountant.orders())?;
    #[allow(clippy::cast_precision_loss, reason = "dataset sizes are far below 2^53")]
    let expected = cfg.sampling_rate * data.len() as f64;
    let noise_std = cfg.noise_multiplier * cfg.clip;
    let mut velocity = Vec::new();
    let (mut examples, mut loss_sum) = (0u64, 0.0);
    for step in 0..cfg.steps {
        let batch: Vec<usize> =
            (0..data.len()).filter(|_| rng.random_bool(cfg.sampling_rate)).collect();
        let x = data.features.select(Axis(0), &batch);
        let y: Vec<u32> = batch.iter().map(|&i| data.labels[i]).collect();
        let (mut grad, _, loss) = model.clipped_gradient_sum(params, x.view(), &y, cfg.clip)?;
        for g in grad.as_mut_slice() {
            let z: f64 = StandardNormal.sample(rng);
            #[allow(clippy::cast_possible_truncation, reason = "noisy gradient to f32")]
            let v = ((f64::from(*g) + noise_std * z) / expected) as f32;
            *g = v;
        }
        sgd_step(params, &grad, &mut velocity, &cfg.sgd, global);
        accountant.compose(&event, 1)?;
        if !loss.is_finite() {
            return Err(Error::Diverged(format!("loss {loss} at step {step}")));
        }
        examples += batch.len() as u64;
        #[allow(clippy::cast_precision_loss, reason = "batch sizes are small")]
        let mean = if batch.is_empty() { 0.0 } else { loss / batch.len() as f64 };
        loss_sum += mean;
    }
    params.ensure_finite().map_err(|e| Error::Diverged(e.to_string()))?;
    #[allow(clippy::cast_precision_loss, reason = "step counts are small")]
    let mean_loss = loss_sum / cfg.steps.max(1) as f64;
    Ok(TrainReport { steps: cfg.steps, examples, mean_loss })
}

/// Accuracy, loss, per-class accuracy and the confusion matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Fraction correct.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Accuracy per true class (NaN for a class with no examples).
    pub per_class_accuracy: Vec<f64>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

/// Evaluates `params` on `data`.
///
/// # Errors
///
/// Data/model mismatch.
pub fn evaluate(model: &Mlp, params: &ModelParams<f32>, data: &Dataset) -> Result<Evaluation> {
    check_data(model, params, data, None)?;
    let k = model.classes();
    let mut confusion = vec![vec![0u64; k]; k];
    let mut loss = 0.0;
    for start in (0..data.len()).step_by(2048) {
        let end = (start + 2048).min(data.len());
        let x = data.features.slice_axis(Axis(0), ndarray::Slice::from(start..end));
        let y = &data.labels[start..end];
        #[allow(clippy::cast_precision_loss, reason = "batch sizes are small")]
        let part = model.loss(params, x, y)? * (end - start) as f64;
        loss += part;
        for (p, &t) in model.predict(params, x)?.iter().zip(y) {
            confusion[t as usize][*p as usize] += 1;
        }
    }
    let correct: u64 = (0..k).map(|c| confusion[c][c]).sum();
    #[allow(clippy::cast_precision_loss, reason = "counts are small")]
    let per_class_accuracy = (0..k)
        .map(|c| {
            let total: u64 = confusion[c].iter().sum();
            if total == 0 { f64::NAN } else { confusion[c][c] as f64 / total as f64 }
        })
        .collect();
    #[allow(clippy::cast_precision_loss, reason = "counts are small")]
    Ok(Evaluation {
        accuracy: correct as f64 / data.len() as f64,
        loss: loss / data.len() as f64,
        per_class_accuracy,
        confusion,
    })
}
