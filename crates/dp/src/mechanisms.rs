//! Noise mechanisms, all drawing from a CSPRNG (ChaCha20 seeded from the operating system).
//!
//! Continuous mechanisms ([`GaussianMechanism`], [`LaplaceMechanism`]) sample in floating point;
//! floating-point noise can leak through the low-order bits of its output (Mironov, "On
//! Significance of the Least Significant Bits for Differential Privacy", CCS 2012), so for noise
//! that must hold up against an adversary with the exact output — e.g. clients adding noise
//! before secure aggregation — use the exact [`DiscreteGaussian`] sampler on integers.

use rand::rngs::{ChaCha20Rng, SysRng};
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use fl_core::Scalar;

use crate::accountant::DpEvent;
use crate::{Error, Result};

/// A ChaCha20 stream seeded from the operating system's CSPRNG.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if the operating system cannot supply entropy.
pub fn csprng() -> Result<ChaCha20Rng> {
    ChaCha20Rng::try_from_rng(&mut SysRng).map_err(|e| Error::param("entropy", e.to_string()))
}

/// No draw of the continuous samplers here lies further than this many scales from zero, so
/// [`GaussianMechanism::add_noise`] and [`LaplaceMechanism::add_noise`] can check before they
/// touch a value that no noised element can leave `T`'s finite range: `rand_distr`'s ziggurat
/// draws its tail as `R − ln(U)/R` with `U ≥ 2⁻⁵³`, so `|z| < 14`; the Laplace inversion below
/// takes the log of a multiple of 2⁻⁵², so `|x| < 37·b`. 64 leaves a margin.
const MAX_DRAW_IN_SCALES: f64 = 64.0;

/// Refuses noise of `scale` that could carry a value of magnitude `largest` past `T`'s largest
/// finite value (it would become ±∞ and the release would be unusable downstream).
fn check_noise_range<T: Scalar>(largest: f64, scale: f64) -> Result<()> {
    let limit = T::max_value().as_f64();
    let reach = largest + MAX_DRAW_IN_SCALES * scale;
    if reach.is_finite() && reach <= limit {
        Ok(())
    } else {
        Err(Error::param(
            "noise scale",
            format!(
                "{scale:e} could carry a value of magnitude {largest:e} past the largest finite \
                 {limit:e} of the element type"
            ),
        ))
    }
}

/// The largest finite magnitude in `values` (non-finite values stay as they are when noised).
fn largest_magnitude<T: Scalar>(values: &[T]) -> f64 {
    values.iter().map(|v| v.as_f64().abs()).filter(|x| x.is_finite()).fold(0.0, f64::max)
}

fn positive(name: &'static str, x: f64) -> Result<f64> {
    if x.is_finite() && x > 0.0 {
        Ok(x)
    } else {
        Err(Error::param(name, format!("{x} is not finite and positive")))
    }
}

/// The Gaussian mechanism: adds `N(0, (σ·Δ₂)²)` to every coordinate (Dwork & Roth, "The
/// Algorithmic Foundations of Differential Privacy", 2014, Thm A.1; RDP `α/(2σ²)`, Mironov 2017).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianMechanism {
    noise_multiplier: f64,
    l2_sensitivity: f64,
}

impl GaussianMechanism {
    /// Noise multiplier σ (std over sensitivity) and L2 sensitivity Δ₂.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless both and their product are finite and positive.
    pub fn new(noise_multiplier: f64, l2_sensitivity: f64) -> Result<Self> {
        let mechanism = Self {
            noise_multiplier: positive("noise multiplier σ", noise_multiplier)?,
            l2_sensitivity: positive("L2 sensitivity", l2_sensitivity)?,
        };
        positive("noise std σ·Δ₂", mechanism.std_dev())?;
        Ok(mechanism)
    }

    /// The noise standard deviation `σ·Δ₂`.
    #[must_use]
    pub fn std_dev(&self) -> f64 {
        self.noise_multiplier * self.l2_sensitivity
    }

