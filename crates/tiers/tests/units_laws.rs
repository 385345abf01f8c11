//! Laws of the numeric normalizer over random numbers: a decimal with a prefixed unit is read as
//! the double nearest to its exact value in the base unit (the decimal's digits with the prefix's
//! power of ten, as Rust's correctly rounding parser reads `"25e-6"`), so spellings of the same
//! quantity agree and a decade value lands on its histogram edge, not one ulp below; ranges keep
//! their ends; converted temperatures land on whole degrees; words after the unit do not change a
//! reading; an amount is read as the kind its unit says, or not at all; temperature ranges keep
//! their signed ends; digit groups in a speed (`20 000 x g`) read as one number; powers of ten
//! multiply the number before them; values listed or ranged with units of their own
//! (`400 µL and 500 µL`, `5 min or 10 min`) are one range, never a sum.

#![allow(clippy::unwrap_used, clippy::panic_in_result_fn, reason = "test code")]

use fl_tiers::units::{
    Quantity, Range, Unit, parse_amount, parse_concentration, parse_duration, parse_speed,
    parse_temperature,
};
use proptest::prelude::*;

/// (spelling, normalized unit, power of ten from the spelling to the normalized unit).
const AMOUNTS: [(&str, Unit, i32); 11] = [
    ("l", Unit::Litre, 0),
    ("ml", Unit::Litre, -3),
    ("µl", Unit::Litre, -6),
    ("μl", Unit::Litre, -6),
    ("ul", Unit::Litre, -6),
    ("nl", Unit::Litre, -9),
    ("kg", Unit::Gram, 3),
    ("mg", Unit::Gram, -3),
    ("µg", Unit::Gram, -6),
    ("ng", Unit::Gram, -9),
    ("pmol", Unit::Mole, -12),
];

const CONCENTRATIONS: [(&str, Unit, i32); 8] = [
    ("M", Unit::Molar, 0),
    ("mM", Unit::Molar, -3),
    ("µM", Unit::Molar, -6),
    ("nM", Unit::Molar, -9),
    ("mg/ml", Unit::GramPerLitre, 0),
    ("µg/ml", Unit::GramPerLitre, -3),
    ("ng/µl", Unit::GramPerLitre, -3),
    ("mg/µl", Unit::GramPerLitre, 3),
];

/// (spelling, seconds per unit).
const DURATIONS: [(&str, u128); 5] =
    [("s", 1), ("min", 60), ("h", 3600), ("days", 86_400), ("weeks", 604_800)];

/// Words a tagged span runs on into after its unit (seen in WLP and bioprot spans).
const TRAILING_WORDS: [&str; 12] = [
    "tube",
    "solution",
    "water",
    "sample",
    "total",
    "volume",
    "stock",
    "buffer",
    "aliquots",
    "microfuge",
    "incubation",
    "intervals",
];

/// The double nearest to `digits` × 10^`exp`, by the standard library's correctly rounding
/// parser.
fn nearest(digits: &str, exp: i32) -> f64 {
    format!("{digits}e{exp}").parse().unwrap()
}

