//! Tier 2: a deterministic, versioned 223-dimensional `f32` vector per protocol, computed from
//! its [`ProtocolSpec`]. Every dimension has a name ([`dimension_names`]); the table is in the
//! README. Reagent and device names enter only through signed feature hashing (Weinberger et
//! al., ICML 2009, "Feature hashing for large scale multitask learning", §2): a name adds ±1 to
//! one of 64 (reagents) or 24 (devices) buckets, so the vector never holds a name.
//!
//! Optional local DP ([`LocalDp`], [`privatize`]): the vector is clipped to L2 norm C and Gaussian noise is
//! added with σ calibrated by fl-dp's RDP accountant for one release (Mironov 2017, Prop. 7;
//! Balle et al. 2020 conversion); any two protocols' clipped vectors differ by at most 2C in L2,
//! which is the declared sensitivity.

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::spec::ProtocolSpec;
use crate::units::Unit;
use crate::{Error, Result};

/// Feature-vector format version.
pub const FEATURE_VERSION: u32 = 1;
/// Dimensions.
pub const DIM: usize = 223;

/// Action classes with their own frequency dimension (the rest count as `other`).
pub const ACTION_CLASSES: [&str; 40] = [
    "add",
    "incubate",
    "centrifuge",
    "remove",
    "wash",
    "mix",
    "transfer",
    "place",
    "discard",
    "resuspend",
    "spin",
    "store",
    "vortex",
    "pipette",
    "collect",
    "repeat",
    "prepare",
    "dilute",
    "heat",
    "cool",
    "dissolve",
    "filter",
    "measure",
    "aspirate",
    "elute",
    "load",
    "cover",
    "rinse",
    "shake",
    "invert",
    "keep",
    "pour",
    "combine",
    "weigh",
    "label",
    "dry",
    "seal",
    "grow",
    "harvest",
    "use",
];

const TEMP_EDGES: [f64; 12] =
    [-50.0, -10.0, 1.0, 10.0, 20.0, 26.0, 35.0, 40.0, 50.0, 65.0, 80.0, 95.0];
const TIME_EDGES: [f64; 13] = [
    10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14_400.0, 28_800.0, 57_600.0, 86_400.0,
    259_200.0,
];
const VOLUME_EDGES: [f64; 7] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0];
const MASS_EDGES: [f64; 8] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0];
const MOLAR_EDGES: [f64; 7] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0];
const PERCENT_EDGES: [f64; 3] = [0.1, 1.0, 10.0];
const RPM_EDGES: [f64; 4] = [1000.0, 5000.0, 10_000.0, 15_000.0];
const G_EDGES: [f64; 3] = [1000.0, 5000.0, 15_000.0];
const PH_EDGES: [f64; 6] = [4.0, 6.0, 7.0, 7.5, 8.0, 9.0];
/// Buckets of the signed hashing of reagent names.
pub const REAGENT_BUCKETS: usize = 64;
/// Buckets of the signed hashing of device names.
pub const DEVICE_BUCKETS: usize = 24;

const COUNTS: [&str; 12] = [
    "steps",
    "actions",
    "distinct_actions",
    "reagents",
    "distinct_reagents",
    "amounts",
    "concentrations",
    "temperatures",
    "durations",
    "speeds",
    "devices",
    "ph",
];
const SHAPE: [&str; 10] = [
    "total_duration",
    "max_temperature_c",
    "min_temperature_c",
    "steps_with_action",
    "steps_with_temperature",
    "steps_with_duration",
    "steps_with_speed",
    "actions_per_step",
    "reagents_per_step",
    "locations",
];

fn edge_names(prefix: &str, unit: &str, edges: &[f64]) -> Vec<String> {
    let mut out = Vec::with_capacity(edges.len() + 1);
    out.push(format!("{prefix}[<{}{unit}]", edges[0]));
    for w in edges.windows(2) {
        out.push(format!("{prefix}[{}..{}{unit}]", w[0], w[1]));
    }
    out.push(format!("{prefix}[>={}{unit}]", edges[edges.len() - 1]));
    out
}

