//! Normalizing the numeric entities of lab protocols: amounts and concentrations to SI-style
//! units (L, g, mol, mol/L, g/L …), temperatures to °C, durations to seconds, speeds to rpm or
//! × g, and pH, each as a `[min, max]` range (a single value has `min == max`). A value too
//! large for an `f64` (a 400-digit number) is not read rather than read as infinity.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tokenize::tokenize;

/// A closed range of values; `min == max` for a single value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// Lower end.
    pub min: f64,
    /// Upper end.
    pub max: f64,
}

impl Range {
    /// A single value.
    #[must_use]
    pub fn point(v: f64) -> Self {
        Self { min: v, max: v }
    }

    /// Multiplies by a unit's factor with one rounding: the result is the double nearest to
    /// the exact product of the value as written and the factor, so `0.8 µl` is `8e-7` L and
    /// `1.1 h` is `3960` s, where `0.8 / 1e6` is `8.000000000000001e-7` and `1.1 * 3600.0` is
    /// `3960.0000000000005`, and `10 µl` is `1e-5` L exactly, on the edge of a tier-2 volume
    /// bin rather than one ulp below it.
    fn scale(self, f: f64) -> Self {
        Self { min: scale_decimal(self.min, f), max: scale_decimal(self.max, f) }
    }

    /// The smallest range holding both.
    fn hull(self, other: Self) -> Self {
        Self { min: self.min.min(other.min), max: self.max.max(other.max) }
    }

    fn map(self, f: impl Fn(f64) -> f64) -> Self {
        let (a, b) = (f(self.min), f(self.max));
        Self { min: a.min(b), max: a.max(b) }
    }

    /// The midpoint.
    #[must_use]
    pub fn mid(&self) -> f64 {
        0.5 * (self.min + self.max)
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.min.is_finite() && self.max.is_finite() && self.min <= self.max
    }
}

/// `value × factor` rounded once. The unit tables' factors are decimals of at most twelve
/// significant digits (`1e-6`, `60`, `2629800`, and quotients such as `1e-3 / 1e-6`, which is
/// `1000.0000000000001` in binary and is read back as `1e3`); a value read from text has at most
/// fifteen significant digits, so its shortest decimal form (`{:e}`) gives back the digits that
/// were written. The product of the two digit strings is exact in `u128` and is rounded once
/// by the standard library's correctly rounding parser. A value or factor outside these forms
/// (more digits, not finite) is multiplied in binary.
fn scale_decimal(value: f64, factor: f64) -> f64 {
    /// Digits and power of ten of `x`'s shortest decimal form, or of `x` rounded to
    /// `significant` digits.
    fn decimal(x: f64, significant: Option<usize>) -> Option<(u128, i32)> {
        let text = match significant {
            Some(digits) => format!("{:.*e}", digits - 1, x.abs()),
            None => format!("{:e}", x.abs()),
        };
        let (mantissa, exponent) = text.split_once('e')?;
        let mut exponent: i32 = exponent.parse().ok()?;
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let frac = frac.trim_end_matches('0');
        exponent -= i32::try_from(frac.len()).ok()?;
        let digits: u128 = format!("{int}{frac}").parse().ok()?;
        (digits < 10u128.pow(17)).then_some((digits, exponent))
    }
    let exact = || {
        if !value.is_finite() || !factor.is_finite() {
            return None;
        }
        let (v, ve) = decimal(value, None)?;
        let (f, fe) = decimal(factor, Some(12))?;
        let sign = if (value < 0.0) == (factor < 0.0) { "" } else { "-" };
        format!("{sign}{}e{}", v * f, ve + fe).parse::<f64>().ok()
    };
    exact().unwrap_or(value * factor)
}

/// Normalized units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Unit {
    /// Litres.
    #[serde(rename = "L")]
    Litre,
    /// Grams.
    #[serde(rename = "g")]
    Gram,
    /// Moles.
    #[serde(rename = "mol")]
    Mole,
    /// Molar concentration, mol/L.
    #[serde(rename = "mol/L")]
    Molar,
    /// Mass concentration, g/L.
    #[serde(rename = "g/L")]
    GramPerLitre,
    /// Percent (w/v, v/v or unspecified).
    #[serde(rename = "%")]
    Percent,
    /// Normality (equivalents per litre).
    #[serde(rename = "N")]
    Normal,
    /// Fold (e.g. `10x` buffer, `1:100` dilutions are not converted).
    #[serde(rename = "x")]
    Fold,
    /// Enzyme units.
    #[serde(rename = "U")]
    EnzymeUnit,
    /// Enzyme units per litre.
    #[serde(rename = "U/L")]
    EnzymeUnitPerLitre,
    /// Revolutions per minute.
    #[serde(rename = "rpm")]
    Rpm,
    /// Relative centrifugal force, multiples of g.
    #[serde(rename = "x g")]
    TimesG,
    /// A count (cells, drops, pieces …) or a number without a unit.
    #[serde(rename = "count")]
    Count,
    /// Counted things per litre: a cell density or titre (`1 x 10^6 cells/mL`, `5 CFU/µl`,
    /// `10^8 particles ml-1`, `2 x 10^5/ml`). New in `ProtocolSpec` version 2.
    #[serde(rename = "count/L")]
    CountPerLitre,
    /// A two-part ratio `a:b` or fraction `a/b` as the number a / b, as written: a `1:100`
    /// dilution is 0.01 (whether the writer meant 1 part in 100 or 1 part to 100 is not
    /// guessed), `24:1` is 24. Ratios of three or more parts (`25:24:1`) are not read. New in
    /// `ProtocolSpec` version 2.
    #[serde(rename = "ratio")]
    Ratio,
    /// Volumes relative to the sample's or solution's own (`3 volumes of ethanol`, `1/10
    /// volume`, `an equal volume` = 1). New in `ProtocolSpec` version 2.
    #[serde(rename = "volumes")]
    RelativeVolume,
}

/// A value with a normalized unit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quantity {
    /// The value (range) in `unit`.
    #[serde(flatten)]
    pub value: Range,
    /// The unit.
    pub unit: Unit,
}

/// Number words that protocols spell out ("one hour", "thirty minutes", "two drops").
fn number_word(w: &str) -> Option<f64> {
    Some(match w {
        "one" => 1.0,
        "two" => 2.0,
        "three" => 3.0,
        "four" => 4.0,
        "five" => 5.0,
        "six" => 6.0,
        "seven" => 7.0,
        "eight" => 8.0,
        "nine" => 9.0,
        "ten" => 10.0,
        "eleven" => 11.0,
        "twelve" => 12.0,
        "fifteen" => 15.0,
        "twenty" => 20.0,
        "thirty" => 30.0,
        "forty" => 40.0,
        "fifty" => 50.0,
        "sixty" => 60.0,
        "ninety" => 90.0,
        _ => return None,
    })
}

/// A number written in digits or as a word. "13,000" is thirteen thousand; "1,5" (decimal
/// comma) is read as 1.5; with a decimal point, commas can only separate thousands
/// ("184,678.5").
fn number(w: &str) -> Option<f64> {
    if w.starts_with(|c: char| c.is_ascii_digit()) {
        let int = w.split('.').next().unwrap_or_default();
        let thousands = int.split(',').skip(1).all(|g| g.len() == 3);
        let w = if thousands {
            w.replace(',', "")
        } else if w.contains('.') {
            return None;
        } else {
            w.replace(',', ".")
        };
        w.parse().ok()
    } else {
        number_word(w)
    }
}

