//! fl-tiers' untrusted inputs: protocol text through extraction, spec JSON, model files.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fl_tiers::fuzzing::tier_inputs(data));
