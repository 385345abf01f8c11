//! The crate's error type.

use fl_core::{PartnerId, Round};

/// Everything that can go wrong in the federation protocol.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame's declared length is above the limit; the connection must be closed.
    #[error("frame of {len} bytes exceeds the {limit}-byte limit")]
    FrameTooLarge {
        /// Declared length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// Bytes that do not decode as a message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A message from a different protocol version.
    #[error("unsupported wire version {got} (this build speaks {expected})")]
    Version {
        /// Version in the message.
        got: u16,
        /// Version of this build.
        expected: u16,
    },
    /// A well-formed message that breaks the protocol (wrong round, wrong phase, wrong shape).
    #[error("rejected message from {peer}: {reason}")]
    Rejected {
        /// Who sent it.
        peer: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An invalid configuration, with the setting and the reason.
    #[error("invalid configuration: {name}: {reason}")]
    Config {
        /// The setting.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// Fewer clients than the quorum delivered usable updates.
    #[error("round {round}: {got} usable updates, {need} needed")]
    Quorum {
        /// The round.
        round: Round,
        /// Updates received.
        got: usize,
        /// The quorum.
        need: usize,
    },
    /// No partner could be selected (all paused or too few enrolled).
    #[error("round {round}: {available} partners available, {need} needed ({reason})")]
    NotEnoughPartners {
        /// The round.
        round: Round,
        /// Available partners.
        available: usize,
        /// The quorum.
        need: usize,
        /// Why the others are unavailable.
        reason: String,
    },
    /// Poisson sampling (central DP) drew fewer partners than the quorum this round; nothing
    /// was released or charged, and a later round may draw enough.
    #[error(
        "round {round}: {sampled} partners sampled, {need} needed (nothing released or charged)"
    )]
    TooFewSampled {
        /// The round.
        round: Round,
        /// Partners the sample drew.
        sampled: usize,
        /// The quorum.
        need: usize,
    },
    /// A partner the server does not know.
    #[error("unknown partner {0}")]
    UnknownPartner(PartnerId),
    /// Model-level fault.
    #[error(transparent)]
    Core(#[from] fl_core::Error),
    /// Aggregation failed.
    #[error(transparent)]
    Agg(#[from] fl_agg::Error),
    /// Privacy accounting or budget.
    #[error(transparent)]
    Dp(#[from] fl_dp::Error),
    /// Secure aggregation.
    #[error(transparent)]
    SecAgg(#[from] fl_secagg::Error),
    /// Paillier encryption.
    #[error(transparent)]
    He(#[from] fl_he::Error),
    /// Audit log.
    #[error(transparent)]
    Audit(#[from] fl_audit::Error),
    /// Local training.
    #[error(transparent)]
    Train(#[from] fl_train::Error),
    /// I/O.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Authentication failed (unknown partner, bad signature, replay, wrong session).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// TLS setup or handshake.
    #[error("TLS: {0}")]
    Tls(String),
    /// The state directory cannot be resumed from (its files contradict each other or the
    /// configuration).
    #[error("state directory: {0}")]
    State(String),
    /// A peer that did not answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl Error {
    pub(crate) fn config(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Config { name, reason: reason.into() }
    }

    pub(crate) fn rejected(peer: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Self::Rejected { peer: peer.to_string(), reason: reason.into() }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
