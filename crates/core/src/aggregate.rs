//! The aggregation-rule trait, shared by the crates that implement rules (fl-agg) and those that
//! wrap them (fl-dp's DP-FedAvg, fl-net's orchestration).

use crate::{ClientUpdate, Error, ModelParams, Scalar};

/// An aggregation rule: from the current global model and the round's client updates (each the
/// client's locally trained model), the next global model.
///
/// Implementations validate their input — at least the clients they need, any Byzantine bound,
/// one layout, one round, finite values, non-zero total weight — and return a typed error rather
/// than panicking or producing NaN. Stateful rules (server optimizers' moments, a clipping centre)
/// advance only when an aggregation succeeds.
pub trait Aggregator<T: Scalar>: Send {
    /// The rule's error type; model-level faults convert from [`Error`].
    type Error: std::error::Error + Send + Sync + 'static + From<Error>;

    /// Short, stable name for logs and audit records.
    fn name(&self) -> &'static str;

    /// Whether the rule needs only the weighted sum of the updates, so it can run on a secure
    /// (masked or encrypted) sum. Robust rules need individual updates and return `false`.
    fn is_linear(&self) -> bool {
        false
    }

    /// The fewest updates a round must bring for this rule to aggregate it, as far as its
    /// parameters tell (e.g. Krum's `2f + 3`), so a federation can refuse a quorum below it before
    /// the first round. A lower bound: [`aggregate`](Self::aggregate) still checks its input.
    fn min_updates(&self) -> usize {
        1
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
    ) -> Result<ModelParams<T>, Self::Error>;
}

impl<T: Scalar, A: Aggregator<T> + ?Sized> Aggregator<T> for Box<A> {
    type Error = A::Error;

    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn is_linear(&self) -> bool {
        (**self).is_linear()
    }

    fn min_updates(&self) -> usize {
        (**self).min_updates()
    }

    fn aggregate(
        &mut self,
        global: &ModelParams<T>,
        updates: &[ClientUpdate<T>],
    ) -> Result<ModelParams<T>, Self::Error> {
        (**self).aggregate(global, updates)
    }
}
