//! What a server reads from an untrusted connection: frames, uplink and client messages,
//! signed-message sessions, submissions, tier-1/2 artifacts.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fl_net::fuzzing::network_frames(data));
