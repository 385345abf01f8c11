#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        clippy::panic_in_result_fn,
        clippy::cast_possible_truncation,
        clippy::cast_precision_loss,
        clippy::cast_sign_loss,
        clippy::cast_lossless,
        clippy::needless_range_loop,
        reason = "tests assert and return Result; test data is built with casts"
    )
)]

mod aggregate;
pub mod codec;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod ops;
mod params;
mod safetensors_io;
mod scalar;
mod spec;
mod update;

pub use aggregate::Aggregator;
pub use codec::{
    CodecError, DecodeOptions, decode_params, decode_params_into, decode_update,
    decode_update_into, encode_params, encode_params_into, encode_update,
};
pub use error::{Error, Result, display_chain};
pub use params::ModelParams;
pub use safetensors_io::{
    LAYER_ORDER_KEY, from_safetensors, load_safetensors, save_safetensors, to_safetensors,
};
pub use scalar::{DType, Scalar};
pub use spec::{LayerSpec, MAX_LAYER_NAME_BYTES, ModelSpec};
pub use update::{ClientUpdate, MAX_PARTNER_ID_BYTES, ModelVersion, PartnerId, Round};
