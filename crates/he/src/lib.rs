#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod bigint;
pub mod encoding;
mod error;
pub mod keys;
pub mod obfuscator;
pub mod packing;
mod primes;
pub mod threshold;
pub mod vector;

pub use encoding::{Decoded, EncodedNumber, EncryptedNumber};
pub use error::{Error, Result};
pub use keys::{Ciphertext, PrivateKey, PublicKey};
pub use obfuscator::Obfuscator;
pub use packing::{PackedVector, Packing};
pub use threshold::{DecryptionShare, KeyShare, PartyKey, ThresholdKey};
