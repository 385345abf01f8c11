//! Noise calibration: the smallest noise multiplier σ whose ε stays within a target.
//!
//! `ε(σ)` is non-increasing in σ (RDP of the subsampled Gaussian decreases with σ at every
//! order), so the smallest feasible σ is bracketed by doubling/halving and then found by Brent's
//! method (Brent, "Algorithms for Minimization without Derivatives", 1973, ch. 4) to a relative
//! width of 1e-12; the upper end of the final bracket is returned, so `ε(σ) ≤ target` always
//! holds and σ is within 1e-10 relative of the smallest feasible value.
//!
//! Each `ε(σ)` evaluates the integer orders exactly first, then only those fractional orders that
//! could still beat the best ε so far. Two facts about Rényi divergence bound a fractional order's
//! RDP from below by its integer neighbours (van Erven & Harremoës, "Rényi Divergence and
//! Kullback–Leibler Divergence", IEEE Trans. Inf. Theory 60(7), 2014, Thm 3 and Cor. 2): `D_α`
//! is non-decreasing in α, and `(α − 1)·D_α` is convex in α, so it lies above the extension of any
//! chord outside the chord's interval. An order is skipped only if that bound already puts its ε
//! at or above the best, and the bound is outside the region where the KL shortcut could make its
//! ε zero.

use crate::conversion::{check_delta, epsilon_of_order};
use crate::rdp::{
    IntegerOrders, check_rate, check_sigma, log1p_exp, rdp_subsampled_gaussian, validate_orders,
};
use crate::{Error, Result};

/// The calibrated noise multiplier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    /// The smallest σ found with `ε(σ) ≤ target` (within 1e-10 relative).
    pub noise_multiplier: f64,
    /// `ε(σ)` at that σ.
    pub epsilon: f64,
}

/// `ε(σ)` for `steps` Poisson-subsampled Gaussian steps, evaluating fractional orders lazily.
///
/// # Errors
///
/// Parameter errors of [`rdp_subsampled_gaussian`].
pub fn epsilon_for_sigma(
    q: f64,
    sigma: f64,
    steps: u64,
    delta: f64,
    orders: &[f64],
) -> Result<f64> {
    check_rate(q)?;
    check_sigma(sigma)?;
    check_delta(delta)?;
    validate_orders(orders)?;
    #[allow(clippy::cast_precision_loss, reason = "step counts far below 2^53")]
    let n = steps as f64;
    if q == 0.0 {
        return Ok(0.0);
    }
    if q == 1.0 {
        let rdp = rdp_subsampled_gaussian(q, sigma, orders)?;
        return Ok(orders
            .iter()
            .zip(&rdp)
            .map(|(&a, &r)| epsilon_of_order(a, n * r, delta))
            .fold(f64::INFINITY, f64::min)
            .max(0.0));
    }
    let is_int = |a: f64| a.fract() == 0.0 && a <= 1e7;
    // Below this total RDP the KL shortcut may set an order's ε to 0, so no bound can skip it.
    let kl_floor = -(-delta * delta).ln_1p();
    let mut ints: Vec<f64> = orders.iter().copied().filter(|&a| is_int(a)).collect();
    ints.sort_by(f64::total_cmp);
    ints.dedup();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "integer order ≤ 1e7"
    )]
    let mut table = IntegerOrders::new(q, sigma, ints.last().map_or(2, |&a| a as usize));
    let mut best = f64::INFINITY;
    let mut int_rdp: Vec<(f64, f64)> = Vec::with_capacity(ints.len());
    // Orders above `stop` cannot beat `best`: for α > k ≤ 1/δ, ε_α ≥ n·r_k − 1/k because r is
    // non-decreasing in α, log1p(−1/α) ≥ −1/(α − 1) and −log(δα) > 0.
    let mut stop = f64::INFINITY;
    for &a in &ints {
        if a > stop && a <= 1.0 / delta {
            continue;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "as above")]
        let r = log1p_exp(table.log_a_minus_1(a as usize)) / (a - 1.0);
        best = best.min(epsilon_of_order(a, n * r, delta));
        int_rdp.push((a, r));
        if stop.is_infinite() && n * r >= kl_floor && n * r - 1.0 / a >= best {
            stop = a;
        }
    }
    // f(α) = (α − 1)·r_α at the evaluated integer orders, with f(1) = 0.
    let f_at = |k: f64| -> Option<f64> {
        if k == 1.0 {
            return Some(0.0);
        }
        int_rdp.iter().find(|(i, _)| *i == k).map(|&(_, r)| (k - 1.0) * r)
    };
    let lower = |a: f64| -> f64 {
        let k = a.floor();
        // Monotonicity: r_a ≥ r_k.
        let mut lb = if k >= 2.0 { f_at(k).map_or(0.0, |f| f / (k - 1.0)) } else { 0.0 };
        // Convexity: chord (k−1, k) extended right, or chord (k+1, k+2) extended left.
        if let (Some(f0), Some(f1)) = (f_at(k - 1.0), f_at(k)) {
            lb = lb.max((f1 + (a - k) * (f1 - f0)) / (a - 1.0));
        }
        if let (Some(f1), Some(f2)) = (f_at(k + 1.0), f_at(k + 2.0)) {
            lb = lb.max((f1 + (a - k - 1.0) * (f2 - f1)) / (a - 1.0));
        }
        lb.max(0.0)
    };
    let worth: Vec<f64> = orders
        .iter()
        .copied()
        .filter(|&a| {
            if is_int(a) || (a > stop && a <= 1.0 / delta) {
                return false;
            }
            let r = n * lower(a);
            r < kl_floor || epsilon_of_order(a, r, delta) < best
        })
        .collect();
    if !worth.is_empty() {
        let rdp = rdp_subsampled_gaussian(q, sigma, &worth)?;
        for (&a, &r) in worth.iter().zip(&rdp) {
            best = best.min(epsilon_of_order(a, n * r, delta));
        }
    }
    Ok(best.max(0.0))
}