/// The name of every dimension, in order (223 names).
#[must_use]
pub fn dimension_names() -> Vec<String> {
    let mut n: Vec<String> = COUNTS.iter().map(|c| format!("log1p_count.{c}")).collect();
    n.extend(SHAPE.iter().map(|s| format!("shape.{s}")));
    n.extend(edge_names("temperature_hist", "C", &TEMP_EDGES));
    n.extend(edge_names("duration_hist", "s", &TIME_EDGES));
    n.extend(edge_names("volume_hist", "L", &VOLUME_EDGES));
    n.extend(edge_names("mass_hist", "g", &MASS_EDGES));
    n.extend(edge_names("molar_hist", "M", &MOLAR_EDGES));
    n.extend(edge_names("percent_hist", "%", &PERCENT_EDGES));
    n.extend(edge_names("rpm_hist", "rpm", &RPM_EDGES));
    n.extend(edge_names("rcf_hist", "xg", &G_EDGES));
    n.extend(edge_names("ph_hist", "", &PH_EDGES));
    n.extend(ACTION_CLASSES.iter().map(|a| format!("action_freq.{a}")));
    n.push("action_freq.other".into());
    n.extend((0..REAGENT_BUCKETS).map(|i| format!("reagent_hash.{i}")));
    n.extend((0..DEVICE_BUCKETS).map(|i| format!("device_hash.{i}")));
    n
}

/// Bucket and sign of a name under the signed hashing trick (SHA-256, domain-separated).
#[must_use]
pub fn hash_name(domain: &str, name: &str) -> (usize, f32) {
    let d = Sha256::new()
        .chain_update(domain.as_bytes())
        .chain_update([0])
        .chain_update(name.as_bytes())
        .finalize();
    let bucket = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    let sign = if d[8] & 1 == 0 { 1.0 } else { -1.0 };
    let modulus = if domain == "reagent" { REAGENT_BUCKETS } else { DEVICE_BUCKETS };
    (usize::try_from(bucket % modulus as u64).unwrap_or(0), sign)
}

fn bin(edges: &[f64], v: f64) -> usize {
    edges.iter().take_while(|&&e| v >= e).count()
}

/// The tier-2 artifact: a versioned feature vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureVector {
    /// Format version: always 1 (`FEATURE_VERSION`).
    #[schemars(range(min = FEATURE_VERSION, max = FEATURE_VERSION))]
    pub version: u32,
    /// Exactly 223 (`DIM`) finite values.
    #[schemars(length(min = DIM, max = DIM))]
    pub values: Vec<f32>,
    /// Local DP applied, if any: [ε > 0, 0 ≤ δ < 1, clip norm C > 0].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "local_dp_claim_schema")]
    pub local_dp: Option<(f64, f64, f64)>,
}

/// The ranges [`FeatureVector::validate`] requires of a `local_dp` claim, per tuple element.
fn local_dp_claim_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["array", "null"],
        "prefixItems": [
            { "type": "number", "exclusiveMinimum": 0 },
            { "type": "number", "minimum": 0, "exclusiveMaximum": 1 },
            { "type": "number", "exclusiveMinimum": 0 }
        ],
        "minItems": 3,
        "maxItems": 3
    })
}

/// 2^128 − 2^103, halfway between `f32::MAX` and 2^128: the smallest number that no longer
/// rounds to a finite `f32` (the tie rounds to even, i.e. to infinity). The receiver reads each
/// decimal straight to `f32`, so `f32::MAX` written as `3.4028235e38` (above `f32::MAX` as an
/// `f64`) reads as a finite value and the schema must take it too.
const F32_OVERFLOW: f64 = 340_282_356_779_733_661_637_539_395_458_142_568_448.0;

impl FeatureVector {
    /// Parses a received vector (a `.features.json` file) and [`validate`](Self::validate)s it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArtifact`] when the text is not a vector or the vector does not validate.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: Self = serde_json::from_str(text)
            .map_err(|e| Error::InvalidArtifact { kind: "FeatureVector", reason: e.to_string() })?;
        v.validate()?;
        Ok(v)
    }

    /// The JSON Schema of this format (draft 2020-12, generated from the types; each value is
    /// bounded to what reads as a finite `f32`). It states everything
    /// [`from_json`](Self::from_json) checks: a document is valid under the schema exactly when
    /// the receiver takes it, but for two things JSON Schema cannot see (a key given twice, and
    /// the version written as `1.0`), which the receiver refuses, and for decimals within half
    /// an `f64` step below the `f32` overflow bound (2^128 − 2^103), which the receiver reads
    /// as `f32::MAX` and a validator reading `f64` takes to be on the bound and refuses.
    #[must_use]
    pub fn json_schema() -> serde_json::Value {
        let bounds = vec![
            ("exclusiveMinimum", (-F32_OVERFLOW).into()),
            ("exclusiveMaximum", F32_OVERFLOW.into()),
        ];
        crate::spec::draft_2020_12_schema::<Self>("float", bounds)
    }

    /// Checks version, length, finiteness and the ranges of a local DP claim (for vectors
    /// received from elsewhere).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArtifact`].
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidArtifact { kind: "FeatureVector", reason });
        if self.version != FEATURE_VERSION {
            return bad(format!("version {}, expected {FEATURE_VERSION}", self.version));
        }
        if self.values.len() != DIM {
            return bad(format!("{} values, expected {DIM}", self.values.len()));
        }
        if let Some(i) = self.values.iter().position(|v| !v.is_finite()) {
            return bad(format!("value {i} is not finite"));
        }
        if let Some((epsilon, delta, clip)) = self.local_dp {
            let positive = |x: f64| x.is_finite() && x > 0.0;
            if !(positive(epsilon) && (0.0..1.0).contains(&delta) && positive(clip)) {
                return bad(format!(
                    "local DP claim (ε {epsilon}, δ {delta}, C {clip}) needs ε > 0, 0 ≤ δ < 1 \
                     and C > 0"
                ));
            }
        }
        Ok(())
    }
}

