//! The Paillier privacy mode's untrusted inputs: ciphertexts under a dealt threshold key, the
//! setup and party key files, decryption shares, python-paillier numbers.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fl_net::fuzzing::paillier_inputs(data));