    /// Checks that noise added to values of magnitude up to `largest` stays finite in `T`, e.g.
    /// before a release whose inputs are clipped to a known norm.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] when a draw could carry such a value past `T`'s largest
    /// finite value (e.g. σ·Δ₂ = 1e38 on `f32`).
    pub fn check_range<T: Scalar>(&self, largest: f64) -> Result<()> {
        check_noise_range::<T>(largest, self.std_dev())
    }

    /// Adds noise to `values`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`], with `values` untouched, when the noise could carry an
    /// element past `T`'s finite range ([`check_range`](Self::check_range)).
    pub fn add_noise<T: Scalar>(&self, values: &mut [T], rng: &mut impl Rng) -> Result<()> {
        self.check_range::<T>(largest_magnitude(values))?;
        let s = self.std_dev();
        for v in values {
            let z: f64 = StandardNormal.sample(rng);
            *v = T::from_f64(v.as_f64() + s * z);
        }
        Ok(())
    }

    /// The privacy event of one release.
    #[must_use]
    pub fn event(&self) -> DpEvent {
        DpEvent::Gaussian { noise_multiplier: self.noise_multiplier }
    }
}

/// The Laplace mechanism: adds `Laplace(b)` noise (Dwork, McSherry, Nissim, Smith, TCC 2006);
/// ε-DP for L1 sensitivity Δ₁ with `ε = Δ₁/b`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LaplaceMechanism {
    scale: f64,
    l1_sensitivity: f64,
}

impl LaplaceMechanism {
    /// Scale `b` and L1 sensitivity Δ₁.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless both are finite and positive.
    pub fn new(scale: f64, l1_sensitivity: f64) -> Result<Self> {
        Ok(Self {
            scale: positive("Laplace scale", scale)?,
            l1_sensitivity: positive("L1 sensitivity", l1_sensitivity)?,
        })
    }

    /// One draw of `Laplace(b)` by inversion: `−b·sgn(U)·ln(1 − 2|U|)`, `U ∼ Uniform(−½, ½)`.
    pub fn sample(&self, rng: &mut impl Rng) -> f64 {
        loop {
            let u: f64 = rng.random::<f64>() - 0.5;
            let m = 1.0 - 2.0 * u.abs();
            if m > 0.0 {
                return -self.scale * u.signum() * m.ln();
            }
        }
    }

    /// Adds noise to `values`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`], with `values` untouched, when the noise could carry an
    /// element past `T`'s finite range.
    pub fn add_noise<T: Scalar>(&self, values: &mut [T], rng: &mut impl Rng) -> Result<()> {
        check_noise_range::<T>(largest_magnitude(values), self.scale)?;
        for v in values {
            *v = T::from_f64(v.as_f64() + self.sample(rng));
        }
        Ok(())
    }

    /// The privacy event of one release.
    #[must_use]
    pub fn event(&self) -> DpEvent {
        DpEvent::Laplace { scale: self.scale / self.l1_sensitivity }
    }
}

/// Binary randomized response (Warner 1965): report the true bit with probability
/// `p = e^ε/(1 + e^ε)`, ε-DP.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomizedResponse {
    epsilon: f64,
    p_true: f64,
}

impl RandomizedResponse {
    /// RR with privacy ε.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless ε is finite and positive.
    pub fn new(epsilon: f64) -> Result<Self> {
        let e = positive("ε", epsilon)?;
        Ok(Self { epsilon: e, p_true: 1.0 / (1.0 + (-e).exp()) })
    }

    /// Probability of reporting the true bit.
    #[must_use]
    pub fn p_true(&self) -> f64 {
        self.p_true
    }

    /// A randomized report of `bit`.
    pub fn respond(&self, bit: bool, rng: &mut impl Rng) -> bool {
        if rng.random_bool(self.p_true) { bit } else { !bit }
    }

    /// Unbiased estimate of the true fraction of ones from the reports' fraction of ones.
    #[must_use]
    pub fn estimate_fraction(&self, reported_fraction: f64) -> f64 {
        (reported_fraction - (1.0 - self.p_true)) / (2.0 * self.p_true - 1.0)
    }