fn normalized_words(toks: &[crate::tokenize::Token]) -> Vec<String> {
    toks.iter().map(|t| crate::tagger::normalize(&t.text)).collect()
}

/// Dashes that join the ends of a range (`5-10`, `5–10`, `500‐1,000`, a soft hyphen pasted as
/// one in `25\u{ad}50uL`) or a number to its unit (`2-ml`).
const DASHES: [char; 7] = ['-', '–', '—', '‐', '‑', '−', '\u{ad}'];

/// Whether the token `w` is one of [`DASHES`].
fn is_dash(w: &str) -> bool {
    let mut chars = w.chars();
    chars.next().is_some_and(|c| DASHES.contains(&c)) && chars.next().is_none()
}

/// A number (or range) and the unit text after it.
struct Pair {
    range: Range,
    unit: String,
    /// Joined to the previous pair by a dash or `to`: the two ends of a range whose ends
    /// carry units (`400 µl – 1 ml`).
    joined: bool,
    /// After `or`, `and` or a comma: the next in a list of values (`15 or 50 ml`).
    listed: bool,
    /// After `or`: an alternative to the value before, never a part of it (`5 min or 10 min`
    /// is not 15 minutes, where `2 h and 30 min` is 2.5 hours).
    alternative: bool,
}

impl Pair {
    /// Whether this value goes on from the one before it, as the far end of a range or the
    /// next in a list: the two are then read as one range.
    fn continues(&self) -> bool {
        self.joined || self.listed
    }
}

/// The number (range) and unit pairs found in an entity, in order. Qualifiers such as `~`,
/// `approx.`, `≥` are skipped; ranges are `a-b`, `a–b`, `a to b`; a unit with a negative
/// exponent or `per` becomes a quotient (`mol l-1` and `mol per l` → `mol/l`).
fn pairs(text: &str) -> Vec<Pair> {
    let toks = tokenize(text);
    pairs_in(&toks, &normalized_words(&toks))
}

/// [`pairs`] of a text already tokenized (`words` are the tokens normalized).
fn pairs_in(toks: &[crate::tokenize::Token], words: &[String]) -> Vec<Pair> {
    let glued = |a: usize, b: usize| toks[a].end == toks[b].start;
    let mut out: Vec<Pair> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        // Digits glued to one or two letters belong to a name (`F1s`, `BL21`, `H2O`, `OD600`),
        // except in `pH7.4` and `5x10` (`1e6` is read whole by `power_of_ten`; `E6`, whose
        // number was cut off, is no value); after a unit or a longer word they are a value
        // that lost its space in a table (`µl0.2`, `rUTP1ul`).
        let prefix = i.checked_sub(1).filter(|&p| glued(p, i)).map(|p| words[p].as_str());
        if prefix.is_some_and(|w| {
            (1..=2).contains(&w.chars().count())
                && w.chars().all(char::is_alphabetic)
                && !matches!(w, "ph" | "x" | "×")
                && !is_unit(w)
        }) {
            i += 1;
            continue;
        }
        // "E+07 particles": an exponent whose number was cut off is not a value.
        let sign =
            i.checked_sub(1).filter(|&p| glued(p, i) && (words[p] == "+" || is_dash(&words[p])));
        if sign.is_some_and(|p| p > 0 && glued(p - 1, p) && words[p - 1] == "e") {
            i += 1;
            continue;
        }
        let Some(mut v) = number(&words[i]) else {
            i += 1;
            continue;
        };
        let start = i;
        // ".1 N": a decimal written without its leading zero.
        if i > 0
            && words[i - 1] == "."
            && glued(i - 1, i)
            && !(i > 1
                && glued(i - 2, i - 1)
                && words[i - 2].ends_with(|c: char| c.is_ascii_digit()))
            && let Ok(decimal) = format!("0.{}", words[i]).parse::<f64>()
        {
            v = decimal;
        }
        let joined =
            !out.is_empty() && i > 0 && words.get(i - 1).is_some_and(|w| is_dash(w) || w == "to");
        let listed = !out.is_empty()
            && i > 0
            && words.get(i - 1).is_some_and(|w| matches!(w.as_str(), "or" | "and" | ","));
        let alternative = listed && words[i - 1] == "or";
        i += 1;
        // "one half", "one-third": a spelled-out fraction.
        if number_word(&words[i - 1]).is_some() {
            let at = i + usize::from(words.get(i).is_some_and(|w| is_dash(w)));
            let denominator = match words.get(at).map(String::as_str) {
                Some("half" | "halves") => Some(2.0),
                Some("third" | "thirds") => Some(3.0),
                Some("quarter" | "quarters") => Some(4.0),
                _ => None,
            };
            if let Some(d) = denominator {
                v /= d;
                i = at + 1;
            }
        }
        // Fractions (1/2) and decimals split by a space-less dot are already joined.
        if words.get(i).is_some_and(|w| w == "/")
            && let Some(d) = words.get(i + 1).and_then(|w| number(w))
            && d != 0.0
            && words.get(i + 2).is_none_or(|w| number(w).is_none())
        {
            v /= d;
            i += 2;
        }
        let mut r = Range::point(v);
        let dash = words.get(i).is_some_and(|w| is_dash(w) || matches!(w.as_str(), "to" | "~"));
        if dash && let Some(hi) = words.get(i + 1).and_then(|w| number(w)) {
            r = Range { min: v.min(hi), max: v.max(hi) };
            i += 2;
        }
        let written = start..i;
        let power = power_of_ten(words, toks, i).or_else(|| {
            // "1 million cells", "2.5 thousand".
            let power = match words.get(i).map(String::as_str) {
                Some("thousand") => 3,
                Some("million" | "millions") => 6,
                Some("billion" | "billions") => 9,
                _ => return None,
            };
            Some((power, 1))
        });
        if let Some((power, len)) = power {
            r = r.scale(10f64.powi(power));
            i += len;
        }
        // "2-ml", "3-6+ hours": a hyphen or an open-ended `+` between the number and its unit.
        if words.get(i).is_some_and(|w| is_dash(w) || w == "+")
            && words.get(i + 1).is_some_and(|w| w.starts_with(char::is_alphabetic))
        {
            i += 1;
        }
        let mut parts: Vec<String> = Vec::new();
        let mut unit_len = 0;
        while let Some(w) = words.get(i) {
            // "l-1", "ml−1": a negative exponent makes the last part a denominator.
            if is_dash(w) && words.get(i + 1).is_some_and(|e| e == "1") {
                if parts.len() > 1
                    && let Some(last) = parts.last_mut()
                {
                    last.insert(0, '/');
                    i += 2;
                    continue;
                }
                break;
            }
            if number(w).is_some() {
                break;
            }
            if matches!(
                w.as_str(),
                "," | ";" | "(" | ")" | "." | "and" | "or" | "+" | "at" | "of" | "for"
            ) {
                break;
            }
            // "5 additional minutes", "10 more min", "350* µL" (a footnote mark): the unit
            // follows.
            if parts.is_empty()
                && matches!(w.as_str(), "additional" | "more" | "further" | "extra" | "*")
            {
                i += 1;
                continue;
            }
            let part = if w == "per" { "/".to_owned() } else { w.clone() };
            unit_len += part.len();
            parts.push(part);
            i += 1;
            if unit_len > 24 {
                break;
            }
        }
        let unit = unit_of(&parts);
        // Cheapest test first: almost no value is written `10` + digits.
        if power.is_none()
            && let Some(powers) = lost_superscripts(&words[written], r)
            && parse_concentration_unit(&unit).is_some_and(|(u, _)| u == Unit::CountPerLitre)
        {
            r = powers;
        }
        out.push(Pair { range: r, unit, joined, listed, alternative });
    }
    out
}

