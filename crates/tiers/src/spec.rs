//! Tier 1: the `ProtocolSpec`, a structured summary of a protocol extracted locally. It holds
//! normalized values and short entity names, never sentences: the title is only hashed, names
//! are cut to five words and sorted within a step, so no run of six input words survives.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::brat::Entity;
use crate::tagger::NUMERIC_KINDS;
use crate::text::TextEncoding;
use crate::units::{self, Quantity, Range, Reading, Unit};
use crate::{Error, Result, Tagger};

/// The `ProtocolSpec` schema version this build writes.
///
/// Version 2 added the units `count/L` (cells, colony-forming units, particles per volume),
/// `ratio` (`1:100` dilutions, `24:1` mixtures) and `volumes` (`3 volumes of ethanol`), which
/// version 1 left unread or read as counts; nothing else differs.
pub const SPEC_VERSION: u32 = 2;

/// The oldest version this build reads: a version-1 document is read as it was written (it
/// cannot hold the units of [`UNITS_SINCE_VERSION_2`]), so partners on an older build keep
/// sending until they upgrade.
pub const OLDEST_SPEC_VERSION: u32 = 1;

/// The units version 2 added.
pub const UNITS_SINCE_VERSION_2: [Unit; 3] =
    [Unit::CountPerLitre, Unit::Ratio, Unit::RelativeVolume];

/// Longest entity name kept, in words.
const MAX_NAME_WORDS: usize = 5;
/// Longest entity name kept, in UTF-8 bytes.
const MAX_NAME_BYTES: usize = 80;
/// Unicode `White_Space`, at which the receiver splits names into words
/// (`str::split_whitespace`), as a regex class body. Spelt out because regex dialects disagree
/// on `\s` (ECMA-262's leaves out U+0085 and adds U+FEFF).
macro_rules! white_space {
    () => {
        r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}
/// The schema's form of "at most [`MAX_NAME_WORDS`] words" (5): up to five runs of other
/// characters, each followed by white space or the end.
const NAME_PATTERN: &str = concat!(
    "^[",
    white_space!(),
    "]*(?:[^",
    white_space!(),
    "]+(?:[",
    white_space!(),
    "]+|$)){0,5}$"
);

/// One step (one line of the protocol after the title).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Actions in order, lowercase (e.g. `add`, `centrifuge`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(max = MAX_NAME_BYTES), regex(pattern = NAME_PATTERN)))]
    pub actions: Vec<String>,
    /// Reagent names, lowercase, at most five words, sorted, unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(max = MAX_NAME_BYTES), regex(pattern = NAME_PATTERN)))]
    pub reagents: Vec<String>,
    /// Amounts (volumes in L, masses in g, moles, enzyme units, counts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amounts: Vec<Quantity>,
    /// Concentrations (mol/L, g/L, %, N, fold, U/L).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub concentrations: Vec<Quantity>,
    /// Temperatures in °C.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub temperatures_c: Vec<Range>,
    /// Durations in seconds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub durations_s: Vec<Range>,
    /// Speeds (rpm or × g).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub speeds: Vec<Quantity>,
    /// Devices, lowercase, at most five words, sorted, unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(max = MAX_NAME_BYTES), regex(pattern = NAME_PATTERN)))]
    pub devices: Vec<String>,
    /// pH values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ph: Vec<Range>,
}

/// Counts over the whole protocol.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Steps (non-empty lines after the title).
    pub steps: u32,
    /// Action mentions.
    pub actions: u32,
    /// Distinct actions.
    pub distinct_actions: u32,
    /// Reagent mentions.
    pub reagents: u32,
    /// Distinct reagents.
    pub distinct_reagents: u32,
    /// Amounts.
    pub amounts: u32,
    /// Concentrations.
    pub concentrations: u32,
    /// Temperatures.
    pub temperatures: u32,
    /// Durations.
    pub durations: u32,
    /// Speeds.
    pub speeds: u32,
    /// Device mentions.
    pub devices: u32,
    /// pH values.
    pub ph: u32,
    /// Locations (containers, wells …) mentioned; names are not kept.
    pub locations: u32,
    /// Sum of the lower ends of all durations, in seconds.
    pub total_duration_s: f64,
    /// Numeric entities whose value could not be normalized (dropped from the steps).
    pub unparsed: u32,
}

