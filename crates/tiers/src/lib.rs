#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod attacks;
pub mod brat;
mod error;
pub mod features;
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
pub mod policy;
pub mod spec;
pub mod tagger;
pub mod text;
pub mod tokenize;
pub mod units;

pub use error::{Error, Result};
pub use tagger::Tagger;
