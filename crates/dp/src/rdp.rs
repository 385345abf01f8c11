//! Rényi differential privacy (RDP) of the mechanisms federated training uses.
//!
//! The central one is the Poisson-subsampled Gaussian mechanism (Mironov, Talwar, Zhang, "Rényi
//! Differential Privacy of the Sampled Gaussian Mechanism", arXiv:1908.10530, 2019). With
//! `μ₀ = N(0, σ²)`, `μ₁ = N(1, σ²)`, `μ = (1 − q)μ₀ + qμ₁`, its RDP at order α is
//! `ε(α) = log(A_α)/(α − 1)` with (their §3, Eq. (4))
//!
//! ```text
//! A_α = E_{z∼μ₀}[(μ(z)/μ₀(z))^α] = E_{z∼μ₀}[(1 + u(z))^α],   u(z) = q·(e^{(2z−1)/(2σ²)} − 1).
//! ```
//!
//! We compute `A_α − 1` rather than `A_α`, so RDP values of 1e-12 keep full relative precision:
//!
//! - **Integer α** (their §3.2, Eq. (5)): `A_α − 1 = Σ_{i=2}^{α} C(α,i) qⁱ (1−q)^{α−i}
//!   (e^{(i²−i)/(2σ²)} − 1)` — the `i = 0, 1` terms and the binomial sum of 1 cancel exactly —
//!   a sum of positive terms, added in log space.
//! - **Fractional α**: `A_α − 1 = E_{z∼μ₀}[g(u(z))]` with `g(u) = (1+u)^α − 1 − αu`; the
//!   subtracted term has expectation 0 (`E_{μ₀}[u] = 0`) and makes the integrand non-negative
//!   (`g` is convex with `g(0) = g′(0) = 0`), so the integral has no cancellation. It is computed
//!   by the trapezoidal rule on a uniform grid, which converges geometrically for analytic
//!   integrands with Gaussian tails (Trefethen & Weideman, "The Exponentially Convergent
//!   Trapezoidal Rule", SIAM Review 56(3), 2014, Thm 5.1): the integrand is analytic in the strip
//!   `|Im z| < πσ²` (where `1 + u` first vanishes), so the step `h = min(σ, σ²)/4` leaves a
//!   discretization error below `e^{−8π²}` relative, and the grid spans 12 standard deviations past
//!   the mass, which lies between `z = 0` and `z = α`.
//!
//! dp-accounting 0.6.0 evaluates fractional orders with a binomial series whose terms it adds in
//! absolute value (over-estimating RDP) and silently drops orders where that series does not
//! converge; both methods here are exact to ~1e-12 and defined for every order.

use rayon::prelude::*;

use crate::{Error, Result};

/// dp-accounting's default orders (156): `1.1, 1.2, …, 10.9, 11, 12, …, 63, 128, 256, 512, 1024`.
#[must_use]
pub fn default_orders() -> Vec<f64> {
    let mut o: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
    o.extend((11..64).map(f64::from));
    o.extend([128.0, 256.0, 512.0, 1024.0]);
    o
}

/// Opacus's default orders (151): `1.1, 1.2, …, 10.9, 12, 13, …, 63`.
#[must_use]
pub fn opacus_orders() -> Vec<f64> {
    let mut o: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
    o.extend((12..64).map(f64::from));
    o
}

/// Checks an order list: non-empty, every order finite and > 1.
///
/// # Errors
///
/// [`Error::InvalidOrder`] naming the first bad order, or [`Error::InvalidParameter`] if empty.
pub fn validate_orders(orders: &[f64]) -> Result<()> {
    if orders.is_empty() {
        return Err(Error::param("orders", "at least one order is needed"));
    }
    match orders.iter().find(|a| !(a.is_finite() && **a > 1.0)) {
        Some(&a) => Err(Error::InvalidOrder(a)),
        None => Ok(()),
    }
}

pub(crate) fn check_rate(q: f64) -> Result<f64> {
    if (0.0..=1.0).contains(&q) {
        Ok(q)
    } else {
        Err(Error::param("sampling rate q", format!("{q} is not in [0, 1]")))
    }
}

pub(crate) fn check_sigma(sigma: f64) -> Result<f64> {
    if sigma.is_finite() && sigma > 0.0 {
        Ok(sigma)
    } else {
        Err(Error::param("noise multiplier σ", format!("{sigma} is not a finite positive number")))
    }
}

