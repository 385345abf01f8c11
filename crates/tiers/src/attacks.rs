//! Attacks on tier-2 feature vectors, to measure what a released vector reveals.
//!
//! The product promises that protocol content is not reconstructable from feature vectors.
//! These attacks make the promise measurable, with and without local DP ([`LocalDp`]):
//!
//! - **Name recovery** from the signed hashed buckets, by an attacker who knows the hashing scheme
//!   and a dictionary of names: [`threshold_attack`] claims every name whose bucket points its way;
//!   [`prior_decoding_attack`] reads the number of distinct reagents from the vector and takes
//!   that many names, most frequent first, each only while its bucket still supports it (greedy
//!   decoding of a sparse signed sum with a frequency prior).
//! - **Linkage** ([`linkage_attack`]): the attacker holds the vectors of candidate protocols (say,
//!   every published one) and names the candidate nearest to a released vector. Under Gaussian
//!   noise with the candidates clipped as the release was, the nearest candidate is the
//!   maximum-likelihood guess, so no attack does better against a uniformly chosen candidate.
//! - **Audit** ([`audit_local_dp`]): the distinguishing game of Jagielski, Ullman & Oprea (NeurIPS
//!   2020, Algorithm 2) on the worst-case pair of vectors (±C along one axis, 2C apart, the
//!   declared sensitivity), through the real release function. Its result is an ε the
//!   observations prove ([`fl_dp::audit`]); above the claimed ε it shows the claim false.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use fl_dp::audit::{TestCounts, epsilon_from_distinguishing};

use crate::features::{self, DIM, FEATURE_VERSION, FeatureVector, LocalDp, hash_name};
use crate::{Error, Result};

/// How well recovered names match the names really present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Names claimed, over all vectors.
    pub claimed: usize,
    /// Names really present (and in the attacker's dictionary), over all vectors.
    pub present: usize,
    /// Claimed names that were present.
    pub correct: usize,
}

impl Recovery {
    /// Scores one guess per vector against the names really present.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] when the two lists differ in length.
    pub fn score(guesses: &[HashSet<String>], truth: &[HashSet<String>]) -> Result<Self> {
        if guesses.len() != truth.len() {
            return Err(Error::param(
                "guesses",
                format!("{} guesses for {} vectors", guesses.len(), truth.len()),
            ));
        }
        let mut r = Self::default();
        for (g, t) in guesses.iter().zip(truth) {
            r.claimed += g.len();
            r.present += t.len();
            r.correct += g.intersection(t).count();
        }
        Ok(r)
    }

    /// Share of present names recovered.
    #[must_use]
    #[allow(clippy::cast_precision_loss, reason = "name counts")]
    pub fn recall(&self) -> f64 {
        self.correct as f64 / self.present.max(1) as f64
    }

    /// Share of claimed names that were present.
    #[must_use]
    #[allow(clippy::cast_precision_loss, reason = "name counts")]
    pub fn precision(&self) -> f64 {
        self.correct as f64 / self.claimed.max(1) as f64
    }
}

/// Index of a named dimension, looked up once per name in the fixed layout.
fn dimension(name: &str) -> Result<usize> {
    static NAMES: LazyLock<Vec<String>> = LazyLock::new(features::dimension_names);
    NAMES
        .iter()
        .position(|n| n == name)
        .ok_or_else(|| Error::param("feature layout", format!("no {name} dimension")))
}

fn reagent_buckets(v: &FeatureVector) -> Result<&[f32]> {
    v.validate()?;
    let base = dimension("reagent_hash.0")?;
    Ok(&v.values[base..base + features::REAGENT_BUCKETS])
}

/// Claims every dictionary name whose signed bucket is at least `threshold` (1 means: at least
/// one occurrence of some name of that bucket and sign).
///
/// # Errors
///
/// [`Error::InvalidArtifact`] for a vector that does not validate.
pub fn threshold_attack(
    v: &FeatureVector,
    dictionary: &[String],
    threshold: f32,
) -> Result<HashSet<String>> {
    let buckets = reagent_buckets(v)?;
    Ok(dictionary
        .iter()
        .filter(|name| {
            let (b, sign) = hash_name("reagent", name);
            sign * buckets[b] >= threshold
        })
        .cloned()
        .collect())
}

