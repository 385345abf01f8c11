//! What would be sent: for a directory of specs and feature vectors, the spec JSON, the vector
//! file with its local DP parameters and dimension names, sizes, and the policy decision for
//! each file (the client's `inspect` command). `submit --tier 1` sends the `.spec.json` files and
//! `submit --tier 2` the `.features.json` files, so those are what is shown.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::features::{DIM, FeatureVector, dimension_names, features};
use crate::policy::{Agreement, Artifact, Sensitivity, authorize};
use crate::spec::ProtocolSpec;
use crate::{Error, Result};

/// Largest spec file read (specs are a few KB; anything this big is not one).
pub const MAX_SPEC_BYTES: u64 = 4 << 20;

/// File-name suffix of tier-1 specs (`extract` writes `NAME.spec.json`).
pub const SPEC_SUFFIX: &str = ".spec.json";

/// File-name suffix of tier-2 vectors (`extract --tier 2` writes `NAME.features.json`).
pub const FEATURES_SUFFIX: &str = ".features.json";

/// A spec file as `submit --tier 1` would send it.
#[derive(Clone, Debug)]
pub struct SpecEntry {
    /// The `.spec.json` file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The spec JSON as it would be sent (re-serialized from the parsed spec), or why the file
    /// is not a valid spec.
    pub json: std::result::Result<String, String>,
    /// Policy decision for sending it.
    pub decision: std::result::Result<(), String>,
}

/// A feature-vector file as `submit --tier 2` would send it.
#[derive(Clone, Debug)]
pub struct FeaturesEntry {
    /// The `.features.json` file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The vector as it would be sent, or why the file is not a valid vector.
    pub vector: std::result::Result<FeatureVector, String>,
    /// Policy decision for sending it.
    pub decision: std::result::Result<(), String>,
    /// For a vector without local DP next to a valid spec: whether it equals the vector that
    /// spec gives (a mismatch means one of the two files is stale).
    pub matches_spec: Option<bool>,
}

/// One protocol: its `NAME.spec.json` and `NAME.features.json`, whichever exist.
#[derive(Clone, Debug)]
pub struct InspectedFile {
    /// `NAME`, shared by both files.
    pub stem: String,
    /// What tier 1 would send.
    pub spec: Option<SpecEntry>,
    /// What tier 2 would send.
    pub features: Option<FeaturesEntry>,
    /// With `show_features`: the (name, value) pairs of the tier-2 vector, taken from the
    /// `.features.json` file when there is a valid one, else computed from the spec.
    pub named_values: Option<Vec<(String, f32)>>,
}

/// The report of [`inspect`].
#[derive(Clone, Debug)]
pub struct InspectReport {
    /// The level the decisions were made at.
    pub level: Sensitivity,
    /// Every protocol with a `.spec.json` or `.features.json` file, in name order.
    pub files: Vec<InspectedFile>,
}

fn decision(
    artifact: Artifact,
    level: Sensitivity,
    agreements: &[Agreement],
) -> std::result::Result<(), String> {
    authorize(artifact, level, agreements).map(|_| ()).map_err(|e| e.to_string())
}

/// The files in `dir` (not recursive) whose names end with `suffix`, sorted.
///
/// # Errors
///
/// [`Error::Io`] when the directory cannot be listed.
pub fn files_ending_with(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Reads a spec or vector file of at most [`MAX_SPEC_BYTES`] as UTF-8, as `inspect` and
/// `submit` do. The limit holds for what is read, not only for the size the file reported, so a
/// file that grows (or a FIFO) cannot make it read more.
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be read, is larger than the limit or is not UTF-8.
pub fn read_artifact_file(path: &Path) -> Result<String> {
    let bytes = crate::text::read_bounded(path, MAX_SPEC_BYTES, "a spec or vector")?;
    String::from_utf8(bytes)
        .map_err(|e| crate::text::invalid_data(path, e.utf8_error().to_string()))
}

/// [`read_artifact_file`] with the size on disk returned either way (for the report).
fn read_limited(path: &Path) -> (u64, std::result::Result<String, String>) {
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    (bytes, read_artifact_file(path).map_err(|e| e.to_string()))
}

fn stem_of(path: &Path, suffix: &str) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.strip_suffix(suffix).unwrap_or(&name).to_owned()
}