/// The tier-1 artifact: what a partner sends instead of a protocol.
///
/// The JSON Schema states the structure, the version, the hash's format, the units and names
/// of at most five words and 80 characters, and refuses unknown fields. A receiver
/// (`ProtocolSpec::from_json`) also checks what the schema cannot: every range finite with
/// `min <= max`, names of at most 80 UTF-8 bytes, and, below the schema's view of a parsed
/// document, that no key is given twice and counts are written as integers (`1`, not `1.0`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtocolSpec {
    /// Always [`SPEC_VERSION`].
    #[schemars(range(min = SPEC_VERSION, max = SPEC_VERSION))]
    pub version: u32,
    /// SHA-256 of the title line (hex), so duplicates can be matched without the title.
    /// Unkeyed, so it also lets anyone holding a candidate title confirm it.
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{64}$"))]
    pub title_sha256: String,
    /// The steps in order.
    pub steps: Vec<Step>,
    /// Totals.
    pub summary: Summary,
}

impl ProtocolSpec {
    /// Parses and validates a spec from JSON (untrusted input: unknown fields, other versions,
    /// non-finite or inverted ranges and over-long names are refused).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArtifact`].
    pub fn from_json(text: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidArtifact { kind: "ProtocolSpec", reason };
        let spec: Self = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        spec.validate().map_err(bad)?;
        Ok(spec)
    }

    /// Checks the invariants extraction guarantees.
    ///
    /// # Errors
    ///
    /// The first violated invariant.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(OLDEST_SPEC_VERSION..=SPEC_VERSION).contains(&self.version) {
            return Err(format!(
                "version {}, expected {OLDEST_SPEC_VERSION} to {SPEC_VERSION}",
                self.version
            ));
        }
        if self.title_sha256.len() != 64
            || !self.title_sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err("title_sha256 is not 64 hex digits".into());
        }
        for (i, s) in self.steps.iter().enumerate() {
            let names = s.actions.iter().chain(&s.reagents).chain(&s.devices);
            if let Some(n) = names.clone().find(|n| n.split_whitespace().count() > MAX_NAME_WORDS) {
                return Err(format!("step {i}: name {n:?} is longer than {MAX_NAME_WORDS} words"));
            }
            if let Some(n) = names.clone().find(|n| n.len() > MAX_NAME_BYTES) {
                return Err(format!("step {i}: name {n:?} is longer than {MAX_NAME_BYTES} bytes"));
            }
            let quantities = || s.amounts.iter().chain(&s.concentrations).chain(&s.speeds);
            if self.version < 2
                && let Some(q) = quantities().find(|q| UNITS_SINCE_VERSION_2.contains(&q.unit))
            {
                let unit = serde_json::to_string(&q.unit).unwrap_or_default();
                return Err(format!("step {i}: unit {unit} needs version 2"));
            }
            let ranges = quantities()
                .map(|q| q.value)
                .chain(s.temperatures_c.iter().copied())
                .chain(s.durations_s.iter().copied())
                .chain(s.ph.iter().copied());
            for r in ranges {
                if !r.is_valid() {
                    return Err(format!(
                        "step {i}: range {}..{} is not finite and ordered",
                        r.min, r.max
                    ));
                }
            }
        }
        if !self.summary.total_duration_s.is_finite() {
            return Err("total_duration_s is not finite".into());
        }
        Ok(())
    }

    /// The JSON Schema of the version this build writes, [`SPEC_VERSION`] (draft 2020-12,
    /// generated from the types; each `uint32` count also gets its maximum, which the
    /// receiver's `u32` enforces).
    #[must_use]
    pub fn json_schema() -> serde_json::Value {
        draft_2020_12_schema::<Self>("uint32", vec![("maximum", u32::MAX.into())])
    }

    /// The JSON Schema of `version`, one of those this build reads
    /// ([`OLDEST_SPEC_VERSION`]`..=`[`SPEC_VERSION`]); `None` for any other. A receiver
    /// validates a document with the schema of the version it states. Version 1's is the
    /// current schema with the version fixed to 1 and without [`UNITS_SINCE_VERSION_2`].
    #[must_use]
    pub fn json_schema_of_version(version: u32) -> Option<serde_json::Value> {
        let mut schema = Self::json_schema();
        match version {
            SPEC_VERSION => {}
            1 => {
                let field = &mut schema["properties"]["version"];
                field["minimum"] = 1.into();
                field["maximum"] = 1.into();
                let added = UNITS_SINCE_VERSION_2.map(|u| serde_json::to_value(u).ok());
                schema["$defs"]["Unit"]["oneOf"]
                    .as_array_mut()?
                    .retain(|unit| !added.contains(&Some(unit["const"].clone())));
            }
            _ => return None,
        }
        Some(schema)
    }

    /// Pretty JSON.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArtifact`] if serialization fails (it cannot for a validated spec).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::InvalidArtifact { kind: "ProtocolSpec", reason: e.to_string() })
    }
}

