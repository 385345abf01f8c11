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

pub mod attacks;
mod bulyan;
mod clipping;
mod coordinate;
pub mod distance;
mod error;
mod fedavg;
mod fedopt;
mod fltrust;
mod geomed;
mod krum;
mod preagg;
pub mod validate;

pub use attacks::Attack;
pub use bulyan::{Bulyan, bulyan_select};
pub use clipping::{CenteredClipping, NormBound};
pub use coordinate::{Median, TrimmedMean};
pub use error::{Error, Result};
pub use fedavg::{FedAvg, FedAvgAccumulator, FedAvgOrder, FedProx, weighted_average};
pub use fedopt::{BiasCorrection, FedOpt, FedOptKind};
pub use fl_core::Aggregator;
pub use fltrust::FlTrust;
pub use geomed::GeometricMedian;
pub use krum::{Krum, KrumSelection, krum_scores, krum_select};
pub use preagg::{Bucketing, NearestNeighborMixing, Pipeline, PreAggregator};
