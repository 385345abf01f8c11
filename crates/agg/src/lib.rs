#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        clippy::panic_in_result_fn,
        clippy::cast_possible_truncation,
        clippy::cast_precision_loss,
        clippy::cast_sign_loss,
        clippy::cast_lossless,
        clippy::needless_range_loop,
        reason = "tests assert and return Result; test data is built with casts"
    )
)]

pub mod attacks;
mod bulyan;
mod clipping;
mod coordinate;
pub mod distance;
mod error;
mod fedavg;
mod fedopt;
mod fltrust;
mod geomed;
mod krum;
mod preagg;
pub mod validate;

use fl_core::{ClientUpdate, ModelParams, Scalar};

pub use attacks::Attack;
pub use bulyan::{Bulyan, bulyan_select};
pub use clipping::{CenteredClipping, NormBound};
pub use coordinate::{Median, TrimmedMean};
pub use error::{Error, Result};
pub use fedavg::{FedAvg, FedAvgAccumulator, FedAvgOrder, FedProx, weighted_average};
pub use fedopt::{BiasCorrection, FedOpt, FedOptKind};
pub use fltrust::FlTrust;
pub use geomed::GeometricMedian;
pub use krum::{Krum, KrumSelection, krum_scores, krum_select};
pub use preagg::{Bucketing, NearestNeighborMixing, Pipeline, PreAggregator};

/// An aggregation rule: from the current global model and the round's client updates (each the
/// client's locally trained model), the next global model.
///
/// Implementations validate their input — at least the clients they need, the Byzantine bound for
/// their `f`, one layout, one round, finite values, non-zero total weight — and return a typed
/// [`Error`] rather than panicking or producing NaN. Stateful rules (FedOpt's moments, centered
/// clipping's centre) advance only when an aggregation succeeds.
pub trait Aggregator<T: Scalar>: Send {
    /// Short, stable name for logs and audit records.
    fn name(&self) -> &'static str;

    /// Whether the rule only needs the weighted sum of updates, so it can run on a secure
    /// (masked or encrypted) sum. Robust rules need individual updates and return `false`.
    fn is_linear(&self) -> bool {
        false
    }

    /// Aggregates one round.
    ///
    /// # Errors
    ///
    /// See the implementing rule; every rule checks its input as described on the trait.
    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>>;
}

impl<T: Scalar, A: Aggregator<T> + ?Sized> Aggregator<T> for Box<A> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn is_linear(&self) -> bool {
        (**self).is_linear()
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>> {
        (**self).aggregate(global, updates)
    }
}
