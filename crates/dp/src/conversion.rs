//! From accumulated RDP to (ε, δ)-DP and back.
//!
//! `ε(δ)` uses the conversion of Balle, Barthe, Gaboardi, Hsu, Sato, "Hypothesis Testing
//! Interpretations and Renyi Differential Privacy", AISTATS 2020, Thm 21 (arXiv:2004.00010, the
//! bound also in Asoodeh et al., arXiv:2001.05990, Eq. (20)), per order α with total RDP r:
//!
//! ```text
//! ε_α = r + log1p(−1/α) − log(δ·α)/(α − 1),
//! ```
//!
//! with exactly the special cases of dp-accounting 0.6.0's `compute_epsilon`, so results agree
//! with it to the last bit for the same RDP values: `r < 0 → 0`; if the KL bound
//! `√(1 − e^{−r}) ≤ δ` holds (`δ² + expm1(−r) > 0`) → 0; orders in `(1, 1.01]` → ∞; the
//! optimum is the first minimizer in order-list order, clamped at 0. `δ(ε)` inverts the same
//! bound per order (`log δ_α = (α−1)(r − ε + log1p(−1/α)) − log α`), combined with the KL bound
//! `δ ≤ √(1 − e^{−r})`, as dp-accounting's `compute_delta`.

use crate::{Error, Result};

/// ε and the order that achieves it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpsilonAt {
    /// The smallest ε over the orders (≥ 0).
    pub epsilon: f64,
    /// The order achieving it.
    pub order: f64,
}

/// δ and the order that achieves it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeltaAt {
    /// The smallest δ over the orders (≤ 1).
    pub delta: f64,
    /// The order achieving it.
    pub order: f64,
}

pub(crate) fn check_delta(delta: f64) -> Result<f64> {
    if delta > 0.0 && delta < 1.0 {
        Ok(delta)
    } else {
        Err(Error::param("δ", format!("{delta} is not in (0, 1)")))
    }
}

/// ε of one order (see the module docs).
#[inline]
pub(crate) fn epsilon_of_order(order: f64, r: f64, delta: f64) -> f64 {
    if r < 0.0 || delta * delta + (-r).exp_m1() > 0.0 {
        0.0
    } else if order > 1.01 {
        r + (-1.0 / order).ln_1p() - (delta * order).ln() / (order - 1.0)
    } else {
        f64::INFINITY
    }
}

/// The (ε, δ)-DP guarantee of accumulated RDP `rdp` at `orders`, for `δ ∈ (0, 1)`.
///
/// # Errors
///
/// [`Error::InvalidParameter`] for δ outside (0, 1) or mismatched lengths;
/// [`Error::InvalidOrder`] for an order that is not finite and > 1.
pub fn epsilon_from_rdp(orders: &[f64], rdp: &[f64], delta: f64) -> Result<EpsilonAt> {
    check_delta(delta)?;
    crate::rdp::validate_orders(orders)?;
    if orders.len() != rdp.len() {
        return Err(Error::param("rdp", "orders and RDP values differ in length"));
    }
    if rdp.iter().any(|r| r.is_nan()) {
        return Err(Error::param("rdp", "NaN RDP value"));
    }
    let mut best = 0;
    let mut best_eps = f64::INFINITY;
    for (i, (&a, &r)) in orders.iter().zip(rdp).enumerate() {
        let e = epsilon_of_order(a, r, delta);
        if e < best_eps {
            best_eps = e;
            best = i;
        }
    }
    Ok(EpsilonAt { epsilon: best_eps.max(0.0), order: orders[best] })
}

/// The smallest δ for which accumulated RDP `rdp` gives (ε, δ)-DP.
///
/// # Errors
///
/// [`Error::InvalidParameter`] for negative or non-finite ε or mismatched lengths;
/// [`Error::InvalidOrder`].
pub fn delta_from_rdp(orders: &[f64], rdp: &[f64], epsilon: f64) -> Result<DeltaAt> {
    if !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(Error::param("ε", format!("{epsilon} is not finite and non-negative")));
    }
    crate::rdp::validate_orders(orders)?;
    if orders.len() != rdp.len() {
        return Err(Error::param("rdp", "orders and RDP values differ in length"));
    }
    let mut best = 0;
    let mut best_log = f64::INFINITY;
    for (i, (&a, &r)) in orders.iter().zip(rdp).enumerate() {
        if r.is_nan() {
            return Err(Error::param("rdp", "NaN RDP value"));
        }
        let mut log_delta = if r <= 0.0 { f64::NEG_INFINITY } else { 0.5 * (-(-r).exp()).ln_1p() };
        if a > 1.01 {
            let bound = (a - 1.0) * (r - epsilon + (-1.0 / a).ln_1p()) - a.ln();
            log_delta = log_delta.min(bound);
        }
        if log_delta < best_log {
            best_log = log_delta;
            best = i;
        }
    }
    Ok(DeltaAt { delta: best_log.exp().min(1.0), order: orders[best] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_cases() -> Result<()> {
        let o = [1.005, 2.0, 32.0];
        assert_eq!(epsilon_from_rdp(&o, &[0.0; 3], 1e-5)?.epsilon, 0.0);
        assert!(epsilon_from_rdp(&o, &[1.0; 3], 0.0).is_err());
        assert!(epsilon_from_rdp(&o, &[1.0; 3], 1.0).is_err());
        assert!(epsilon_from_rdp(&o, &[1.0; 2], 1e-5).is_err());
        assert!(epsilon_from_rdp(&o, &[f64::NAN; 3], 1e-5).is_err());
        // Infinite RDP at every order gives infinite ε, reported at the first order.
        let inf = epsilon_from_rdp(&o, &[f64::INFINITY; 3], 1e-5)?;
        assert_eq!((inf.epsilon, inf.order), (f64::INFINITY, 1.005));
        assert!(delta_from_rdp(&o, &[1.0; 3], -1.0).is_err());
        Ok(())
    }

    #[test]
    fn delta_inverts_epsilon() -> Result<()> {
        let orders = crate::rdp::default_orders();
        let rdp = crate::rdp::rdp_subsampled_gaussian(0.01, 1.1, &orders)?;
        let total: Vec<f64> = rdp.iter().map(|r| r * 10_000.0).collect();
        let e = epsilon_from_rdp(&orders, &total, 1e-5)?;
        let d = delta_from_rdp(&orders, &total, e.epsilon)?;
        assert!(d.delta <= 1e-5 * (1.0 + 1e-9), "{d:?}");
        assert!(d.delta > 1e-6);
        Ok(())
    }
}
