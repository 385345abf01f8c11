//! Clipping: bounding each contribution's L2 norm so that noise calibrated to that bound gives DP.
//!
//! - [`clip_l2`]: scale a vector to norm ≤ C (Abadi et al., "Deep Learning with Differential
//!   Privacy", CCS 2016, Algorithm 1 "clip gradient").
//! - [`clip_per_layer`]: a bound per layer; the whole update then has norm ≤ √(Σ C_l²)
//!   (McMahan et al., "Learning Differentially Private Recurrent Language Models", ICLR 2018,
//!   §3 "per-layer clipping").
//! - [`AdaptiveClipping`]: track a target quantile γ of the update norms privately (Andrew,
//!   Thakkar, McMahan, Ramaswamy, "Differentially Private Learning with Adaptive Clipping",
//!   NeurIPS 2021, Algorithm 1): `C ← C·exp(−η(b̃ − γ))` with `b̃` the noised fraction of
//!   unclipped updates.

use fl_core::{ModelParams, Scalar, ops};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::accountant::DpEvent;
use crate::{Error, Result};

/// Scales `values` so that its L2 norm is at most `max_norm`; returns the norm before clipping.
///
/// # Errors
///
/// [`Error::InvalidParameter`] unless `max_norm` is finite and positive, or when the norm of
/// finite values overflows `f64` (elements beyond about 1e154); non-finite values are
/// [`Error::Core`]. `values` are untouched on error.
pub fn clip_l2<T: Scalar>(values: &mut [T], max_norm: f64) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(Error::param("clip norm", format!("{max_norm} is not finite and positive")));
    }
    if let Some(i) = ops::first_non_finite(values) {
        return Err(fl_core::Error::NonFinite {
            layer: String::new(),
            index: vec![i],
            value: values[i].as_f64(),
        }
        .into());
    }
    let norm = ops::l2_norm(values);
    if !norm.is_finite() {
        // Scaling by C/∞ would silently zero the vector.
        return Err(Error::param("values", "their L2 norm overflows f64"));
    }
    let mut current = norm;
    // Rounding each scaled element (and the factor, in f32) can leave the norm a hair above C;
    // aim 2⁻²⁰ below and repeat until the bound holds — slightly more clipping, never less.
    // Subnormal elements can round back to themselves when scaled by a factor near 1, so each
    // retry doubles the margin; at a margin of 1 every element is zero, so the loop ends.
    let mut margin = 1.0 / f64::from(1u32 << 20);
    while current > max_norm {
        ops::scale(values, T::from_f64(max_norm / current * (1.0 - margin)));
        current = ops::l2_norm(values);
        margin = (2.0 * margin).min(1.0);
    }
    Ok(norm)
}

/// Clips layer `l` of `params` to L2 norm `max_norms[l]`; returns the norms before clipping.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if `max_norms` has the wrong length or a bad bound.
pub fn clip_per_layer<T: Scalar>(
    params: &mut ModelParams<T>,
    max_norms: &[f64],
) -> Result<Vec<f64>> {
    let spec = params.shared_spec().clone();
    if max_norms.len() != spec.num_layers() {
        return Err(Error::param(
            "per-layer clip norms",
            format!("expected {}, got {}", spec.num_layers(), max_norms.len()),
        ));
    }
    let mut norms = Vec::with_capacity(max_norms.len());
    for (l, &c) in max_norms.iter().enumerate() {
        let range = spec.range(l).ok_or(Error::Internal("layer range"))?;
        norms.push(clip_l2(&mut params.as_mut_slice()[range], c)?);
    }
    Ok(norms)
}

/// The total norm bound implied by per-layer bounds: `√(Σ C_l²)`.
#[must_use]
pub fn per_layer_total_bound(max_norms: &[f64]) -> f64 {
    max_norms.iter().map(|c| c * c).sum::<f64>().sqrt()
}

/// Adaptive clipping to a target quantile of update norms.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveClipping {
    clip: f64,
    target_quantile: f64,
    learning_rate: f64,
    count_noise_std: f64,
}