/// `ln k` for `k = 0..=n` (entry 0 is −∞ and unused); orders up to 2048 share a cached table.
fn ln_table(n: usize) -> std::borrow::Cow<'static, [f64]> {
    static CACHED: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    #[allow(clippy::cast_precision_loss, reason = "k ≤ 1e7")]
    let build = |n: usize| (0..=n).map(|k| (k as f64).ln()).collect::<Vec<f64>>();
    if n <= 2049 {
        std::borrow::Cow::Borrowed(&CACHED.get_or_init(|| build(2049))[..])
    } else {
        std::borrow::Cow::Owned(build(n))
    }
}

/// `log(1 + eˣ)` without overflow.
pub(crate) fn log1p_exp(x: f64) -> f64 {
    if x > 35.0 { x + (-x).exp().ln_1p() } else { x.exp().ln_1p() }
}

/// `log(eˣ − 1)` for `x > 0`.
fn log_expm1(x: f64) -> f64 {
    if x > 40.0 { x + (-(-x).exp()).ln_1p() } else { x.exp_m1().ln() }
}

/// Running `log Σ exp(xᵢ)`.
#[derive(Clone, Copy)]
struct LogSum {
    max: f64,
    sum: f64,
}

impl LogSum {
    const EMPTY: Self = Self { max: f64::NEG_INFINITY, sum: 0.0 };

    #[inline]
    fn add(&mut self, x: f64) {
        if x <= self.max {
            self.sum += (x - self.max).exp();
        } else if x.is_finite() || x == f64::INFINITY {
            self.sum = self.sum * (self.max - x).exp() + 1.0;
            self.max = x;
        }
    }

    fn value(self) -> f64 {
        if self.sum == 0.0 { f64::NEG_INFINITY } else { self.max + self.sum.ln() }
    }
}

/// Shared precomputation for integer orders of one (q, σ): `ln k` and the α-independent factor
/// `log(e^{(i²−i)/(2σ²)} − 1)` per term index.
pub(crate) struct IntegerOrders {
    lq: f64,
    l1q: f64,
    ln_k: std::borrow::Cow<'static, [f64]>,
    log_em1: Vec<f64>,
    terms: Vec<f64>,
}

impl IntegerOrders {
    /// For orders up to `max_order`.
    pub(crate) fn new(q: f64, sigma: f64, max_order: usize) -> Self {
        let inv = 1.0 / (2.0 * sigma * sigma);
        let log_em1 = (0..=max_order)
            .map(|i| {
                #[allow(clippy::cast_precision_loss, reason = "orders ≤ 1e7")]
                let fi = i as f64;
                if i < 2 { f64::NEG_INFINITY } else { log_expm1((fi * fi - fi) * inv) }
            })
            .collect();
        Self {
            lq: q.ln(),
            l1q: (-q).ln_1p(),
            ln_k: ln_table(max_order + 1),
            log_em1,
            terms: Vec::new(),
        }
    }

    /// `log(A_α − 1)` for integer `2 ≤ α ≤ max_order` (positive-term sum, see the module docs).
    /// Terms are formed in log space with additions only; only those within e⁻⁴⁰ of the largest
    /// are exponentiated.
    pub(crate) fn log_a_minus_1(&mut self, alpha: usize) -> f64 {
        let n = alpha;
        #[allow(clippy::cast_precision_loss, reason = "orders are far below 2^53")]
        let a = n as f64;
        let mut log_coef = self.ln_k[n] + self.ln_k[n - 1] - std::f64::consts::LN_2; // log C(α, 2)
        self.terms.clear();
        let mut max = f64::NEG_INFINITY;
        for i in 2..=n {
            #[allow(clippy::cast_precision_loss, reason = "as above")]
            let fi = i as f64;
            let x = log_coef + fi * self.lq + (a - fi) * self.l1q + self.log_em1[i];
            max = max.max(x);
            self.terms.push(x);
            if i < n {
                log_coef += self.ln_k[n - i] - self.ln_k[i + 1];
            }
        }
        let cut = max - 40.0;
        let sum: f64 = self.terms.iter().filter(|&&x| x > cut).map(|&x| (x - max).exp()).sum();
        max + sum.ln()
    }
}

/// `g(u) = (1+u)^α − 1 − αu ≥ 0`; `l = log1p(u)`, `coef[k] = C(α, k)`.
#[inline]
fn g_linear(alpha: f64, u: f64, l: f64, coef: &[f64; SERIES_TERMS]) -> f64 {
    if u.abs() < SERIES_BELOW {
        let mut s = 0.0;
        for c in coef[2..].iter().rev() {
            s = s * u + c;
        }
        s * u * u
    } else {
        (alpha * l).exp_m1() - alpha * u
    }
}

