//! Empirical privacy auditing: turn what an attack achieved into a lower bound on ε.
//!
//! A mechanism that claims (ε, δ)-DP limits every attack. Run an attack many times, bound its
//! success rate with Clopper–Pearson intervals, and the bound below says which ε the
//! observations *prove* the mechanism spends. A lower bound above the claimed ε shows, with the
//! stated confidence, that the claim is false (a missing noise factor, clipping not applied …);
//! a lower bound far below it says only that this attack is weak. This is the method of
//! Jagielski, Ullman & Oprea, "Auditing Differentially Private Machine Learning: How Private is
//! Private SGD?" (NeurIPS 2020), §3 and Algorithm 2, applied to two games:
//!
//! - **Distinguishing** two neighbouring inputs from one output ([`epsilon_from_distinguishing`]):
//!   for every test, FPR + e^ε·FNR ≥ 1 − δ and FNR + e^ε·FPR ≥ 1 − δ (Kairouz, Oh & Viswanath,
//!   "The Composition Theorem for Differential Privacy", ICML 2015, Theorem 2.1).
//! - **Identifying** which of N candidate inputs produced an output, each equally likely
//!   ([`epsilon_from_identification`]): success ≤ e^ε/N + δ. This is reconstruction robustness with
//!   baseline 1/N (Balle, Cherubin & Hayes, "Reconstructing Training Data with Informed
//!   Adversaries", IEEE S&P 2022, §5); directly, for any guess g and candidates x_1 … x_N,
//!   Pr[g(M(x_i)) = i] ≤ e^ε·Pr[g(M(x_j)) = i] + δ for every j; averaging over j and summing over i
//!   gives Σ_i Pr[g(M(x_i)) = i] ≤ e^ε + N·δ.

use statrs::distribution::{Beta, ContinuousCDF};

use crate::{Error, Result};

/// A one-sided Clopper–Pearson interval for a binomial proportion: with probability at least
/// `confidence`, the true rate is ≥ `lower` (and, separately, ≤ `upper`).
///
/// Clopper & Pearson, "The use of confidence or fiducial limits illustrated in the case of the
/// binomial", Biometrika 26 (1934); the beta-quantile form: lower = B(α; k, n − k + 1),
/// upper = B(1 − α; k + 1, n − k) with α = 1 − confidence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClopperPearson {
    /// One-sided lower bound on the rate.
    pub lower: f64,
    /// One-sided upper bound on the rate.
    pub upper: f64,
}

impl ClopperPearson {
    /// The bounds for `successes` out of `trials` at `confidence` ∈ (0, 1).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] when `trials` is 0, `successes > trials`, or the confidence is
    /// outside (0, 1).
    pub fn new(successes: u64, trials: u64, confidence: f64) -> Result<Self> {
        if trials == 0 || successes > trials {
            return Err(Error::param(
                "trials",
                format!("{successes} successes of {trials} trials"),
            ));
        }
        if !(confidence > 0.0 && confidence < 1.0) {
            return Err(Error::param("confidence", format!("{confidence} is not in (0, 1)")));
        }
        #[allow(clippy::cast_precision_loss, reason = "trial counts far below 2^53")]
        let (k, n) = (successes as f64, trials as f64);
        let alpha = 1.0 - confidence;
        let beta = |a: f64, b: f64| {
            Beta::new(a, b).map_err(|e| Error::param("trials", format!("beta({a}, {b}): {e}")))
        };
        let lower = if successes == 0 { 0.0 } else { beta(k, n - k + 1.0)?.inverse_cdf(alpha) };
        let upper =
            if successes == trials { 1.0 } else { beta(k + 1.0, n - k)?.inverse_cdf(1.0 - alpha) };
        Ok(Self { lower, upper })
    }
}

fn check_delta(delta: f64) -> Result<()> {
    if delta.is_finite() && (0.0..1.0).contains(&delta) {
        Ok(())
    } else {
        Err(Error::param("δ", format!("{delta} is not in [0, 1)")))
    }
}

/// The largest success rate any attack can have at identifying which of `candidates` equally
/// likely inputs an (ε, δ)-DP output came from: min(1, e^ε/N + δ) (see the module docs).
///
/// # Errors
///
/// [`Error::InvalidParameter`] for ε < 0 or not finite, δ ∉ [0, 1), or no candidates.
pub fn identification_bound(epsilon: f64, delta: f64, candidates: usize) -> Result<f64> {
    if !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(Error::param("ε", format!("{epsilon} is not finite and ≥ 0")));
    }
    check_delta(delta)?;
    if candidates == 0 {
        return Err(Error::param("candidates", "no candidates"));
    }
    #[allow(clippy::cast_precision_loss, reason = "candidate counts far below 2^53")]
    let n = candidates as f64;
    Ok((epsilon.exp() / n + delta).min(1.0))
}

/// The ε that `successes` correct identifications in `trials` among `candidates` equally likely
/// inputs prove, at `confidence`: ln(N·(p − δ)) with p the Clopper–Pearson lower bound on the
/// success rate, or 0 when that is not positive.
///
/// # Errors
///
/// [`Error::InvalidParameter`] for inconsistent counts, δ ∉ [0, 1), a confidence outside
/// (0, 1), or no candidates.
pub fn epsilon_from_identification(
    successes: u64,
    trials: u64,
    candidates: usize,
    delta: f64,
    confidence: f64,
) -> Result<f64> {
    check_delta(delta)?;
    if candidates == 0 {
        return Err(Error::param("candidates", "no candidates"));
    }
    let p = ClopperPearson::new(successes, trials, confidence)?.lower;
    #[allow(clippy::cast_precision_loss, reason = "candidate counts far below 2^53")]
    let n = candidates as f64;
    Ok((n * (p - delta)).ln().max(0.0))
}

