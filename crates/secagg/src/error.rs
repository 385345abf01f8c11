//! The fl-secagg error type.

use crate::ClientId;

/// Result alias for fl-secagg.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a protocol step was refused. Crypto failures are deliberately opaque
/// ([`Error::Decryption`]); protocol and parameter errors say what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid protocol parameters.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// Which.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A message for another session (e.g. a replay from an earlier round).
    #[error("message for another session")]
    WrongSession,
    /// A message that does not belong to the current phase (out of order, late, or replayed).
    #[error("unexpected {got} in phase {phase}")]
    UnexpectedMessage {
        /// The message kind.
        got: &'static str,
        /// The current phase.
        phase: &'static str,
    },
    /// A message from a client that is not (or no longer) a participant, or that claims another
    /// client's id.
    #[error("message from client {0} who may not send it")]
    UnknownClient(ClientId),
    /// A second message of the same kind from the same client.
    #[error("duplicate message from client {0}")]
    Duplicate(ClientId),
    /// A message whose content is malformed (wrong length, out-of-range value, bad routing).
    #[error("malformed message from client {client}: {reason}")]
    Malformed {
        /// The sender (0 for the server).
        client: ClientId,
        /// What is wrong.
        reason: String,
    },
    /// Fewer than the threshold of clients remain: the round is aborted, nothing is revealed.
    #[error("aborted in {phase}: {have} clients remain, {need} needed")]
    TooFewClients {
        /// Phase of the abort.
        phase: &'static str,
        /// Clients available.
        have: usize,
        /// Threshold.
        need: usize,
    },
    /// An authenticated ciphertext failed to decrypt (tampered, misrouted or replayed).
    #[error("decryption failed")]
    Decryption,
    /// A key agreement produced a non-contributory (low-order) result.
    #[error("non-contributory key agreement with client {0}")]
    NonContributory(ClientId),
    /// A signature (malicious-server variant) failed to verify.
    #[error("bad signature from client {0}")]
    BadSignature(ClientId),
    /// Reconstructed secret does not match its public key: some shares are wrong.
    #[error("shares of client {0} do not reconstruct its advertised key")]
    BadShares(ClientId),
    /// The server asked for something a client must refuse (e.g. both shares of one client).
    #[error("refused: {0}")]
    Refused(String),
    /// Encoding or decoding a message failed.
    #[error("wire: {0}")]
    Wire(String),
    /// A broken internal invariant; please report it.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl Error {
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter { name, reason: reason.into() }
    }
}
