#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod adversary;
pub mod auth;
pub mod config;
pub mod coordinator;
mod error;
pub mod frame;
pub mod fuzzing;
pub mod ingest;
pub mod messages;
pub mod network;
pub mod paillier;
pub mod participant;
pub mod report;
pub mod simulation;
mod state;

pub use config::{AggregatorKind, DpSetting, FederationConfig, PrivacyMode};
pub use coordinator::{Advance, CentralPlan, Coordinator, RoundSummary};
pub use error::{Error, Result};
pub use participant::Participant;
pub use simulation::{SimulationConfig, SimulationReport, simulate};
