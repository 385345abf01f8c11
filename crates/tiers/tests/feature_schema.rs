//! The committed JSON Schema of `FeatureVector` (`schema/feature-vector.v1.schema.json`), checked
//! by an independent validator (the `jsonschema` crate) against the receiver
//! (`FeatureVector::from_json`) in both directions: vectors the receiver takes validate, and
//! random near-miss documents (wrong versions and lengths, values around `f32`'s overflow,
//! local DP claims around their bounds) are valid under the schema exactly when the receiver
//! takes them. The two differences the type documents are pinned as receiver-only cases.

#![allow(clippy::unwrap_used, clippy::panic_in_result_fn, reason = "test code")]

use std::sync::LazyLock;

use fl_tiers::features::{DIM, FEATURE_VERSION, FeatureVector, LocalDp, features};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use serde_json::{Value, json};

mod common;

/// 2^128 − 2^103: the smallest `f64` that rounds to an infinite `f32`.
const F32_OVERFLOW: f64 = 340_282_356_779_733_661_637_539_395_458_142_568_448.0;

fn committed_schema() -> Value {
    common::committed_schema("feature-vector.v1.schema.json")
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: LazyLock<jsonschema::Validator> =
        LazyLock::new(|| jsonschema::validator_for(&committed_schema()).unwrap());
    &VALIDATOR
}

fn receiver_takes(doc: &str) -> bool {
    FeatureVector::from_json(doc).is_ok()
}

fn schema_takes(doc: &str) -> bool {
    validator().is_valid(&serde_json::from_str::<Value>(doc).unwrap())
}

const PROTOCOL: &str = "Centrifuge the lysate at 13,000 x g for 10 min at 4 °C.\n\
                        Add 500 ul of PBS and incubate overnight at 37 °C.";

fn plain() -> FeatureVector {
    features(&fl_tiers::spec::extract(PROTOCOL).unwrap())
}

/// The plain vector as JSON with `edit` applied.
fn edited(edit: impl FnOnce(&mut Value)) -> Value {
    let mut v = serde_json::to_value(plain()).unwrap();
    edit(&mut v);
    v
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    assert_eq!(
        FeatureVector::json_schema(),
        committed_schema(),
        "regenerate with `cargo run -p fl-tiers --example spec_schema -- features`"
    );
}

#[test]
fn released_vectors_validate() {
    let plain = plain();
    assert!(plain.values.iter().filter(|&&x| x != 0.0).count() > 10);
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let noised = LocalDp::new(1.0, 1e-5, 8.0).unwrap().privatize(&plain, &mut rng).unwrap();
    for v in [plain, noised] {
        let json = serde_json::to_string(&v).unwrap();
        assert!(schema_takes(&json), "{json}");
        assert_eq!(FeatureVector::from_json(&json).unwrap(), v);
    }
}

#[test]
fn what_the_receiver_refuses_the_schema_refuses() {
    let cases: Vec<(&str, Value)> = vec![
        ("another version", edited(|v| v["version"] = json!(FEATURE_VERSION + 1))),
        ("version 0", edited(|v| v["version"] = json!(0))),
        ("a version as a string", edited(|v| v["version"] = json!("1"))),
        ("222 values", edited(|v| _ = v["values"].as_array_mut().unwrap().pop())),
        ("224 values", edited(|v| v["values"].as_array_mut().unwrap().push(json!(0.0)))),
        ("a value as a string", edited(|v| v["values"][3] = json!("1.5"))),
        ("a null value (NaN as JavaScript writes it)", edited(|v| v["values"][3] = json!(null))),
        ("a value above f32", edited(|v| v["values"][0] = json!(1e39))),
        ("a value below f32", edited(|v| v["values"][0] = json!(-1e39))),
        (
            "a value above f32's overflow",
            edited(|v| v["values"][0] = json!(F32_OVERFLOW.next_up())),
        ),
        ("values that are text", edited(|v| v["values"] = json!("centrifuge at 4 °C"))),
        ("an unknown field", edited(|v| v["protocol"] = json!("Add 5 ul of water."))),
        (
            "no values",
            edited(|v| {
                v.as_object_mut().unwrap().remove("values");
            }),
        ),
        (
            "no version",
            edited(|v| {
                v.as_object_mut().unwrap().remove("version");
            }),
        ),
        ("a claim of two numbers", edited(|v| v["local_dp"] = json!([1.0, 1e-5]))),
        ("a claim of four numbers", edited(|v| v["local_dp"] = json!([1.0, 1e-5, 8.0, 1.0]))),
        ("a claim with ε = 0", edited(|v| v["local_dp"] = json!([0.0, 1e-5, 8.0]))),
        ("a claim with ε < 0", edited(|v| v["local_dp"] = json!([-1.0, 1e-5, 8.0]))),
        ("a claim with δ = 1", edited(|v| v["local_dp"] = json!([1.0, 1.0, 8.0]))),
        ("a claim with δ < 0", edited(|v| v["local_dp"] = json!([1.0, -1e-5, 8.0]))),
        ("a claim with C = 0", edited(|v| v["local_dp"] = json!([1.0, 1e-5, 0.0]))),
        ("a claim with a string", edited(|v| v["local_dp"] = json!([1.0, "1e-5", 8.0]))),
        (
            "a claim as an object",
            edited(|v| v["local_dp"] = json!({"epsilon": 1.0, "delta": 1e-5, "clip": 8.0})),
        ),
        ("a vector that is a list", json!([1, [0.0]])),
    ];
    for (what, doc) in &cases {
        let text = doc.to_string();
        assert!(!receiver_takes(&text), "receiver took {what}");
        assert!(!schema_takes(&text), "the schema took {what}: {text}");
    }
}