/// A dictionary of reagent names ordered by how many known protocols use them, most first: the
/// attacker's prior.
#[derive(Clone, Debug, Default)]
pub struct Prior {
    /// (name, protocols using it, bucket, sign), most used first, ties by name.
    names: Vec<(String, usize, usize, f32)>,
}

impl Prior {
    /// Builds the prior from the distinct names of each known protocol.
    #[must_use]
    pub fn from_protocols<'a>(protocols: impl IntoIterator<Item = &'a HashSet<String>>) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for names in protocols {
            for n in names {
                *counts.entry(n.as_str()).or_default() += 1;
            }
        }
        let mut names: Vec<(String, usize, usize, f32)> = counts
            .into_iter()
            .map(|(n, c)| {
                let (b, sign) = hash_name("reagent", n);
                (n.to_owned(), c, b, sign)
            })
            .collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Self { names }
    }

    /// Number of names.
    #[must_use]
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the prior knows no name.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names, most used first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|(n, ..)| n.as_str())
    }
}

/// Reads the number of distinct reagents k from the vector (`log1p_count.distinct_reagents`) and
/// claims up to k names, walking the prior from the most used name: a name is taken while its
/// bucket still holds at least half a unit of its sign, and taking it removes one unit.
///
/// # Errors
///
/// [`Error::InvalidArtifact`] for a vector that does not validate.
pub fn prior_decoding_attack(v: &FeatureVector, prior: &Prior) -> Result<HashSet<String>> {
    let mut residual = reagent_buckets(v)?.to_vec();
    let count_dim = dimension("log1p_count.distinct_reagents")?;
    // A noised count may be anything; the attacker takes no more names than it knows.
    let k = f64::from(v.values[count_dim]).exp_m1().round().clamp(0.0, 1e6);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "clamped above")]
    let k = (k as usize).min(prior.len());
    let mut claimed = HashSet::new();
    for (name, _, b, sign) in &prior.names {
        if claimed.len() == k {
            break;
        }
        if sign * residual[*b] >= 0.5 {
            residual[*b] -= sign;
            claimed.insert(name.clone());
        }
    }
    Ok(claimed)
}

/// Result of a linkage attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linkage {
    /// Released vectors attacked.
    pub trials: u64,
    /// Released vectors whose nearest candidate was their source.
    pub correct: u64,
    /// Number of candidates (chance is one in this).
    pub candidates: usize,
}

impl Linkage {
    /// Share of released vectors linked to their source.
    #[must_use]
    #[allow(clippy::cast_precision_loss, reason = "trial counts")]
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.trials.max(1) as f64
    }
}

/// Links each released vector to the nearest of `candidates` (squared L2); `sources[i]` is the
/// index of the candidate that `released[i]` really came from. When a release carries local DP,
/// the candidates are first clipped to its C, as the release was.
///
/// # Errors
///
/// [`Error::InvalidParameter`] for mismatched lengths, no candidates or a source index out of
/// range; [`Error::InvalidArtifact`] for a vector that does not validate.
pub fn linkage_attack(
    released: &[FeatureVector],
    sources: &[usize],
    candidates: &[FeatureVector],
) -> Result<Linkage> {
    if released.len() != sources.len() {
        return Err(Error::param(
            "sources",
            format!("{} sources for {} releases", sources.len(), released.len()),
        ));
    }
    if candidates.is_empty() {
        return Err(Error::param("candidates", "no candidates"));
    }
    if let Some(&s) = sources.iter().find(|&&s| s >= candidates.len()) {
        return Err(Error::param(
            "sources",
            format!("source {s} of {} candidates", candidates.len()),
        ));
    }
    for c in candidates {
        c.validate()?;
    }
    let clipped = |clip: Option<f64>| -> Result<Vec<Vec<f64>>> {
        candidates
            .iter()
            .map(|c| {
                let mut x: Vec<f64> = c.values.iter().map(|&v| f64::from(v)).collect();
                if let Some(clip) = clip {
                    fl_dp::clip_l2(&mut x, clip)?;
                }
                Ok(x)
            })
            .collect()
    };
    // Candidates clipped once per clip norm (keyed by its bits; `None` for unnoised releases).
    let mut pools: HashMap<Option<u64>, Vec<Vec<f64>>> = HashMap::new();
    let mut correct = 0u64;
    for (r, &source) in released.iter().zip(sources) {
        r.validate()?;
        let clip = r.local_dp.map(|(_, _, c)| c);
        let pool = match pools.entry(clip.map(f64::to_bits)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(clipped(clip)?),
        };
        let nearest = pool
            .iter()
            .map(|c| c.iter().zip(&r.values).map(|(a, &b)| (a - f64::from(b)).powi(2)).sum::<f64>())
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i);
        correct += u64::from(nearest == Some(source));
    }
    Ok(Linkage { trials: released.len() as u64, correct, candidates: candidates.len() })
}

