//! Empirical audit of tier-2 local DP: `LocalDp::privatize` must not be caught spending more
//! than its ε on the worst-case pair of inputs, and the same audit must catch a release that
//! adds half the noise it should (the factor 2 of the 2C sensitivity forgotten).

#![allow(clippy::unwrap_used, reason = "test code")]

use fl_tiers::attacks::{audit_local_dp, audit_privatize};
use fl_tiers::features::{FEATURE_VERSION, FeatureVector, LocalDp};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

const TRIALS: usize = 200_000;

#[test]
fn privatize_passes_the_audit_and_half_the_noise_fails_it() {
    let (epsilon, delta, clip) = (1.0, 1e-5, 8.0);
    let local_dp = LocalDp::new(epsilon, delta, clip).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let audit = audit_privatize(&local_dp, TRIALS, delta, 0.95, &mut rng).unwrap();
    eprintln!(
        "privatize at ε = {epsilon}: audit proves ε ≥ {:.3} ({:?})",
        audit.epsilon_lower_bound, audit.counts
    );
    assert!(audit.epsilon_lower_bound <= epsilon, "{audit:?}");
    // The audit is not vacuous: it finds a good share of the claimed ε.
    assert!(audit.epsilon_lower_bound > 0.3, "{audit:?}");

    let half_noise = fl_dp::GaussianMechanism::new(local_dp.sigma() / 2.0, 1.0).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let weak = audit_local_dp(
        |v| {
            let mut values = v.values.clone();
            fl_dp::clip_l2(&mut values, clip).unwrap();
            half_noise.add_noise(&mut values, &mut rng).unwrap();
            Ok(FeatureVector { version: FEATURE_VERSION, values, local_dp: v.local_dp })
        },
        clip,
        TRIALS,
        delta,
        0.95,
    )
    .unwrap();
    eprintln!("half the noise: audit proves ε ≥ {:.3}", weak.epsilon_lower_bound);
    assert!(weak.epsilon_lower_bound > epsilon, "{weak:?}");
}

#[test]
fn audit_rejects_bad_parameters() {
    let local_dp = LocalDp::new(1.0, 1e-5, 8.0).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    assert!(audit_privatize(&local_dp, 1, 1e-5, 0.95, &mut rng).is_err());
    assert!(audit_privatize(&local_dp, 100, 1.5, 0.95, &mut rng).is_err());
    assert!(audit_privatize(&local_dp, 100, 1e-5, 1.0, &mut rng).is_err());
    assert!(audit_local_dp(|v| Ok(v.clone()), f64::NAN, 100, 1e-5, 0.95).is_err());
    // A release that returns a malformed vector is an error, not a verdict.
    let short = |_: &FeatureVector| {
        Ok(FeatureVector { version: FEATURE_VERSION, values: vec![0.0; 3], local_dp: None })
    };
    assert!(audit_local_dp(short, 8.0, 100, 1e-5, 0.95).is_err());
}