/// The smallest noise multiplier σ such that `steps` Poisson-subsampled Gaussian steps at rate
/// `q` satisfy (`target_epsilon`, `delta`)-DP, to 1e-10 relative, never above the target.
///
/// # Errors
///
/// [`Error::InvalidParameter`] for a non-positive target, δ ∉ (0, 1), q ∉ (0, 1] or zero steps;
/// [`Error::Infeasible`] if no σ ≤ 1e8 reaches the target.
pub fn calibrate_noise_multiplier(
    target_epsilon: f64,
    delta: f64,
    q: f64,
    steps: u64,
    orders: &[f64],
) -> Result<Calibration> {
    if !(target_epsilon.is_finite() && target_epsilon > 0.0) {
        return Err(Error::param(
            "target ε",
            format!("{target_epsilon} is not finite and positive"),
        ));
    }
    check_delta(delta)?;
    check_rate(q)?;
    if q == 0.0 || steps == 0 {
        return Err(Error::param("q, steps", "nothing to calibrate: no sampling or no steps"));
    }
    validate_orders(orders)?;
    let eps = |s: f64| epsilon_for_sigma(q, s, steps, delta, orders);
    // Bracket: eps(lo) > target ≥ eps(hi).
    let (mut lo, mut hi) = (0.5, 1.0);
    if eps(hi)? > target_epsilon {
        while eps(hi)? > target_epsilon {
            lo = hi;
            hi *= 2.0;
            if hi > 1e8 {
                return Err(Error::Infeasible(format!("ε ≤ {target_epsilon} needs σ > 1e8")));
            }
        }
    } else {
        lo = hi / 2.0;
        while eps(lo)? <= target_epsilon {
            hi = lo;
            lo /= 2.0;
            if lo < 1e-6 {
                return Ok(Calibration { noise_multiplier: hi, epsilon: eps(hi)? });
            }
        }
    }
    let sigma = brent_upper(lo, hi, |s| Ok(eps(s)? - target_epsilon), 1e-12)?;
    Ok(Calibration { noise_multiplier: sigma, epsilon: eps(sigma)? })
}