/// `106 cells/ml`, `109-1010 /ml`: a count per volume written as 10 followed by the digits of
/// a power from 2 to 12 is that power of ten whose superscript lost its place (every such
/// count per volume in the WLP corpus is one: `105 spores per ml-1`, `102 per ml (10-3
/// dilution)`); `100 cells/ml` and `1013 cells/ml` are read as written. `number` is the word
/// or the `a - b` words of the value, `read` what they were read as (a decimal `.105` is not
/// a power).
fn lost_superscripts(number: &[String], read: Range) -> Option<Range> {
    let power = |w: &str, read: f64| {
        let n: i32 = w.strip_prefix("10").filter(|d| (1..=2).contains(&d.len()))?.parse().ok()?;
        (w.parse() == Ok(read) && (2..=12).contains(&n)).then(|| 10f64.powi(n))
    };
    match number {
        [one] => power(one, read.min).map(Range::point),
        [a, _, b] => Some(Range { min: power(a, read.min)?, max: power(b, read.max)? }),
        _ => None,
    }
}

/// A power of ten that multiplies the number before `words[i]`, and how many words spell it:
/// `x 10^6`, `× 10^-3`, `* 10⁶`, `× 10⁻³`, `x 10 6`, `1e6` and `1E+06` (tokenized `e 6`,
/// `e + 06`), and `x 105` or `x 1011`, where a copied superscript lost its place (from the
/// third power up, so that `50 µl x 100` stays a count of wells).
fn power_of_ten(
    words: &[String],
    toks: &[crate::tokenize::Token],
    i: usize,
) -> Option<(i32, usize)> {
    let small = |w: &str| w.parse::<i32>().ok().filter(|n| (0..=30).contains(n));
    let word = |k: usize| words.get(i + k).map_or("", String::as_str);
    let glued =
        |k: usize| i + k > 0 && toks.get(i + k).is_some_and(|t| toks[i + k - 1].end == t.start);
    // `5.0 E7 cells/ml`: a capital E set apart from the number is an exponent too.
    let spaced = toks.get(i).is_some_and(|t| t.text == "E");
    if word(0) == "e" && (glued(0) || spaced) && glued(1) {
        let negative = is_dash(word(1));
        let sign = usize::from(negative || word(1) == "+");
        let n = small(word(1 + sign)).filter(|_| sign == 0 || glued(2))?;
        return Some((if negative { -n } else { n }, 2 + sign));
    }
    if !matches!(word(0), "x" | "×" | "*") {
        return None;
    }
    if let Some(n) = word(1).strip_prefix("10").filter(|d| (1..=2).contains(&d.len())) {
        return small(n).filter(|&n| n >= 3).map(|n| (n, 2));
    }
    if word(1) != "10" {
        return None;
    }
    let superscript = |w: &str| -> Option<i32> {
        let n = w.chars().try_fold(0i32, |n, c| {
            let d = "⁰¹²³⁴⁵⁶⁷⁸⁹".chars().position(|s| s == c)?;
            Some(n * 10 + i32::try_from(d).ok()?)
        })?;
        (!w.is_empty() && n <= 30).then_some(n)
    };
    // The tokenizer gives the superscript minus a token of its own: `10 ⁻ ³`.
    if word(2) == "⁻" {
        return superscript(word(3)).map(|n| (-n, 4));
    }
    if let Some(n) = superscript(word(2)) {
        return Some((n, 3));
    }
    let at = if word(2) == "^" { 3 } else { 2 };
    let negative = is_dash(word(at));
    let n = small(word(at + usize::from(negative)))?;
    Some((if negative { -n } else { n }, at + 1 + usize::from(negative)))
}

/// The unit spelled by the words after a number: all of them (`x g`, `mg / ml`, `mol/l`), or,
/// when they do not spell a unit, the longest leading run that does, so a span that runs on
/// past its unit (`5 ml tube`, `10 mM solution`, `5 min incubation`) is still read. Words that
/// begin with no unit are kept whole for the callers' own checks (`cells/ml` is not a unit;
/// `rcfmax` is speed).
fn unit_of(parts: &[String]) -> String {
    let spelled = |n: usize| parts[..n].concat().trim_end_matches(DASHES).to_owned();
    let whole = spelled(parts.len());
    if is_unit(&whole) {
        return whole;
    }
    let Some((n, unit)) = (1..parts.len()).rev().map(|n| (n, spelled(n))).find(|(_, u)| is_unit(u))
    else {
        return whole;
    };
    // A word after the unit that is itself a unit of the same kind (`500l ul`) makes the
    // spelling ambiguous: nothing is guessed.
    let class = unit_class(&unit);
    if class.is_some() && parts[n..].iter().any(|w| unit_class(w) == class) { whole } else { unit }
}

/// Whether `u` (normalized, words joined) is a unit one of the readers knows.
fn is_unit(u: &str) -> bool {
    volume_factor(u).is_some()
        || mass_factor(u).is_some()
        || mole_factor(u).is_some()
        || seconds_factor(u).is_some()
        || parse_concentration_unit(u).is_some()
        || unit_class(u).is_some()
        || is_relative_volume(u)
        || matches!(u, "u" | "units" | "unit" | "rmp")
}

/// `3 volumes`, `0.2 vol`: multiples of the sample's own volume.
fn is_relative_volume(u: &str) -> bool {
    matches!(u.trim_end_matches('.'), "volume" | "volumes" | "vol" | "vols")
}

fn volume_factor(u: &str) -> Option<f64> {
    Some(match u {
        "l" | "liter" | "liters" | "litre" | "litres" => 1.0,
        "dl" => 0.1,
        "ml" | "mls" | "milliliter" | "milliliters" | "millilitre" | "millilitres" | "cc" => 1e-3,
        "μl" | "ul" | "microliter" | "microliters" | "microlitre" | "λ" => 1e-6,
        "nl" => 1e-9,
        _ => return None,
    })
}

