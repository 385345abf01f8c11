//! The committed JSON Schemas of `ProtocolSpec` (`schema/protocol-spec.v2.schema.json`, and
//! `v1` for documents of the older version the receiver still reads), checked by an independent
//! validator (the `jsonschema` crate), so a partner or integrator who validates specs with the
//! schema of the version a document states, in another language, agrees with our receiver:
//! random valid specs validate, and every structurally malformed document the receiver refuses,
//! the schema refuses too. (Every spec extracted from WLP `dev` and `test` is validated in
//! `tests/wlp.rs`.)

#![allow(clippy::unwrap_used, clippy::panic_in_result_fn, reason = "test code")]

use std::sync::LazyLock;

use fl_tiers::spec::{ProtocolSpec, SPEC_VERSION, Step, Summary, UNITS_SINCE_VERSION_2};
use fl_tiers::units::{Quantity, Range, Unit};
use proptest::prelude::*;
use serde_json::{Value, json};

mod common;

fn committed_schema() -> Value {
    common::committed_schema("protocol-spec.v2.schema.json")
}

/// The validator of the current version's schema.
fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: LazyLock<jsonschema::Validator> =
        LazyLock::new(|| jsonschema::validator_for(&committed_schema()).unwrap());
    &VALIDATOR
}

/// The validator of version 1's schema.
fn validator_v1() -> &'static jsonschema::Validator {
    static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
        jsonschema::validator_for(&common::committed_schema("protocol-spec.v1.schema.json"))
            .unwrap()
    });
    &VALIDATOR
}

/// What a partner does: validate with the schema of the version the document states (the
/// current one when it states none or another).
fn validator_for(doc: &Value) -> &'static jsonschema::Validator {
    if doc["version"] == json!(1) { validator_v1() } else { validator() }
}

/// The units the schema lists, each parsed by the receiver (a unit one side lacks fails here).
fn schema_units() -> Vec<Unit> {
    let variants = committed_schema()["$defs"]["Unit"]["oneOf"].as_array().unwrap().clone();
    assert!(variants.len() >= 13, "{variants:?}");
    variants.into_iter().map(|v| serde_json::from_value(v["const"].clone()).unwrap()).collect()
}

fn spec() -> ProtocolSpec {
    let q = |v: f64, unit| Quantity { value: Range::point(v), unit };
    ProtocolSpec {
        version: SPEC_VERSION,
        title_sha256: "ab".repeat(32),
        steps: vec![Step {
            actions: vec!["add".into(), "incubate".into()],
            reagents: vec!["pbs".into(), "tris hcl".into()],
            amounts: vec![q(5e-6, Unit::Litre)],
            concentrations: vec![q(0.05, Unit::Molar)],
            temperatures_c: vec![Range { min: 20.0, max: 25.0 }],
            durations_s: vec![Range::point(600.0)],
            speeds: vec![q(13_000.0, Unit::TimesG)],
            devices: vec!["centrifuge".into()],
            ph: vec![Range::point(7.4)],
        }],
        summary: Summary { steps: 1, actions: 2, total_duration_s: 600.0, ..Summary::default() },
    }
}

/// `spec()` as JSON with `edit` applied.
fn edited(edit: impl FnOnce(&mut Value)) -> Value {
    let mut v = serde_json::to_value(spec()).unwrap();
    edit(&mut v);
    v
}

#[test]
fn the_fixture_is_valid_on_both_sides() {
    let v = serde_json::to_value(spec()).unwrap();
    assert!(validator().is_valid(&v));
    assert_eq!(ProtocolSpec::from_json(&v.to_string()).unwrap(), spec());
}

