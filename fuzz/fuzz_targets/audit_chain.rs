//! Audit logs built from arbitrary records with correct checksums and hashes (links and
//! sequence numbers patched on request): verification, opening and appending must agree, and a
//! refused log must be left as it was.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

static PATH: LazyLock<PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!("fl-fuzz-audit-{}.log", std::process::id()))
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| fl_audit::fuzzing::chained_log(data, &PATH));