/// Result of [`audit_local_dp`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Audit {
    /// The ε the evaluation half of the trials proves (0 when none).
    pub epsilon_lower_bound: f64,
    /// The test's threshold on the audited coordinate, chosen on the selection half.
    pub threshold: f64,
    /// Outcomes on the evaluation half.
    pub counts: TestCounts,
}

/// Audits a release function on the worst-case neighbouring pair: two vectors that clip to +C
/// and −C along the first dimension (2C apart, the declared sensitivity). `release` runs
/// `trials` times on each; the test "first input if the released first dimension exceeds t"
/// picks t on the first half of the runs (maximizing the proven ε there) and is scored on the
/// second half, so the choice does not bias the bound. The bound holds at `confidence` for each
/// error rate ([`epsilon_from_distinguishing`]).
///
/// # Errors
///
/// [`Error::InvalidParameter`] for fewer than 2 trials or a non-positive clip; whatever
/// `release` returns; [`Error::Dp`] for δ or confidence out of range.
pub fn audit_local_dp(
    mut release: impl FnMut(&FeatureVector) -> Result<FeatureVector>,
    clip: f64,
    trials: usize,
    delta: f64,
    confidence: f64,
) -> Result<Audit> {
    if trials < 2 {
        return Err(Error::param("trials", format!("{trials} < 2")));
    }
    if !(clip.is_finite() && clip > 0.0) {
        return Err(Error::param("clip", format!("{clip} is not finite and positive")));
    }
    let input = |sign: f64| {
        let mut values = vec![0.0f32; DIM];
        #[allow(clippy::cast_possible_truncation, reason = "a clip norm in f32 range")]
        let x = (sign * 4.0 * clip) as f32;
        values[0] = x;
        FeatureVector { version: FEATURE_VERSION, values, local_dp: None }
    };
    let (first, second) = (input(1.0), input(-1.0));
    let mut runs = |v: &FeatureVector| -> Result<Vec<f64>> {
        (0..trials)
            .map(|_| {
                let out = release(v)?;
                out.validate()?;
                Ok(f64::from(out.values[0]))
            })
            .collect()
    };
    let (pos, neg) = (runs(&first)?, runs(&second)?);
    let half = trials / 2;
    let counts = |t: f64, pos: &[f64], neg: &[f64]| TestCounts {
        positives: pos.len() as u64,
        false_negatives: pos.iter().filter(|&&s| s <= t).count() as u64,
        negatives: neg.len() as u64,
        false_positives: neg.iter().filter(|&&s| s > t).count() as u64,
    };
    let (sel_pos, sel_neg) = (&pos[..half], &neg[..half]);
    let mut candidates: Vec<f64> = sel_pos.iter().chain(sel_neg).copied().collect();
    candidates.sort_by(f64::total_cmp);
    let step = (candidates.len() / 400).max(1);
    let mut best = (f64::NEG_INFINITY, 0.0);
    for &t in candidates.iter().step_by(step) {
        let eps = epsilon_from_distinguishing(counts(t, sel_pos, sel_neg), delta, confidence)?;
        if eps > best.0 {
            best = (eps, t);
        }
    }
    let counts = counts(best.1, &pos[half..], &neg[half..]);
    Ok(Audit {
        epsilon_lower_bound: epsilon_from_distinguishing(counts, delta, confidence)?,
        threshold: best.1,
        counts,
    })
}