#[test]
fn the_edges_of_f32_read_alike_on_both_sides() {
    let below = F32_OVERFLOW.next_down();
    for value in [
        json!(f32::MAX),                // written as 3.4028235e38, above f32::MAX as f64
        json!(below),                   // rounds to f32::MAX
        json!(-below),                  // and to f32::MIN
        json!(1e-50),                   // rounds to 0
        json!(f32::MIN_POSITIVE / 2.0), // subnormal
        json!(3),                       // an integer
    ] {
        let doc = edited(|v| v["values"][0] = value.clone()).to_string();
        assert!(schema_takes(&doc), "{value}");
        let v = FeatureVector::from_json(&doc).unwrap();
        assert!(v.values[0].is_finite(), "{value}");
    }
    // A claim with δ = 0 (pure DP) and integers for ε and C.
    let pure = edited(|v| v["local_dp"] = json!([1, 0, 8])).to_string();
    assert!(schema_takes(&pure) && receiver_takes(&pure));
    // An explicit null claim is no claim.
    let none = edited(|v| v["local_dp"] = json!(null)).to_string();
    assert!(schema_takes(&none) && receiver_takes(&none));
}

/// The differences `FeatureVector::json_schema` documents.
#[test]
fn where_the_two_sides_differ() {
    // The receiver reads each value straight from its decimal digits to f32 (serde_json's
    // float_roundtrip), a validator reads it as f64: 2^128 − 2^103 written out exactly is a tie
    // that rounds to infinity on both sides, but its shortest f64 form, 3.4028235677973366e38,
    // is below the tie as a decimal (the receiver reads f32::MAX) and on it as an f64 (the
    // schema refuses). Only decimals within half an f64 step of the bound differ, and only that
    // way round: the schema is stricter there, never more lenient.
    let exact = edited(|v| v["values"][0] = json!(0.5)).to_string().replacen(
        "0.5",
        "340282356779733661637539395458142568448",
        1,
    );
    assert!(!schema_takes(&exact) && !receiver_takes(&exact));
    let shortest = edited(|v| v["values"][0] = json!(F32_OVERFLOW)).to_string();
    assert!(shortest.contains("3.4028235677973366e+38"), "{shortest}");
    assert!(!schema_takes(&shortest));
    assert_eq!(FeatureVector::from_json(&shortest).unwrap().values[0], f32::MAX);

    // What the receiver refuses and JSON Schema cannot see.
    let version_as_float = edited(|v| v["version"] = json!(1.0)).to_string();
    // JSON Schema's integers are mathematical: 1.0 is one.
    assert!(schema_takes(&version_as_float));
    assert!(!receiver_takes(&version_as_float));
    // A key given twice: a parser keeps one, serde refuses the document.
    let plain = serde_json::to_string(&edited(|_| ())).unwrap();
    let twice = plain.replacen('{', "{\"version\":1,", 1);
    assert!(schema_takes(&twice));
    assert!(!receiver_takes(&twice));
}

/// Numbers around the bounds both sides check, in every magnitude JSON can write.
fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        -2.0..2.0_f64,
        Just(0.0),
        Just(1.0),
        Just(F32_OVERFLOW),
        Just(F32_OVERFLOW.next_down()),
        Just(-F32_OVERFLOW),
        Just(f64::from(f32::MAX)),
        (-308..=307_i32, -9.99..9.99_f64).prop_map(|(e, m)| m * 10f64.powi(e)),
    ]
}

fn near_miss() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just(json!(FEATURE_VERSION)), (0..3_u32).prop_map(|v| json!(v))],
        prop_oneof![Just(DIM), (DIM - 1)..=(DIM + 1)],
        proptest::collection::vec((0..DIM + 1, number()), 0..4),
        prop_oneof![
            Just(None),
            proptest::collection::vec(number(), 2..=4).prop_map(Some),
            (0.01..10.0_f64, 0.0..1.0_f64, 0.01..100.0_f64)
                .prop_map(|(e, d, c)| Some(vec![e, d, c])),
        ],
    )
        .prop_map(|(version, len, changes, claim)| {
            let mut values = vec![0.25_f64; len];
            for (i, x) in changes {
                if let Some(slot) = values.get_mut(i) {
                    *slot = x;
                }
            }
            let mut doc = json!({"version": version, "values": values});
            if let Some(claim) = claim {
                doc["local_dp"] = json!(claim);
            }
            doc
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn vectors_the_receiver_takes_validate(
        values in proptest::collection::vec(any::<f32>().prop_filter("finite", |x| x.is_finite()), DIM),
        claim in proptest::option::of((1e-3..50.0_f64, 0.0..1.0_f64, 1e-3..1e3_f64)),
    ) {
        let v = FeatureVector { version: FEATURE_VERSION, values, local_dp: claim };
        let json = serde_json::to_string(&v).unwrap();
        prop_assert_eq!(FeatureVector::from_json(&json).unwrap(), v);
        prop_assert!(schema_takes(&json), "{}", json);
    }

    #[test]
    fn schema_and_receiver_agree_on_near_misses(doc in near_miss()) {
        let text = doc.to_string();
        let on_the_bound = doc["values"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x.as_f64().unwrap().abs() == F32_OVERFLOW);
        if on_the_bound {
            // See `where_the_two_sides_differ`: there the schema is the stricter one.
            prop_assert!(!schema_takes(&text), "{}", text);
        } else {
            prop_assert_eq!(schema_takes(&text), receiver_takes(&text), "{}", text);
        }
    }
}
