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

pub mod accountant;
pub mod audit;
mod budget;
pub mod calibrate;
pub mod clipping;
pub mod conversion;
pub mod dpfedavg;
mod error;
pub mod fuzzing;
pub mod ledger;
pub mod mechanisms;
pub mod rdp;

pub use accountant::{DpEvent, RdpAccountant};
pub use budget::PrivacyBudget;
pub use calibrate::{Calibration, calibrate_noise_multiplier, epsilon_for_sigma};
pub use clipping::{AdaptiveClipping, clip_l2, clip_per_layer};
pub use conversion::{DeltaAt, EpsilonAt, delta_from_rdp, epsilon_from_rdp};
pub use dpfedavg::{DpConfig, DpFedAvg, DpMode, privatize_client_update};
pub use error::{Error, Result};
pub use ledger::{BudgetStatus, Ledger, LedgerConfig, Reservation};
pub use mechanisms::{
    DiscreteGaussian, GaussianMechanism, KaryRandomizedResponse, LaplaceMechanism,
    RandomizedResponse, csprng,
};
