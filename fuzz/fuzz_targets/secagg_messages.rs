//! Decodes arbitrary bytes as secure-aggregation messages and feeds what decodes to fresh state
//! machines (see `fl_secagg::fuzzing::decode_messages`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fl_secagg::fuzzing::decode_messages(data));