    /// The privacy event of one report.
    #[must_use]
    pub fn event(&self) -> DpEvent {
        DpEvent::PureDp { epsilon: self.epsilon }
    }
}

/// k-ary randomized response (generalized RR, Kairouz, Oh, Viswanath, "Extremal Mechanisms for
/// Local Differential Privacy", NeurIPS 2014): report the true category with probability
/// `p = e^ε/(e^ε + k − 1)`, otherwise one of the other k − 1 uniformly. ε-DP per report. A
/// private histogram is the unbiased estimate of the category counts from the reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KaryRandomizedResponse {
    k: usize,
    epsilon: f64,
    p_true: f64,
}

impl KaryRandomizedResponse {
    /// k-RR over `k ≥ 2` categories with privacy ε.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for `k < 2` or ε not finite and positive.
    pub fn new(k: usize, epsilon: f64) -> Result<Self> {
        if k < 2 {
            return Err(Error::param("k", "at least two categories"));
        }
        let e = positive("ε", epsilon)?;
        #[allow(clippy::cast_precision_loss, reason = "category counts are small")]
        let p = e.exp() / (e.exp() + (k - 1) as f64);
        Ok(Self { k, epsilon: e, p_true: p })
    }

    /// A randomized report of category `value`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if `value ≥ k`.
    pub fn respond(&self, value: usize, rng: &mut impl Rng) -> Result<usize> {
        if value >= self.k {
            return Err(Error::param("category", format!("{value} is not below k = {}", self.k)));
        }
        if rng.random_bool(self.p_true) {
            return Ok(value);
        }
        let other = rng.random_range(0..self.k - 1);
        Ok(if other >= value { other + 1 } else { other })
    }

    /// Unbiased estimates of the true counts from the counts of reports per category:
    /// `ĉ_j = (c_j − n·q)/(p − q)` with `q = (1 − p)/(k − 1)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if `reported.len() != k`.
    pub fn estimate_counts(&self, reported: &[u64]) -> Result<Vec<f64>> {
        if reported.len() != self.k {
            return Err(Error::param("reported counts", format!("expected {} categories", self.k)));
        }
        #[allow(clippy::cast_precision_loss, reason = "counts far below 2^53")]
        let n = reported.iter().sum::<u64>() as f64;
        #[allow(clippy::cast_precision_loss, reason = "as above")]
        let q = (1.0 - self.p_true) / (self.k - 1) as f64;
        #[allow(clippy::cast_precision_loss, reason = "as above")]
        Ok(reported.iter().map(|&c| (c as f64 - n * q) / (self.p_true - q)).collect())
    }

    /// The privacy event of one report.
    #[must_use]
    pub fn event(&self) -> DpEvent {
        DpEvent::PureDp { epsilon: self.epsilon }
    }
}

/// The discrete Gaussian `N_ℤ(0, σ²)`, `P(x) ∝ e^{−x²/(2σ²)}` on the integers, sampled exactly
/// (Canonne, Kamath, Steinke, "The Discrete Gaussian for Differential Privacy", NeurIPS 2020,
/// Algorithms 1–3): Bernoulli(e^{−γ}) for rational γ by the alternating-series loop, discrete
/// Laplace by geometric sampling, and rejection. All arithmetic is on integers, so no floating
/// point rounding touches the output distribution. σ² is represented as `num / 2²⁰`, rounded up
/// (never less noise than asked for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscreteGaussian {
    /// σ² = `num / DEN`.
    num: u128,
    /// Discrete Laplace parameter `t = ⌊σ⌋ + 1`.
    t: u128,
}

const DEN: u128 = 1 << 20;