/// `g(u) = (1+u)^α − 1 − αu ≥ 0`, as its logarithm; `l = log1p(u)`, `coef[k] = C(α, k)`.
#[inline]
fn log_g(alpha: f64, u: f64, l: f64, coef: &[f64; SERIES_TERMS]) -> f64 {
    if u.abs() < SERIES_BELOW {
        // Σ_{k≥2} C(α,k) uᵏ, Horner from the top; |u| < 0.05 makes u^16 < 2e-21.
        let mut s = 0.0;
        for c in coef[2..].iter().rev() {
            s = s * u + c;
        }
        (s * u * u).ln()
    } else {
        let t = alpha * l;
        if t > 40.0 {
            t + (-(1.0 + alpha * u) * (-t).exp()).ln_1p()
        } else {
            (t.exp_m1() - alpha * u).ln()
        }
    }
}

const SERIES_TERMS: usize = 18;
const SERIES_BELOW: f64 = 0.05;

/// `log(A_α − 1)` for every (fractional) `α` in `alphas`, by the trapezoidal rule.
fn log_a_minus_1_quadrature(q: f64, sigma: f64, alphas: &[f64]) -> Result<Vec<f64>> {
    let s2 = sigma * sigma;
    let amax = alphas.iter().copied().fold(1.0, f64::max);
    let h = sigma.min(s2) / 2.0;
    let (lo, hi) = (-10.0 * sigma - 1.0, amax + 10.0 * sigma + 1.0);
    let steps = ((hi - lo) / h).ceil();
    if steps.is_nan() || steps > 4.0e6 {
        return Err(Error::param(
            "noise multiplier σ",
            format!("σ = {sigma} is too small for fractional orders"),
        ));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "bounded above")]
    let steps = steps as usize;
    let log_norm = -(sigma * (2.0 * std::f64::consts::PI).sqrt()).ln();
    // (log φ(z), φ(z), u(z), log1p(u(z))) per node.
    let nodes: Vec<(f64, f64, f64, f64)> = (0..=steps)
        .map(|k| {
            #[allow(clippy::cast_precision_loss, reason = "node counts are small")]
            let z = lo + k as f64 * h;
            let u = q * ((2.0 * z - 1.0) / (2.0 * s2)).exp_m1();
            let log_phi = log_norm - z * z / (2.0 * s2);
            // Below e^{−700} φ is treated as 0 (libm's underflow path is slow); such nodes are
            // handled exactly by the log-space path when they matter (α·log1p(u) ≥ 500).
            let phi = if log_phi < -700.0 { 0.0 } else { log_phi.exp() };
            (log_phi, phi, u, u.ln_1p())
        })
        .collect();
    let max_l = nodes.iter().map(|n| n.3).fold(0.0, f64::max);
    let per_order = |&alpha: &f64| {
        let mut coef = [0.0; SERIES_TERMS];
        coef[0] = 1.0;
        for k in 1..SERIES_TERMS {
            #[allow(clippy::cast_precision_loss, reason = "k < 20")]
            let kf = k as f64;
            coef[k] = coef[k - 1] * (alpha - kf + 1.0) / kf;
        }
        // Linear-space sum when no term can overflow or underflow away (the usual case: one
        // expm1 per node at most, none where |u| is small); log space otherwise.
        // (1+u)^α ≤ e^{α·max l} < e^{500} cannot overflow, and where φ underflows the term
        // is below e^{−245}.
        let linear = if alpha * max_l < 500.0 {
            let sum: f64 =
                nodes.iter().map(|&(_, phi, u, l)| phi * g_linear(alpha, u, l, &coef)).sum();
            (sum > 1e-280).then(|| sum.ln() + h.ln())
        } else {
            None
        };
        linear.unwrap_or_else(|| {
            let mut acc = LogSum::EMPTY;
            for &(log_phi, _, u, l) in &nodes {
                acc.add(log_phi + log_g(alpha, u, l, &coef));
            }
            acc.value() + h.ln()
        })
    };
    // Threads pay off only for real work; waking rayon costs more than a few small orders.
    Ok(if alphas.len() * nodes.len() >= 8192 {
        alphas.par_iter().map(per_order).collect()
    } else {
        alphas.iter().map(per_order).collect()
    })
}

