//! Entry points for the fuzz targets in `fuzz/` (not a stable API).

use rand::SeedableRng;

use crate::Tagger;
use crate::attacks::{
    Prior, audit_privatize, linkage_attack, prior_decoding_attack, threshold_attack,
};
use crate::features::{DIM, FEATURE_VERSION, FeatureVector, LocalDp, features};
use crate::spec::{ProtocolSpec, extract_with, shipped_tagger};
use crate::tagger::NUMERIC_KINDS;
use crate::tokenize::tokenize;
use crate::units;

/// The tiers' untrusted inputs from one byte string: as a protocol file's bytes through the
/// decoder ([`crate::text::decode_protocol`]), as protocol text through the tokenizer,
/// the unit normalizers (each line as an entity), the shipped tagger, spec extraction and the
/// feature vector; as a `ProtocolSpec` JSON file (a partner's or a submitted one); as a
/// `FeatureVector` JSON file; and as a model file.
///
/// # Panics
///
/// When the decoder changes UTF-8 text (but for stray control characters, which become spaces)
/// or lets a control character through, tokens leave the
/// text or overlap, a normalizer returns a range that is not finite and
/// ordered, an entity leaves the text, an extracted spec or
/// its features fail their own validation or the spec does not survive a JSON round trip, a
/// spec that parsed yields invalid features, or a valid feature vector (as JSON) is refused by
/// the attacks or local DP, or its privatized copy does not validate: those are the bugs being
/// hunted.
pub fn tier_inputs(data: &[u8]) {
    if let Ok((decoded, encoding)) = crate::text::decode_protocol(data) {
        // Restated here rather than taken from the decoder, so the check is independent of it.
        let stray = |c: char| c.is_ascii_control() && !"\t\n\x0c\r".contains(c);
        if let Ok(utf8) = std::str::from_utf8(data) {
            let plain = utf8.strip_prefix('\u{feff}').unwrap_or(utf8);
            assert_eq!(encoding, crate::text::TextEncoding::Utf8, "UTF-8 read as another");
            let spaced: String = plain.chars().map(|c| if stray(c) { ' ' } else { c }).collect();
            assert_eq!(decoded, spaced, "UTF-8 read as is, stray control characters as spaces");
        }
        assert!(!decoded.chars().any(stray), "a control character passed");
    }
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

/// A small attacker's prior and dictionary for the attacks' entry points.
fn attacker() -> (Prior, Vec<String>) {
    let names: std::collections::HashSet<String> =
        ["water", "ethanol", "pbs"].iter().map(|s| (*s).to_owned()).collect();
    let prior = Prior::from_protocols([&names]);
    let dictionary = prior.names().map(str::to_owned).collect();
    (prior, dictionary)
}

/// A received, valid feature vector (what `inspect` and `submit` read): the attacks and local DP
/// must take it without error.
fn feature_vector(v: &FeatureVector) {
    let (prior, dictionary) = attacker();
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

/// Feature vectors and local DP parameters built from raw bytes, reaching bit patterns JSON
/// input rarely does (NaN, ±∞, subnormals, `f32::MAX`, any length, version or local DP claim):
///
/// - byte 0: bit 0 pads or cuts the values to [`DIM`], bit 1 sets a wrong version, bit 2 adds a
///   local DP claim, bit 3 maps the parameter bytes into plausible ranges (raw `f64` bits
///   almost never make a valid ε, δ);
/// - the next 48 bytes: ε, δ, C for [`LocalDp::new`] and the claim's ε, δ, C;
/// - the rest: `f32` values, little-endian.
///
/// # Panics
///
/// When validation disagrees with an independent check of the same rules, an attack or local
/// DP accepts an invalid vector or refuses a valid one, a valid vector does not survive a JSON
/// round trip unchanged, or a release of a valid vector does not validate or misstates its
/// parameters.
pub fn feature_vectors(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else { return };
    let (params, values) = rest.split_at(rest.len().min(48));
    let mut params: Vec<f64> = params
        .chunks(8)
        .map(|c| {
            let mut word = [0u8; 8];
            word[..c.len()].copy_from_slice(c);
            f64::from_le_bytes(word)
        })
        .collect();
    params.resize(6, 0.0);
    if flags & 8 != 0 {
        // ε in [1e-4, 1e4), δ in [1e-12, 1), C in [1e-40, 1e40): finite magnitudes around the
        // calibration's and f32's limits.
        let unit = |x: f64| if x.is_finite() { x.abs().fract() } else { 0.5 };
        for (i, p) in params.iter_mut().enumerate() {
            let u = unit(*p);
            *p = match i % 3 {
                0 => 10f64.powf(8.0 * u - 4.0),
                1 => 10f64.powf(-12.0 * u),
                _ => 10f64.powf(80.0 * u - 40.0),
            };
        }
    }
    let mut values: Vec<f32> =
        values.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if flags & 1 != 0 {
        values.resize(DIM, 0.0);
    }
    let version = if flags & 2 != 0 { FEATURE_VERSION + 1 } else { FEATURE_VERSION };
    let claim = (flags & 4 != 0).then(|| (params[3], params[4], params[5]));
    let v = FeatureVector { version, values, local_dp: claim };

    let claim_ok = claim.is_none_or(|(e, d, c)| {
        e.is_finite() && e > 0.0 && (0.0..1.0).contains(&d) && c.is_finite() && c > 0.0
    });
    let valid = version == FEATURE_VERSION
        && v.values.len() == DIM
        && v.values.iter().all(|x| x.is_finite())
        && claim_ok;
    assert_eq!(v.validate().is_ok(), valid, "validation disagrees: {:?}", v.validate());

    let (prior, dictionary) = attacker();
    assert_eq!(prior_decoding_attack(&v, &prior).is_ok(), valid, "prior decoding");
    assert_eq!(threshold_attack(&v, &dictionary, 1.0).is_ok(), valid, "threshold attack");
    let candidate =
        FeatureVector { version: FEATURE_VERSION, values: vec![0.0; DIM], local_dp: None };
    let link = linkage_attack(std::slice::from_ref(&v), &[1], &[candidate, v.clone()]);
    assert_eq!(link.is_ok(), valid, "linkage");
    if valid {
        let json = serde_json::to_string(&v).expect("a valid vector serializes");
        let back = FeatureVector::from_json(&json).expect("a valid vector parses back");
        let same_bits = back.values.iter().zip(&v.values).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same_bits && back.local_dp == v.local_dp, "JSON round trip changed the vector");
    }

    let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(u64::from(flags));
    if let Ok(dp) = LocalDp::new(params[0], params[1], params[2]) {
        match dp.privatize(&v, &mut rng) {
            Ok(released) => {
                assert!(valid, "an invalid vector was privatized");
                assert!(released.validate().is_ok(), "a release does not validate");
                assert_eq!(released.local_dp, Some((params[0], params[1], params[2])));
            }
            Err(e) => assert!(!valid, "a valid vector was refused: {e}"),
        }
        let _ = audit_privatize(&dp, 4, params[1], 0.9, &mut rng);
    }
}

/// A partner's annotated protocol (what `fl-client train-tagger` reads), from one byte string:
/// the bytes before the first NUL are the protocol text, those after it the brat `.ann` file.
/// When the annotations parse, a one-pass tagger (with the numeric specialist) is trained on the
/// document, written, read back and run.
///
/// # Panics
///
/// When a parsed entity leaves the text, training refuses an annotated document for a reason
/// other than its number of entity types, a trained model does not read back or tags
/// differently after the round trip, a predicted entity leaves the text, or scoring counts more
/// matches than entities.
pub fn annotated_protocol(data: &[u8]) {
    let Some(nul) = data.iter().position(|&b| b == 0) else { return };
    let text = String::from_utf8_lossy(&data[..nul]).into_owned();
    let ann = String::from_utf8_lossy(&data[nul + 1..]);
    let chars = text.chars().count();
    let Ok(entities) = crate::brat::parse_ann(std::path::Path::new("fuzz.ann"), &ann, chars) else {
        return;
    };
    assert!(entities.iter().all(|e| e.start < e.end && e.end <= chars), "entity outside the text");
    let kinds: std::collections::BTreeSet<&str> = entities.iter().map(|e| &*e.kind).collect();
    let doc = crate::brat::Document { path: "fuzz.txt".into(), text, entities: entities.clone() };
    let options =
        crate::tagger::TrainOptions { epochs: 1, ..crate::tagger::TrainOptions::shipped() };
    let tagger = match Tagger::train(std::slice::from_ref(&doc), options) {
        Ok(t) => t,
        Err(e) => {
            assert!(kinds.is_empty() || kinds.len() > 127, "training refused: {e}");
            return;
        }
    };
    let mut bytes = Vec::new();
    tagger.write(&mut bytes).expect("a trained tagger writes");
    let back = Tagger::read(bytes.as_slice()).expect("a written tagger reads back");
    let predicted = tagger.tag(&doc.text);
    assert_eq!(back.tag(&doc.text), predicted, "tagging changed in the model file round trip");
    assert!(predicted.iter().all(|e| e.start < e.end && e.end <= chars), "prediction outside");
    let evaluation = crate::tagger::Evaluation::of_predictions(&[doc], &[predicted]);
    for counts in evaluation.per_type.values() {
        assert!(counts.correct <= counts.gold.min(counts.predicted), "more matches than entities");
    }
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
        let extreme = FeatureVector { values: vec![f32::MAX; DIM], ..v };
        tier_inputs(serde_json::to_string(&extreme).unwrap().as_bytes());
        tier_inputs(b"{\"version\": 1, \"values\": [1e38, -1e38]}");
    }

    #[test]
    fn feature_vector_seeds_pass() {
        let v = features(&crate::spec::extract("T\nAdd 5 ml water at 37 °C.").unwrap());
        let params: Vec<u8> =
            [1.0f64, 1e-5, 8.0, 1.0, 1e-5, 8.0].iter().flat_map(|p| p.to_le_bytes()).collect();
        let values: Vec<u8> = v.values.iter().flat_map(|x| x.to_le_bytes()).collect();
        for flags in 0..16u8 {
            feature_vectors(&[&[flags][..], &params, &values].concat());
        }
        let extreme: Vec<u8> = [f32::MAX, f32::MIN_POSITIVE / 2.0, -f32::MAX, f32::NAN, 1e-45]
            .iter()
            .cycle()
            .take(DIM)
            .flat_map(|x| x.to_le_bytes())
            .collect();
        for flags in [0u8, 1, 4, 9, 13] {
            feature_vectors(&[&[flags][..], &params, &extreme].concat());
            feature_vectors(&[&[flags][..], &params[..20]].concat());
        }
        feature_vectors(&[]);
    }

    #[test]
    fn annotated_protocol_seeds_pass() {
        let text = "Spin at 13,000 rpm for 5 min.\nAdd 5 µl water.";
        let ann = [
            "T1\tAction 0 4\tSpin",
            "T2\tSpeed 8 18\t13,000 rpm",
            "T3\tTime 23 28\t5 min",
            // Nested, overlapping, repeated, inside a token, on white space, odd type names.
            "T4\tAmount 34 39\t5 µl",
            "T5\tReagent 34 45\t5 µl water",
            "T6\tReagent 37 45\tl water",
            "T7\tAmount 34 39\t5 µl",
            "T8\tB-I 4 5\t ",
            "T9\t 0 1\tS",
            "T10\tO 1 2\tp",
        ];
        for n in 1..=ann.len() {
            annotated_protocol(format!("{text}\0{}", ann[..n].join("\n")).as_bytes());
        }
        let many: Vec<String> = (0..130).map(|i| format!("T{i}\tK{i} 0 4\tSpin")).collect();
        annotated_protocol(format!("{text}\0{}", many.join("\n")).as_bytes());
        for bytes in [&b"no nul"[..], b"\0", b"x\0T1\tA 0 9\tx", b"\xff\xfe\0T1\tA 0 1\t?"] {
            annotated_protocol(bytes);
        }
    }
}