/// [`audit_local_dp`] of [`LocalDp::privatize`] itself.
///
/// # Errors
///
/// As [`audit_local_dp`].
pub fn audit_privatize(
    local_dp: &LocalDp,
    trials: usize,
    delta: f64,
    confidence: f64,
    rng: &mut impl rand::Rng,
) -> Result<Audit> {
    audit_local_dp(|v| local_dp.privatize(v, rng), local_dp.clip(), trials, delta, confidence)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> HashSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A vector holding only the hashed reagent names and their distinct count.
    fn vector_of(reagents: &[&str]) -> FeatureVector {
        let dims = features::dimension_names();
        let base = dims.iter().position(|n| n == "reagent_hash.0").unwrap();
        let count = dims.iter().position(|n| n == "log1p_count.distinct_reagents").unwrap();
        let mut values = vec![0.0f32; DIM];
        for r in reagents {
            let (b, sign) = hash_name("reagent", r);
            values[base + b] += sign;
        }
        #[allow(clippy::cast_precision_loss, reason = "tiny counts")]
        let k = reagents.len() as f32;
        values[count] = k.ln_1p();
        FeatureVector { version: FEATURE_VERSION, values, local_dp: None }
    }

    #[test]
    fn decoding_takes_frequent_names_its_buckets_support() {
        let vocabulary = ["water", "ethanol", "pbs", "tris", "edta", "glycerol", "sds", "nacl"];
        // Keep names whose (bucket, sign) no other name shares, so the answer is unambiguous.
        let key = |n: &str| hash_name("reagent", n);
        let distinct: Vec<&str> = vocabulary
            .iter()
            .copied()
            .filter(|n| vocabulary.iter().filter(|m| key(m).0 == key(n).0).count() == 1)
            .collect();
        assert!(distinct.len() >= 4, "{distinct:?}");
        let known: Vec<HashSet<String>> =
            distinct.iter().enumerate().map(|(i, _)| names(&distinct[..=i])).collect();
        let prior = Prior::from_protocols(&known);
        assert_eq!(prior.names().next(), Some(distinct[0]), "most used first");
        let present = [distinct[1], distinct[3]];
        let v = vector_of(&present);
        assert_eq!(prior_decoding_attack(&v, &prior).unwrap(), names(&present));
        let dictionary: Vec<String> = distinct.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(threshold_attack(&v, &dictionary, 1.0).unwrap(), names(&present));
        let score = Recovery::score(&[names(&present[..1])], &[names(&present)]).unwrap();
        assert_eq!((score.recall(), score.precision()), (0.5, 1.0));
        assert!(Recovery::score(&[], &[names(&present)]).is_err());
    }

    #[test]
    fn linkage_names_the_nearest_candidate_and_checks_its_inputs() {
        let candidates = [vector_of(&["water"]), vector_of(&["ethanol", "tris"]), vector_of(&[])];
        let link = linkage_attack(&candidates, &[0, 1, 2], &candidates).unwrap();
        assert_eq!((link.correct, link.trials, link.candidates), (3, 3, 3));
        let wrong = linkage_attack(&candidates, &[1, 0, 2], &candidates).unwrap();
        assert_eq!(wrong.correct, 1);
        assert!(linkage_attack(&candidates, &[0, 1], &candidates).is_err());
        assert!(linkage_attack(&candidates, &[0, 1, 3], &candidates).is_err());
        assert!(linkage_attack(&candidates, &[0, 0, 0], &[]).is_err());
        let mut bad = candidates[0].clone();
        bad.values[5] = f32::NAN;
        assert!(linkage_attack(&[bad], &[0], &candidates).is_err());
    }
}
