//! Wire messages between server and clients: serde + postcard inside a versioned envelope, carried
//! in length-limited frames ([`crate::frame`]). Model tensors inside messages use fl-core's codec
//! (raw little-endian f32 behind a canonical header), decoded under explicit limits.

use fl_core::{ModelVersion, Round};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Protocol version spoken by this build; a message with another version is refused.
pub const WIRE_VERSION: u16 = 1;

/// Local training instructions for one round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainTask {
    /// SGD learning rate.
    pub learning_rate: f32,
    /// Momentum.
    pub momentum: f32,
    /// FedProx proximal coefficient μ (0 for FedAvg clients).
    pub prox_mu: f32,
    /// Mini-batch size (non-DP training).
    pub batch_size: u32,
    /// Local epochs (non-DP training).
    pub epochs: u32,
    /// Example-level DP-SGD, if the federation uses it.
    pub dp_sgd: Option<DpSgdTask>,
    /// L2 bound on the model delta `local − global` (always set under secure aggregation, whose
    /// quantizer needs a range).
    pub update_clip: Option<f64>,
    /// Seed for shuffling (not for noise: DP noise always comes from the OS CSPRNG).
    pub seed: u64,
}

/// DP-SGD settings (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016, Alg. 1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpSgdTask {
    /// Poisson sampling rate q per step.
    pub sampling_rate: f64,
    /// Noise multiplier σ.
    pub noise_multiplier: f64,
    /// Per-example clipping bound.
    pub clip: f64,
    /// Steps this round.
    pub steps: u64,
}

/// How the client protects its update this round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Protection {
    /// The update is sent in the clear (robust aggregation needs individual updates).
    Plaintext,
    /// Secure aggregation: quantize into `Z_(2^b)` and take part in the fl-secagg round.
    SecAgg {
        /// This client's id in the secure-aggregation session.
        client_id: fl_secagg::ClientId,
        /// Session parameters.
        params: fl_secagg::Params,
        /// Quantizer range `c` (equal to the update clip).
        range: f64,
        /// Quantizer levels `2^bits`.
        level_bits: u8,
    },
    /// Paillier: quantize, pack and encrypt under the federation's threshold key
    /// ([`crate::paillier`]); later, send decryption shares of the sum.
    Paillier {
        /// [`crate::paillier::fingerprint`] of the key the server expects.
        key_fingerprint: [u8; 32],
        /// Quantizer range `c` (equal to the update clip).
        range: f64,
        /// Bits per quantized value.
        value_bits: u8,
        /// Most updates the sum may hold (sizes the carry headroom of each packed slot).
        max_terms: u64,
    },
}

/// The start of a round for one selected client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundStart {
    /// The round.
    pub round: Round,
    /// Version of the global model sent.
    pub model_version: ModelVersion,
    /// The global model as an fl-core params frame.
    pub global: Vec<u8>,
    /// Training instructions.
    pub task: TrainTask,
    /// Update protection.
    pub protection: Protection,
}

/// Server → client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ServerMsg {
    /// Train and answer.
    RoundStart(Box<RoundStart>),
    /// A secure-aggregation step of the current round.
    SecAgg {
        /// The round.
        round: Round,
        /// The step.
        msg: fl_secagg::ServerMessage,
    },
    /// Paillier: the homomorphic sum of the round's encrypted updates, for this partner's
    /// decryption shares.
    PaillierDecrypt {
        /// The round.
        round: Round,
        /// The summed ciphertexts.
        sum: Vec<fl_he::Ciphertext>,
    },
    /// The round is over; whether this client's update is in the aggregate and its budget.
    RoundEnd {
        /// The round.
        round: Round,
        /// Whether the client's update was aggregated (and its budget charged).
        included: bool,
        /// ε spent so far by this partner on this model version, when DP is on.
        epsilon_spent: Option<f64>,
    },
    /// The client was not selected this round, with the reason (e.g. budget paused).
    NotSelected {
        /// The round.
        round: Round,
        /// Why.
        reason: String,
    },
}

/// Client → server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientMsg {
    /// A plaintext update: the model delta as an fl-core params frame.
    Update {
        /// The round it answers.
        round: Round,
        /// The model version it was trained from.
        model_version: ModelVersion,
        /// Local examples (FedAvg weight).
        num_examples: u64,
        /// `local − global`.
        delta: Vec<u8>,
    },
    /// A secure-aggregation step.
    SecAgg {
        /// The round.
        round: Round,
        /// The step.
        msg: fl_secagg::ClientMessage,
    },
    /// Paillier: the update quantized, packed and encrypted.
    PaillierUpdate {
        /// The round it answers.
        round: Round,
        /// The model version it was trained from.
        model_version: ModelVersion,
        /// The encrypted delta.
        update: fl_he::PackedVector,
    },
    /// Paillier: this partner's decryption shares of the round's sum, one per ciphertext.
    PaillierShares {
        /// The round.
        round: Round,
        /// The shares.
        shares: Vec<fl_he::DecryptionShare>,
    },
    /// The client will not take part in this round.
    Decline {
        /// The round.
        round: Round,
        /// Why.
        reason: String,
    },
}

impl ClientMsg {
    /// The round the message belongs to.
    #[must_use]
    pub fn round(&self) -> Round {
        match self {
            Self::Update { round, .. }
            | Self::SecAgg { round, .. }
            | Self::PaillierUpdate { round, .. }
            | Self::PaillierShares { round, .. }
            | Self::Decline { round, .. } => *round,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    version: u16,
    body: T,
}

/// Encodes a message in the versioned envelope.
///
/// # Errors
///
/// [`Error::Malformed`] if serialization fails (it does not for these types).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(&Envelope { version: WIRE_VERSION, body: msg })
        .map_err(|e| Error::Malformed(e.to_string()))
}

/// Decodes a message from a frame's payload.
///
/// # Errors
///
/// [`Error::Version`] for another protocol version, [`Error::Malformed`] for anything that does
/// not decode completely.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u16,
    }
    let (head, _) = postcard::take_from_bytes::<VersionOnly>(bytes)
        .map_err(|e| Error::Malformed(e.to_string()))?;
    if head.version != WIRE_VERSION {
        return Err(Error::Version { got: head.version, expected: WIRE_VERSION });
    }
    let (env, rest) = postcard::take_from_bytes::<Envelope<T>>(bytes)
        .map_err(|e| Error::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Error::Malformed(format!("{} trailing bytes", rest.len())));
    }
    Ok(env.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let m = ClientMsg::Decline { round: Round(3), reason: "budget".into() };
        let bytes = encode(&m).unwrap();
        assert_eq!(decode::<ClientMsg>(&bytes).unwrap(), m);
        let mut other = bytes.clone();
        other[0] = 2; // varint version 2
        assert!(matches!(decode::<ClientMsg>(&other), Err(Error::Version { got: 2, .. })));
        let mut long = bytes;
        long.push(0);
        assert!(matches!(decode::<ClientMsg>(&long), Err(Error::Malformed(_))));
        assert!(decode::<ServerMsg>(&[1, 200, 200, 200]).is_err());
    }
}
