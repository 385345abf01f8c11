//! A partner's annotated protocol (text, NUL, brat `.ann`) through the annotation reader,
//! training, the model file round trip and tagging.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fl_tiers::fuzzing::annotated_protocol(data));