/// Brent's root finder on a non-increasing `f` with `f(lo) > 0 ≥ f(hi)`; returns the upper end of
/// a final bracket of relative width ≤ `rel_tol`, at which `f ≤ 0`.
fn brent_upper(
    mut a: f64,
    mut b: f64,
    f: impl Fn(f64) -> Result<f64>,
    rel_tol: f64,
) -> Result<f64> {
    // a: f > 0 side, b: f ≤ 0 side (the answer side); c: previous b.
    let (mut fa, mut fb) = (f(a)?, f(b)?);
    let (mut c, mut fc) = (a, fa);
    let mut d = b - a;
    let mut e = d;
    for _ in 0..200 {
        if (b - a).abs() <= rel_tol * b.abs() {
            break;
        }
        // Keep b the best estimate among the two bracket ends.
        let (mut lo_side, mut hi_side) = (a, b);
        if lo_side > hi_side {
            std::mem::swap(&mut lo_side, &mut hi_side);
        }
        let tol = 0.5 * rel_tol * b.abs();
        let m = 0.5 * (a - b);
        let mut step;
        if e.abs() >= tol && fc.abs() > fb.abs() {
            // Inverse quadratic interpolation or secant.
            let s = fb / fc;
            let (p, q);
            if (a - c).abs() < f64::EPSILON * a.abs() || c == a {
                p = 2.0 * m * s;
                q = 1.0 - s;
            } else {
                let qq = fc / fa;
                let r = fb / fa;
                p = s * (2.0 * m * qq * (qq - r) - (b - c) * (r - 1.0));
                q = (qq - 1.0) * (r - 1.0) * (s - 1.0);
            }
            let (p, q) = if p > 0.0 { (p, -q) } else { (-p, q) };
            if 2.0 * p < (3.0 * m * q - (tol * q).abs()).min((e * q).abs()) {
                e = d;
                step = p / q;
            } else {
                step = m;
                e = m;
            }
        } else {
            step = m;
            e = m;
        }
        if step.abs() < tol {
            step = tol.copysign(m);
        }
        d = step;
        let x = (b + step).clamp(lo_side, hi_side);
        let fx = f(x)?;
        c = b;
        fc = fb;
        if fx <= 0.0 {
            b = x;
            fb = fx;
        } else {
            a = x;
            fa = fx;
            // b stays the feasible end; swap roles so that c tracks the previous iterate.
            c = b;
            fc = fb;
        }
    }
    debug_assert!(fb <= 0.0);
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdp::default_orders;

    #[test]
    fn lazy_epsilon_equals_full_evaluation() -> Result<()> {
        let orders = default_orders();
        for &(q, s, steps, delta) in &[
            (0.01, 1.1, 10_000, 1e-5),
            (0.1, 0.6, 1000, 1e-6),
            (0.5, 3.0, 50, 1e-5),
            (1e-3, 0.9, 100_000, 1e-7),
        ] {
            let full = rdp_subsampled_gaussian(q, s, &orders)?;
            let total: Vec<f64> = full.iter().map(|r| r * steps as f64).collect();
            let want = crate::epsilon_from_rdp(&orders, &total, delta)?.epsilon;
            let got = epsilon_for_sigma(q, s, steps, delta, &orders)?;
            assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn lazy_epsilon_equals_full_on_random_parameters(
            q in 1e-4..1.0f64, sigma in 0.4..20.0f64, steps in 1u64..200_000, delta_exp in 3i32..10
        ) {
            let delta = 10f64.powi(-delta_exp);
            let orders = default_orders();
            let full = rdp_subsampled_gaussian(q, sigma, &orders).unwrap();
            let total: Vec<f64> = full.iter().map(|r| r * steps as f64).collect();
            let want = crate::epsilon_from_rdp(&orders, &total, delta).unwrap().epsilon;
            let got = epsilon_for_sigma(q, sigma, steps, delta, &orders).unwrap();
            proptest::prop_assert!((got - want).abs() <= 1e-12 * want.max(1e-300), "{} vs {}", got, want);
        }
    }

    #[test]
    fn calibration_hits_the_target_from_below() -> Result<()> {
        let orders = default_orders();
        for &(target, q, steps) in
            &[(1.0, 0.01, 1000), (8.0, 0.004, 60_000), (0.5, 1.0, 100), (3.0, 0.2, 10)]
        {
            let c = calibrate_noise_multiplier(target, 1e-5, q, steps, &orders)?;
            assert!(c.epsilon <= target, "{c:?}");
            let below =
                epsilon_for_sigma(q, c.noise_multiplier * (1.0 - 1e-10), steps, 1e-5, &orders)?;
            assert!(below > target, "σ is not the smallest: ε(σ(1 − 1e-10)) = {below}");
        }
        assert!(calibrate_noise_multiplier(0.0, 1e-5, 0.1, 10, &orders).is_err());
        assert!(calibrate_noise_multiplier(1.0, 2.0, 0.1, 10, &orders).is_err());
        assert!(calibrate_noise_multiplier(1.0, 1e-5, 0.1, 0, &orders).is_err());
        Ok(())
    }
}