/// The kinds of unit a normalized token can spell (`"ml"` → `"volume"`, `"m"` →
/// `"molar+time"`), for the tagger's features; `None` for anything else.
pub(crate) fn unit_class(word: &str) -> Option<&'static str> {
    let time = seconds_factor(word).is_some() && !matches!(word, "\"" | "'");
    let temperature = matches!(
        word,
        "°c" | "°" | "c" | "°f" | "oc" | "celsius" | "fahrenheit" | "kelvin" | "degrees" | "degree"
    );
    let speed = matches!(word, "rpm" | "rcf" | "xg" | "×g");
    let class =
        match (volume_factor(word), mass_factor(word), mole_factor(word), molar_factor(word)) {
            (Some(_), ..) => "volume",
            (_, Some(_), ..) if word == "g" => "mass+speed",
            (_, Some(_), ..) => "mass",
            (_, _, Some(_), _) => "mole",
            (.., Some(_)) if time => "molar+time",
            (.., Some(_)) => "molar",
            _ if time => "time",
            _ if temperature => "temperature",
            _ if speed => "speed",
            _ if word == "%" => "percent",
            _ if matches!(word, "x" | "×") => "fold",
            _ => return None,
        };
    Some(class)
}

fn mass_factor(u: &str) -> Option<f64> {
    Some(match u {
        "kg" => 1e3,
        "g" | "gr" | "gram" | "grams" | "gm" => 1.0,
        "mg" | "milligram" | "milligrams" => 1e-3,
        "μg" | "ug" | "mcg" | "microgram" | "micrograms" => 1e-6,
        "ng" | "nanogram" | "nanograms" => 1e-9,
        "pg" => 1e-12,
        _ => return None,
    })
}

fn mole_factor(u: &str) -> Option<f64> {
    Some(match u {
        "mol" | "mole" | "moles" => 1.0,
        "mmol" | "mmole" | "mmoles" | "mmols" => 1e-3,
        "μmol" | "umol" | "μmole" | "μmoles" | "μmols" | "umoles" => 1e-6,
        "nmol" | "nmole" | "nmoles" | "nmols" => 1e-9,
        "pmol" | "pmole" | "pmoles" | "pmols" => 1e-12,
        _ => return None,
    })
}

fn molar_factor(u: &str) -> Option<f64> {
    Some(match u {
        "m" | "molar" | "mol/l" => 1.0,
        "mm" | "mmol/l" | "millimolar" => 1e-3,
        "μm" | "um" | "μmol/l" | "micromolar" => 1e-6,
        "nm" | "nmol/l" | "nanomolar" => 1e-9,
        "pm" => 1e-12,
        _ => return None,
    })
}

/// An amount (volume, mass, moles, enzyme units or a count).
#[must_use]
pub fn parse_amount(text: &str) -> Option<Quantity> {
    read_amount(text).filter(|q| q.value.is_valid())
}

fn read_amount(text: &str) -> Option<Quantity> {
    // `107 mL–1`: per millilitre with nothing said to be counted is no volume (and no count per
    // volume either, see `parse_concentration`).
    let toks = tokenize(text);
    let words = normalized_words(&toks);
    let inverse = |i: usize| {
        let glued = toks[i + 1].end == toks[i + 2].start && toks[i + 2].end == toks[i + 3].start;
        number(&words[i]).is_some()
            && volume_factor(&words[i + 1]).is_some()
            && is_dash(&words[i + 2])
            && words[i + 3] == "1"
            && glued
    };
    if (0..words.len().saturating_sub(3)).any(inverse) {
        return None;
    }
    let mut found = pairs_in(&toks, &words);
    // "an equal volume" of the sample: one volume.
    if found.is_empty() {
        let lower = crate::tagger::normalize(text);
        let words: Vec<&str> = lower.split_whitespace().collect();
        if let ["equal", "volume" | "volumes"] | ["an", "equal", "volume"] = words[..] {
            return Some(Quantity { value: Range::point(1.0), unit: Unit::RelativeVolume });
        }
    }
    lend_unit_to_bare_numbers(&mut found);
    let molar = written_molar(&toks, &words);
    let amount_of = |pair: &Pair| amount_of(pair, molar);
    // "3 × 50 µL", "8x1500 µL": repetitions of an amount read as the amount, as "3x5 minutes"
    // is read as 5 minutes.
    if found.len() > 1
        && matches!(found[0].unit.as_str(), "x" | "×")
        && amount_of(&found[1]).is_some_and(|q| q.unit != Unit::Count)
    {
        found.remove(0);
        found[0].joined = false;
    }
    let first = found.first()?;
    let first = match amount_of(first) {
        // "10 bed volumes", "2X volumes", "1/10 of a volume": multiples of a volume the
        // protocol names.
        q if q.is_none_or(|q| q.unit == Unit::Count) && names_relative_volume(&words) => {
            Quantity { value: first.range, unit: Unit::RelativeVolume }
        }
        q => q?,
    };
    Some(match found.get(1).filter(|p| p.continues()).and_then(amount_of) {
        // "400 µl – 1 ml", "1 pg–100 ng": a range whose ends carry units; "400 µL and 500 µL"
        // a list of them, read as one range as `15 or 50 ml` is.
        Some(second) if second.unit == first.unit && first.unit != Unit::Count => {
            span(first, second)
        }
        _ => first,
    })
}

/// Whether a molar unit among the tokens is written as one (`50 mM`, `100 μM`, `mmol/L`):
/// amounts are also written in lengths (`0.45 µm` filters, `25 mm` dishes), which lower-case
/// alone cannot tell from concentrations. `words` are the tokens normalized.
fn written_molar(toks: &[crate::tokenize::Token], words: &[String]) -> bool {
    toks.iter()
        .zip(words)
        .any(|(t, w)| molar_factor(w).is_some() && (t.text.ends_with('M') || t.text.contains('/')))
}

/// `10 bed volumes`, `2X volumes`, `1/10th volume`, `1/10 of a volume`, `1/100th the
/// original volume`: the entity ends in a volume word and what lies between its last number
/// and that word names no unit. `words` are the entity's normalized tokens.
fn names_relative_volume(words: &[String]) -> bool {
    let Some((last, before)) = words.split_last() else {
        return false;
    };
    let after_number = before.iter().rposition(|w| number(w).is_some()).map_or(0, |i| i + 1);
    is_relative_volume(last)
        && before[after_number..].iter().all(|w| {
            matches!(w.as_str(), "x" | "×")
                || is_dash(w)
                || (w.chars().all(char::is_alphabetic) && !is_unit(w))
        })
}

/// The range from `a` to `b` (same unit).
fn span(a: Quantity, b: Quantity) -> Quantity {
    Quantity { value: a.value.hull(b.value), unit: a.unit }
}

/// `15 or 50 ml`, `between 175 and 200 ml`, `1.5 and 5 mM`: bare numbers listed before the
/// first number with a unit take that unit, and the lot is read as one range, as `5 or 10 min`
/// is (`37.51 (3 µg/mL)` lists nothing).
fn lend_unit_to_bare_numbers(found: &mut Vec<Pair>) {
    let bare = found.iter().take_while(|p| p.unit.is_empty()).count();
    if bare == 0 || bare >= found.len() || !found[1..=bare].iter().all(Pair::continues) {
        return;
    }
    let value = found[..=bare].iter().fold(found[bare].range, |r, p| r.hull(p.range));
    found.drain(..bare);
    found[0].range = value;
    found[0].joined = false;
}