/// The draft 2020-12 JSON Schema of `T` (shared by the tier-1 and tier-2 formats), with
/// `bounds` added to every subschema of `format` that does not set them already: schemars
/// gives a Rust number type its `format` but not the range the receiver's type enforces.
pub(crate) fn draft_2020_12_schema<T: JsonSchema>(
    format: &'static str,
    bounds: Vec<(&'static str, serde_json::Value)>,
) -> serde_json::Value {
    let bound = schemars::transform::RecursiveTransform(move |schema: &mut schemars::Schema| {
        if schema.get("format").and_then(serde_json::Value::as_str) == Some(format) {
            for (keyword, value) in &bounds {
                if schema.get(*keyword).is_none() {
                    schema.insert((*keyword).into(), value.clone());
                }
            }
        }
    });
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .with_transform(bound)
        .into_generator()
        .into_root_schema_for::<T>();
    serde_json::to_value(schema).unwrap_or_default()
}

fn name(text: &str) -> String {
    let mut joined = crate::tagger::normalize(text)
        .split(|c: char| c.is_whitespace())
        .filter(|w| !w.is_empty())
        .take(MAX_NAME_WORDS)
        .collect::<Vec<_>>()
        .join(" ");
    if joined.len() > MAX_NAME_BYTES {
        let cut = (0..=MAX_NAME_BYTES).rev().find(|&i| joined.is_char_boundary(i)).unwrap_or(0);
        joined.truncate(cut);
    }
    trim_name(&joined).to_owned()
}

/// Trims punctuation from both ends of a name, but keeps a bracket that closes or opens one
/// inside it: `(NH4)2SO4` and `sample(s)` stay whole, where trimming every non-alphanumeric
/// end gave `nh4)2so4` and `sample(s`.
fn trim_name(name: &str) -> &str {
    const PAIRS: [(char, char); 2] = [('(', ')'), ('[', ']')];
    let balance = |s: &str, (open, close): (char, char)| {
        s.chars().fold(0i64, |n, c| n + i64::from(c == open) - i64::from(c == close))
    };
    let mut s = name;
    loop {
        let before = s.len();
        s = s.trim_start_matches(|c: char| !c.is_alphanumeric() && c != '(' && c != '[');
        s = s.trim_end_matches(|c: char| !c.is_alphanumeric() && c != ')' && c != ']');
        for pair in PAIRS {
            // An opening bracket at the start with more openers than closers, or a closing
            // bracket at the end with more closers, has lost its partner.
            if s.starts_with(pair.0) && balance(s, pair) > 0 {
                s = &s[pair.0.len_utf8()..];
            }
            if s.ends_with(pair.1) && balance(s, pair) < 0 {
                s = &s[..s.len() - pair.1.len_utf8()];
            }
        }
        if s.len() == before {
            return s;
        }
    }
}

/// The tagger shipped with the crate, trained on the WLP `train` split only
/// (`model/wlp-tagger.bin.gz`, rebuilt by the `wlp_train` example).
///
/// # Errors
///
/// [`Error::Model`] if the embedded model does not decode (a build defect).
pub fn shipped_tagger() -> Result<&'static Tagger> {
    static TAGGER: OnceLock<std::result::Result<Tagger, String>> = OnceLock::new();
    TAGGER
        .get_or_init(|| {
            Tagger::read(&include_bytes!("../model/wlp-tagger.bin.gz")[..])
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Model(e.clone()))
}

/// Words as the no-sentence guarantee counts them: maximal alphanumeric runs, lowercase.
fn words(text: &str) -> Vec<String> {
    crate::tagger::normalize(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Makes sure a list of names, read one after the other as they appear in the JSON, never
/// repeats six consecutive words of the input: a name that would complete such a run is cut
/// short (or dropped).
struct SixWordGuard {
    grams: std::collections::HashSet<Vec<String>>,
}

impl SixWordGuard {
    fn new(text: &str) -> Self {
        Self { grams: words(text).windows(6).map(<[String]>::to_vec).collect() }
    }

    fn leaks(&self, run: &[String]) -> bool {
        run.windows(6).any(|w| self.grams.contains(w))
    }

    fn scrub(&self, names: &mut Vec<String>) {
        let mut run: Vec<String> = Vec::new();
        names.retain_mut(|name| {
            let mut kept = name.split(' ').map(str::to_owned).collect::<Vec<_>>();
            loop {
                let mut candidate = run.clone();
                candidate.extend(kept.iter().flat_map(|w| words(w)));
                if !self.leaks(&candidate) {
                    run = candidate;
                    break;
                }
                kept.pop();
            }
            *name = kept.join(" ");
            !name.is_empty()
        });
    }
}

/// Builds the spec of `text` (first line = title, then one step per non-empty line) from
/// entities found by a tagger.
#[must_use]
pub fn spec_from_entities(text: &str, entities: &[Entity]) -> ProtocolSpec {
    let chars: Vec<char> = text.chars().collect();
    // Line index of every character; steps are the non-empty lines after the first.
    let mut line_of = Vec::with_capacity(chars.len());
    let mut line = 0usize;
    for &c in &chars {
        line_of.push(line);
        if c == '\n' {
            line += 1;
        }
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let title = lines.first().copied().unwrap_or_default().trim();
    let mut step_of_line = vec![None; lines.len()];
    let mut steps = Vec::new();
    for (i, l) in lines.iter().enumerate().skip(1) {
        if !l.trim().is_empty() {
            step_of_line[i] = Some(steps.len());
            steps.push(Step::default());
        }
    }
    let mut summary = Summary::default();
    for e in entities {
        let Some(&l) = line_of.get(e.start) else { continue };
        let Some(step) = step_of_line.get(l).copied().flatten().and_then(|s| steps.get_mut(s))
        else {
            continue; // the title is never extracted
        };
        let surface: String = chars[e.start..e.end.min(chars.len())].iter().collect();
        match e.kind.as_str() {
            "Action" => step.actions.push(name(&surface)),
            "Reagent" => step.reagents.push(name(&surface)),
            "Device" => step.devices.push(name(&surface)),
            "Location" => summary.locations += 1,
            kind if NUMERIC_KINDS.contains(&kind) => match units::read_entity(kind, &surface) {
                Some(Reading::Amount(q)) => step.amounts.push(q),
                Some(Reading::Concentration(q)) => step.concentrations.push(q),
                Some(Reading::Temperature(r)) => step.temperatures_c.push(r),
                Some(Reading::Duration(r)) => step.durations_s.push(r),
                Some(Reading::Speed(q)) => step.speeds.push(q),
                Some(Reading::Ph(r)) => step.ph.push(r),
                None => summary.unparsed += 1,
            },
            _ => {}
        }
    }
    let guard = SixWordGuard::new(text);
    for st in &mut steps {
        for list in [&mut st.actions, &mut st.reagents, &mut st.devices] {
            guard.scrub(list);
        }
    }
    let mut all_actions = std::collections::BTreeSet::new();
    let mut all_reagents = std::collections::BTreeSet::new();
    for s in &mut steps {
        s.actions.retain(|a| !a.is_empty());
        s.actions.dedup();
        for v in [&mut s.reagents, &mut s.devices] {
            v.retain(|n| !n.is_empty());
            v.sort();
            v.dedup();
        }
        summary.actions += u32::try_from(s.actions.len()).unwrap_or(u32::MAX);
        summary.reagents += u32::try_from(s.reagents.len()).unwrap_or(u32::MAX);
        summary.amounts += u32::try_from(s.amounts.len()).unwrap_or(u32::MAX);
        summary.concentrations += u32::try_from(s.concentrations.len()).unwrap_or(u32::MAX);
        summary.temperatures += u32::try_from(s.temperatures_c.len()).unwrap_or(u32::MAX);
        summary.durations += u32::try_from(s.durations_s.len()).unwrap_or(u32::MAX);
        summary.speeds += u32::try_from(s.speeds.len()).unwrap_or(u32::MAX);
        summary.devices += u32::try_from(s.devices.len()).unwrap_or(u32::MAX);
        summary.ph += u32::try_from(s.ph.len()).unwrap_or(u32::MAX);
        // Saturates: each duration is finite, but enough huge ones would sum to infinity.
        summary.total_duration_s = (summary.total_duration_s
            + s.durations_s.iter().map(|r| r.min).sum::<f64>())
        .min(f64::MAX);
        all_actions.extend(s.actions.iter().cloned());
        all_reagents.extend(s.reagents.iter().cloned());
    }
    summary.steps = u32::try_from(steps.len()).unwrap_or(u32::MAX);
    summary.distinct_actions = u32::try_from(all_actions.len()).unwrap_or(u32::MAX);
    summary.distinct_reagents = u32::try_from(all_reagents.len()).unwrap_or(u32::MAX);
    let title_sha256 =
        Sha256::digest(title.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    ProtocolSpec { version: SPEC_VERSION, title_sha256, steps, summary }
}

/// Extracts the spec of one protocol with `tagger` (locally; nothing leaves the process).
#[must_use]
pub fn extract_with(tagger: &Tagger, text: &str) -> ProtocolSpec {
    spec_from_entities(text, &tagger.tag(text))
}

/// Extracts the spec of one protocol with the shipped tagger.
///
/// # Errors
///
/// [`Error::Model`] if the shipped model is broken.
pub fn extract(text: &str) -> Result<ProtocolSpec> {
    Ok(extract_with(shipped_tagger()?, text))
}

/// What [`extract_dir`] did.
#[derive(Clone, Debug, Default)]
pub struct ExtractReport {
    /// Each protocol's file stem and its spec (written as `<stem>.spec.json`).
    pub specs: Vec<(String, ProtocolSpec)>,
    /// Protocol files not extracted, with the reason (unreadable, larger than
    /// [`crate::text::MAX_PROTOCOL_BYTES`], not text); the rest of the corpus still is.
    pub skipped: Vec<(PathBuf, String)>,
    /// Protocol files read in an encoding other than UTF-8 ([`crate::text::read_protocol`]).
    pub transcoded: Vec<(PathBuf, TextEncoding)>,
    /// Total input characters.
    pub chars: usize,
    /// Seconds spent extracting (excluding file I/O).
    pub seconds: f64,
}

/// Extracts every `*.txt` in `corpus` into `output/<stem>.spec.json` (in parallel) with the
/// shipped tagger. Files are written to a temporary name and renamed, so an interrupted run
/// leaves no partial spec. Each file is read with [`crate::text::read_protocol`]; one that
/// cannot be read as a protocol is listed in [`ExtractReport::skipped`] and does not stop the
/// others.
///
/// # Errors
///
/// [`Error::Io`] for an unlistable corpus or unwritable output; [`Error::Model`].
pub fn extract_dir(corpus: &Path, output: &Path) -> Result<ExtractReport> {
    extract_dir_with(shipped_tagger()?, corpus, output)
}

/// [`extract_dir`] with another tagger, e.g. one a partner trained on its own annotated
/// protocols ([`Tagger::train`], `fl-client train-tagger`) because its annotation conventions
/// differ from the shipped model's training data.
///
/// # Errors
///
/// [`Error::Io`] for an unlistable corpus or unwritable output.
pub fn extract_dir_with(tagger: &Tagger, corpus: &Path, output: &Path) -> Result<ExtractReport> {
    extract_dir_with_progress(tagger, corpus, output, &mut |_, _| {})
}

/// Protocols read, extracted and written per batch: memory stays bounded by a batch's texts
/// however large the corpus.
const EXTRACT_BATCH: usize = 256;

/// [`extract_dir_with`], calling `progress(done, total)` after each batch of protocols is
/// written (e.g. to drive a progress bar). Protocols are read, extracted in parallel and
/// written a batch at a time, so only one batch of texts is held in memory.
///
/// # Errors
///
/// As [`extract_dir_with`]; specs written before an output error stay written.
pub fn extract_dir_with_progress(
    tagger: &Tagger,
    corpus: &Path,
    output: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ExtractReport> {
    use rayon::prelude::*;
    let files = crate::brat::text_files(corpus)?;
    std::fs::create_dir_all(output).map_err(|e| Error::io(output, e))?;
    let mut report = ExtractReport { specs: Vec::with_capacity(files.len()), ..Default::default() };
    progress(0, files.len());
    let mut done = 0;
    for batch in files.chunks(EXTRACT_BATCH) {
        let mut texts: Vec<(String, String)> = Vec::with_capacity(batch.len());
        for p in batch {
            match crate::text::read_protocol(p) {
                Ok((text, encoding)) => {
                    if encoding != TextEncoding::Utf8 {
                        report.transcoded.push((p.clone(), encoding));
                    }
                    let stem =
                        p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    texts.push((stem, text));
                }
                Err(Error::Io { source, .. }) => {
                    report.skipped.push((p.clone(), source.to_string()))
                }
                Err(e) => report.skipped.push((p.clone(), e.to_string())),
            }
        }
        let t = std::time::Instant::now();
        let specs: Vec<ProtocolSpec> =
            texts.par_iter().map(|(_, text)| extract_with(tagger, text)).collect();
        report.seconds += t.elapsed().as_secs_f64();
        for ((stem, text), spec) in texts.into_iter().zip(specs) {
            let path = output.join(format!("{stem}.spec.json"));
            let tmp = output.join(format!(".{stem}.spec.json.tmp"));
            std::fs::write(&tmp, spec.to_json()?).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
            report.chars += text.len();
            report.specs.push((stem, spec));
        }
        done += batch.len();
        progress(done, files.len());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_capped_in_bytes_as_validation_requires() {
        // Five "words" of multi-byte characters (found by the tier_inputs fuzz target: the
        // extracted spec failed its own validation).
        let long = format!("16,0{} ice", "\u{fffd}".repeat(26));
        let n = name(&long);
        assert!(n.len() <= MAX_NAME_BYTES && !n.is_empty(), "{n:?}");
        assert_eq!(name("  Tris-HCl buffer, pH 8  "), "tris-hcl buffer, ph 8");
        for (surface, kept) in [
            ("(NH4)2SO4", "(nh4)2so4"),
            ("sample(s)", "sample(s)"),
            ("BL21(DE3).", "bl21(de3)"),
            ("[viral] fraction", "[viral] fraction"),
            ("(Tris buffer", "tris buffer"),
            ("Tris buffer)", "tris buffer"),
            ("((water))", "((water))"),
            ("(water))", "(water)"),
            ("(", ""),
            ("- 5x buffer -", "5x buffer"),
        ] {
            assert_eq!(name(surface), kept, "{surface}");
        }
        let mut spec = extract("T\nAdd water").unwrap();
        spec.steps[0].reagents = vec!["é".repeat(41)];
        assert!(spec.validate().unwrap_err().contains("80 bytes"));
    }

    #[test]
    fn a_corpus_is_extracted_batch_by_batch_with_progress() {
        let corpus = tempfile::tempdir().unwrap();
        let output = corpus.path().join("specs");
        let n = EXTRACT_BATCH + 44;
        for i in 0..n {
            let text =
                format!("Protocol {i}\nSpin at {} rpm for {i} min.\nAdd {i} ml water.", 1000 + i);
            std::fs::write(corpus.path().join(format!("p{i:04}.txt")), text).unwrap();
        }
        let mut calls = Vec::new();
        let report = extract_dir_with_progress(
            shipped_tagger().unwrap(),
            corpus.path(),
            &output,
            &mut |done, total| calls.push((done, total)),
        )
        .unwrap();
        assert_eq!(calls, [(0, n), (EXTRACT_BATCH, n), (n, n)]);
        assert_eq!(report.specs.len(), n);
        for (stem, spec) in &report.specs {
            let i: usize = stem[1..].parse().unwrap();
            let text = std::fs::read_to_string(corpus.path().join(format!("{stem}.txt"))).unwrap();
            assert_eq!(report.specs[i].0, *stem, "report in file order");
            let written =
                std::fs::read_to_string(output.join(format!("{stem}.spec.json"))).unwrap();
            assert_eq!(written, extract(&text).unwrap().to_json().unwrap());
            assert_eq!(spec.to_json().unwrap(), written);
        }
    }

    #[test]
    fn files_in_other_encodings_are_read_and_files_that_are_not_text_skipped() {
        let corpus = tempfile::tempdir().unwrap();
        let output = corpus.path().join("specs");
        let text = "Título\nIncubate at 37 °C for 1 h, then spin at 13,000 × g.\n";
        // 1 UTF-8, 2 UTF-8 with a byte-order mark, 3 UTF-16LE, 4 Windows-1252, 5 binary.
        let write = |name: &str, bytes: &[u8]| std::fs::write(corpus.path().join(name), bytes);
        write("protocol_1.txt", text.as_bytes()).unwrap();
        write("protocol_2.txt", &[b"\xef\xbb\xbf", text.as_bytes()].concat()).unwrap();
        let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        write("protocol_3.txt", &[&b"\xff\xfe"[..], &utf16].concat()).unwrap();
        let (cp1252, _, lossy) = encoding_rs::WINDOWS_1252.encode(text);
        assert!(!lossy);
        write("protocol_4.txt", &cp1252).unwrap();
        write("protocol_5.txt", b"\x7fELF\x02\x01\x01\x00\x00").unwrap();
        let report = extract_dir(corpus.path(), &output).unwrap();
        let stems: Vec<&str> = report.specs.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(stems, ["protocol_1", "protocol_2", "protocol_3", "protocol_4"]);
        let want = extract(text).unwrap();
        assert!(want.steps[0].temperatures_c == [Range::point(37.0)], "{want:?}");
        for (stem, spec) in &report.specs {
            assert_eq!(*spec, want, "{stem} reads as the UTF-8 text does");
        }
        let transcoded: Vec<(String, TextEncoding)> = report
            .transcoded
            .iter()
            .map(|(p, e)| (p.file_name().unwrap().to_string_lossy().into_owned(), *e))
            .collect();
        assert_eq!(
            transcoded,
            [
                ("protocol_3.txt".to_owned(), TextEncoding::Utf16Le),
                ("protocol_4.txt".to_owned(), TextEncoding::Windows1252)
            ]
        );
        assert_eq!(report.skipped.len(), 1);
        let (path, reason) = &report.skipped[0];
        assert!(path.ends_with("protocol_5.txt") && reason.contains("not text"), "{reason}");
        assert!(!output.join("protocol_5.spec.json").exists());
    }
}
