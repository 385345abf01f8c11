//! Budget ledger replay: arbitrary records, each framed with a correct checksum, must open or
//! be refused untouched; an opened ledger's statuses must be sane, survive a reopen, and take a
//! charge that fits.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

static PATH: LazyLock<PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!("fl-fuzz-budget-{}.ledger", std::process::id()))
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| fl_dp::fuzzing::replay_ledger(data, &PATH));