/// The amount a pair spells, or `None` when its unit is of another kind that no amount has
/// (`5 minutes`, `0.45 µm`, `2 µCi`, `3 kb`, a unit cut short as in `50 µ`: words of two
/// letters or with a micro sign are units nobody reads here). Concentrations
/// are read as written (`20%`, `50 mM` when `molar` says the M is a capital); a word that is
/// no unit is what is counted (`2 drops`, `1 colony`).
fn amount_of(pair: &Pair, molar: bool) -> Option<Quantity> {
    let (r, u) = (pair.range, pair.unit.as_str());
    if let Some(q) = parse_concentration_unit(u).filter(|_| u.contains('/')) {
        return Some(Quantity { value: r.scale(q.1), unit: q.0 });
    }
    // "200 μl/well", "5 mg per lane": the amount is the numerator.
    let u = u.split('/').next().unwrap_or_default();
    let (unit, f) = if let Some(f) = volume_factor(u) {
        (Unit::Litre, f)
    } else if is_relative_volume(u) {
        (Unit::RelativeVolume, 1.0)
    } else if let Some(f) = mass_factor(u) {
        (Unit::Gram, f)
    } else if let Some(f) = mole_factor(u) {
        (Unit::Mole, f)
    } else if matches!(u, "u" | "units" | "unit") {
        (Unit::EnzymeUnit, 1.0)
    } else if u.is_empty() {
        (Unit::Count, 1.0)
    } else if let Some((unit, f)) = parse_concentration_unit(u) {
        match unit {
            Unit::Molar if !molar => return None,
            // `x` after an amount is as often "times" or a variable (`10-X μl`) as a fold.
            Unit::Fold if u != "fold" => return None,
            _ => (unit, f),
        }
    } else if is_unit(u)
        || !u.chars().all(char::is_alphabetic)
        || u.chars().count() <= 2
        || u.contains(['µ', 'μ'])
    {
        return None;
    } else {
        (Unit::Count, 1.0)
    };
    Some(Quantity { value: r.scale(f), unit })
}

fn parse_concentration_unit(u: &str) -> Option<(Unit, f64)> {
    let u = u.trim_end_matches(['.', '/']);
    if let Some(f) = molar_factor(u) {
        return Some((Unit::Molar, f));
    }
    if u.starts_with('%') {
        return Some((Unit::Percent, 1.0));
    }
    if matches!(u, "n" | "normal") {
        return Some((Unit::Normal, 1.0));
    }
    if matches!(u, "x" | "×" | "X" | "fold") {
        return Some((Unit::Fold, 1.0));
    }
    if let Some((num, den)) = u.split_once('/') {
        // "spores per ml-1" is joined `spores//ml`.
        let den_f = volume_factor(den.trim_start_matches('/'))?;
        if let Some(f) = mass_factor(num) {
            return Some((Unit::GramPerLitre, f / den_f));
        }
        if let Some(f) = mole_factor(num) {
            return Some((Unit::Molar, f / den_f));
        }
        if matches!(num, "u" | "units" | "unit") {
            return Some((Unit::EnzymeUnitPerLitre, 1.0 / den_f));
        }
        // "cells/ml", "cfu/µl", "x 10^6/ml": a count per volume when what is counted is a
        // word that is no unit, or left unsaid. Short words ending in `u` are units of
        // activity (`IU`, `SU`) or arbitrary units (`AU`), except the forming units, which
        // count (`CFU`, `PFU`, `FFU`).
        let activity = num.len() <= 3 && num.ends_with('u') && !num.ends_with("fu");
        if num.is_empty() || (num.chars().all(char::is_alphabetic) && !is_unit(num) && !activity) {
            return Some((Unit::CountPerLitre, 1.0 / den_f));
        }
    }
    None
}

/// A concentration: molar, mass per volume, percent, normality or fold.
#[must_use]
pub fn parse_concentration(text: &str) -> Option<Quantity> {
    read_concentration(text).filter(|q| q.value.is_valid())
}

fn read_concentration(text: &str) -> Option<Quantity> {
    read_units_concentration(text)
        .or_else(|| ratio(text).map(|value| Quantity { value, unit: Unit::Ratio }))
        .or_else(|| decimal_dilutions(text).map(|value| Quantity { value, unit: Unit::Ratio }))
        .or_else(|| per_measured_volume(text))
        // "0.5 pmol", "200 μl/well", "10u": an amount tagged as a concentration is read as the
        // amount it is; a bare number is no concentration, and neither is a quotient over a
        // number (`1U/20`) or a volume (`10 µl/ml`) that the readers above refused.
        .or_else(|| {
            read_amount(text).filter(|q| q.unit != Unit::Count && !per_number_or_volume(text))
        })
}

/// Whether `text` divides by a number or a volume: `1U/20`, `10 µl/ml`, `5 per ml`, `5 ml-1`.
fn per_number_or_volume(text: &str) -> bool {
    let words = normalized_words(&tokenize(text));
    words.iter().enumerate().any(|(i, w)| {
        let next = words.get(i + 1).map_or("", String::as_str);
        if w == "/" || w == "per" {
            next.starts_with(|c: char| c.is_ascii_digit()) || volume_factor(next).is_some()
        } else {
            is_dash(w) && next == "1" && i > 0 && volume_factor(&words[i - 1]).is_some()
        }
    })
}

/// `0.5 g / 100 ml`, `7.5g/500mL`: a mass or amount of substance over a measured volume, read
/// as g/L or mol/L.
fn per_measured_volume(text: &str) -> Option<Quantity> {
    let (num, den) = text.split_once('/')?;
    let ([top], [bottom]) = (&pairs(num)[..], &pairs(den)[..]) else {
        return None;
    };
    let litres = volume_factor(&bottom.unit)? * bottom.range.min;
    if bottom.range.min != bottom.range.max || litres <= 0.0 {
        return None;
    }
    let (unit, f) = if let Some(f) = mass_factor(&top.unit) {
        (Unit::GramPerLitre, f)
    } else {
        (Unit::Molar, mole_factor(&top.unit)?)
    };
    Some(Quantity { value: top.range.map(|v| v * f / litres), unit })
}

/// `10-2`, `10-1 to 10-3`, `10-2, 10-3, 10-4`: decimal dilutions whose superscript minus lost
/// its place (a range is never written from 10 down to a smaller number), read as the ratios
/// 10⁻ⁿ they are, as `1:100` is 0.01.
fn decimal_dilutions(text: &str) -> Option<Range> {
    let words = normalized_words(&tokenize(text));
    let mut found: Option<Range> = None;
    let mut i = 0;
    while i < words.len() {
        let exponent = (words[i] == "10" && words.get(i + 1).is_some_and(|w| is_dash(w)))
            .then(|| words.get(i + 2)?.parse::<i32>().ok().filter(|n| (1..10).contains(n)))
            .flatten();
        match exponent {
            Some(n) => {
                let r = Range::point(10f64.powi(-n));
                found = Some(found.map_or(r, |f| f.hull(r)));
                i += 3;
            }
            None if matches!(words[i].as_str(), "," | "and" | "or" | "to") => i += 1,
            None => return None,
        }
    }
    found
}