/// One-step RDP of the Poisson-subsampled Gaussian mechanism with sampling rate `q` and noise
/// multiplier `σ` (noise standard deviation over L2 sensitivity), at each order.
///
/// `q = 0` gives 0; `q = 1` gives the Gaussian mechanism's `α/(2σ²)` (Mironov, "Rényi
/// Differential Privacy", CSF 2017, Table II).
///
/// # Errors
///
/// [`Error::InvalidParameter`] for `q ∉ [0, 1]` or `σ` not finite and positive;
/// [`Error::InvalidOrder`] for an order that is not finite and > 1.
pub fn rdp_subsampled_gaussian(q: f64, sigma: f64, orders: &[f64]) -> Result<Vec<f64>> {
    check_rate(q)?;
    check_sigma(sigma)?;
    validate_orders(orders)?;
    if q == 0.0 {
        return Ok(vec![0.0; orders.len()]);
    }
    if q == 1.0 {
        return Ok(orders.iter().map(|a| a / (2.0 * sigma * sigma)).collect());
    }
    let is_int = |a: f64| a.fract() == 0.0 && a <= 1e7;
    let fractional: Vec<f64> = orders.iter().copied().filter(|&a| !is_int(a)).collect();
    let max_int = orders.iter().copied().filter(|&a| is_int(a)).fold(0.0, f64::max);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "integer order ≤ 1e7"
    )]
    let mut ints = IntegerOrders::new(q, sigma, max_int as usize);
    let frac_values = if fractional.is_empty() {
        Vec::new()
    } else {
        log_a_minus_1_quadrature(q, sigma, &fractional)?
    };
    let mut frac_iter = frac_values.into_iter();
    let log_am1: Vec<f64> = orders
        .iter()
        .map(|&a| {
            if is_int(a) {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "checked integer ≤ 1e7"
                )]
                let n = a as usize;
                Ok(ints.log_a_minus_1(n))
            } else {
                frac_iter.next().ok_or(Error::Internal("fractional order count"))
            }
        })
        .collect::<Result<_>>()?;
    Ok(orders.iter().zip(log_am1).map(|(a, l)| log1p_exp(l) / (a - 1.0)).collect())
}

/// RDP of the Laplace mechanism with scale `b` over L1 sensitivity 1 (Mironov 2017, Table II):
/// `1/(α−1) · log(α/(2α−1)·e^{(α−1)/b} + (α−1)/(2α−1)·e^{−α/b})`.
///
/// # Errors
///
/// [`Error::InvalidParameter`] unless `b` is finite and positive; [`Error::InvalidOrder`].
pub fn rdp_laplace(b: f64, orders: &[f64]) -> Result<Vec<f64>> {
    check_sigma(b).map_err(|_| {
        Error::param("Laplace scale b", format!("{b} is not a finite positive number"))
    })?;
    validate_orders(orders)?;
    Ok(orders
        .iter()
        .map(|&a| {
            let t1 = (a / (2.0 * a - 1.0)).ln() + (a - 1.0) / b;
            let t2 = ((a - 1.0) / (2.0 * a - 1.0)).ln() - a / b;
            let m = t1.max(t2);
            (m + ((t1 - m).exp() + (t2 - m).exp()).ln()) / (a - 1.0)
        })
        .collect())
}

/// RDP of any pure ε-DP mechanism (randomized response, k-ary RR, private histograms):
/// `min(ε, αε²/2)` — ε-DP implies (α, ε)-RDP (Mironov 2017, Prop. 3) and ε²/2-zCDP (Bun &
/// Steinke, TCC 2016, Prop. 3.3), i.e. `(α, αε²/2)`-RDP.
///
/// # Errors
///
/// [`Error::InvalidParameter`] unless `ε ≥ 0` and finite; [`Error::InvalidOrder`].
pub fn rdp_pure_dp(epsilon: f64, orders: &[f64]) -> Result<Vec<f64>> {
    if !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(Error::param("ε", format!("{epsilon} is not finite and non-negative")));
    }
    validate_orders(orders)?;
    Ok(orders.iter().map(|a| epsilon.min(a * epsilon * epsilon / 2.0)).collect())
}

