//! Audit-log verifier: any bytes must verify or fail quietly; a verified log must re-frame to
//! itself.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fl_audit::fuzzing::verify_log(data));
