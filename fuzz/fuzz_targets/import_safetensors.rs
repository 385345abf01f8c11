//! safetensors import (`fl_core::from_safetensors`): any bytes must read or fail quietly;
//! whatever reads must write and read back unchanged.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fl_core::fuzzing::import_safetensors(data));
