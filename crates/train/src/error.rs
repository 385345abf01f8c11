//! The fl-train error type.

use std::path::PathBuf;

/// Result alias for fl-train.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why loading, partitioning or training failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A data file is malformed; the message names the line or field.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is outside its domain.
    #[error("invalid {name}: {reason}")]
    InvalidConfig {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Data and model disagree (feature count, class count, empty data).
    #[error("data mismatch: {0}")]
    DataMismatch(String),
    /// Training diverged (a non-finite loss or parameter).
    #[error("training diverged: {0}")]
    Diverged(String),
    /// A model-level fault.
    #[error(transparent)]
    Core(#[from] fl_core::Error),
    /// A privacy-accounting fault.
    #[error(transparent)]
    Dp(#[from] fl_dp::Error),
}

impl Error {
    pub(crate) fn config(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidConfig { name, reason: reason.into() }
    }
}