/// A two-part ratio or fraction starting at the text's first number (`1:100`, `24:1`,
/// `1:10,000`, `1:5-1:10`, `1:50 or 1:100`, `1/500 – 1/2000`, `1:50 dilution`), as a / b;
/// `None` when the first number starts no ratio, for three parts (`25:24:1`) and for a zero
/// denominator.
fn ratio(text: &str) -> Option<Range> {
    let words = normalized_words(&tokenize(text));
    let word = |k: usize| words.get(k).map_or("", String::as_str);
    let at = |k: usize| -> Option<f64> {
        let (a, b) = (number(word(k))?, number(word(k + 2))?);
        let separator = word(k + 1);
        let three_parts = separator == ":" && word(k + 3) == ":";
        ((separator == ":" || separator == "/") && b != 0.0 && !three_parts).then(|| a / b)
    };
    let first = words.iter().position(|w| number(w).is_some())?;
    let lo = at(first)?;
    let next = first + 3;
    let hi =
        (is_dash(word(next)) || matches!(word(next), "to" | "or")).then(|| at(next + 1)).flatten();
    let hi = hi.unwrap_or(lo);
    Some(Range { min: lo.min(hi), max: lo.max(hi) })
}

fn read_units_concentration(text: &str) -> Option<Quantity> {
    let mut found = pairs(text);
    if found.get(1).is_none_or(|p| !p.joined) {
        lend_unit_to_bare_numbers(&mut found);
    }
    let concentration = |p: &Pair| {
        parse_concentration_unit(&p.unit)
            .map(|(unit, f)| Quantity { value: p.range.scale(f), unit })
    };
    let second = found.get(1).filter(|p| p.continues());
    // "7x105 – 2x107 cells/mL": the first end of a range gets the second end's unit.
    let first = match (found.first()?, second) {
        (first, Some(second)) if first.unit.is_empty() => {
            concentration(&Pair { unit: second.unit.clone(), ..*first })?
        }
        (first, _) => concentration(first)?,
    };
    Some(match second.and_then(concentration) {
        Some(second) if second.unit == first.unit => span(first, second),
        _ => first,
    })
}

/// A temperature in °C. Handles `37 °C`, `37C`, `-80`, `98.6 °F`, `277 K`, "room
/// temperature" (20–25 °C), "on ice"/"ice-cold" (0–4 °C), "boiling" (100 °C).
#[must_use]
pub fn parse_temperature(text: &str) -> Option<Range> {
    read_temperature(text).filter(Range::is_valid)
}

/// Rounds a converted temperature to a millionth of a degree, so that decimal inputs give the
/// decimal result (98.6 °F is 37 °C, 252.15 K is −21 °C) rather than one a few ulps off it
/// (`(98.6 - 32) / 1.8` is 36.99999999999999, `252.15 - 273.15` is −20.99999999999997), which
/// could fall on the wrong side of a tier-2 histogram edge.
fn to_micro_degrees(celsius: f64) -> f64 {
    let rounded = (celsius * 1e6).round() / 1e6;
    if rounded.is_finite() { rounded } else { celsius }
}

/// The values of a temperature range or list, each with its own sign: `-20° to -80°`, `+2 to
/// +8 °C`, `-20°C or -80°C`, `30/37C`, `37°C - 56°C`. A minus is a sign when it is glued to its
/// number and not to a number before it (`2-8 °C` is a range). A later number counts only when
/// separated from the one before by `to`, `or`, `and`, `/` or a dash (units in between) and
/// followed by a temperature unit, a separator or the end (`37 °C and 5% CO2` lists one).
fn listed_temperatures(text: &str) -> Vec<f64> {
    let toks = tokenize(text);
    let words = normalized_words(&toks);
    let glued = |a: usize, b: usize| toks[a].end == toks[b].start;
    let word = |k: usize| words.get(k).map_or("", String::as_str);
    let separator = |w: &str| is_dash(w) || matches!(w, "to" | "or" | "and" | "/");
    let unit = |w: &str| {
        let w = w.trim_start_matches(['°', '˚', '⁰', 'º']);
        matches!(w, "" | "c" | "f" | "k" | "oc" | "degrees" | "degree" | "celsius" | "fahrenheit")
    };
    let mut values = Vec::new();
    let mut separated = false;
    for (i, w) in words.iter().enumerate() {
        let Some(v) = number(w) else {
            if values.is_empty() || unit(w) || w == "+" {
                continue;
            }
            if separator(w) {
                separated = true;
                continue;
            }
            break;
        };
        if !values.is_empty() {
            let next = word(i + 1);
            let ends = next.is_empty() || unit(next) || separator(next) || next == ")";
            if !separated || !ends {
                break;
            }
        }
        let minus = i > 0
            && is_dash(&words[i - 1])
            && glued(i - 1, i)
            && !(i > 1 && glued(i - 2, i - 1) && number(&words[i - 2]).is_some());
        values.push(if minus { -v } else { v });
        separated = false;
    }
    values
}

fn read_temperature(text: &str) -> Option<Range> {
    let lower = crate::tagger::normalize(text);
    let negative = lower.trim_start().starts_with(['-', '−', '–']);
    if let Some(Pair { range: r, unit: u, .. }) = pairs(text).into_iter().next() {
        let listed = listed_temperatures(text);
        let r = if listed.len() > 1 {
            listed.iter().fold(Range::point(listed[0]), |r, &v| r.hull(Range::point(v)))
        } else if negative {
            Range { min: -r.max, max: -r.min }
        } else {
            r
        };
        let u =
            u.trim_start_matches("°").trim_start_matches("degrees").trim_start_matches("degree");
        let u = u.trim_start_matches('°');
        return Some(match u {
            "f" | "fahrenheit" => r.map(|f| to_micro_degrees((f - 32.0) * 5.0 / 9.0)),
            "k" | "kelvin" => r.map(|k| to_micro_degrees(k - 273.15)),
            _ => r,
        });
    }
    if lower.contains("room")
        || lower.contains("ambient")
        || lower.split_whitespace().any(|w| w == "rt")
    {
        Some(Range { min: 20.0, max: 25.0 })
    } else if lower.contains("ice") || lower.contains("cold") || lower.contains("chill") {
        Some(Range { min: 0.0, max: 4.0 })
    } else if lower.contains("boil") {
        Some(Range::point(100.0))
    } else if lower.contains("warm") {
        Some(Range { min: 30.0, max: 40.0 })
    } else {
        None
    }
}

fn seconds_factor(u: &str) -> Option<f64> {
    Some(match u.trim_end_matches('.') {
        "s" | "sec" | "secs" | "second" | "seconds" | "\"" | "''" => 1.0,
        "min" | "mins" | "minute" | "minutes" | "m" | "'" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" | "hs" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "wk" | "week" | "weeks" => 604_800.0,
        // Calendar averages: 30.44 and 365.25 days.
        "month" | "months" => 2_629_800.0,
        "yr" | "year" | "years" => 31_557_600.0,
        "ms" => 1e-3,
        _ => return None,
    })
}

/// A duration in seconds. Handles `5 min`, `5-10 min`, `1 h 30 min`, `1.5 hrs`, `30s`,
/// "overnight"/"o/n" (12–16 h).
#[must_use]
pub fn parse_duration(text: &str) -> Option<Range> {
    read_duration(text).filter(Range::is_valid)
}