/// A decimal as written in a protocol: an integer, or one with one to three decimals.
fn decimal() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..2_000_000).prop_map(|n| n.to_string()),
        (0u64..100_000, 1usize..=3).prop_map(|(n, places)| {
            let s = format!("{n:0>width$}", width = places + 1);
            let (int, frac) = s.split_at(s.len() - places);
            format!("{int}.{frac}")
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn integer_amounts_are_read_as_the_nearest_double(
        n in 0u64..2_000_000_000,
        unit in 0..AMOUNTS.len(),
    ) {
        let (spelling, normalized, exp) = AMOUNTS[unit];
        let q: Quantity = parse_amount(&format!("{n} {spelling}")).unwrap();
        prop_assert_eq!(q.unit, normalized);
        // An integer below 2^53 is exact, so one rounding (the prefix) gives the nearest double.
        prop_assert_eq!(q.value, Range::point(nearest(&n.to_string(), exp)));
    }

    #[test]
    fn decimal_amounts_and_concentrations_are_read_as_the_nearest_double(
        d in decimal(),
        amount in 0..AMOUNTS.len(),
        concentration in 0..CONCENTRATIONS.len(),
    ) {
        let (spelling, unit, exp) = AMOUNTS[amount];
        let q = parse_amount(&format!("{d} {spelling}")).unwrap();
        prop_assert_eq!(q.unit, unit);
        prop_assert_eq!(q.value, Range::point(nearest(&d, exp)), "{} {}", d, spelling);
        let (spelling, unit, exp) = CONCENTRATIONS[concentration];
        let q = parse_concentration(&format!("{d} {spelling}")).unwrap();
        prop_assert_eq!(q.unit, unit);
        prop_assert_eq!(q.value, Range::point(nearest(&d, exp)), "{} {}", d, spelling);
    }

    #[test]
    fn decimal_durations_are_read_as_the_nearest_double(d in decimal(), unit in 0..DURATIONS.len()) {
        // `1.1 h` is 3960 s, not `1.1 * 3600.0` = 3960.0000000000005.
        let (spelling, seconds) = DURATIONS[unit];
        // The written digits times the seconds per unit, exactly, then one rounding.
        let (int, frac) = d.split_once('.').unwrap_or((&d, ""));
        let digits: u128 = format!("{int}{frac}").parse().unwrap();
        let exact = nearest(&(digits * seconds).to_string(), -i32::try_from(frac.len()).unwrap());
        prop_assert_eq!(parse_duration(&format!("{d} {spelling}")).unwrap(), Range::point(exact), "{} {}", d, spelling);
    }

    #[test]
    fn ranges_keep_both_ends(a in 0u32..100_000, b in 0u32..100_000, unit in 0..AMOUNTS.len()) {
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assume!(lo < hi);
        let (spelling, _, exp) = AMOUNTS[unit];
        let q = parse_amount(&format!("{lo}-{hi} {spelling}")).unwrap();
        prop_assert_eq!(
            q.value,
            Range { min: nearest(&lo.to_string(), exp), max: nearest(&hi.to_string(), exp) }
        );
    }

    #[test]
    fn converted_temperatures_land_on_whole_degrees(c in -200i32..300) {
        // c °C is (c + 273.15) K exactly and, for c a multiple of 5, 9c/5 + 32 °F exactly.
        let hundredths = c * 100 + 27_315; // positive over the whole strategy
        let kelvin = format!("{}.{:02} K", hundredths / 100, hundredths % 100);
        prop_assert_eq!(parse_temperature(&kelvin).unwrap(), Range::point(f64::from(c)), "{}", kelvin);
        let c5 = c - c.rem_euclid(5);
        let fahrenheit = 9 * c5 / 5 + 32;
        let text = format!("{fahrenheit} °F");
        prop_assert_eq!(parse_temperature(&text).unwrap(), Range::point(f64::from(c5)), "{}", text);
    }

    #[test]
    fn words_after_the_unit_do_not_change_the_reading(
        d in decimal(),
        amount in 0..AMOUNTS.len(),
        concentration in 0..CONCENTRATIONS.len(),
        duration in 0..DURATIONS.len(),
        word in prop::sample::select(TRAILING_WORDS.to_vec()),
    ) {
        // A tagged span often runs on past its unit (`5 ml tube`, `10 mM solution`).
        let amount = format!("{d} {}", AMOUNTS[amount].0);
        prop_assert_eq!(parse_amount(&format!("{amount} {word}")), parse_amount(&amount));
        let concentration = format!("{d} {}", CONCENTRATIONS[concentration].0);
        prop_assert_eq!(
            parse_concentration(&format!("{concentration} {word}")),
            parse_concentration(&concentration)
        );
        let duration = format!("{d} {}", DURATIONS[duration].0);
        prop_assert_eq!(parse_duration(&format!("{duration} {word}")), parse_duration(&duration));
    }

    #[test]
    fn digit_groups_in_speeds_read_as_one_number(
        thousands in 1u32..1000,
        units in 0u32..1000,
        separator in prop::sample::select(vec![" ", "\u{2009}", "\u{a0}", "\u{202f}"]),
        unit in prop::sample::select(vec!["x g", "×g", "g", "rpm", "rcf"]),
    ) {
        let grouped = parse_speed(&format!("{thousands}{separator}{units:03} {unit}")).unwrap();
        let plain = parse_speed(&format!("{} {unit}", thousands * 1000 + units)).unwrap();
        prop_assert_eq!(grouped, plain);
        prop_assert_eq!(grouped.value, Range::point(f64::from(thousands * 1000 + units)));
    }

    #[test]
    fn powers_of_ten_multiply_the_number(
        d in decimal(),
        power in 3i32..=12,
        spelling in 0usize..5,
    ) {
        let text = match spelling {
            0 => format!("{d} x 10^{power} cells"),
            1 => format!("{d}×10^{power} cells"),
            2 => format!("{d}e{power} cells"),
            3 => format!("{d} x 10{power} cells"), // a superscript that lost its place
            _ => format!("{d} X 10 {power} cells"),
        };
        let q = parse_amount(&text).unwrap();
        prop_assert_eq!(q.unit, Unit::Count);
        prop_assert_eq!(q.value, Range::point(nearest(&d, power)), "{}", text);
    }

    /// A two-part ratio is its first number over its second, as a division gives it; a range
    /// of two ratios spans both; a third part makes it no ratio.
    #[test]
    fn ratios_are_quotients(a in 1u32..100, b in 1u32..100_000, c in 1u32..100_000) {
        let read = |text: &str| parse_concentration(text);
        let q = read(&format!("{a}:{b}")).unwrap();
        prop_assert_eq!(q.unit, Unit::Ratio);
        prop_assert_eq!(q.value, Range::point(f64::from(a) / f64::from(b)));
        let range = read(&format!("{a}:{b}-{a}:{c}")).unwrap().value;
        let (x, y) = (f64::from(a) / f64::from(b), f64::from(a) / f64::from(c));
        prop_assert_eq!(range, Range { min: x.min(y), max: x.max(y) });
        prop_assert_eq!(read(&format!("{a}/{b}")), Some(q));
        prop_assert_eq!(read(&format!("{a}:{b}:{c}")), None);
    }

    /// A count per volume is the count times the litres' inverse factor, whatever is counted
    /// and however the quotient is written: `d x 10^p cells/ml` is `d·10^(p+3)` per litre.
    #[test]
    fn counts_per_volume_are_per_litre(
        d in decimal(),
        power in 3i32..=9,
        counted in prop::sample::select(vec!["cells", "CFU", "spores", "particles", "HKB", ""]),
        (volume, litres_power) in prop::sample::select(vec![("ml", 3), ("µl", 6), ("L", 0)]),
        spelling in 0usize..3,
    ) {
        let per = match spelling {
            0 => format!("{counted}/{volume}"),
            1 => format!("{counted} per {volume}"),
            _ => format!("{counted} {volume}-1"),
        };
        let text = format!("{d} x 10^{power} {per}");
        let q = parse_concentration(&text);
        if counted.is_empty() && spelling == 2 {
            // `ml-1` alone, with nothing counted before it, is no quotient.
            prop_assert_eq!(q, None, "{}", text);
        } else {
            let q = q.unwrap();
            prop_assert_eq!(q.unit, Unit::CountPerLitre);
            prop_assert_eq!(q.value, Range::point(nearest(&d, power + litres_power)), "{}", text);
        }
    }

    /// An amount is what its unit says: a concentration unit reads as that concentration, a
    /// unit of a kind no amount has (time, length, radioactivity, sequence length) reads as no
    /// value, never as a count of the number before it.
    #[test]
    fn amounts_are_read_as_their_unit_says_or_not_at_all(
        d in decimal(),
        concentration in 0..CONCENTRATIONS.len(),
        other in prop::sample::select(vec!["s", "min", "hours", "days", "µm", "mm", "cm", "nm", "µCi", "kb", "nt"]),
    ) {
        let text = format!("{d} {}", CONCENTRATIONS[concentration].0);
        prop_assert_eq!(parse_amount(&text), parse_concentration(&text), "{}", text);
        let percent = format!("{d}%");
        prop_assert_eq!(parse_amount(&percent).map(|q| q.unit), Some(Unit::Percent));
        let text = format!("{d} {other}");
        prop_assert_eq!(parse_amount(&text), None, "{}", text);
    }

    /// A temperature range or pair of alternatives keeps both ends with their own signs,
    /// whichever is written first and however the two are joined.
    #[test]
    fn temperature_ranges_keep_signed_ends(
        a in -196i32..=121,
        b in -196i32..=121,
        join in prop::sample::select(vec![" to ", " or ", "/", " - "]),
        unit in prop::sample::select(vec!["°C", " °C", "°"]),
        both in any::<bool>(),
    ) {
        let first_unit = if both { unit } else { "" };
        let text = format!("{a}{first_unit}{join}{b}{unit}");
        let (lo, hi) = (f64::from(a.min(b)), f64::from(a.max(b)));
        prop_assert_eq!(parse_temperature(&text), Some(Range { min: lo, max: hi }), "{}", text);
    }

    #[test]
    fn values_with_their_own_units_listed_are_one_range(
        a in 1u32..100_000,
        b in 1u32..100_000,
        join in prop::sample::select(vec![" or ", " and ", ", ", " to ", " - ", "–"]),
        amount in 0..AMOUNTS.len(),
        concentration in 0..CONCENTRATIONS.len(),
        duration in 0..DURATIONS.len(),
        speed in prop::sample::select(vec![("rpm", Unit::Rpm), ("x g", Unit::TimesG)]),
    ) {
        let (lo, hi) = (a.min(b), a.max(b));
        let listed = |unit: &str| format!("{a} {unit}{join}{b} {unit}");
        let within = |unit: Unit, exp: i32| Quantity {
            value: Range { min: nearest(&lo.to_string(), exp), max: nearest(&hi.to_string(), exp) },
            unit,
        };
        let (spelling, unit, exp) = AMOUNTS[amount];
        prop_assert_eq!(parse_amount(&listed(spelling)), Some(within(unit, exp)), "{}", listed(spelling));
        let (spelling, unit, exp) = CONCENTRATIONS[concentration];
        prop_assert_eq!(parse_concentration(&listed(spelling)), Some(within(unit, exp)), "{}", listed(spelling));
        let (spelling, seconds) = DURATIONS[duration];
        let seconds = |x: u32| nearest(&(u128::from(x) * seconds).to_string(), 0);
        prop_assert_eq!(
            parse_duration(&listed(spelling)),
            Some(Range { min: seconds(lo), max: seconds(hi) }),
            "{}", listed(spelling)
        );
        let (spelling, unit) = speed;
        prop_assert_eq!(parse_speed(&listed(spelling)), Some(within(unit, 0)), "{}", listed(spelling));
    }
}