/// The feature vector of a spec.
#[must_use]
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "features are f32 by design"
)]
pub fn features(spec: &ProtocolSpec) -> FeatureVector {
    let mut v = vec![0.0f32; DIM];
    let s = &spec.summary;
    let counts = [
        s.steps,
        s.actions,
        s.distinct_actions,
        s.reagents,
        s.distinct_reagents,
        s.amounts,
        s.concentrations,
        s.temperatures,
        s.durations,
        s.speeds,
        s.devices,
        s.ph,
    ];
    for (o, c) in v.iter_mut().zip(counts) {
        *o = (f64::from(c)).ln_1p() as f32;
    }
    let steps = f64::from(s.steps.max(1));
    let temps: Vec<f64> =
        spec.steps.iter().flat_map(|st| &st.temperatures_c).map(|r| r.mid()).collect();
    let frac = |f: &dyn Fn(&crate::spec::Step) -> bool| {
        spec.steps.iter().filter(|st| f(st)).count() as f64 / steps
    };
    let shape = [
        s.total_duration_s.max(0.0).ln_1p(),
        temps.iter().copied().fold(f64::NAN, f64::max).clamp(-100.0, 150.0) / 100.0,
        temps.iter().copied().fold(f64::NAN, f64::min).clamp(-100.0, 150.0) / 100.0,
        frac(&|st| !st.actions.is_empty()),
        frac(&|st| !st.temperatures_c.is_empty()),
        frac(&|st| !st.durations_s.is_empty()),
        frac(&|st| !st.speeds.is_empty()),
        f64::from(s.actions) / steps,
        f64::from(s.reagents) / steps,
        f64::from(s.locations).ln_1p(),
    ];
    let mut at = COUNTS.len();
    for (o, x) in v[at..].iter_mut().zip(shape) {
        *o = if x.is_finite() { x as f32 } else { 0.0 };
    }
    at += SHAPE.len();
    let mut hist = |edges: &[f64], values: &mut dyn Iterator<Item = f64>| {
        for x in values {
            v[at + bin(edges, x)] += 1.0;
        }
        at += edges.len() + 1;
    };
    let all = || spec.steps.iter();
    hist(&TEMP_EDGES, &mut all().flat_map(|s| &s.temperatures_c).map(|r| r.mid()));
    hist(&TIME_EDGES, &mut all().flat_map(|s| &s.durations_s).map(|r| r.mid()));
    let of = |u: Unit| {
        move |s: &crate::spec::Step| -> Vec<f64> {
            s.amounts
                .iter()
                .chain(&s.concentrations)
                .chain(&s.speeds)
                .filter(|q| q.unit == u)
                .map(|q| q.value.mid())
                .collect()
        }
    };
    hist(&VOLUME_EDGES, &mut all().flat_map(of(Unit::Litre)));
    hist(&MASS_EDGES, &mut all().flat_map(of(Unit::Gram)));
    hist(&MOLAR_EDGES, &mut all().flat_map(of(Unit::Molar)));
    hist(&PERCENT_EDGES, &mut all().flat_map(of(Unit::Percent)));
    hist(&RPM_EDGES, &mut all().flat_map(of(Unit::Rpm)));
    hist(&G_EDGES, &mut all().flat_map(of(Unit::TimesG)));
    hist(&PH_EDGES, &mut all().flat_map(|s| &s.ph).map(|r| r.mid()));
    let total_actions = f32::from(u16::try_from(s.actions.max(1)).unwrap_or(u16::MAX));
    for a in all().flat_map(|s| &s.actions) {
        let first = a.split_whitespace().next().unwrap_or_default();
        let k = ACTION_CLASSES.iter().position(|c| *c == first).unwrap_or(ACTION_CLASSES.len());
        v[at + k] += 1.0 / total_actions;
    }
    at += ACTION_CLASSES.len() + 1;
    for r in all().flat_map(|s| &s.reagents) {
        let (b, sign) = hash_name("reagent", r);
        v[at + b] += sign;
    }
    at += REAGENT_BUCKETS;
    for d in all().flat_map(|s| &s.devices) {
        let (b, sign) = hash_name("device", d);
        v[at + b] += sign;
    }
    at += DEVICE_BUCKETS;
    debug_assert_eq!(at, DIM);
    FeatureVector { version: FEATURE_VERSION, values: v, local_dp: None }
}