/// Outcome counts of a distinguishing test between two neighbouring inputs: "positive" runs used
/// the first input, "negative" runs the second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TestCounts {
    /// Runs on the first input.
    pub positives: u64,
    /// Of those, the ones the test assigned to the second input.
    pub false_negatives: u64,
    /// Runs on the second input.
    pub negatives: u64,
    /// Of those, the ones the test assigned to the first input.
    pub false_positives: u64,
}

/// The ε that a distinguishing test's outcomes prove at `confidence`:
/// max over both orientations of ln((1 − δ − FPR⁺)/FNR⁺), where ⁺ marks Clopper–Pearson upper
/// bounds (Jagielski et al. 2020, Algorithm 2); 0 when nothing is proven. Each of the two error
/// rates is bounded at `confidence`, so the result holds with probability at least
/// 1 − 2·(1 − confidence).
///
/// # Errors
///
/// [`Error::InvalidParameter`] for inconsistent counts, δ ∉ [0, 1) or a confidence outside
/// (0, 1).
pub fn epsilon_from_distinguishing(counts: TestCounts, delta: f64, confidence: f64) -> Result<f64> {
    check_delta(delta)?;
    let fnr = ClopperPearson::new(counts.false_negatives, counts.positives, confidence)?.upper;
    let fpr = ClopperPearson::new(counts.false_positives, counts.negatives, confidence)?.upper;
    let one_way =
        |a: f64, b: f64| if b > 0.0 { ((1.0 - delta - a) / b).ln() } else { f64::INFINITY };
    Ok(one_way(fpr, fnr).max(one_way(fnr, fpr)).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clopper_pearson_known_values() {
        // SciPy: beta.ppf(0.05, 3, 8) = 0.0872644339, beta.ppf(0.95, 4, 7) = 0.6066242161.
        let ci = ClopperPearson::new(3, 10, 0.95).unwrap();
        assert!((ci.lower - 0.087_264_433_9).abs() < 1e-8, "{ci:?}");
        assert!((ci.upper - 0.606_624_216_1).abs() < 1e-8, "{ci:?}");
        // Zero successes: upper = 1 − α^(1/n) exactly.
        let ci = ClopperPearson::new(0, 20, 0.95).unwrap();
        assert_eq!(ci.lower, 0.0);
        assert!((ci.upper - (1.0 - 0.05_f64.powf(1.0 / 20.0))).abs() < 1e-9);
        let ci = ClopperPearson::new(20, 20, 0.95).unwrap();
        assert_eq!(ci.upper, 1.0);
        assert!((ci.lower - 0.05_f64.powf(1.0 / 20.0)).abs() < 1e-9);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(ClopperPearson::new(3, 0, 0.95).is_err());
        assert!(ClopperPearson::new(4, 3, 0.95).is_err());
        assert!(ClopperPearson::new(1, 3, 1.0).is_err());
        assert!(ClopperPearson::new(1, 3, f64::NAN).is_err());
        assert!(identification_bound(-1.0, 0.0, 3).is_err());
        assert!(identification_bound(1.0, 1.0, 3).is_err());
        assert!(identification_bound(1.0, 0.0, 0).is_err());
        assert!(epsilon_from_identification(1, 2, 0, 0.0, 0.95).is_err());
        assert!(epsilon_from_distinguishing(TestCounts::default(), 0.0, 0.95).is_err());
    }

    #[test]
    fn identification_bound_and_its_inverse_agree() {
        // ε = 2 among 100 candidates allows success e²/100 ≈ 0.0739; a huge sample at exactly that
        // rate proves just under ε = 2, and never more.
        let p = identification_bound(2.0, 0.0, 100).unwrap();
        assert!((p - 2f64.exp() / 100.0).abs() < 1e-12);
        let trials = 10_000_000;
        #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
        let hits = (p * trials as f64) as u64;
        let eps = epsilon_from_identification(hits, trials, 100, 0.0, 0.95).unwrap();
        assert!(eps < 2.0 && eps > 1.99, "{eps}");
        // Chance-level success proves nothing.
        assert_eq!(epsilon_from_identification(10, 1000, 100, 0.0, 0.95).unwrap(), 0.0);
    }

    #[test]
    fn distinguishing_bound_matches_randomized_response() {
        // Randomized response with ε = 1 answers truthfully with probability e/(1 + e); the test
        // "output = first input" then has FPR = FNR = 1/(1 + e), the tightest possible pair.
        let wrong = 1.0 / (1.0 + 1f64.exp());
        let n = 20_000_000u64;
        #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
        let errors = (wrong * n as f64) as u64;
        let counts = TestCounts {
            positives: n,
            false_negatives: errors,
            negatives: n,
            false_positives: errors,
        };
        let eps = epsilon_from_distinguishing(counts, 0.0, 0.95).unwrap();
        assert!(eps < 1.0 && eps > 0.99, "{eps}");
        // A test that never errs proves an unbounded ε only in the limit; with 1,000 runs each
        // the proof is finite.
        let perfect =
            TestCounts { positives: 1000, false_negatives: 0, negatives: 1000, false_positives: 0 };
        let eps = epsilon_from_distinguishing(perfect, 0.0, 0.95).unwrap();
        assert!(eps.is_finite() && eps > 5.0, "{eps}");
    }
}
