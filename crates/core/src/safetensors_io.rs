//! safetensors import and export, so models move to and from PyTorch (`safetensors.torch`).
//!
//! Layer order: safetensors stores tensors in a JSON map, and writers sort them by dtype and name,
//! so the file alone does not keep a model's layer order. We write the order into the file's
//! `__metadata__` under [`LAYER_ORDER_KEY`]; on reading, that order is used when it names exactly
//! the file's tensors, and otherwise tensors are taken in the order of their data offsets.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::{Error, LayerSpec, ModelParams, ModelSpec, Result, Scalar, scalar::DType};

/// `__metadata__` key holding the layer order as a JSON array of names.
pub const LAYER_ORDER_KEY: &str = "mshale.layer_order";

fn st_err(e: impl std::fmt::Display) -> Error {
    Error::Safetensors(e.to_string())
}

fn to_st_dtype(dtype: DType) -> Dtype {
    match dtype {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    }
}

/// Serializes parameters to safetensors bytes, with their own element type (`F32` or `F64`).
///
/// # Errors
///
/// [`Error::Safetensors`] if the safetensors writer refuses the layout.
pub fn to_safetensors<T: Scalar>(params: &ModelParams<T>) -> Result<Vec<u8>> {
    let mut bytes: Vec<Vec<u8>> = Vec::with_capacity(params.spec().num_layers());
    for (_, slice) in params.layer_slices() {
        let mut b = Vec::with_capacity(slice.len() * T::DTYPE.size());
        T::extend_le_bytes(slice, &mut b);
        bytes.push(b);
    }
    let views = params
        .spec()
        .layers()
        .iter()
        .zip(&bytes)
        .map(|(layer, b)| {
            TensorView::new(to_st_dtype(T::DTYPE), layer.shape().to_vec(), b)
                .map(|v| (layer.name().to_owned(), v))
                .map_err(st_err)
        })
        .collect::<Result<Vec<_>>>()?;
    let order: Vec<&str> = params.spec().layers().iter().map(LayerSpec::name).collect();
    let meta = HashMap::from([(
        LAYER_ORDER_KEY.to_owned(),
        serde_json::to_string(&order).map_err(st_err)?,
    )]);
    safetensors::serialize(views, Some(meta)).map_err(st_err)
}

/// Reads parameters from safetensors bytes. `F32`, `F64`, `F16` and `BF16` tensors are converted to
/// `T`; integer and boolean tensors (e.g. BatchNorm's `num_batches_tracked`) are refused with an
/// error naming them, since they are not trainable parameters.
///
/// # Errors
///
/// [`Error::Safetensors`] for a malformed file or an unsupported element type; the
/// [`ModelSpec::new`] errors for an invalid layout (e.g. no tensors).
pub fn from_safetensors<T: Scalar>(bytes: &[u8]) -> Result<ModelParams<T>> {
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(st_err)?;
    let file = SafeTensors::deserialize(bytes).map_err(st_err)?;
    let by_offset = metadata.offset_keys();
    let order = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(LAYER_ORDER_KEY))
        .and_then(|json| serde_json::from_str::<Vec<String>>(json).ok())
        .filter(|names| {
            let mut a = names.clone();
            let mut b = by_offset.clone();
            a.sort();
            b.sort();
            a == b
        })
        .unwrap_or(by_offset);

    let mut layers = Vec::with_capacity(order.len());
    let mut data: Vec<T> = Vec::new();
    for name in order {
        let view = file.tensor(&name).map_err(st_err)?;
        let raw = view.data();
        match view.dtype() {
            Dtype::F32 => data.extend(
                raw.chunks_exact(4)
                    .map(|c| T::from_f64(f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))),
            ),
            Dtype::F64 => data.extend(raw.chunks_exact(8).map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                T::from_f64(f64::from_le_bytes(a))
            })),
            Dtype::F16 => data.extend(
                raw.chunks_exact(2)
                    .map(|c| T::from_f64(f16_to_f64(u16::from_le_bytes([c[0], c[1]])))),
            ),
            Dtype::BF16 => data.extend(raw.chunks_exact(2).map(|c| {
                let bits = u32::from(u16::from_le_bytes([c[0], c[1]])) << 16;
                T::from_f64(f64::from(f32::from_bits(bits)))
            })),
            other => {
                return Err(Error::Safetensors(format!(
                    "tensor `{name}` has element type {other:?}; only F32, F64, F16 and BF16 \
                     tensors are model parameters"
                )));
            }
        }
        layers.push(LayerSpec::new(name, view.shape().to_vec()));
    }
    ModelParams::from_flat(ModelSpec::new(layers)?, data)
}

/// IEEE 754 binary16 → f64 (exact).
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// Writes parameters to a safetensors file.
///
/// # Errors
///
/// As [`to_safetensors`], plus [`Error::Io`].
pub fn save_safetensors<T: Scalar>(params: &ModelParams<T>, path: impl AsRef<Path>) -> Result<()> {
    std::fs::write(path, to_safetensors(params)?)?;
    Ok(())
}

/// Reads parameters from a safetensors file.
///
/// # Errors
///
/// As [`from_safetensors`], plus [`Error::Io`].
pub fn load_safetensors<T: Scalar>(path: impl AsRef<Path>) -> Result<ModelParams<T>> {
    from_safetensors(&std::fs::read(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_order_and_values() -> Result<()> {
        // "z" before "a": the file sorts by name, our metadata restores the model order.
        let spec = ModelSpec::from_pairs([("z.weight", vec![2, 2]), ("a.bias", vec![2])])?;
        let p = ModelParams::<f32>::from_flat(spec, vec![1.0, -2.0, 3.5, 1e-8, 0.25, -0.0])?;
        let back = from_safetensors::<f32>(&to_safetensors(&p)?)?;
        assert_eq!(back, p);
        let wide = from_safetensors::<f64>(&to_safetensors(&p.cast::<f64>())?)?;
        assert_eq!(wide, p.cast::<f64>());
        Ok(())
    }

    #[test]
    fn f16_conversion() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(f16_to_f64(0x7c00), f64::INFINITY);
        assert!(f16_to_f64(0x7e00).is_nan());
        assert_eq!(f16_to_f64(0x7bff), 65504.0);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(
            from_safetensors::<f32>(b"not a safetensors file"),
            Err(Error::Safetensors(_))
        ));
        assert!(matches!(from_safetensors::<f32>(&[0xff; 8]), Err(Error::Safetensors(_))));
    }
}
