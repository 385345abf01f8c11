//! Tidy checks that plain `cargo test` enforces: every Rust file opens with a doc comment, and no
//! test is switched off or made to expect a panic.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    fn sources() -> Vec<PathBuf> {
        let root = super::super::project_root();
        let mut files = Vec::new();
        for dir in ["crates", "xtask", "benches", "examples", "fuzz/fuzz_targets"] {
            rust_files(&root.join(dir), &mut files);
        }
        assert!(files.len() > 5, "tidy found too few files: {files:?}");
        files
    }

    #[test]
    fn every_file_has_a_module_doc() {
        let missing: Vec<_> = sources()
            .into_iter()
            .filter(|p| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                !(first.starts_with("//!") || first.starts_with("#![doc"))
            })
            .collect();
        assert!(missing.is_empty(), "files without a module doc comment: {missing:?}");
    }

    #[test]
    fn no_switched_off_tests() {
        // Spelled in pieces so this file does not match itself.
        let banned = [
            concat!("#[", "ignore"),
            concat!("#[", "should_panic"),
            concat!("todo", "!("),
            concat!("unimplemented", "!("),
        ];
        let offenders: Vec<_> = sources()
            .into_iter()
            .filter(|p| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                banned.iter().any(|b| text.contains(b))
            })
            .collect();
        assert!(offenders.is_empty(), "ignored/should_panic tests or stubs in: {offenders:?}");
    }
}
