//! Entry points for the fuzz targets in `fuzz/` (not a stable API).

use crate::verify::{frame, verify_bytes};

/// Verifies arbitrary bytes as a log; whatever verifies must re-frame to the same bytes.
///
/// # Panics
///
/// When a verified log does not round-trip: that is the bug being hunted.
pub fn verify_log(data: &[u8]) {
    if let Ok(report) = verify_bytes(data) {
        let mut out = crate::verify::MAGIC.to_vec();
        for (span, hash) in report.frames.iter().zip(&report.hashes) {
            let payload = &data[span.offset + 8..span.offset + span.len - 32];
            assert!(frame(payload, hash, &mut out).is_ok());
        }
        assert_eq!(out, data, "verified log does not re-frame to itself");
        assert!(crate::read_records(data).is_ok());
    }
}