impl DiscreteGaussian {
    /// `N_ℤ(0, σ²)` for `0 < σ ≤ 1e6`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] outside that range.
    pub fn new(sigma: f64) -> Result<Self> {
        let s = positive("discrete Gaussian σ", sigma)?;
        if s > 1e6 {
            return Err(Error::param("discrete Gaussian σ", "above 1e6"));
        }
        #[allow(clippy::cast_precision_loss, reason = "DEN is a power of two")]
        let scaled = (s * s * DEN as f64).ceil();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "0 < σ²·2^20 ≤ 2^60"
        )]
        let num = scaled as u128;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "σ ≤ 1e6")]
        let t = s.floor() as u128 + 1;
        Ok(Self { num: num.max(1), t })
    }

    /// The variance parameter σ² actually used (≥ the requested one).
    #[must_use]
    pub fn sigma_squared(&self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "σ²·2^20 fits 2^60")]
        let v = self.num as f64 / DEN as f64;
        v
    }

    /// One sample.
    pub fn sample(&self, rng: &mut impl Rng) -> i64 {
        loop {
            let y = discrete_laplace(self.t, rng);
            let ay = u128::from(y.unsigned_abs());
            // γ = (|y| − σ²/t)² / (2σ²) = (|y|·t·DEN − num)² / (2·num·t²·DEN).
            let a = (ay * self.t * DEN).abs_diff(self.num);
            let (Some(n), Some(d)) =
                (a.checked_mul(a), (2 * self.num * DEN).checked_mul(self.t * self.t))
            else {
                continue; // |y| so large that its acceptance probability is below 2^-100
            };
            if bernoulli_exp_neg(n, d, rng) {
                return y;
            }
        }
    }

    /// Adds independent samples to each value.
    pub fn add_noise(&self, values: &mut [i64], rng: &mut impl Rng) {
        for v in values {
            *v = v.saturating_add(self.sample(rng));
        }
    }
}

/// Bernoulli(n/d) exactly, `n ≤ d`.
fn bernoulli_ratio(n: u128, d: u128, rng: &mut impl Rng) -> bool {
    rng.random_range(0..d) < n
}

/// Bernoulli(e^{−n/d}) exactly (Canonne et al. 2020, Algorithm 1 and its extension to γ > 1).
fn bernoulli_exp_neg(n: u128, d: u128, rng: &mut impl Rng) -> bool {
    let whole = n / d;
    for _ in 0..whole {
        if !bernoulli_exp_neg_le1(1, 1, rng) {
            return false;
        }
    }
    bernoulli_exp_neg_le1(n % d, d, rng)
}

/// Bernoulli(e^{−γ}) for γ = n/d ∈ [0, 1]: draw A_k ∼ Bernoulli(γ/k) for k = 1, 2, … until the
/// first 0; return whether that happened at an odd k.
fn bernoulli_exp_neg_le1(n: u128, d: u128, rng: &mut impl Rng) -> bool {
    let mut k: u128 = 1;
    loop {
        let Some(dk) = d.checked_mul(k) else { return k % 2 == 1 };
        if !bernoulli_ratio(n, dk, rng) {
            return k % 2 == 1;
        }
        k += 1;
    }
}