/// RDP of the sum of `clients` independent discrete Gaussians of variance `σ²` each, added to an
/// integer vector of dimension `dimension` with L2 sensitivity `l2` (Kairouz, Liu, Steinke, "The
/// Distributed Discrete Gaussian Mechanism for Federated Learning with Secure Aggregation", ICML
/// 2021, Thm 1): ρ-zCDP with `ρ = ½·min(Δ₂²/(nσ²) + ½τd, (Δ₂√d/(√n σ) + τ√d)²)` (taking
/// `Δ₁ ≤ √d Δ₂`), `τ = 10 Σ_{k=1}^{n−1} e^{−2π²σ²·k/(k+1)}`; RDP is `αρ`. With one client this
/// is the single discrete Gaussian's `Δ²/(2σ²)` (Canonne, Kamath, Steinke, NeurIPS 2020, Thm 4).
///
/// # Errors
///
/// [`Error::InvalidParameter`] for non-positive σ, sensitivity, dimension or client count;
/// [`Error::InvalidOrder`].
pub fn rdp_distributed_discrete_gaussian(
    sigma: f64,
    l2: f64,
    dimension: u64,
    clients: u64,
    orders: &[f64],
) -> Result<Vec<f64>> {
    check_sigma(sigma)?;
    if !(l2.is_finite() && l2 > 0.0) || dimension == 0 || clients == 0 {
        return Err(Error::param(
            "discrete Gaussian",
            "sensitivity, dimension and clients must be positive",
        ));
    }
    validate_orders(orders)?;
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^53")]
    let (n, d) = (clients as f64, dimension as f64);
    let tau: f64 = (1..clients)
        .map(|k| {
            #[allow(clippy::cast_precision_loss, reason = "as above")]
            let k = k as f64;
            10.0 * (-2.0 * std::f64::consts::PI.powi(2) * sigma * sigma * k / (k + 1.0)).exp()
        })
        .sum();
    let first = l2 * l2 / (n * sigma * sigma) + 0.5 * tau * d;
    let second = (l2 * d.sqrt() / (n.sqrt() * sigma) + tau * d.sqrt()).powi(2);
    let rho = 0.5 * first.min(second);
    Ok(orders.iter().map(|a| a * rho).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms_and_edges() -> Result<()> {
        let o = [1.5, 2.0, 32.0];
        assert_eq!(rdp_subsampled_gaussian(1.0, 2.0, &o)?, vec![1.5 / 8.0, 2.0 / 8.0, 4.0]);
        assert_eq!(rdp_subsampled_gaussian(0.0, 2.0, &o)?, vec![0.0; 3]);
        assert!(rdp_subsampled_gaussian(1.5, 2.0, &o).is_err());
        assert!(rdp_subsampled_gaussian(0.1, 0.0, &o).is_err());
        assert!(rdp_subsampled_gaussian(0.1, -1.0, &o).is_err());
        assert!(rdp_subsampled_gaussian(f64::NAN, 1.0, &o).is_err());
        assert!(matches!(rdp_subsampled_gaussian(0.1, 1.0, &[1.0]), Err(Error::InvalidOrder(_))));
        assert_eq!(default_orders().len(), 156);
        assert_eq!(opacus_orders().len(), 151);
        Ok(())
    }

    #[test]
    fn integer_and_fractional_paths_agree_at_integers() -> Result<()> {
        // The quadrature evaluated at integer orders must reproduce the exact finite sum.
        for &(q, sigma) in &[(0.01, 1.1), (0.1, 0.7), (0.5, 2.0), (1e-4, 5.0), (0.3, 0.4)] {
            let orders = [2.0, 3.0, 7.0, 10.0];
            let mut ints = IntegerOrders::new(q, sigma, 10);
            let exact: Vec<f64> = orders.iter().map(|&a| ints.log_a_minus_1(a as usize)).collect();
            let quad = log_a_minus_1_quadrature(q, sigma, &orders)?;
            for (e, g) in exact.iter().zip(&quad) {
                assert!((e - g).abs() <= 1e-11 * e.abs().max(1.0), "q={q} σ={sigma}: {e} vs {g}");
            }
        }
        Ok(())
    }

    #[test]
    fn rdp_is_monotone_in_order_and_finite() -> Result<()> {
        for &(q, sigma) in &[(0.5, 0.5), (0.1, 10.0), (0.9, 1.0), (1e-4, 0.8)] {
            let r = rdp_subsampled_gaussian(q, sigma, &default_orders())?;
            assert!(r.iter().all(|x| x.is_finite() && *x >= 0.0), "q={q} σ={sigma}");
            assert!(
                r.windows(2).all(|w| w[0] <= w[1] * (1.0 + 1e-12)),
                "q={q} σ={sigma}: not monotone"
            );
        }
        Ok(())
    }

    #[test]
    fn laplace_and_pure_dp() -> Result<()> {
        // As α → ∞ Laplace RDP tends to 1/b (its pure-DP ε); it never exceeds it.
        let r = rdp_laplace(2.0, &[1.5, 10.0, 1000.0])?;
        assert!(r.iter().all(|&x| x <= 0.5) && r[2] > 0.49);
        assert_eq!(rdp_pure_dp(1.0, &[1.5, 4.0])?, vec![0.75, 1.0]);
        let one = rdp_distributed_discrete_gaussian(2.0, 1.0, 10, 1, &[2.0])?;
        assert!((one[0] - 2.0 / 8.0).abs() < 1e-15);
        Ok(())
    }
}
