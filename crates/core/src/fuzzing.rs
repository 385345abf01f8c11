//! Entry points for the fuzz targets in `fuzz/` (not a stable API).

use crate::codec::{DecodeOptions, decode_params, decode_update, encode_params, encode_update};

/// Decodes `data` as every frame kind and element type; whatever decodes must re-encode to the
/// same bytes. Bad input must return quietly — only a panic or a failed round trip is a finding.
///
/// # Panics
///
/// When a decoded frame does not re-encode to the input: that is the bug being hunted.
pub fn decode_frame(data: &[u8]) {
    let opts = DecodeOptions::default().with_max_frame_bytes(1 << 20).with_allow_non_finite(true);
    if let Ok(p) = decode_params::<f32>(data, &opts) {
        assert_eq!(encode_params(&p).ok().as_deref(), Some(data), "params f32 round trip");
    }
    if let Ok(p) = decode_params::<f64>(data, &opts) {
        assert_eq!(encode_params(&p).ok().as_deref(), Some(data), "params f64 round trip");
    }
    if let Ok(u) = decode_update::<f32>(data, &opts) {
        assert_eq!(encode_update(&u).ok().as_deref(), Some(data), "update f32 round trip");
    }
    if let Ok(u) = decode_update::<f64>(data, &opts) {
        assert_eq!(encode_update(&u).ok().as_deref(), Some(data), "update f64 round trip");
    }
    // Strict options must agree with lenient ones up to the finiteness check.
    let strict = DecodeOptions::default().with_max_frame_bytes(1 << 20);
    if let Ok(p) = decode_params::<f32>(data, &strict) {
        assert!(p.ensure_finite().is_ok(), "strict decode let a non-finite value through");
    }
}