/// The discrete Laplace `P(x) ∝ e^{−|x|/t}` (Canonne et al. 2020, Algorithm 2 with s = 1).
fn discrete_laplace(t: u128, rng: &mut impl Rng) -> i64 {
    loop {
        let u = rng.random_range(0..t);
        if !bernoulli_exp_neg(u, t, rng) {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp_neg_le1(1, 1, rng) {
            v += 1;
        }
        let x = u + t * v;
        let negative = rng.random_bool(0.5);
        if negative && x == 0 {
            continue;
        }
        let x = i64::try_from(x).unwrap_or(i64::MAX);
        return if negative { -x } else { x };
    }
}

#[cfg(test)]
mod tests {
    use statrs::distribution::{ChiSquared, ContinuousCDF};

    use super::*;

    /// False-alarm rate of every statistical test here.
    const ALPHA: f64 = 1e-6;
    /// Two-sided normal quantile for ALPHA.
    const Z: f64 = 4.89;

    fn rng(seed: u64) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(seed)
    }

    /// Kolmogorov–Smirnov statistic against `cdf`, with its α = 1e-6 critical value.
    fn ks(mut xs: Vec<f64>, cdf: impl Fn(f64) -> f64) -> (f64, f64) {
        xs.sort_by(f64::total_cmp);
        let n = xs.len() as f64;
        let d = xs
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = cdf(x);
                (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
            })
            .fold(0.0, f64::max);
        (d, (-(ALPHA / 2.0).ln() / (2.0 * n)).sqrt())
    }

    #[test]
    fn csprng_is_seeded() {
        assert!(csprng().is_ok());
    }

    #[test]
    fn gaussian_noise_is_gaussian() {
        let m = GaussianMechanism::new(2.0, 0.5).unwrap();
        let mut v = vec![0.0f64; 100_000];
        m.add_noise(&mut v, &mut rng(1)).unwrap();
        let normal = statrs::distribution::Normal::new(0.0, 1.0).unwrap();
        let (d, crit) = ks(v.clone(), |x| normal.cdf(x));
        assert!(d < crit, "KS {d} ≥ {crit}");
        assert_eq!(m.event(), DpEvent::Gaussian { noise_multiplier: 2.0 });
        assert!(
            GaussianMechanism::new(0.0, 1.0).is_err()
                && GaussianMechanism::new(1.0, f64::NAN).is_err()
        );
    }

    #[test]
    fn noise_that_would_leave_the_element_range_is_refused_before_any_change() {
        // σ·Δ₂ overflows f64.
        assert!(GaussianMechanism::new(1e200, 1e200).is_err());
        let huge = GaussianMechanism::new(1e37, 1.0).unwrap();
        let original = vec![1.0f32, -2.0, 3.0];
        let mut v = original.clone();
        let err = huge.add_noise(&mut v, &mut rng(7)).unwrap_err();
        assert!(err.to_string().contains("largest finite"), "{err}");
        assert_eq!(v, original, "values untouched on error");
        // The same scale is fine in f64, and a smaller one (1e36) in f32 unless the values
        // themselves sit near the edge of the range.
        huge.add_noise(&mut [1.0f64, 2.0], &mut rng(7)).unwrap();
        let large = GaussianMechanism::new(1e36, 1.0).unwrap();
        large.check_range::<f32>(1e30).unwrap();
        assert!(large.add_noise(&mut [3e38f32], &mut rng(7)).is_err());
        let mut near = [1e38f32, f32::NAN];
        large.add_noise(&mut near, &mut rng(7)).unwrap();
        assert!(near[0].is_finite() && near[1].is_nan());
        let laplace = LaplaceMechanism::new(1e37, 1.0).unwrap();
        let mut v = original.clone();
        assert!(laplace.add_noise(&mut v, &mut rng(8)).is_err());
        assert_eq!(v, original);
        laplace.add_noise(&mut [0.0f64], &mut rng(8)).unwrap();
    }

    #[test]
    fn laplace_noise_is_laplace() {
        let m = LaplaceMechanism::new(1.5, 1.0).unwrap();
        let mut r = rng(2);
        let xs2: Vec<f64> = (0..100_000).map(|_| m.sample(&mut r)).collect();
        let cdf =
            |x: f64| if x < 0.0 { 0.5 * (x / 1.5).exp() } else { 1.0 - 0.5 * (-x / 1.5).exp() };
        let (d, crit) = ks(xs2, cdf);
        assert!(d < crit, "KS {d} ≥ {crit}");
    }

    #[test]
    fn randomized_response_rates_and_unbiasing() {
        let rr = RandomizedResponse::new(1.0).unwrap();
        let mut r = rng(3);
        let n = 200_000;
        let truth = 0.3;
        let ones = (0..n).filter(|i| rr.respond((*i as f64) < truth * n as f64, &mut r)).count();
        let est = rr.estimate_fraction(ones as f64 / n as f64);
        // Std of the estimate: sqrt(p(1−p)/n)/(2p−1) for the reported fraction p.
        let p = truth * rr.p_true() + (1.0 - truth) * (1.0 - rr.p_true());
        let se = (p * (1.0 - p) / n as f64).sqrt() / (2.0 * rr.p_true() - 1.0);
        assert!((est - truth).abs() < Z * se, "{est}");
    }

    #[test]
    fn kary_histogram_is_unbiased() {
        let k = 5;
        let m = KaryRandomizedResponse::new(k, 2.0).unwrap();
        let mut r = rng(4);
        let truth = [50_000u64, 30_000, 10_000, 7_000, 3_000];
        let mut reported = vec![0u64; k];
        for (cat, &count) in truth.iter().enumerate() {
            for _ in 0..count {
                reported[m.respond(cat, &mut r).unwrap()] += 1;
            }
        }
        let est = m.estimate_counts(&reported).unwrap();
        let n: f64 = truth.iter().sum::<u64>() as f64;
        let q = (1.0 - m.p_true) / (k as f64 - 1.0);
        for (e, t) in est.iter().zip(truth) {
            let p = (t as f64 / n) * m.p_true + (1.0 - t as f64 / n) * q;
            let se = (n * p * (1.0 - p)).sqrt() / (m.p_true - q);
            assert!((e - t as f64).abs() < Z * se, "{e} vs {t}");
        }
        assert!(m.respond(5, &mut r).is_err());
        assert!(KaryRandomizedResponse::new(1, 1.0).is_err());
    }

    #[test]
    fn discrete_gaussian_matches_its_pmf() {
        for &sigma in &[0.7, 3.0, 20.0] {
            let dg = DiscreteGaussian::new(sigma).unwrap();
            let s2 = dg.sigma_squared();
            assert!(s2 >= sigma * sigma && s2 < sigma * sigma + 1e-6);
            let mut r = rng(5);
            let n = 100_000usize;
            let samples: Vec<i64> = (0..n).map(|_| dg.sample(&mut r)).collect();
            // Chi-square over |x| ≤ 3σ, tails pooled, against the exact normalized pmf.
            let lim = (3.0 * sigma).ceil() as i64;
            let weight = |x: i64| (-(x as f64).powi(2) / (2.0 * s2)).exp();
            let wide = (40.0 * sigma).ceil() as i64 + 10;
            let z: f64 = (-wide..=wide).map(weight).sum();
            let mut observed = vec![0u64; (2 * lim + 3) as usize];
            for &x in &samples {
                let bin = if x < -lim {
                    0
                } else if x > lim {
                    (2 * lim + 2) as usize
                } else {
                    (x + lim + 1) as usize
                };
                observed[bin] += 1;
            }
            let mut expected = vec![0.0; observed.len()];
            for x in -wide..=wide {
                let bin = if x < -lim {
                    0
                } else if x > lim {
                    (2 * lim + 2) as usize
                } else {
                    (x + lim + 1) as usize
                };
                expected[bin] += n as f64 * weight(x) / z;
            }
            let chi2: f64 =
                observed.iter().zip(&expected).map(|(&o, &e)| (o as f64 - e).powi(2) / e).sum();
            let crit =
                ChiSquared::new((observed.len() - 1) as f64).unwrap().inverse_cdf(1.0 - ALPHA);
            assert!(chi2 < crit, "σ = {sigma}: χ² = {chi2} ≥ {crit}");
        }
        assert!(DiscreteGaussian::new(0.0).is_err() && DiscreteGaussian::new(2e6).is_err());
    }

    #[test]
    fn exact_bernoulli_exp() {
        // P(Bernoulli(e^{-γ})) for γ = 3/2: e^{-1.5} ≈ 0.2231.
        let mut r = rng(6);
        let n = 200_000;
        let hits = (0..n).filter(|_| bernoulli_exp_neg(3, 2, &mut r)).count() as f64;
        let p = (-1.5f64).exp();
        assert!((hits / n as f64 - p).abs() < Z * (p * (1.0 - p) / n as f64).sqrt());
    }
}
