//! Wire-codec decoder: any bytes must decode or fail quietly; whatever decodes must re-encode to
//! the same bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fl_core::fuzzing::decode_frame(data));