#[test]
fn what_the_receiver_refuses_for_its_structure_the_schema_refuses() {
    let validator = validator();
    let cases: Vec<(&str, Value)> = vec![
        ("unknown field at the top", edited(|v| v["note"] = json!("text"))),
        ("unknown field in a step", edited(|v| v["steps"][0]["note"] = json!("text"))),
        (
            "unknown field in a quantity",
            edited(|v| v["steps"][0]["amounts"][0]["note"] = json!("protocol text")),
        ),
        (
            "unknown field in a range",
            edited(|v| v["steps"][0]["temperatures_c"][0]["note"] = json!("text")),
        ),
        ("unknown field in the summary", edited(|v| v["summary"]["note"] = json!(1))),
        ("another version", edited(|v| v["version"] = json!(SPEC_VERSION + 1))),
        ("a short hash", edited(|v| v["title_sha256"] = json!("abc"))),
        ("a hash that is not hex", edited(|v| v["title_sha256"] = json!("zz".repeat(32)))),
        ("an unknown unit", edited(|v| v["steps"][0]["amounts"][0]["unit"] = json!("furlong"))),
        ("a negative count", edited(|v| v["summary"]["steps"] = json!(-1))),
        ("a fractional count", edited(|v| v["summary"]["steps"] = json!(1.5))),
        ("a count above u32", edited(|v| v["summary"]["steps"] = json!(1_u64 << 32))),
        (
            "a missing summary",
            edited(|v| {
                v.as_object_mut().unwrap().remove("summary");
            }),
        ),
        (
            "a quantity without its lower end",
            edited(|v| {
                v["steps"][0]["amounts"][0].as_object_mut().unwrap().remove("min");
            }),
        ),
        (
            "a name of 81 characters",
            edited(|v| v["steps"][0]["reagents"][0] = json!("a".repeat(81))),
        ),
        ("a name of six words", edited(|v| v["steps"][0]["actions"][0] = json!("a b c d e f"))),
        (
            "a name of six words split by tabs and no-break spaces",
            edited(|v| v["steps"][0]["devices"][0] = json!("a\tb\u{a0}c\u{3000}d e\nf ")),
        ),
        ("a number as a name", edited(|v| v["steps"][0]["devices"][0] = json!(7))),
        ("steps that are not a list", edited(|v| v["steps"] = json!("add water"))),
        ("a step that is a sentence", edited(|v| v["steps"][0] = json!("Add 5 ul of water."))),
        (
            "a step of the wrong shape",
            edited(|v| {
                let step = v["steps"][0].take();
                v["steps"][0] = json!([step]);
            }),
        ),
        (
            "a string as a temperature",
            edited(|v| v["steps"][0]["temperatures_c"][0]["min"] = json!("warm")),
        ),
    ];
    for (what, doc) in &cases {
        assert!(ProtocolSpec::from_json(&doc.to_string()).is_err(), "receiver took {what}");
        let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
        assert!(!errors.is_empty(), "the schema took {what}: {doc}");
    }
}

/// Version 1 is read as written: the same document as version 2 without the units version 2
/// added, which both its schema and the receiver refuse in a version-1 document.
#[test]
fn version_1_documents_are_read_without_the_units_of_version_2() {
    let v1 = edited(|v| v["version"] = json!(1));
    assert!(validator_v1().is_valid(&v1));
    assert!(!validator().is_valid(&v1), "the current schema states its own version");
    assert_eq!(ProtocolSpec::from_json(&v1.to_string()).unwrap().version, 1);
    let names: Vec<Value> =
        UNITS_SINCE_VERSION_2.iter().map(|u| serde_json::to_value(u).unwrap()).collect();
    assert_eq!(names, [json!("count/L"), json!("ratio"), json!("volumes")]);
    for (unit, name) in UNITS_SINCE_VERSION_2.iter().zip(&names) {
        for field in ["amounts", "concentrations", "speeds"] {
            let quantity = json!([{"min": 0.5, "max": 2.0, "unit": name}]);
            let v2 = edited(|v| v["steps"][0][field] = quantity.clone());
            assert!(validator().is_valid(&v2), "{name} in {field}");
            let read = ProtocolSpec::from_json(&v2.to_string()).unwrap();
            let step = &read.steps[0];
            let quantities = match field {
                "amounts" => &step.amounts,
                "concentrations" => &step.concentrations,
                _ => &step.speeds,
            };
            assert_eq!(quantities[0].unit, *unit);
            let mut old = v2.clone();
            old["version"] = json!(1);
            assert!(!validator_v1().is_valid(&old), "{name} in {field}");
            let refused = ProtocolSpec::from_json(&old.to_string()).unwrap_err().to_string();
            assert!(refused.contains(&format!("unit {name} needs version 2")), "{refused}");
        }
    }
    // Version 1's schema is the current one with exactly these changes (version, units).
    assert_eq!(
        ProtocolSpec::json_schema_of_version(1).unwrap(),
        common::committed_schema("protocol-spec.v1.schema.json")
    );
    assert!(ProtocolSpec::json_schema_of_version(0).is_none());
    assert!(ProtocolSpec::json_schema_of_version(SPEC_VERSION + 1).is_none());
}

