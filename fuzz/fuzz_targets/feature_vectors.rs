//! fl-tiers' feature vectors and local DP parameters from raw bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fl_tiers::fuzzing::feature_vectors(data));
