//! A safetensors file written by Python's `safetensors` (see `tests/data/make_torch_like.py`) is
//! read exactly: names, shapes, order of data offsets, and every value (F32, F16 and F64 tensors).

#![allow(clippy::panic_in_result_fn, reason = "tests assert and return Result")]

use std::collections::HashMap;

use fl_core::{ModelParams, from_safetensors, to_safetensors};
use serde::Deserialize;

const FILE: &[u8] = include_bytes!("data/torch_like.safetensors");
const EXPECTED: &str = include_str!("data/torch_like.json");

#[derive(Deserialize)]
struct Expected {
    tensors: HashMap<String, Tensor>,
}

#[derive(Deserialize)]
struct Tensor {
    shape: Vec<usize>,
    values: Vec<f64>,
}

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn reads_python_file_exactly() -> TestResult {
    let expected: Expected = serde_json::from_str(EXPECTED)?;
    let params: ModelParams<f64> = from_safetensors(FILE)?;
    assert_eq!(params.spec().num_layers(), expected.tensors.len());
    for (name, tensor) in &expected.tensors {
        let layer = params.layer_by_name(name)?;
        assert_eq!(layer.shape(), tensor.shape.as_slice(), "{name}");
        let got: Vec<f64> = layer.iter().copied().collect();
        // f16/f32/f64 values are all exact in f64: compare bits, not within a tolerance.
        assert_eq!(got, tensor.values, "{name}");
    }
    // Python's writer sorts by descending dtype alignment, then by name; without our metadata the
    // layers come back in data-offset order.
    let names: Vec<&str> = params.spec().layers().iter().map(|l| l.name()).collect();
    assert_eq!(
        names,
        [
            "stats.f64",
            "conv1.bias",
            "conv1.weight",
            "fc.bias",
            "fc.weight",
            "head.scale",
            "emb.half"
        ]
    );
    assert_eq!(params.layer_by_name("head.scale")?.ndim(), 0);
    Ok(())
}

#[test]
fn reads_python_file_as_f32_and_round_trips() -> TestResult {
    let expected: Expected = serde_json::from_str(EXPECTED)?;
    let params: ModelParams<f32> = from_safetensors(FILE)?;
    for (name, tensor) in &expected.tensors {
        let got: Vec<f32> = params.layer_by_name(name)?.iter().copied().collect();
        #[allow(clippy::cast_possible_truncation, reason = "the file's f32 values are exact")]
        let want: Vec<f32> = tensor.values.iter().map(|&v| v as f32).collect();
        assert_eq!(got, want, "{name}");
    }
    // Our writer keeps this order through its metadata.
    let back: ModelParams<f32> = from_safetensors(&to_safetensors(&params)?)?;
    assert_eq!(back, params);
    Ok(())
}
