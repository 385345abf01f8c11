//! Entry points for the fuzz targets in `fuzz/` (not a stable API).

use crate::codec::{DecodeOptions, decode_params, decode_update, encode_params, encode_update};
use crate::{ModelParams, Scalar, from_safetensors, to_safetensors};

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

/// Reads `data` as a safetensors file (what a researcher imports from PyTorch) into f32 and f64
/// parameters; whatever reads must write and read back to the same layout and values.
///
/// # Panics
///
/// When parameters that were read do not survive a write and a second read: that is the bug
/// being hunted.
pub fn import_safetensors(data: &[u8]) {
    fn round_trip<T: Scalar>(data: &[u8]) {
        let Ok(params) = from_safetensors::<T>(data) else { return };
        let written = to_safetensors(&params).expect("parameters that were read write");
        let back: ModelParams<T> = from_safetensors(&written).expect("a written file reads back");
        assert_eq!(back.spec(), params.spec(), "layout changed in the round trip");
        // Equal layouts hold equally many values.
        let same = back.as_slice().iter().zip(params.as_slice()).all(|(a, b)| {
            a.as_f64().to_bits() == b.as_f64().to_bits() || (a.is_nan() && b.is_nan())
        });
        assert!(same, "values changed in the round trip");
    }
    round_trip::<f32>(data);
    round_trip::<f64>(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_seeds_pass() {
        let layers = [
            ("w", ndarray::ArrayD::from_elem(vec![2, 3], 1.5f32)),
            ("b", ndarray::ArrayD::from_elem(vec![3], f32::NAN)),
        ];
        let file = to_safetensors(&ModelParams::from_layers(layers).unwrap()).unwrap();
        import_safetensors(&file);
        for cut in [0, 7, 8, 9, file.len() / 2, file.len() - 1] {
            import_safetensors(&file[..cut]);
        }
        // A scalar (shape []) F16 tensor and an empty one.
        for header in [
            r#"{"a":{"dtype":"F16","shape":[],"data_offsets":[0,2]}}"#,
            r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}"#,
        ] {
            let mut file = (header.len() as u64).to_le_bytes().to_vec();
            file.extend(header.as_bytes());
            file.extend([0x00, 0x3c]);
            import_safetensors(&file);
        }
    }
}
