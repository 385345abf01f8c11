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
        reason = "tests assert and return Result; test data is built with casts"
    )
)]

pub mod data;
mod error;
pub mod experiments;
pub mod model;
pub mod partition;
pub mod train;

pub use data::{Dataset, Labels, TIER2_DIM, load_delimited, load_feature_vectors, load_idx};
pub use error::{Error, Result};
pub use model::Mlp;
pub use train::{DpSgdConfig, Evaluation, SgdConfig, TrainReport, evaluate, train, train_dp};
