//! The numeric normalizer against hand-checked known answers (`tests/data/units_known_answers.tsv`:
//! type, surface, min, max, unit). Set `FL_TIERS_UNITS_VECTORS=/path/file.tsv` to check another
//! file of the same format instead.

#![allow(clippy::unwrap_used, clippy::print_stderr, reason = "test code")]

use std::path::PathBuf;

use fl_tiers::units::{self, Range, Reading};

/// What a surface was read as: its range and unit name, or `None`.
fn read(kind: &str, surface: &str) -> Option<(Range, String)> {
    let name = |q: units::Quantity| {
        let unit = serde_json::to_value(q.unit).unwrap().as_str().unwrap().to_owned();
        (q.value, unit)
    };
    assert!(fl_tiers::tagger::NUMERIC_KINDS.contains(&kind), "unknown type {kind:?}");
    Some(match units::read_entity(kind, surface)? {
        Reading::Amount(q) | Reading::Concentration(q) | Reading::Speed(q) => name(q),
        Reading::Temperature(r) => (r, "°C".to_owned()),
        Reading::Duration(r) => (r, "s".to_owned()),
        Reading::Ph(r) => (r, "pH".to_owned()),
    })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
}

#[test]
fn normalizer_matches_the_known_answers() {
    let path = std::env::var_os("FL_TIERS_UNITS_VECTORS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/units_known_answers.tsv"),
        PathBuf::from,
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let (kind, surface, min) = (cols[0], cols[1], cols[2]);
        let got = read(kind, surface);
        let ok = if min == "none" {
            got.is_none()
        } else {
            let (min, max): (f64, f64) = (min.parse().unwrap(), cols[3].parse().unwrap());
            got.as_ref()
                .is_some_and(|(r, u)| close(r.min, min) && close(r.max, max) && u == cols[4])
        };
        if !ok {
            wrong.push(format!("line {}: {kind} {surface:?} read as {got:?}", n + 1));
        }
        checked += 1;
    }
    eprintln!("{checked} known answers checked from {}", path.display());
    assert!(checked >= 10, "too few known answers in {}", path.display());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
