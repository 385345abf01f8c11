//! Protocol messages (serde + postcard). The transport moves them; the state machines validate
//! them. [`decode_server`] / [`decode_client`] bound the input size and never panic.

use serde::{Deserialize, Serialize};

use crate::shamir::Share;
use crate::{ClientId, Error, Params, Result, SessionId};

/// A client's advertised public keys (Bonawitz et al., round 0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvertisedKeys {
    /// The client.
    pub client: ClientId,
    /// X25519 key for share encryption (`c_u^PK`).
    pub encryption_key: [u8; 32],
    /// X25519 key for pairwise masks (`s_u^PK`).
    pub masking_key: [u8; 32],
    /// ed25519 signature over session, client and both keys (malicious-server variant).
    #[serde(with = "opt_sig")]
    pub signature: Option<[u8; 64]>,
}

mod opt_sig {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<[u8; 64]>, s: S) -> Result<S::Ok, S::Error> {
        v.map(|a| a.to_vec()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 64]>, D::Error> {
        let v: Option<Vec<u8>> = Option::deserialize(d)?;
        v.map(|b| {
            <[u8; 64]>::try_from(b.as_slice())
                .map_err(|_| serde::de::Error::custom("signature must be 64 bytes"))
        })
        .transpose()
    }
}

/// Server → client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ServerMessage {
    /// Round 0: the parameters; the client answers with [`ClientMessage::AdvertiseKeys`].
    Start(Params),
    /// Round 1: the advertised keys of the client's neighbours that are in U1.
    Keys {
        /// Session.
        session: SessionId,
        /// Neighbours' keys.
        keys: Vec<AdvertisedKeys>,
    },
    /// Round 2: the share ciphertexts addressed to this client, from senders in U2.
    Shares {
        /// Session.
        session: SessionId,
        /// `(sender, ciphertext)`.
        shares: Vec<(ClientId, Vec<u8>)>,
    },
    /// Round 3 (malicious variant): the survivors U3 to sign.
    ConsistencyCheck {
        /// Session.
        session: SessionId,
        /// U3.
        survivors: Vec<ClientId>,
    },
    /// Round 4: the survivors U3 (with their signatures in the malicious variant); the client
    /// reveals key shares of dropped neighbours and self-mask shares of surviving ones.
    Unmask {
        /// Session.
        session: SessionId,
        /// U3.
        survivors: Vec<ClientId>,
        /// `(signer, signature over U3)`.
        signatures: Vec<(ClientId, Vec<u8>)>,
    },
}

/// Client → server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientMessage {
    /// Round 0 reply.
    AdvertiseKeys {
        /// Session.
        session: SessionId,
        /// The keys.
        keys: AdvertisedKeys,
    },
    /// Round 1 reply: `(receiver, ciphertext)` for each neighbour.
    ShareKeys {
        /// Session.
        session: SessionId,
        /// Sender.
        from: ClientId,
        /// Ciphertexts.
        ciphertexts: Vec<(ClientId, Vec<u8>)>,
    },
    /// Round 2 reply: the masked input `y_u`.
    MaskedInput {
        /// Session.
        session: SessionId,
        /// Sender.
        from: ClientId,
        /// `y_u ∈ Z_(2^b)^d`.
        masked: Vec<u64>,
    },
    /// Round 3 reply (malicious variant): signature over U3.
    ConsistencySignature {
        /// Session.
        session: SessionId,
        /// Sender.
        from: ClientId,
        /// ed25519 signature.
        signature: Vec<u8>,
    },
    /// Round 4 reply.
    UnmaskShares {
        /// Session.
        session: SessionId,
        /// Sender.
        from: ClientId,
        /// Shares of the masking secret keys of dropped neighbours.
        key_shares: Vec<(ClientId, Share)>,
        /// Shares of the self-mask seeds of surviving neighbours.
        self_mask_shares: Vec<(ClientId, Share)>,
    },
}

impl ClientMessage {
    /// The session the message is for.
    #[must_use]
    pub fn session(&self) -> &SessionId {
        match self {
            Self::AdvertiseKeys { session, .. }
            | Self::ShareKeys { session, .. }
            | Self::MaskedInput { session, .. }
            | Self::ConsistencySignature { session, .. }
            | Self::UnmaskShares { session, .. } => session,
        }
    }

    /// The claimed sender.
    #[must_use]
    pub fn sender(&self) -> ClientId {
        match self {
            Self::AdvertiseKeys { keys, .. } => keys.client,
            Self::ShareKeys { from, .. }
            | Self::MaskedInput { from, .. }
            | Self::ConsistencySignature { from, .. }
            | Self::UnmaskShares { from, .. } => *from,
        }
    }

    /// The message kind, for errors.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AdvertiseKeys { .. } => "AdvertiseKeys",
            Self::ShareKeys { .. } => "ShareKeys",
            Self::MaskedInput { .. } => "MaskedInput",
            Self::ConsistencySignature { .. } => "ConsistencySignature",
            Self::UnmaskShares { .. } => "UnmaskShares",
        }
    }
}

/// Largest encoded message accepted by the decoders (masked inputs of 2^23 words and share
/// lists of 1e5 clients fit).
pub const MAX_MESSAGE_BYTES: usize = 96 << 20;

fn check_len(bytes: &[u8], limit: usize) -> Result<()> {
    if bytes.len() > limit {
        return Err(Error::Wire(format!("{} bytes exceed the limit of {limit}", bytes.len())));
    }
    Ok(())
}

/// Encodes a message with postcard.
///
/// # Errors
///
/// [`Error::Wire`] if encoding fails.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(msg).map_err(|e| Error::Wire(e.to_string()))
}

/// Decodes a server message of at most `limit` bytes.
///
/// # Errors
///
/// [`Error::Wire`] for oversized, truncated or malformed input, or trailing bytes.
pub fn decode_server(bytes: &[u8], limit: usize) -> Result<ServerMessage> {
    check_len(bytes, limit)?;
    let (m, rest) = postcard::take_from_bytes(bytes).map_err(|e| Error::Wire(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Error::Wire(format!("{} trailing bytes", rest.len())));
    }
    Ok(m)
}

/// Decodes a client message of at most `limit` bytes.
///
/// # Errors
///
/// As [`decode_server`].
pub fn decode_client(bytes: &[u8], limit: usize) -> Result<ClientMessage> {
    check_len(bytes, limit)?;
    let (m, rest) = postcard::take_from_bytes(bytes).map_err(|e| Error::Wire(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Error::Wire(format!("{} trailing bytes", rest.len())));
    }
    Ok(m)
}
