//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in fl-tiers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A brat annotation line that does not parse, or a span outside its text.
    #[error("{file}:{line}: {reason}")]
    Annotation {
        /// The `.ann` file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
    /// A parameter outside its valid range.
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A tagger model file that does not decode or does not match this build.
    #[error("tagger model: {0}")]
    Model(String),
    /// A ProtocolSpec or feature vector that does not parse or validate.
    #[error("invalid {kind}: {reason}")]
    InvalidArtifact {
        /// What was being read.
        kind: &'static str,
        /// Why.
        reason: String,
    },
    /// The sensitivity policy refuses to let an artifact leave.
    #[error("policy refuses {artifact} at sensitivity level {level}: {reason}")]
    Refused {
        /// The artifact kind.
        artifact: &'static str,
        /// The sensitivity level.
        level: u8,
        /// The rule that refused it.
        reason: String,
    },
    /// Local DP noise could not be calibrated.
    #[error(transparent)]
    Dp(#[from] fl_dp::Error),
}

impl Error {
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter { name, reason: reason.into() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
