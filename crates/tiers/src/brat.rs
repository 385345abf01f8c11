//! Reading brat standoff corpora (`protocol_N.txt` + `protocol_N.ann`), as in the Wet Lab
//! Protocols corpus (Kulkarni et al., NAACL 2018). Only text-bound annotations (`T` lines) are
//! read; offsets are Unicode character offsets.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A text-bound annotation: entity type and `[start, end)` in characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entity {
    /// First character (inclusive).
    pub start: usize,
    /// Character after the last one.
    pub end: usize,
    /// Entity type, e.g. `Action`, `Reagent`, `Amount`.
    pub kind: String,
}

/// One protocol with its gold entities (empty when it has no `.ann` file).
#[derive(Clone, Debug)]
pub struct Document {
    /// The `.txt` path.
    pub path: PathBuf,
    /// The protocol text.
    pub text: String,
    /// Gold entities sorted by position.
    pub entities: Vec<Entity>,
}

/// Parses the `T` lines of a brat `.ann` file against its text (`chars` = the text's length in
/// characters). Discontinuous spans (`start end;start end`) are skipped: the corpus has none
/// that a contiguous tagger could produce.
///
/// # Errors
///
/// [`Error::Annotation`] naming the line for a malformed line or a span outside the text.
pub fn parse_ann(file: &Path, ann: &str, chars: usize) -> Result<Vec<Entity>> {
    let bad = |line: usize, reason: String| Error::Annotation { file: file.into(), line, reason };
    let mut out = Vec::new();
    for (i, line) in ann.lines().enumerate() {
        if !line.starts_with('T') {
            continue;
        }
        let mut fields = line.split('\t');
        let (Some(_id), Some(header)) = (fields.next(), fields.next()) else {
            return Err(bad(i + 1, "expected `ID<TAB>Type start end<TAB>text`".into()));
        };
        if header.contains(';') {
            continue;
        }
        let parts: Vec<&str> = header.split(' ').collect();
        let [kind, start, end] = parts.as_slice() else {
            return Err(bad(i + 1, format!("expected `Type start end`, got {header:?}")));
        };
        let parse = |s: &str| {
            s.parse::<usize>().map_err(|_| bad(i + 1, format!("offset {s:?} is not a number")))
        };
        let (start, end) = (parse(start)?, parse(end)?);
        if start >= end || end > chars {
            return Err(bad(
                i + 1,
                format!("span {start}..{end} outside the text of {chars} chars"),
            ));
        }
        out.push(Entity { start, end, kind: (*kind).to_owned() });
    }
    out.sort();
    Ok(out)
}

/// Reads one `.txt` file and, when present, its `.ann` file.
///
/// # Errors
///
/// [`Error::Io`] and [`Error::Annotation`].
pub fn read_document(txt: &Path) -> Result<Document> {
    let text = std::fs::read_to_string(txt).map_err(|e| Error::io(txt, e))?;
    let ann_path = txt.with_extension("ann");
    let entities = match std::fs::read_to_string(&ann_path) {
        Ok(ann) => parse_ann(&ann_path, &ann, text.chars().count())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(ann_path, e)),
    };
    Ok(Document { path: txt.to_owned(), text, entities })
}

/// Every `*.txt` under `dir` (not recursive), in natural order of the numbers in their names.
///
/// # Errors
///
/// [`Error::Io`] when the directory cannot be listed.
pub fn text_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    let number = |p: &PathBuf| -> (u64, String) {
        let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let digits: String = name.chars().filter(char::is_ascii_digit).collect();
        (digits.parse().unwrap_or(u64::MAX), name)
    };
    files.sort_by_key(number);
    Ok(files)
}

/// Every document in `dir` (see [`text_files`]).
///
/// # Errors
///
/// As [`text_files`] and [`read_document`].
pub fn read_dir(dir: &Path) -> Result<Vec<Document>> {
    text_files(dir)?.iter().map(|p| read_document(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entities_and_rejects_bad_lines() {
        let ann = "T1\tAction 0 5\tWeigh\nE1\tAction:T1\nT2\tAmount 6 12\t5.73 g\nR1\tx\n";
        let got = parse_ann(Path::new("a.ann"), ann, 20).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Entity { start: 6, end: 12, kind: "Amount".into() });
        for bad in ["T1\tAction 0 50\tx", "T1\tAction a 5\tx", "T1", "T1\tAction 5 5\tx"] {
            assert!(parse_ann(Path::new("a.ann"), bad, 20).is_err(), "{bad}");
        }
    }
}