/// `16S`, `23S`, `70S`: a number glued to a capital S names a sedimentation coefficient in
/// svedbergs (16S rRNA, 70S ribosome), which protocols write beside PCR steps; seconds are
/// written `30 s`, `30s`, `30 sec` (no WLP annotation reads a capital glued S as time).
fn is_svedberg(text: &str) -> bool {
    let t = text.trim();
    t.strip_suffix('S').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `1:30 hours`, `2:15 h`: hours and minutes in clock notation before an hour unit (read
/// as 30 hours before). `0:32 minutes` may be minutes and seconds or hours and minutes and is
/// left to the general reader.
fn hours_and_minutes(text: &str) -> Option<Range> {
    if !text.contains(':') {
        return None;
    }
    let toks = tokenize(text);
    let [hours, colon, minutes, unit, ..] = &toks[..] else {
        return None;
    };
    let glued = hours.end == colon.start && colon.end == minutes.start;
    let hours_unit = matches!(
        crate::tagger::normalize(&unit.text).trim_end_matches('.'),
        "h" | "hr" | "hrs" | "hour" | "hours"
    );
    if !(glued && colon.text == ":" && hours_unit && minutes.text.len() == 2) {
        return None;
    }
    let (h, m): (u32, u32) = (hours.text.parse().ok()?, minutes.text.parse().ok()?);
    (m < 60).then(|| Range::point(f64::from(h) * 3600.0 + f64::from(m) * 60.0))
}

fn read_duration(text: &str) -> Option<Range> {
    if is_svedberg(text) {
        return None;
    }
    if let Some(r) = hours_and_minutes(text) {
        return Some(r);
    }
    let found = pairs(text);
    let mut total: Option<Range> = None;
    let mut pending: Vec<Range> = Vec::new();
    let mut last_factor = f64::INFINITY;
    for Pair { range: r, unit: u, joined, listed, alternative } in found {
        if let Some(f) = seconds_factor(&u) {
            let r = r.scale(f);
            // "1-2 h" already a range; "1 h 30 min" and "2 h and 30 min" add up; "30 min – 1 h"
            // is a range, and so are lists of alternatives: "5 min or 10 min", "5 min and
            // 10 min", "30 s, 1 min" (no unit smaller than the one before, or `or`).
            let alternatives = listed && (alternative || f >= last_factor);
            total = Some(match total {
                None => r,
                Some(t) if joined || alternatives => t.hull(r),
                Some(t) => Range { min: t.min + r.min, max: t.max + r.max },
            });
            last_factor = f;
            // Bare numbers before a unit ("5 or 10 min") take that unit.
            for p in pending.drain(..) {
                let p = p.scale(f);
                total = total.map(|t| t.hull(p));
            }
        } else if u.is_empty() {
            pending.push(r);
        }
    }
    if total.is_some() {
        return total;
    }
    let lower = crate::tagger::normalize(text);
    if lower.contains("overnight") || lower.contains("o/n") || lower.contains("over night") {
        return Some(Range { min: 12.0 * 3600.0, max: 16.0 * 3600.0 });
    }
    // "an hour", "a minute", "hour": one of the unit.
    match lower.split_whitespace().collect::<Vec<_>>()[..] {
        ["a" | "an", unit] | [unit]
            if matches!(unit, "second" | "minute" | "hour" | "day" | "week" | "month" | "year") =>
        {
            seconds_factor(unit).map(Range::point)
        }
        _ => None,
    }
}

/// A centrifuge or shaker speed: `13,000 rpm`, `12000 x g`, `5000g`, `500 rcf`.
#[must_use]
pub fn parse_speed(text: &str) -> Option<Quantity> {
    read_speed(text).filter(|q| q.value.is_valid())
}

/// `11 000×g`, `3 200g`: digit groups of three after a space (the SI thousands separator,
/// also thin or no-break) joined to the number before them. Only speeds are read this way:
/// they run to tens of thousands, where `2 100 µl` more likely counts two tubes of 100 µl.
fn join_digit_groups(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let digit = |c: &&char| c.is_ascii_digit();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        let separator = matches!(c, ' ' | '\u{2009}' | '\u{a0}' | '\u{202f}')
            && (1..=3).contains(&chars[..i].iter().rev().take_while(digit).count())
            && chars[i + 1..].iter().take_while(digit).count() == 3
            && !chars.get(i + 4).is_some_and(|&n| n == '.' || n == ',');
        if !separator {
            out.push(c);
        }
    }
    out
}

fn read_speed(text: &str) -> Option<Quantity> {
    let text = &join_digit_groups(text);
    let found = pairs(text);
    let lower = crate::tagger::normalize(text);
    // `context`: the unit may also be read off the whole entity (`13,000 x g`, where the pair's
    // unit is `x`).
    let speed = |Pair { range: r, unit: u, .. }: &Pair, context: &str| {
        // "12 K rpm", "~14K RCF", "10 k g": a kilo before the unit is thousands (no speed unit
        // starts with k).
        let (r, u) = match u.strip_prefix('k') {
            Some(rest) if !rest.is_empty() => (r.scale(1e3), rest),
            _ => (*r, u.as_str()),
        };
        // "rmp" is a frequent misspelling of rpm.
        let unit = if u.contains("rpm") || context.contains("rpm") || u == "rmp" {
            Unit::Rpm
        } else if u.ends_with('g')
            || u.contains("rcf")
            || context.contains("× g")
            || context.contains("x g")
        {
            Unit::TimesG
        } else {
            return None;
        };
        Some(Quantity { value: r, unit })
    };
    let first = speed(found.first()?, &lower)?;
    // "3,000 rpm – 5,000 rpm", "3000 rpm or 5000 rpm": a range or list whose values carry
    // units (the second end is read only when its own unit is a speed's).
    let second = found
        .get(1)
        .filter(|p| p.continues())
        .and_then(|p| speed(p, ""))
        .filter(|q| q.unit == first.unit);
    Some(second.map_or(first, |second| span(first, second)))
}

/// A pH value or range (`pH 7.4`, `7.5-8.0`), refused outside 0–14.
#[must_use]
pub fn parse_ph(text: &str) -> Option<Range> {
    read_ph(text).filter(Range::is_valid)
}

fn read_ph(text: &str) -> Option<Range> {
    let r = pairs(text).into_iter().next()?.range;
    (r.min >= 0.0 && r.max <= 14.0).then_some(r)
}

/// What a numeric entity was read as, by entity type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reading {
    /// An `Amount` ([`parse_amount`]).
    Amount(Quantity),
    /// A `Concentration` ([`parse_concentration`]).
    Concentration(Quantity),
    /// A `Temperature` in °C ([`parse_temperature`]).
    Temperature(Range),
    /// A `Time` in seconds ([`parse_duration`]).
    Duration(Range),
    /// A `Speed` ([`parse_speed`]).
    Speed(Quantity),
    /// A `pH` ([`parse_ph`]).
    Ph(Range),
}

impl Reading {
    /// The value range, in the reading's unit.
    #[must_use]
    pub fn range(&self) -> Range {
        match *self {
            Self::Amount(q) | Self::Concentration(q) | Self::Speed(q) => q.value,
            Self::Temperature(r) | Self::Duration(r) | Self::Ph(r) => r,
        }
    }

    /// Whether a unit was recognized: false only for an amount read as a bare count.
    #[must_use]
    pub fn has_unit(&self) -> bool {
        !matches!(self, Self::Amount(q) if q.unit == Unit::Count)
    }
}