/// Inspects every `NAME.spec.json` and `NAME.features.json` in `dir` at `level` with
/// `agreements`: the spec JSON as tier 1 would send it, the vector file as tier 2 would send it
/// (its local DP parameters, and whether an unnoised one still matches its spec), and the
/// policy decision for each. Bad files are reported per file, not fatal.
///
/// # Errors
///
/// [`Error::Io`] when the directory cannot be listed.
pub fn inspect(
    dir: &Path,
    level: Sensitivity,
    agreements: &[Agreement],
    show_features: bool,
) -> Result<InspectReport> {
    let mut stems: BTreeMap<String, (Option<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
    for path in files_ending_with(dir, SPEC_SUFFIX)? {
        let stem = stem_of(&path, SPEC_SUFFIX);
        stems.entry(stem).or_default().0 = Some(path);
    }
    for path in files_ending_with(dir, FEATURES_SUFFIX)? {
        let stem = stem_of(&path, FEATURES_SUFFIX);
        stems.entry(stem).or_default().1 = Some(path);
    }
    let names = dimension_names();
    let mut files = Vec::with_capacity(stems.len());
    for (stem, (spec_path, features_path)) in stems {
        let mut computed = None;
        let spec = spec_path.map(|path| {
            let (bytes, text) = read_limited(&path);
            let parsed = text.and_then(|t| ProtocolSpec::from_json(&t).map_err(|e| e.to_string()));
            match parsed {
                Err(reason) => {
                    SpecEntry { path, bytes, json: Err(reason.clone()), decision: Err(reason) }
                }
                Ok(spec) => {
                    computed = Some(features(&spec));
                    SpecEntry {
                        path,
                        bytes,
                        json: spec.to_json().map_err(|e| e.to_string()),
                        decision: decision(Artifact::Spec(spec), level, agreements),
                    }
                }
            }
        });
        let features = features_path.map(|path| {
            let (bytes, text) = read_limited(&path);
            let vector = text.and_then(|t| FeatureVector::from_json(&t).map_err(|e| e.to_string()));
            let decision = match &vector {
                Ok(v) => decision(Artifact::Features(v.clone()), level, agreements),
                Err(reason) => Err(reason.clone()),
            };
            let matches_spec = match (&vector, &computed) {
                (Ok(v), Some(c)) if v.local_dp.is_none() => Some(v == c),
                _ => None,
            };
            FeaturesEntry { path, bytes, vector, decision, matches_spec }
        });
        let shown = match features.as_ref().map(|f| &f.vector) {
            Some(Ok(v)) => Some(v),
            _ => computed.as_ref(),
        };
        let named_values = show_features
            .then(|| shown.map(|v| names.iter().cloned().zip(v.values.iter().copied()).collect()))
            .flatten();
        files.push(InspectedFile { stem, spec, features, named_values });
    }
    Ok(InspectReport { level, files })
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = |d: &std::result::Result<(), String>| match d {
            Ok(()) => "WOULD BE SENT".to_owned(),
            Err(e) => format!("NOT SENT ({e})"),
        };
        writeln!(f, "sensitivity level {}: {} protocol(s)", self.level.level(), self.files.len())?;
        for file in &self.files {
            writeln!(f, "\n== {}", file.stem)?;
            match &file.spec {
                Some(s) => {
                    writeln!(
                        f,
                        "ProtocolSpec: {} ({}, {} bytes)",
                        verdict(&s.decision),
                        s.path.display(),
                        s.bytes
                    )?;
                    match &s.json {
                        Ok(json) => writeln!(f, "{json}")?,
                        Err(e) => writeln!(f, "invalid spec: {e}")?,
                    }
                }
                None => writeln!(f, "ProtocolSpec: none (no {}{SPEC_SUFFIX})", file.stem)?,
            }
            match &file.features {
                Some(fe) => {
                    writeln!(
                        f,
                        "FeatureVector: {} ({}, {} bytes)",
                        verdict(&fe.decision),
                        fe.path.display(),
                        fe.bytes
                    )?;
                    match &fe.vector {
                        Ok(v) => match v.local_dp {
                            Some(claim) => writeln!(
                                f,
                                "  {DIM} × f32, {}",
                                crate::features::local_dp_summary(claim)
                            )?,
                            None => writeln!(
                                f,
                                "  {DIM} × f32, no local DP: the vector identifies its protocol \
                                 to anyone who holds the protocol (see the fl-tiers README)"
                            )?,
                        },
                        Err(e) => writeln!(f, "  invalid feature vector: {e}")?,
                    }
                    if fe.matches_spec == Some(false) {
                        writeln!(f, "  differs from the vector its spec gives: one file is stale")?;
                    }
                }
                None => writeln!(
                    f,
                    "FeatureVector: none (no {}{FEATURES_SUFFIX}; `extract --tier 2` writes it)",
                    file.stem
                )?,
            }
            if let Some(values) = &file.named_values {
                let source = if matches!(&file.features, Some(fe) if fe.vector.is_ok()) {
                    "sent"
                } else {
                    "computed from the spec, not sent"
                };
                writeln!(f, "  dimensions ({source}):")?;
                for (name, v) in values.iter().filter(|(_, v)| *v != 0.0) {
                    writeln!(f, "  {name:32} {v:>10.4}")?;
                }
                writeln!(f, "  (other dimensions are 0)")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn reports_each_file_with_its_decision() {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::spec::extract("T\nIncubate at 37 °C for 1 h.").unwrap();
        std::fs::write(dir.path().join("a.spec.json"), spec.to_json().unwrap()).unwrap();
        std::fs::write(dir.path().join("b.spec.json"), "{\"raw\": \"text\"}").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let r = inspect(dir.path(), Sensitivity::Public, &[], true).unwrap();
        assert_eq!(r.files.len(), 2);
        let a = &r.files[0];
        assert_eq!(a.stem, "a");
        assert!(a.spec.as_ref().unwrap().decision.is_ok() && a.features.is_none());
        assert_eq!(a.named_values.as_ref().unwrap().len(), 223);
        let b = r.files[1].spec.as_ref().unwrap();
        assert!(b.json.is_err() && b.decision.is_err());
        let text = r.to_string();
        assert!(text.contains("WOULD BE SENT") && text.contains("temperature_hist[35..40C]"));
        assert!(text.contains("computed from the spec, not sent"), "{text}");
        let r1 = inspect(dir.path(), Sensitivity::Anonymised, &[], false).unwrap();
        assert!(r1.files[0].spec.as_ref().unwrap().decision.is_err());
        assert!(r1.files[0].named_values.is_none());
        assert!(inspect(&dir.path().join("missing"), Sensitivity::Public, &[], false).is_err());
    }

    #[test]
    fn reads_at_most_the_limit_and_only_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let limit = usize::try_from(MAX_SPEC_BYTES).unwrap();
        std::fs::write(path("at.spec.json"), " ".repeat(limit)).unwrap();
        std::fs::write(path("over.spec.json"), " ".repeat(limit + 1)).unwrap();
        std::fs::write(path("latin1.spec.json"), b"{\"title\": \"caf\xe9\"}").unwrap();
        assert_eq!(read_artifact_file(&path("at.spec.json")).unwrap().len(), limit);
        let over = read_artifact_file(&path("over.spec.json")).unwrap_err().to_string();
        assert!(over.contains("over.spec.json") && over.contains("4194304-byte limit"), "{over}");
        let latin1 = read_artifact_file(&path("latin1.spec.json")).unwrap_err().to_string();
        assert!(latin1.contains("latin1.spec.json") && latin1.contains("utf-8"), "{latin1}");
        assert!(read_artifact_file(&path("missing.spec.json")).is_err());
        // inspect reports the oversized file with its size and refuses to send it.
        let r = inspect(dir.path(), Sensitivity::Public, &[], false).unwrap();
        let over = r.files.iter().find(|f| f.stem == "over").unwrap().spec.as_ref().unwrap();
        assert_eq!(over.bytes, MAX_SPEC_BYTES + 1);
        assert!(over.json.is_err() && over.decision.is_err());
    }

    #[test]
    fn shows_the_vector_files_tier_2_would_send() {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::spec::extract("T\nIncubate at 37 °C for 1 h.").unwrap();
        let plain = features(&spec);
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        // a: spec with its own unnoised vector; b: a stale vector; c: a noised vector without a
        // spec (still sent by tier 2); d: a vector file that is not one.
        write("a.spec.json", &spec.to_json().unwrap());
        write("a.features.json", &serde_json::to_string(&plain).unwrap());
        let mut stale = plain.clone();
        stale.values[0] += 1.0;
        write("b.spec.json", &spec.to_json().unwrap());
        write("b.features.json", &serde_json::to_string(&stale).unwrap());
        let mut rng = <rand::rngs::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(3);
        let noised = crate::features::privatize(&plain, 1.0, 1e-5, 8.0, &mut rng).unwrap();
        write("c.features.json", &serde_json::to_string(&noised).unwrap());
        write("d.features.json", "{\"version\": 1, \"values\": [1.0]}");

        let r = inspect(dir.path(), Sensitivity::Public, &[], true).unwrap();
        let stems: Vec<&str> = r.files.iter().map(|f| f.stem.as_str()).collect();
        assert_eq!(stems, ["a", "b", "c", "d"]);
        let fe = |i: usize| r.files[i].features.as_ref().unwrap();
        assert_eq!(fe(0).matches_spec, Some(true));
        assert_eq!(fe(1).matches_spec, Some(false));
        assert!(
            r.files[2].spec.is_none() && fe(2).decision.is_ok() && fe(2).matches_spec.is_none()
        );
        // The values shown are the ones in the file, noise included.
        let shown: Vec<f32> =
            r.files[2].named_values.as_ref().unwrap().iter().map(|p| p.1).collect();
        assert_eq!(shown, noised.values);
        assert!(fe(3).vector.is_err() && fe(3).decision.is_err());
        let text = r.to_string();
        assert!(text.contains("no local DP") && text.contains("one file is stale"), "{text}");
        assert!(text.contains("local DP ε = 1, δ = 0.00001, clip C = 8"), "{text}");
        assert!(text.contains("invalid feature vector") && text.contains("ProtocolSpec: none"));
    }
}
