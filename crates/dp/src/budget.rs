//! Validated privacy parameters.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An (ε, δ) budget: `ε ≥ 0` finite, `δ ∈ (0, 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "(f64, f64)", into = "(f64, f64)")]
pub struct PrivacyBudget {
    epsilon: f64,
    delta: f64,
}

impl PrivacyBudget {
    /// A budget of (ε, δ).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for negative or non-finite ε, or δ outside (0, 1).
    pub fn new(epsilon: f64, delta: f64) -> Result<Self> {
        if !(epsilon.is_finite() && epsilon >= 0.0) {
            return Err(Error::param("ε", format!("{epsilon} is not finite and non-negative")));
        }
        crate::conversion::check_delta(delta)?;
        Ok(Self { epsilon, delta })
    }

    /// ε.
    #[must_use]
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// δ.
    #[must_use]
    pub fn delta(&self) -> f64 {
        self.delta
    }
}

impl TryFrom<(f64, f64)> for PrivacyBudget {
    type Error = Error;
    fn try_from((e, d): (f64, f64)) -> Result<Self> {
        Self::new(e, d)
    }
}

impl From<PrivacyBudget> for (f64, f64) {
    fn from(b: PrivacyBudget) -> Self {
        (b.epsilon, b.delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_budgets_are_errors() {
        for (e, d) in [
            (-1.0, 1e-5),
            (f64::NAN, 1e-5),
            (1.0, 0.0),
            (1.0, 1.0),
            (1.0, -0.1),
            (f64::INFINITY, 1e-5),
        ] {
            assert!(PrivacyBudget::new(e, d).is_err(), "({e}, {d})");
        }
        assert!(PrivacyBudget::new(0.0, 1e-9).is_ok());
    }
}
