//! Input checks shared by every rule, and the helpers that build checked outputs.

use std::sync::Arc;

use fl_core::{ClientUpdate, ModelParams, ModelSpec, Scalar, ops};
use rayon::prelude::*;

use crate::{Error, Result};

/// Checks `updates` against `global`: at least `needed` of them, same layout, same round and
/// model version, finite values (the first bad update in order is reported).
///
/// # Errors
///
/// [`Error::TooFewClients`], [`Error::MixedRounds`], or the [`fl_core::Error`] naming the layer and
/// index of the first mismatch or non-finite value.
pub fn check_updates<T: Scalar>(
    rule: &'static str,
    global: &ModelParams<T>,
    updates: &[ClientUpdate<T>],
    needed: usize,
) -> Result<()> {
    check_structure(rule, global, updates, needed)?;
    check_values(updates)
}

/// The cheap part of [`check_updates`]: count, layout, round and version (no pass over values).
///
/// # Errors
///
/// As [`check_updates`], except for non-finite values.
pub fn check_structure<T: Scalar>(
    rule: &'static str,
    global: &ModelParams<T>,
    updates: &[ClientUpdate<T>],
    needed: usize,
) -> Result<()> {
    if updates.len() < needed.max(1) {
        return Err(Error::TooFewClients { rule, needed: needed.max(1), got: updates.len() });
    }
    global.ensure_finite()?;
    let first = &updates[0];
    for (index, u) in updates.iter().enumerate() {
        global.ensure_same_spec(&u.params)?;
        if u.round != first.round || u.model_version != first.model_version {
            return Err(Error::MixedRounds {
                index,
                round: first.round.0,
                version: first.model_version.0,
                found_round: u.round.0,
                found_version: u.model_version.0,
            });
        }
    }
    Ok(())
}

/// The expensive part of [`check_updates`]: every value finite. Updates are checked in parallel;
/// the first bad one in order is reported.
///
/// # Errors
///
/// [`fl_core::Error::NonFinite`] naming the layer and index.
pub fn check_values<T: Scalar>(updates: &[ClientUpdate<T>]) -> Result<()> {
    let bad = updates
        .par_iter()
        .enumerate()
        .filter_map(|(i, u)| ops::first_non_finite(u.params.as_slice()).map(|_| i))
        .min();
    if let Some(i) = bad {
        updates[i].params.ensure_finite()?;
    }
    Ok(())
}

/// Sum of `num_examples`, checked.
///
/// # Errors
///
/// [`Error::WeightOverflow`] or [`Error::ZeroTotalWeight`].
pub fn total_weight<T: Scalar>(updates: &[ClientUpdate<T>]) -> Result<u64> {
    let total = updates
        .iter()
        .try_fold(0u64, |acc, u| acc.checked_add(u.num_examples))
        .ok_or(Error::WeightOverflow)?;
    if total == 0 { Err(Error::ZeroTotalWeight) } else { Ok(total) }
}

/// Wraps a computed flat vector, refusing to return non-finite output.
pub(crate) fn finish<T: Scalar>(
    rule: &'static str,
    spec: &Arc<ModelSpec>,
    data: Vec<T>,
) -> Result<ModelParams<T>> {
    if ops::first_non_finite(&data).is_some() {
        return Err(Error::NonFiniteOutput { rule });
    }
    Ok(ModelParams::from_flat(Arc::clone(spec), data)?)
}

/// The flat parameter slices of `updates`.
pub(crate) fn rows<T: Scalar>(updates: &[ClientUpdate<T>]) -> Vec<&[T]> {
    updates.iter().map(|u| u.params.as_slice()).collect()
}

/// Checks a hyper-parameter is finite and inside `range`.
pub(crate) fn in_range(
    name: &'static str,
    value: f64,
    range: impl std::ops::RangeBounds<f64> + std::fmt::Debug,
) -> Result<f64> {
    if value.is_finite() && range.contains(&value) {
        Ok(value)
    } else {
        Err(Error::config(name, format!("{value} is outside {range:?}")))
    }
}
