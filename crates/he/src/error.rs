//! The crate's error type.

/// Everything that can go wrong in fl-he.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter outside its valid range.
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A plaintext or encoding that does not fit the key (|x| > max_int, or ≥ n).
    #[error("value does not fit the key: {0}")]
    OutOfRange(String),
    /// A decrypted encoding in the band between max_int and n − max_int: an overflow occurred
    /// during homomorphic arithmetic (python-paillier's `OverflowError`).
    #[error("overflow detected in a decrypted number")]
    Overflow,
    /// A ciphertext that is not a unit below n² (malformed or from another key).
    #[error("invalid ciphertext: {0}")]
    InvalidCiphertext(String),
    /// Ciphertexts under different public keys.
    #[error("ciphertexts are under different public keys")]
    KeyMismatch,
    /// Threshold decryption with too few or inconsistent shares.
    #[error("threshold decryption: {0}")]
    Threshold(String),
    /// JSON or serialization failures.
    #[error("serialization: {0}")]
    Serialization(String),
}

impl Error {
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter { name, reason: reason.into() }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