impl AdaptiveClipping {
    /// Initial bound `C₀`, target quantile γ ∈ (0, 1), geometric learning rate η > 0 (the paper
    /// uses 0.2), and the std σ_b of the Gaussian noise on the count of unclipped updates (its
    /// privacy cost is the event [`AdaptiveClipping::event`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for any value outside its domain.
    pub fn new(
        initial_clip: f64,
        target_quantile: f64,
        learning_rate: f64,
        count_noise_std: f64,
    ) -> Result<Self> {
        let pos = |n: &'static str, x: f64| {
            if x.is_finite() && x > 0.0 {
                Ok(x)
            } else {
                Err(Error::param(n, format!("{x} is not finite and positive")))
            }
        };
        if !(target_quantile > 0.0 && target_quantile < 1.0) {
            return Err(Error::param(
                "target quantile",
                format!("{target_quantile} is not in (0, 1)"),
            ));
        }
        Ok(Self {
            clip: pos("initial clip", initial_clip)?,
            target_quantile,
            learning_rate: pos("learning rate", learning_rate)?,
            count_noise_std: pos("count noise std", count_noise_std)?,
        })
    }

    /// The current bound C.
    #[must_use]
    pub fn clip(&self) -> f64 {
        self.clip
    }

    /// One round: from each client's bit "my update's norm was ≤ C", the noised fraction
    /// `b̃ = (Σ bᵢ + N(0, σ_b²))/n` and the geometric update of C. Returns `b̃`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if `unclipped` is empty.
    pub fn update(&mut self, unclipped: &[bool], rng: &mut impl Rng) -> Result<f64> {
        if unclipped.is_empty() {
            return Err(Error::param("unclipped bits", "no clients reported"));
        }
        #[allow(clippy::cast_precision_loss, reason = "client counts are small")]
        let n = unclipped.len() as f64;
        #[allow(clippy::cast_precision_loss, reason = "as above")]
        let count = unclipped.iter().filter(|&&b| b).count() as f64;
        let z: f64 = StandardNormal.sample(rng);
        let b = (count + self.count_noise_std * z) / n;
        self.clip *= (-self.learning_rate * (b - self.target_quantile)).exp();
        Ok(b)
    }

    /// The privacy event of one round's count (each client changes the count by at most 1).
    #[must_use]
    pub fn event(&self) -> DpEvent {
        DpEvent::Gaussian { noise_multiplier: self.count_noise_std }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fl_core::ModelSpec;
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    use super::*;

    #[test]
    fn flat_clip_bounds_norm_and_keeps_direction() -> Result<()> {
        let mut v = vec![3.0f32, 4.0];
        assert_eq!(clip_l2(&mut v, 1.0)?, 5.0);
        assert!(ops::l2_norm(&v) <= 1.0);
        assert!((v[0] / v[1] - 0.75).abs() < 1e-6);
        let mut small = vec![0.1f64, 0.2];
        clip_l2(&mut small, 1.0)?;
        assert_eq!(small, [0.1, 0.2]);
        assert!(clip_l2(&mut small, 0.0).is_err());
        assert!(clip_l2(&mut [f64::NAN], 1.0).is_err());
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn clipped_norm_never_exceeds_bound(v in proptest::collection::vec(-1e6..1e6f32, 1..500), c in 1e-3..1e3f64) {
            let mut v = v;
            clip_l2(&mut v, c).unwrap();
            proptest::prop_assert!(ops::l2_norm(&v) <= c);
        }
    }

    #[test]
    fn clipping_subnormal_values_below_their_granularity_terminates() -> Result<()> {
        // Found by the feature_vectors fuzz target: scaling subnormals by 1 − 2⁻²⁰ rounds them
        // back to themselves, and the loop never ended.
        for c in [1e-44, 1e-45, 3e-39, f64::MIN_POSITIVE] {
            let mut v = vec![f32::from_bits(1); 223];
            v[7] = 2e-39;
            clip_l2(&mut v, c)?;
            assert!(ops::l2_norm(&v) <= c, "{c}: {}", ops::l2_norm(&v));
        }
        let mut v = vec![f64::from_bits(3); 5];
        clip_l2(&mut v, 1e-323)?;
        assert!(ops::l2_norm(&v) <= 1e-323);
        Ok(())
    }

    #[test]
    fn a_norm_that_overflows_is_an_error_not_a_zeroed_vector() {
        let mut v = vec![1e200f64, -1e200];
        let err = clip_l2(&mut v, 1.0).unwrap_err();
        assert!(err.to_string().contains("overflows"), "{err}");
        assert_eq!(v, [1e200, -1e200]);
    }

    #[test]
    fn per_layer_clipping() -> Result<()> {
        let spec = Arc::new(ModelSpec::from_pairs([("a", vec![2]), ("b", vec![2])])?);
        let mut p = ModelParams::from_flat(spec, vec![3.0f64, 4.0, 0.3, 0.4])?;
        let norms = clip_per_layer(&mut p, &[1.0, 1.0])?;
        assert_eq!(norms, [5.0, 0.5]);
        assert!((p.l2_norm() - (1.0f64 + 0.25).sqrt()).abs() < 1e-6);
        assert!(p.l2_norm() <= per_layer_total_bound(&[1.0, 1.0]));
        assert!(clip_per_layer(&mut p, &[1.0]).is_err());
        Ok(())
    }

    #[test]
    fn adaptive_clip_converges_to_the_quantile() -> Result<()> {
        // Norms uniform on [0, 10]: the 0.5 quantile is 5.
        let mut ac = AdaptiveClipping::new(0.5, 0.5, 0.2, 1.0)?;
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        for _ in 0..400 {
            let bits: Vec<bool> = (0..1000).map(|i| (i as f64) * 0.01 <= ac.clip()).collect();
            ac.update(&bits, &mut rng)?;
        }
        assert!((ac.clip() - 5.0).abs() < 0.3, "{}", ac.clip());
        assert!(AdaptiveClipping::new(1.0, 1.0, 0.2, 1.0).is_err());
        Ok(())
    }
}