/// Reads the text of an entity of a numeric type (`Amount`, `Concentration`, `Temperature`,
/// `Time`, `Speed`, `pH`: the WLP annotation names) with that type's parser; `None` for other
/// types and for text the parser cannot read.
#[must_use]
pub fn read_entity(kind: &str, text: &str) -> Option<Reading> {
    match kind {
        "Amount" => parse_amount(text).map(Reading::Amount),
        "Concentration" => parse_concentration(text).map(Reading::Concentration),
        "Temperature" => parse_temperature(text).map(Reading::Temperature),
        "Time" => parse_duration(text).map(Reading::Duration),
        "Speed" => parse_speed(text).map(Reading::Speed),
        "pH" => parse_ph(text).map(Reading::Ph),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::float_cmp, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn unit_classes_name_every_spelling_the_parsers_know() {
        let cases = [
            ("litre", Some("volume")),
            ("μl", Some("volume")),
            ("gm", Some("mass")),
            ("g", Some("mass+speed")),
            ("pmol", Some("mole")),
            ("mm", Some("molar")),
            ("m", Some("molar+time")),
            ("hrs", Some("time")),
            ("oc", Some("temperature")),
            ("rpm", Some("speed")),
            ("%", Some("percent")),
            ("×", Some("fold")),
            ("water", None),
            ("\"", None),
        ];
        for (word, class) in cases {
            assert_eq!(unit_class(word), class, "{word}");
        }
    }

    fn close(a: Range, min: f64, max: f64) -> bool {
        (a.min - min).abs() <= 1e-9 * min.abs().max(1.0)
            && (a.max - max).abs() <= 1e-9 * max.abs().max(1.0)
    }

    #[test]
    fn decimal_prefixes_give_the_nearest_double() {
        // Multiplying by 1e-6 would give 9.999999999999999e-6 and 2.4999999999999998e-5.
        for (text, litres) in [("10 µl", 1e-5), ("100 μl", 1e-4), ("25 ul", 2.5e-5)] {
            assert_eq!(parse_amount(text).unwrap().value, Range::point(litres), "{text}");
        }
        assert_eq!(parse_amount("550 µl").unwrap().value, Range::point(5.5e-4));
        assert_eq!(parse_concentration("10 µM").unwrap().value, Range::point(1e-5));
        assert_eq!(parse_concentration("20 mg/ml").unwrap().value, Range::point(20.0));
        assert_eq!(parse_concentration("5 μg/ml").unwrap().value, Range::point(5e-3));
        assert_eq!(parse_concentration("2 mg/µl").unwrap().value, Range::point(2000.0));
        assert_eq!(parse_duration("300 ms").unwrap(), Range::point(0.3));
        assert_eq!(parse_duration("1.5 min").unwrap(), Range::point(90.0));
        assert_eq!(parse_temperature("98.6 °F").unwrap(), Range::point(37.0));
        assert_eq!(parse_temperature("252.15 K").unwrap(), Range::point(-21.0));
        assert_eq!(parse_temperature("293.15 K").unwrap(), Range::point(20.0));
    }

    #[test]
    fn amounts_and_concentrations() {
        let a = parse_amount("35 ml").unwrap();
        assert!(a.unit == Unit::Litre && close(a.value, 0.035, 0.035));
        let a = parse_amount("50-100mg").unwrap();
        assert!(a.unit == Unit::Gram && close(a.value, 0.05, 0.1));
        let a = parse_amount("200 µl/well").unwrap();
        assert!(a.unit == Unit::Litre && close(a.value, 2e-4, 2e-4), "{a:?}");
        let c = parse_concentration("0.5M").unwrap();
        assert!(c.unit == Unit::Molar && close(c.value, 0.5, 0.5));
        let c = parse_concentration("10 mM").unwrap();
        assert!(c.unit == Unit::Molar && close(c.value, 0.01, 0.01));
        let c = parse_concentration("0.25mg/ml").unwrap();
        assert!(c.unit == Unit::GramPerLitre && close(c.value, 0.25, 0.25));
        let c = parse_concentration("70%").unwrap();
        assert!(c.unit == Unit::Percent && close(c.value, 70.0, 70.0));
        assert_eq!(parse_concentration("10 N").unwrap().unit, Unit::Normal);
        assert_eq!(parse_concentration("1X").unwrap().unit, Unit::Fold);
        assert_eq!(parse_amount("13,000 cells").unwrap().value.min, 13_000.0);
    }

    #[test]
    fn temperatures() {
        assert!(close(parse_temperature("37°C").unwrap(), 37.0, 37.0));
        assert!(close(parse_temperature("-80 °C").unwrap(), -80.0, -80.0));
        assert!(close(parse_temperature("98.6 °F").unwrap(), 37.0, 37.0));
        assert!(close(parse_temperature("277.15 K").unwrap(), 4.0, 4.0));
        assert!(close(parse_temperature("room temperature").unwrap(), 20.0, 25.0));
        assert!(close(parse_temperature("on ice").unwrap(), 0.0, 4.0));
        assert!(close(parse_temperature("4-8 ºC").unwrap(), 4.0, 8.0));
    }

    #[test]
    fn durations() {
        assert!(close(parse_duration("5 min").unwrap(), 300.0, 300.0));
        assert!(close(parse_duration("5-10 min").unwrap(), 300.0, 600.0));
        assert!(close(parse_duration("1 h 30 min").unwrap(), 5400.0, 5400.0));
        assert!(close(parse_duration("1.5 hrs").unwrap(), 5400.0, 5400.0));
        assert!(close(parse_duration("overnight").unwrap(), 43_200.0, 57_600.0));
        assert!(close(parse_duration("30s").unwrap(), 30.0, 30.0));
        assert!(close(parse_duration("2 to 3 days").unwrap(), 172_800.0, 259_200.0));
        assert!(parse_duration("briefly").is_none());
    }

    #[test]
    fn speeds_and_ph() {
        let s = parse_speed("13,000 rpm").unwrap();
        assert!(s.unit == Unit::Rpm && s.value.min == 13_000.0);
        let s = parse_speed("12000 x g").unwrap();
        assert!(s.unit == Unit::TimesG && s.value.min == 12_000.0);
        assert_eq!(parse_speed("5000g").unwrap().unit, Unit::TimesG);
        assert!(close(parse_ph("pH 7.4").unwrap(), 7.4, 7.4));
        assert!(close(parse_ph("7.5-8.0").unwrap(), 7.5, 8.0));
        assert!(parse_ph("pH 20").is_none());
    }

    #[test]
    fn words_after_a_unit_are_dropped_unless_they_spell_another() {
        assert_eq!(parse_amount("5 ml tube").unwrap().unit, Unit::Litre);
        assert_eq!(parse_amount("20ulDTT").unwrap().unit, Unit::Litre);
        // `500l ul`: a second volume unit makes the spelling ambiguous; no litres are guessed.
        assert_eq!(parse_amount("500l ul").unwrap().unit, Unit::Count);
        assert!(close(parse_ph("pH7.4").unwrap(), 7.4, 7.4));
        assert!(parse_concentration("BL21 cells").is_none());
    }
}