/// Local (ε, δ)-DP for feature vectors, calibrated once: clip to L2 norm C, then add Gaussian
/// noise with σ = z·2C, where z is the noise multiplier fl-dp's RDP calibration finds for one
/// release (Mironov 2017, Prop. 7) and 2C is the L2 sensitivity (any two clipped vectors differ
/// by at most 2C). Each vector released through it is one (ε, δ)-DP release of its protocol.
///
/// Calibration costs about 34 releases (59 µs against 1.7 µs, `cargo bench -p fl-tiers --
/// tier2_local_dp`); build one `LocalDp` for a corpus rather than calling [`privatize`] per
/// vector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LocalDp {
    epsilon: f64,
    delta: f64,
    clip: f64,
    /// `N(0, (z·2C)²)` per dimension.
    mechanism: fl_dp::GaussianMechanism,
}

impl LocalDp {
    /// Calibrates σ for (ε, δ) at clip norm `clip`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for a non-positive clip; [`Error::Dp`] for ε, δ out of range
    /// or a σ so large that noised values could leave `f32`'s range (e.g. C = 1e37).
    pub fn new(epsilon: f64, delta: f64, clip: f64) -> Result<Self> {
        if !(clip.is_finite() && clip > 0.0) {
            return Err(Error::param("clip", format!("{clip} is not finite and positive")));
        }
        let cal = fl_dp::calibrate_noise_multiplier(
            epsilon,
            delta,
            1.0,
            1,
            &fl_dp::rdp::default_orders(),
        )?;
        let mechanism = fl_dp::GaussianMechanism::new(cal.noise_multiplier, 2.0 * clip)?;
        // Clipped values are at most C in magnitude: refuse here, not at the first release.
        mechanism.check_range::<f32>(clip)?;
        Ok(Self { epsilon, delta, clip, mechanism })
    }

    /// The Gaussian noise standard deviation per dimension.
    #[must_use]
    pub fn sigma(&self) -> f64 {
        self.mechanism.std_dev()
    }

    /// The clip norm C.
    #[must_use]
    pub const fn clip(&self) -> f64 {
        self.clip
    }

    /// Clips `v` and adds noise; the result records (ε, δ, C) in `local_dp`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArtifact`] for a vector that does not validate.
    pub fn privatize(&self, v: &FeatureVector, rng: &mut impl Rng) -> Result<FeatureVector> {
        v.validate()?;
        let mut values = v.values.clone();
        fl_dp::clip_l2(&mut values, self.clip)?;
        self.mechanism.add_noise(&mut values, rng)?;
        Ok(FeatureVector {
            version: FEATURE_VERSION,
            values,
            local_dp: Some((self.epsilon, self.delta, self.clip)),
        })
    }
}

/// "local DP ε = …, δ = …, clip C = …" for a vector's `local_dp` claim, as `inspect` and
/// `fl-client extract` print it; a clip norm far from 1 in scientific notation (`1e-45`).
#[must_use]
pub fn local_dp_summary((epsilon, delta, clip): (f64, f64, f64)) -> String {
    let clip = if clip == 0.0 || (1e-4..1e7).contains(&clip.abs()) {
        clip.to_string()
    } else {
        format!("{clip:e}")
    };
    format!("local DP ε = {epsilon}, δ = {delta}, clip C = {clip}")
}

