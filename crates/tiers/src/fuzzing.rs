//! Entry points for the fuzz targets in `fuzz/` (not a stable API).

use rand::SeedableRng;

use crate::Tagger;
use crate::attacks::{Prior, linkage_attack, prior_decoding_attack, threshold_attack};
use crate::features::{FeatureVector, LocalDp, features};
use crate::spec::{ProtocolSpec, extract_with, shipped_tagger};
use crate::tagger::NUMERIC_KINDS;
use crate::tokenize::tokenize;
use crate::units;

/// The tiers' untrusted inputs from one byte string: as protocol text through the tokenizer,
/// the unit normalizers (each line as an entity), the shipped tagger, spec extraction and the
/// feature vector; as a `ProtocolSpec` JSON file (a partner's or a submitted one); as a
/// `FeatureVector` JSON file; and as a model file.
///
/// # Panics
///
/// When tokens leave the text or overlap, a normalizer returns a range that is not finite and
/// ordered, an entity leaves the text, an extracted spec or
/// its features fail their own validation or the spec does not survive a JSON round trip, a
/// spec that parsed yields invalid features, or a valid feature vector (as JSON) is refused by
/// the attacks or local DP, or its privatized copy does not validate: those are the bugs being
/// hunted.
pub fn tier_inputs(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let chars = text.chars().count();
    let tokens = tokenize(&text);
    assert!(tokens.iter().all(|t| t.start < t.end && t.end <= chars), "token outside the text");
    assert!(tokens.windows(2).all(|w| w[0].end <= w[1].start), "overlapping tokens");
    for line in text.lines().take(64) {
        for kind in NUMERIC_KINDS {
            if let Some(r) = units::read_entity(kind, line).map(|r| r.range()) {
                assert!(r.is_valid(), "{kind} read as {r:?}");
            }
        }
    }
    if let Ok(tagger) = shipped_tagger() {
        let entities = tagger.tag(&text);
        assert!(
            entities.iter().all(|e| e.start < e.end && e.end <= chars),
            "entity outside the text"
        );
        let spec = extract_with(tagger, &text);
        if let Err(reason) = spec.validate() {
            panic!("extracted spec does not validate: {reason}");
        }
        let json = spec.to_json().expect("an extracted spec serializes");
        let back = ProtocolSpec::from_json(&json).expect("an extracted spec parses back");
        assert_eq!(back.to_json().ok(), Some(json), "spec JSON round trip");
        assert!(features(&spec).validate().is_ok(), "features of an extracted spec");
    }
    if let Ok(spec) = ProtocolSpec::from_json(&text) {
        assert!(features(&spec).validate().is_ok(), "features of a parsed spec");
    }
    if let Ok(v) = FeatureVector::from_json(&text) {
        feature_vector(&v);
    }
    let _ = Tagger::read(data);
}

/// A received, valid feature vector (what `inspect` and `submit` read): the attacks and local DP
/// must take it without error.
fn feature_vector(v: &FeatureVector) {
    let names: std::collections::HashSet<String> =
        ["water", "ethanol", "pbs"].iter().map(|s| (*s).to_owned()).collect();
    let prior = Prior::from_protocols([&names]);
    let dictionary: Vec<String> = prior.names().map(str::to_owned).collect();
    prior_decoding_attack(v, &prior).expect("a valid vector decodes");
    threshold_attack(v, &dictionary, 1.0).expect("a valid vector is scanned");
    let link = linkage_attack(std::slice::from_ref(v), &[0], std::slice::from_ref(v))
        .expect("a valid vector links");
    assert_eq!(link.correct, 1, "a vector is nearest to itself");
    let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(0);
    let released = LocalDp::new(1.0, 1e-5, 8.0)
        .and_then(|dp| dp.privatize(v, &mut rng))
        .expect("a valid vector is privatized");
    assert!(released.validate().is_ok(), "a privatized vector validates");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_pass() {
        let protocol = "Mini prep\nSpin 13,000 rpm at 4°C for 1 h 30 min.\nMix 15 μLNEXTflex buffer, 1xPBS, pH 7.4";
        tier_inputs(protocol.as_bytes());
        let spec = extract_with(shipped_tagger().unwrap(), protocol).to_json().unwrap();
        tier_inputs(spec.as_bytes());
        for garbage in [&b""[..], b"\xff\xfe\x00", b"{\"version\": 1}", b"\x1f\x8b\x08\x00"] {
            tier_inputs(garbage);
        }
        // Found by the fuzz target: invalid UTF-8 becomes U+FFFD (3 bytes each), and a
        // five-word name of them exceeded the 80-byte cap that validation enforces.
        let mut crash = b"\nS0".to_vec();
        crash.extend([0xff; 25]);
        crash.extend(b" ice.");
        tier_inputs(&crash);
        // A 400-digit number was read as infinity, and twenty huge finite durations summed to
        // an infinite total: both made the extracted spec fail its own validation.
        let zeros = "0".repeat(400);
        tier_inputs(
            format!("P\nAdd 1{zeros} ml, spin 1{zeros} rpm for 1{zeros} h at 1{zeros} °C.")
                .as_bytes(),
        );
        let line = format!("Incubate for 1{} h at 37 °C.\n", "0".repeat(304));
        tier_inputs(format!("P\n{}", line.repeat(20)).as_bytes());
        // Feature vectors: an extracted one, one of extreme finite values, a short one.
        let v = features(&crate::spec::extract(protocol).unwrap());
        tier_inputs(serde_json::to_string(&v).unwrap().as_bytes());
        let extreme = FeatureVector { values: vec![f32::MAX; crate::features::DIM], ..v };
        tier_inputs(serde_json::to_string(&extreme).unwrap().as_bytes());
        tier_inputs(b"{\"version\": 1, \"values\": [1e38, -1e38]}");
    }
}