/// What the receiver checks beyond the schema, as the type's documentation says: the schema
/// takes these, the receiver refuses them.
#[test]
fn the_receiver_also_checks_what_a_schema_cannot() {
    let validator = validator();
    let cases: Vec<(&str, Value)> = vec![
        (
            "an inverted range",
            edited(|v| v["steps"][0]["durations_s"][0] = json!({"min": 60.0, "max": 1.0})),
        ),
        // 41 two-byte characters: 82 bytes, within the schema's 80 characters.
        ("a name of 82 bytes", edited(|v| v["steps"][0]["reagents"][0] = json!("é".repeat(41)))),
        // JSON Schema's integers are mathematical; serde wants an integer token for a u32.
        ("a count written 1.0", edited(|v| v["summary"]["steps"] = json!(1.0))),
    ];
    for (what, doc) in &cases {
        assert!(validator.is_valid(doc), "{what}");
        assert!(ProtocolSpec::from_json(&doc.to_string()).is_err(), "receiver took {what}");
    }
    // A key given twice: a parser keeps one, serde refuses the document.
    let twice = edited(|_| ()).to_string().replacen('{', "{\"version\":1,", 1);
    assert!(validator.is_valid(&serde_json::from_str::<Value>(&twice).unwrap()));
    assert!(ProtocolSpec::from_json(&twice).is_err());
}

/// The schema's word pattern splits where the receiver does: at every Unicode `White_Space`
/// character and nowhere else (not at U+FEFF, U+200B or U+180E, which some regex dialects'
/// `\s` treats as space).
#[test]
fn names_have_at_most_five_words_on_both_sides() {
    let white_space = (0..=0x10FFFF_u32).filter_map(char::from_u32).filter(|c| c.is_whitespace());
    let separators: Vec<char> =
        white_space.chain(['\u{feff}', '\u{200b}', '\u{180e}', '-']).collect();
    assert_eq!(separators.len(), 25 + 4, "Unicode White_Space changed: {separators:?}");
    for sep in separators {
        for words in 0..=7 {
            let name: String = (0..words).map(|i| format!("w{i}{sep}")).collect();
            let doc = edited(|v| v["steps"][0]["reagents"][0] = json!(name));
            let receiver = ProtocolSpec::from_json(&doc.to_string()).is_ok();
            assert_eq!(receiver, name.split_whitespace().count() <= 5, "{name:?}");
            assert_eq!(validator().is_valid(&doc), receiver, "{name:?} (U+{:04X})", u32::from(sep));
        }
    }
}

fn name() -> impl Strategy<Value = String> {
    // One to five words, at most 80 bytes (UTF-8 included).
    proptest::collection::vec("[a-zà-ÿ0-9-]{1,12}", 1..=5)
        .prop_map(|w| w.join(" "))
        .prop_filter("at most 80 bytes", |n| n.len() <= 80)
}

fn range() -> impl Strategy<Value = Range> {
    (-1e12..1e12_f64, 0.0..1e12_f64).prop_map(|(min, width)| Range { min, max: min + width })
}

fn quantity(units: Vec<Unit>) -> impl Strategy<Value = Quantity> {
    (range(), proptest::sample::select(units)).prop_map(|(value, unit)| Quantity { value, unit })
}

fn step(units: &[Unit]) -> impl Strategy<Value = Step> + use<> {
    let names = || proptest::collection::vec(name(), 0..4);
    let quantities = || proptest::collection::vec(quantity(units.to_vec()), 0..3);
    let ranges = || proptest::collection::vec(range(), 0..3);
    (
        (names(), names(), names()),
        (quantities(), quantities(), quantities()),
        (ranges(), ranges(), ranges()),
    )
        .prop_map(
            |(
                (actions, reagents, devices),
                (amounts, concentrations, speeds),
                (temperatures_c, durations_s, ph),
            )| Step {
                actions,
                reagents,
                amounts,
                concentrations,
                temperatures_c,
                durations_s,
                speeds,
                devices,
                ph,
            },
        )
}