/// Local (ε, δ)-DP for one vector: [`LocalDp::new`] then [`LocalDp::privatize`].
///
/// # Errors
///
/// As [`LocalDp::new`] and [`LocalDp::privatize`].
pub fn privatize(
    v: &FeatureVector,
    epsilon: f64,
    delta: f64,
    clip: f64,
    rng: &mut impl Rng,
) -> Result<FeatureVector> {
    LocalDp::new(epsilon, delta, clip)?.privatize(v, rng)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn names_cover_every_dimension_once() {
        let names = dimension_names();
        assert_eq!(names.len(), DIM);
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), DIM);
    }

    #[test]
    fn deterministic_finite_and_sensitive_to_content() {
        let text = "T\nAdd 35 ml of water and 5 mg NaCl.\nIncubate at 37 °C for 1 h.\nCentrifuge at 12000 x g for 5 min.";
        let a = features(&crate::spec::extract(text).unwrap());
        let b = features(&crate::spec::extract(text).unwrap());
        assert_eq!(a, b);
        a.validate().unwrap();
        let c = features(&crate::spec::extract("T\nIncubate at 4 °C overnight.").unwrap());
        assert_ne!(a.values, c.values);
        let names = dimension_names();
        let at = |n: &str| a.values[names.iter().position(|x| x == n).unwrap()];
        assert_eq!(at("temperature_hist[35..40C]"), 1.0);
        assert_eq!(at("rcf_hist[5000..15000xg]"), 1.0);
        assert_eq!(at("volume_hist[0.01..0.1L]"), 1.0);
    }

    #[test]
    fn decade_values_fall_in_the_bin_their_name_starts_with() {
        // 10 µl is 1e-5 L exactly as normalized, so it opens the [1e-5..1e-4) bin rather
        // than closing the one below (which 10 × 1e-6 = 9.999999999999999e-6 would).
        let text = "T\nAdd 10 µl buffer.\nAdd 100 µl water and 10 µg DNA.\nUse 10 µM primer.";
        let v = features(&crate::spec::extract(text).unwrap());
        let names = dimension_names();
        let at = |n: &str| v.values[names.iter().position(|x| x == n).unwrap()];
        assert_eq!(at("volume_hist[0.00001..0.0001L]"), 1.0);
        assert_eq!(at("volume_hist[0.0001..0.001L]"), 1.0);
        assert_eq!(at("mass_hist[0.00001..0.0001g]"), 1.0);
        assert_eq!(at("molar_hist[0.00001..0.0001M]"), 1.0);
        assert_eq!(at("volume_hist[0.000001..0.00001L]"), 0.0);
    }

    #[test]
    fn local_dp_clips_and_noises() {
        use rand::SeedableRng;
        let v = features(&crate::spec::extract("T\nAdd 5 ml water.").unwrap());
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(1);
        let p = privatize(&v, 1.0, 1e-5, 4.0, &mut rng).unwrap();
        p.validate().unwrap();
        assert_ne!(p.values, v.values);
        assert!(privatize(&v, 1.0, 1e-5, 0.0, &mut rng).is_err());
        assert!(privatize(&v, -1.0, 1e-5, 1.0, &mut rng).is_err());
        let mut bad = v.clone();
        bad.values[3] = f32::NAN;
        assert!(bad.validate().is_err());
        bad.values.pop();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn local_dp_noise_stays_in_f32_range_or_is_refused_up_front() {
        use rand::SeedableRng;
        let v = features(&crate::spec::extract("T\nAdd 5 ml water.").unwrap());
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(2);
        // σ ≈ 5.6e39 cannot be carried by f32: refused when calibrating, not at release (it used
        // to release infinities, a vector that fails its own validation).
        let err = LocalDp::new(0.01, 1e-5, 1e37).unwrap_err();
        assert!(err.to_string().contains("largest finite"), "{err}");
        // σ ≈ 1.5e35 still fits: the release validates.
        let wide = LocalDp::new(1e-6, 1e-5, 1e30).unwrap();
        wide.privatize(&v, &mut rng).unwrap().validate().unwrap();
    }

    #[test]
    fn a_local_dp_claim_out_of_range_does_not_validate() {
        let v = features(&crate::spec::extract("T\nAdd 5 ml water.").unwrap());
        for claim in [(-1.0, 1e-5, 8.0), (1.0, 1.0, 8.0), (1.0, 1e-5, 0.0), (f64::NAN, 0.0, 1.0)] {
            let claimed = FeatureVector { local_dp: Some(claim), ..v.clone() };
            assert!(claimed.validate().is_err(), "{claim:?}");
        }
        let claimed = FeatureVector { local_dp: Some((-1.0, 0.5, 8.0)), ..v.clone() };
        let err = FeatureVector::from_json(&serde_json::to_string(&claimed).unwrap()).unwrap_err();
        assert!(err.to_string().contains("local DP claim"), "{err}");
        let pure = FeatureVector { local_dp: Some((1.0, 0.0, 8.0)), ..v };
        let back = FeatureVector::from_json(&serde_json::to_string(&pure).unwrap()).unwrap();
        assert_eq!(back, pure);
    }
}
