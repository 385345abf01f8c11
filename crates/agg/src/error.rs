//! The fl-agg error type.

/// Result alias for fl-agg.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an aggregation was refused. Every variant is raised before any output is produced, so a
/// refused aggregation never yields NaN or a partial model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A model-level fault shared with the rest of the workspace: shape mismatch, non-finite
    /// value (naming the layer and index), length mismatch.
    #[error(transparent)]
    Core(#[from] fl_core::Error),

    /// Fewer updates than the rule needs.
    #[error("{rule} needs at least {needed} client updates, got {got}")]
    TooFewClients {
        /// The rule.
        rule: &'static str,
        /// Minimum it needs.
        needed: usize,
        /// Updates supplied.
        got: usize,
    },

    /// The number of clients does not satisfy the rule's Byzantine bound for `f` faults.
    #[error("{rule} with f = {f} Byzantine clients requires {bound}, but n = {n}")]
    ByzantineBound {
        /// The rule.
        rule: &'static str,
        /// Clients supplied.
        n: usize,
        /// Byzantine clients tolerated.
        f: usize,
        /// The bound, e.g. "n > 2f + 2".
        bound: &'static str,
    },

    /// All `num_examples` are zero, so a weighted average is undefined.
    #[error("total weight (sum of num_examples) is zero")]
    ZeroTotalWeight,

    /// The sum of `num_examples` overflows `u64`.
    #[error("total weight (sum of num_examples) overflows u64")]
    WeightOverflow,

    /// An update is for another round or model version than the others.
    #[error(
        "update {index} is for round {found_round} / version {found_version}, expected round {round} / version {version}"
    )]
    MixedRounds {
        /// Position of the odd update.
        index: usize,
        /// Round of the first update.
        round: u64,
        /// Model version of the first update.
        version: u64,
        /// Round of the odd one.
        found_round: u64,
        /// Version of the odd one.
        found_version: u64,
    },

    /// A hyper-parameter is outside its domain.
    #[error("invalid {name}: {reason}")]
    InvalidConfig {
        /// Parameter name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// FLTrust was asked to aggregate without the server's root update for the round.
    #[error("FLTrust needs the server's root update for this round (call set_root_update)")]
    MissingRootUpdate,

    /// The rule produced a non-finite value (e.g. from overflowing inputs); the output is
    /// withheld rather than returned.
    #[error("{rule} produced a non-finite value; inputs are too large for the element type")]
    NonFiniteOutput {
        /// The rule.
        rule: &'static str,
    },
}

impl Error {
    pub(crate) fn config(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidConfig { name, reason: reason.into() }
    }
}
