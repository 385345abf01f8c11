//! What would be sent: for a directory of specs, the JSON, the feature vector with dimension
//! names, sizes, and the policy decision for each file (the client's `inspect` command).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::features::{dimension_names, features};
use crate::policy::{Agreement, Artifact, Sensitivity, authorize};
use crate::spec::ProtocolSpec;
use crate::{Error, Result};

/// Largest spec file read (specs are a few KB; anything this big is not one).
pub const MAX_SPEC_BYTES: u64 = 4 << 20;

/// One inspected file.
#[derive(Clone, Debug)]
pub struct InspectedFile {
    /// The spec file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The spec JSON as it would be sent (re-serialized from the parsed spec), or why the file
    /// is not a valid spec.
    pub spec_json: std::result::Result<String, String>,
    /// The feature vector (name, value) pairs, when it was computed.
    pub features: Option<Vec<(String, f32)>>,
    /// Policy decision for sending the spec.
    pub spec_decision: std::result::Result<(), String>,
    /// Policy decision for sending the feature vector.
    pub features_decision: std::result::Result<(), String>,
}

/// The report of [`inspect`].
#[derive(Clone, Debug)]
pub struct InspectReport {
    /// The level the decisions were made at.
    pub level: Sensitivity,
    /// Every `*.spec.json` file in the directory, in name order.
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

/// Inspects every `*.spec.json` in `dir` at `level` with `agreements`. Bad files are reported
/// per file, not fatal.
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
    let paths = files_ending_with(dir, ".spec.json")?;
    let names = dimension_names();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let parsed: std::result::Result<ProtocolSpec, String> = if bytes > MAX_SPEC_BYTES {
            Err(format!("{bytes} bytes, above the {MAX_SPEC_BYTES}-byte limit"))
        } else {
            std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| ProtocolSpec::from_json(&t).map_err(|e| e.to_string()))
        };
        let file = match parsed {
            Err(reason) => InspectedFile {
                path,
                bytes,
                spec_json: Err(reason.clone()),
                features: None,
                spec_decision: Err(reason.clone()),
                features_decision: Err(reason),
            },
            Ok(spec) => {
                let fv = features(&spec);
                InspectedFile {
                    path,
                    bytes,
                    spec_json: spec.to_json().map_err(|e| e.to_string()),
                    features: show_features
                        .then(|| names.iter().cloned().zip(fv.values.iter().copied()).collect()),
                    spec_decision: decision(Artifact::Spec(spec), level, agreements),
                    features_decision: decision(Artifact::Features(fv), level, agreements),
                }
            }
        };
        files.push(file);
    }
    Ok(InspectReport { level, files })
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = |d: &std::result::Result<(), String>| match d {
            Ok(()) => "WOULD BE SENT".to_owned(),
            Err(e) => format!("NOT SENT ({e})"),
        };
        writeln!(f, "sensitivity level {}: {} spec file(s)", self.level.level(), self.files.len())?;
        for file in &self.files {
            writeln!(f, "\n== {} ({} bytes)", file.path.display(), file.bytes)?;
            writeln!(f, "ProtocolSpec: {}", verdict(&file.spec_decision))?;
            match &file.spec_json {
                Ok(json) => writeln!(f, "{json}")?,
                Err(e) => writeln!(f, "invalid spec: {e}")?,
            }
            writeln!(
                f,
                "FeatureVector (223 × f32 = 892 bytes): {}",
                verdict(&file.features_decision)
            )?;
            if let Some(fv) = &file.features {
                for (name, v) in fv.iter().filter(|(_, v)| *v != 0.0) {
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
        assert!(
            r.files[0].spec_decision.is_ok() && r.files[0].features.as_ref().unwrap().len() == 223
        );
        assert!(r.files[1].spec_json.is_err() && r.files[1].spec_decision.is_err());
        let text = r.to_string();
        assert!(text.contains("WOULD BE SENT") && text.contains("temperature_hist[35..40C]"));
        let r1 = inspect(dir.path(), Sensitivity::Anonymised, &[], false).unwrap();
        assert!(r1.files[0].spec_decision.is_err() && r1.files[0].features.is_none());
        assert!(inspect(&dir.path().join("missing"), Sensitivity::Public, &[], false).is_err());
    }
}
