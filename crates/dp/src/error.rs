//! The fl-dp error type.

use fl_core::{ModelVersion, PartnerId};

/// Result alias for fl-dp.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything fl-dp can refuse. Bad inputs are typed errors, never panics or NaN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A mechanism or accounting parameter is outside its domain (negative ε, δ ∉ (0, 1),
    /// q ∉ [0, 1], σ ≤ 0, …).
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// An RDP order that is not finite and greater than 1.
    #[error("invalid RDP order {0}: orders must be finite and > 1")]
    InvalidOrder(f64),

    /// Two accountants or a ledger and an event disagree on their order lists.
    #[error("order lists differ")]
    OrderMismatch,

    /// The requested privacy cannot be reached (e.g. calibration with no feasible σ).
    #[error("infeasible: {0}")]
    Infeasible(String),

    /// A partner and model version the ledger does not know.
    #[error("unknown partner {partner} for model version {version}")]
    UnknownPartner {
        /// The partner.
        partner: PartnerId,
        /// The model version.
        version: ModelVersion,
    },

    /// The partner is already registered for this model version.
    #[error("partner {partner} is already registered for model version {version}")]
    AlreadyRegistered {
        /// The partner.
        partner: PartnerId,
        /// The model version.
        version: ModelVersion,
    },

    /// The charge would take the partner past its (ε, δ) budget; nothing was charged.
    #[error(
        "charge refused: partner {partner} (version {version}) would reach ε = {would_be:.6} > budget {budget}"
    )]
    BudgetExceeded {
        /// The partner.
        partner: PartnerId,
        /// The model version.
        version: ModelVersion,
        /// ε after the charge.
        would_be: f64,
        /// The partner's ε budget.
        budget: f64,
    },

    /// The partner is paused: less than the configured fraction of its budget remains.
    #[error(
        "partner {partner} (version {version}) is paused: {remaining_fraction:.1}% of its ε budget remains"
    )]
    Paused {
        /// The partner.
        partner: PartnerId,
        /// The model version.
        version: ModelVersion,
        /// Remaining fraction of ε, in percent.
        remaining_fraction: f64,
    },

    /// A reservation id the ledger does not hold (already committed or aborted, or never made).
    #[error("unknown or settled reservation {0}")]
    UnknownReservation(u64),

    /// The ledger file is corrupt somewhere other than an incomplete final record.
    #[error("ledger corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// Another process holds the ledger's exclusive lock.
    #[error("ledger {0} is locked by another process")]
    Locked(String),

    /// Reading or writing the ledger failed.
    #[error("ledger I/O: {0}")]
    Io(#[from] std::io::Error),

    /// A model-level fault (shape, non-finite value).
    #[error(transparent)]
    Core(#[from] fl_core::Error),

    /// The wrapped aggregation rule failed.
    #[error("aggregation: {0}")]
    Aggregation(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// A broken internal invariant; please report it.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl Error {
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter { name, reason: reason.into() }
    }
}