fn protocol_spec() -> impl Strategy<Value = ProtocolSpec> {
    let units = schema_units();
    (
        "[0-9a-fA-F]{64}",
        proptest::collection::vec(step(&units), 0..6),
        proptest::collection::vec(any::<u32>(), 14),
        0.0..1e9_f64,
    )
        .prop_map(|(title_sha256, steps, c, total_duration_s)| ProtocolSpec {
            version: SPEC_VERSION,
            title_sha256,
            steps,
            summary: Summary {
                steps: c[0],
                actions: c[1],
                distinct_actions: c[2],
                reagents: c[3],
                distinct_reagents: c[4],
                amounts: c[5],
                concentrations: c[6],
                temperatures: c[7],
                durations: c[8],
                speeds: c[9],
                devices: c[10],
                ph: c[11],
                locations: c[12],
                total_duration_s,
                unparsed: c[13],
            },
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn specs_the_receiver_takes_validate_against_the_schema(spec in protocol_spec()) {
        let json = spec.to_json().unwrap();
        let parsed = ProtocolSpec::from_json(&json).unwrap();
        prop_assert_eq!(&parsed, &spec);
        let value: Value = serde_json::from_str(&json).unwrap();
        let errors: Vec<String> = validator().iter_errors(&value).map(|e| e.to_string()).collect();
        prop_assert!(errors.is_empty(), "{:?}", errors);
    }
}

/// One change to a valid spec's JSON, near what the receiver checks.
#[derive(Clone, Debug)]
enum Miss {
    Version(u32),
    Hash(String),
    Unit(String),
    Count(Value),
    Name(String),
    Unknown(usize),
    Remove(usize),
}

fn miss() -> impl Strategy<Value = Miss> {
    let separator =
        proptest::sample::select(vec![" ", "\t", "\u{a0}", "\u{3000}", "\u{feff}", "-"]);
    prop_oneof![
        (0..4_u32).prop_map(Miss::Version),
        "[0-9a-gA-G]{62,66}".prop_map(Miss::Hash),
        prop_oneof![
            Just("L".to_owned()),
            Just("l".to_owned()),
            Just("°C".to_owned()),
            "[a-zA-Z/%]{1,5}"
        ]
        .prop_map(Miss::Unit),
        prop_oneof![
            Just(json!(-1)),
            Just(json!(1.5)),
            Just(json!(u32::MAX)),
            Just(json!(u64::from(u32::MAX) + 1)),
            Just(json!("7")),
        ]
        .prop_map(Miss::Count),
        (proptest::collection::vec("[a-zé]{1,20}", 0..8), separator)
            .prop_map(|(words, sep)| Miss::Name(words.join(sep))),
        (0..4_usize).prop_map(Miss::Unknown),
        (0..4_usize).prop_map(Miss::Remove),
    ]
}

fn apply(doc: &mut Value, miss: &Miss) {
    let step = &mut doc["steps"][0];
    match miss {
        Miss::Version(v) => doc["version"] = json!(v),
        Miss::Hash(h) => doc["title_sha256"] = json!(h),
        Miss::Unit(u) => step["amounts"] = json!([{"min": 1.0, "max": 2.0, "unit": u}]),
        Miss::Count(c) => doc["summary"]["devices"] = c.clone(),
        Miss::Name(n) => step["reagents"] = json!([n]),
        Miss::Unknown(at) => {
            let target = match at {
                0 => doc,
                1 => &mut doc["steps"][0],
                2 => &mut doc["summary"],
                _ => {
                    doc["steps"][0]["ph"] = json!([{"min": 7.0, "max": 7.0}]);
                    &mut doc["steps"][0]["ph"][0]
                }
            };
            target["text"] = json!("Add 5 ul of water.");
        }
        Miss::Remove(what) => {
            let (object, key) = match what {
                0 => (doc, "summary"),
                1 => (doc, "title_sha256"),
                2 => (&mut doc["summary"], "steps"),
                _ => (doc, "version"),
            };
            object.as_object_mut().unwrap().remove(key);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Both directions on documents one change away from valid: the schema takes exactly what
    /// the receiver takes, except names over 80 bytes (the one receiver-only check these
    /// changes can reach; ranges stay ordered).
    #[test]
    fn schema_and_receiver_agree_on_near_misses(spec in protocol_spec(), miss in miss()) {
        let mut doc = serde_json::to_value(&spec).unwrap();
        if doc["steps"].as_array().unwrap().is_empty() {
            doc["steps"] = json!([{}]);
        }
        apply(&mut doc, &miss);
        let receiver = ProtocolSpec::from_json(&doc.to_string()).is_ok();
        let schema = validator_for(&doc).is_valid(&doc);
        let over_80_bytes = matches!(&miss, Miss::Name(n) if n.len() > 80 && n.chars().count() <= 80);
        if over_80_bytes {
            prop_assert!(!receiver);
        } else {
            prop_assert_eq!(schema, receiver, "{:?}: {}", miss, doc);
        }
    }
}
