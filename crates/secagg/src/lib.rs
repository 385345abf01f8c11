#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        clippy::panic_in_result_fn,
        clippy::cast_possible_truncation,
        clippy::cast_precision_loss,
        clippy::cast_sign_loss,
        reason = "tests assert and return Result; test data is built with casts"
    )
)]

mod client;
pub mod crypto;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod messages;
pub mod params;
mod server;
pub mod shamir;
pub mod sim;

pub use client::SecAggClient;
pub use error::{Error, Result};
pub use messages::{ClientMessage, ServerMessage};
pub use params::{
    Adversary, ClientId, Graph, GraphParams, Params, Quantizer, SessionId, find_graph_params,
};
pub use server::{Aggregate, SecAggServer, ServerPhase};
