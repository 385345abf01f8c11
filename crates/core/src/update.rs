//! Identifiers and the client update every aggregator consumes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, ModelParams, ModelSpec, Result, Scalar};

/// Longest accepted partner identifier, in bytes.
pub const MAX_PARTNER_ID_BYTES: usize = 128;

/// A partner's identifier: 1–128 bytes of `[A-Za-z0-9._:@-]`, so it is safe in file names, logs
/// and audit records without escaping.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PartnerId(String);

impl PartnerId {
    /// Validates `id`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPartnerId`] if it is empty, longer than 128 bytes, has a character
    /// outside `[A-Za-z0-9._:@-]`, or is `.` or `..` (servers name a partner's directory by its
    /// id; those two would name the directory itself or its parent).
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let reason = if id.is_empty() {
            "empty"
        } else if id.len() > MAX_PARTNER_ID_BYTES {
            "longer than 128 bytes"
        } else if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:@-".contains(&b)) {
            "characters outside [A-Za-z0-9._:@-]"
        } else if id == "." || id == ".." {
            "a path component ('.' or '..')"
        } else {
            return Ok(Self(id));
        };
        Err(Error::InvalidPartnerId { id: id.chars().take(64).collect(), reason })
    }

    /// The identifier as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PartnerId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl std::str::FromStr for PartnerId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl From<PartnerId> for String {
    fn from(id: PartnerId) -> Self {
        id.0
    }
}

impl fmt::Display for PartnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PartnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartnerId({})", self.0)
    }
}

macro_rules! counter {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The next value.
            ///
            /// # Errors
            ///
            /// [`Error::InvalidArgument`] at `u64::MAX`.
            pub fn next(self) -> Result<Self> {
                self.0.checked_add(1).map(Self).ok_or_else(|| {
                    Error::invalid_argument(stringify!($name), "counter overflow")
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<u64> for $name {
            fn from(v: u64) -> Self {
                Self(v)
            }
        }
    };
}

counter!(
    /// A training round number.
    Round
);
counter!(
    /// A global model version: the budget ledger and audit log key charges by it.
    ModelVersion
);

/// One partner's contribution to a round: its locally trained parameters (or delta, by the
/// aggregator's convention) and how many examples produced them.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientUpdate<T: Scalar = f32> {
    /// Who sent it.
    pub partner_id: PartnerId,
    /// The round it answers.
    pub round: Round,
    /// The global model version it was trained from.
    pub model_version: ModelVersion,
    /// Local examples used: FedAvg's weight.
    pub num_examples: u64,
    /// The parameters.
    pub params: ModelParams<T>,
}

impl<T: Scalar> ClientUpdate<T> {
    /// Bundles an update.
    #[must_use]
    pub fn new(
        partner_id: PartnerId,
        round: Round,
        model_version: ModelVersion,
        num_examples: u64,
        params: ModelParams<T>,
    ) -> Self {
        Self { partner_id, round, model_version, num_examples, params }
    }

    /// Checks the update fits `spec` and holds only finite values.
    ///
    /// # Errors
    ///
    /// As [`ModelSpec::ensure_same`] and [`ModelParams::ensure_finite`].
    pub fn validate(&self, spec: &ModelSpec) -> Result<()> {
        spec.ensure_same(self.params.spec())?;
        self.params.ensure_finite()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_ids_are_validated() {
        assert!(PartnerId::new("lab-7.eu@site:2").is_ok());
        assert!(PartnerId::new("...").is_ok());
        for bad in ["", "a b", "a/b", "ü", &"x".repeat(129), ".", ".."] {
            assert!(matches!(PartnerId::new(bad), Err(Error::InvalidPartnerId { .. })), "{bad:?}");
        }
        assert!(serde_json::from_str::<PartnerId>("\"../etc\"").is_err());
        assert!(serde_json::from_str::<PartnerId>("\"..\"").is_err());
        assert_eq!(serde_json::from_str::<PartnerId>("\"lab1\"").unwrap().as_str(), "lab1");
    }

    #[test]
    fn counters_do_not_wrap() {
        assert_eq!(Round(1).next().unwrap(), Round(2));
        assert!(Round(u64::MAX).next().is_err());
    }
}
