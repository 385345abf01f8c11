//! The client state machine (Bonawitz et al., CCS 2017, Fig. 4, "User" column; SecAgg+ restricts
//! every step to the client's neighbourhood).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::Rng;
use rand::rngs::ChaCha20Rng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use rayon::prelude::*;

use crate::crypto::{
    channel_secret, masking_key, open, pairwise_seed, seal, self_mask_seed, sum_masks,
};
use crate::messages::{AdvertisedKeys, ClientMessage, ServerMessage};
use crate::shamir::{Share, split};
use crate::{ClientId, Error, Params, Result};

pub(crate) fn key_message(session: &crate::SessionId, k: &AdvertisedKeys) -> Vec<u8> {
    [
        b"mshale-fl/secagg/v1/keys".as_slice(),
        &session.0,
        &k.client.0.to_le_bytes(),
        &k.encryption_key,
        &k.masking_key,
    ]
    .concat()
}

pub(crate) fn survivors_message(session: &crate::SessionId, survivors: &[ClientId]) -> Vec<u8> {
    let mut m = [b"mshale-fl/secagg/v1/survivors".as_slice(), &session.0].concat();
    for s in survivors {
        m.extend_from_slice(&s.0.to_le_bytes());
    }
    m
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Init,
    Advertised,
    Shared,
    Masked,
    Checked,
    Done,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Advertised => "advertised keys",
            Self::Shared => "shared keys",
            Self::Masked => "sent masked input",
            Self::Checked => "consistency checked",
            Self::Done => "done",
        }
    }
}

/// A neighbour's keys, as received, and the share channel's raw key agreement.
struct Peer {
    masking: PublicKey,
    channel: Zeroizing<[u8; 32]>,
}

/// Shares this client holds for a neighbour.
struct Held {
    key_share: Share,
    self_mask_share: Share,
}

/// One client's side of a secure-aggregation round. Feed it server messages with
/// [`SecAggClient::handle`]; send back what it returns. Secrets (X25519 keys, the self-mask seed,
/// shares) are wiped when it is dropped and never appear in `Debug`.
pub struct SecAggClient {
    id: ClientId,
    input: Vec<u64>,
    rng: ChaCha20Rng,
    identity: Option<SigningKey>,
    identities: HashMap<ClientId, VerifyingKey>,
    phase: Phase,
    params: Option<Params>,
    neighbours: BTreeSet<ClientId>,
    encryption_secret: Option<StaticSecret>,
    masking_seed: Option<Zeroizing<[u8; 16]>>,
    masking_secret: Option<StaticSecret>,
    self_seed: Option<Zeroizing<[u8; 16]>>,
    peers: BTreeMap<ClientId, Peer>,
    held: BTreeMap<ClientId, Held>,
    survivors_signed: Option<Vec<ClientId>>,
}

impl std::fmt::Debug for SecAggClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecAggClient")
            .field("id", &self.id)
            .field("phase", &self.phase.name())
            .finish_non_exhaustive()
    }
}

impl SecAggClient {
    /// A client with id `id` contributing `input` (already quantized into `Z_(2^b)`), drawing
    /// randomness from `rng` (seed it from the OS: `ChaCha20Rng::try_from_rng(&mut SysRng)`).
    #[must_use]
    pub fn new(id: ClientId, input: Vec<u64>, rng: ChaCha20Rng) -> Self {
        Self {
            id,
            input,
            rng,
            identity: None,
            identities: HashMap::new(),
            phase: Phase::Init,
            params: None,
            neighbours: BTreeSet::new(),
            encryption_secret: None,
            masking_seed: None,
            masking_secret: None,
            self_seed: None,
            peers: BTreeMap::new(),
            held: BTreeMap::new(),
            survivors_signed: None,
        }
    }

    /// For the malicious-server variant: this client's signing key and the other clients'
    /// verifying keys (from enrolment).
    #[must_use]
    pub fn with_identities(
        mut self,
        identity: SigningKey,
        identities: HashMap<ClientId, VerifyingKey>,
    ) -> Self {
        self.identity = Some(identity);
        self.identities = identities;
        self
    }

    /// This client's id.
    #[must_use]
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// Whether the round is complete from this client's side.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn params(&self) -> Result<&Params> {
        self.params.as_ref().ok_or(Error::Internal("no parameters"))
    }

    fn unexpected(&self, got: &'static str) -> Error {
        Error::UnexpectedMessage { got, phase: self.phase.name() }
    }

    fn check_session(&self, session: &crate::SessionId) -> Result<()> {
        if &self.params()?.session == session { Ok(()) } else { Err(Error::WrongSession) }
    }

    /// Handles one server message; returns the reply to send, if any. After an error the client
    /// has revealed nothing beyond what it had already sent, and should leave the round.
    ///
    /// # Errors
    ///
    /// Out-of-order or wrong-session messages, malformed content, failed decryption or
    /// signatures, too few peers, or a request the client must refuse.
    pub fn handle(&mut self, msg: ServerMessage) -> Result<Option<ClientMessage>> {
        match msg {
            ServerMessage::Start(params) => self.on_start(params).map(Some),
            ServerMessage::Keys { session, keys } => {
                self.check_session(&session)?;
                self.on_keys(keys).map(Some)
            }
            ServerMessage::Shares { session, shares } => {
                self.check_session(&session)?;
                self.on_shares(shares).map(Some)
            }
            ServerMessage::ConsistencyCheck { session, survivors } => {
                self.check_session(&session)?;
                self.on_consistency(survivors).map(Some)
            }
            ServerMessage::Unmask { session, survivors, signatures } => {
                self.check_session(&session)?;
                self.on_unmask(survivors, &signatures).map(Some)
            }
        }
    }

    fn on_start(&mut self, params: Params) -> Result<ClientMessage> {
        if self.phase != Phase::Init {
            return Err(self.unexpected("Start"));
        }
        params.validate()?;
        if !params.contains(self.id) {
            return Err(Error::param(
                "client id",
                format!("{} not in 1..={}", self.id, params.num_clients),
            ));
        }
        if self.input.len() != params.dimension as usize {
            return Err(Error::param(
                "input",
                format!("{} values, round expects {}", self.input.len(), params.dimension),
            ));
        }
        if self.input.iter().any(|&v| v & !params.ring_mask() != 0) {
            return Err(Error::param(
                "input",
                format!("values must be below 2^{}", params.ring_bits),
            ));
        }
        if params.malicious && self.identity.is_none() {
            return Err(Error::param(
                "identity",
                "the malicious-server variant needs a signing key",
            ));
        }
        let enc = StaticSecret::random_from_rng(&mut self.rng);
        let mut seed = Zeroizing::new([0u8; 16]);
        self.rng.fill_bytes(&mut seed[..]);
        let mask = masking_key(&params.session, &seed, self.id);
        self.masking_seed = Some(seed);
        let mut keys = AdvertisedKeys {
            client: self.id,
            encryption_key: PublicKey::from(&enc).to_bytes(),
            masking_key: PublicKey::from(&mask).to_bytes(),
            signature: None,
        };
        if let Some(id) = &self.identity {
            keys.signature = Some(id.sign(&key_message(&params.session, &keys)).to_bytes());
        }
        self.neighbours = params.neighbours(self.id);
        self.encryption_secret = Some(enc);
        self.masking_secret = Some(mask);
        let session = params.session;
        self.params = Some(params);
        self.phase = Phase::Advertised;
        Ok(ClientMessage::AdvertiseKeys { session, keys })
    }

    fn verify(&self, who: ClientId, message: &[u8], signature: &[u8]) -> Result<()> {
        let key = self.identities.get(&who).ok_or(Error::BadSignature(who))?;
        let sig = Signature::from_slice(signature).map_err(|_| Error::BadSignature(who))?;
        key.verify(message, &sig).map_err(|_| Error::BadSignature(who))
    }

    fn on_keys(&mut self, keys: Vec<AdvertisedKeys>) -> Result<ClientMessage> {
        if self.phase != Phase::Advertised {
            return Err(self.unexpected("Keys"));
        }
        let params = self.params()?.clone();
        let mut seen_keys = BTreeSet::new();
        let mut peers = BTreeMap::new();
        for k in keys {
            if k.client == self.id || !self.neighbours.contains(&k.client) {
                return Err(Error::Malformed {
                    client: ClientId(0),
                    reason: format!("keys of non-neighbour {}", k.client),
                });
            }
            // Bonawitz et al.: abort if two clients advertise the same key.
            if !seen_keys.insert(k.encryption_key) || !seen_keys.insert(k.masking_key) {
                return Err(Error::Malformed {
                    client: k.client,
                    reason: "repeated public key".into(),
                });
            }
            if params.malicious {
                let sig = k.signature.ok_or(Error::BadSignature(k.client))?;
                self.verify(k.client, &key_message(&params.session, &k), &sig)?;
            }
            if peers
                .insert(
                    k.client,
                    (PublicKey::from(k.encryption_key), PublicKey::from(k.masking_key)),
                )
                .is_some()
            {
                return Err(Error::Malformed {
                    client: k.client,
                    reason: "keys listed twice".into(),
                });
            }
        }
        let enc = self.encryption_secret.as_ref().ok_or(Error::Internal("no encryption key"))?;
        // One key agreement per neighbour, in parallel; reused to open the shares it sends back.
        let channels: Vec<Result<(ClientId, Peer)>> = peers
            .par_iter()
            .map(|(&v, (e, m))| Ok((v, Peer { masking: *m, channel: channel_secret(enc, e, v)? })))
            .collect();
        let peers: BTreeMap<ClientId, Peer> = channels.into_iter().collect::<Result<_>>()?;
        let t = params.threshold as usize;
        if peers.len() < t {
            return Err(Error::TooFewClients { phase: "ShareKeys", have: peers.len(), need: t });
        }
        // Share the masking secret key and a fresh self-mask seed with the neighbours in U1.
        let mut seed = Zeroizing::new([0u8; 16]);
        self.rng.fill_bytes(&mut seed[..]);
        let holders: Vec<ClientId> = peers.keys().copied().collect();
        let key_seed = self.masking_seed.as_ref().ok_or(Error::Internal("no masking seed"))?;
        let key_shares = split(key_seed, &holders, t, &mut self.rng)?;
        let seed_shares = split(&seed, &holders, t, &mut self.rng)?;
        let mut ciphertexts = Vec::with_capacity(holders.len());
        for ((v, ks), ss) in holders.iter().zip(&key_shares).zip(&seed_shares) {
            let plain = Zeroizing::new(crate::messages::encode(&(self.id, *v, ks, ss))?);
            let peer = peers.get(v).ok_or(Error::Internal("peer"))?;
            ciphertexts.push((*v, seal(&params.session, &peer.channel, self.id, *v, &plain)?));
        }
        self.self_seed = Some(seed);
        self.peers = peers;
        self.phase = Phase::Shared;
        Ok(ClientMessage::ShareKeys { session: params.session, from: self.id, ciphertexts })
    }

    fn on_shares(&mut self, shares: Vec<(ClientId, Vec<u8>)>) -> Result<ClientMessage> {
        if self.phase != Phase::Shared {
            return Err(self.unexpected("Shares"));
        }
        let params = self.params()?.clone();
        let mut held = BTreeMap::new();
        for (from, ct) in shares {
            let peer = self.peers.get(&from).ok_or(Error::Malformed {
                client: ClientId(0),
                reason: format!("shares from non-peer {from}"),
            })?;
            let plain = open(&params.session, &peer.channel, from, self.id, &ct)?;
            let (u, v, ks, ss): (ClientId, ClientId, Share, Share) =
                postcard::from_bytes(&plain).map_err(|_| Error::Decryption)?;
            if u != from || v != self.id || ks.holder != self.id || ss.holder != self.id {
                return Err(Error::Decryption);
            }
            if held.insert(from, Held { key_share: ks, self_mask_share: ss }).is_some() {
                return Err(Error::Duplicate(from));
            }
        }
        let t = params.threshold as usize;
        if held.len() < t {
            return Err(Error::TooFewClients {
                phase: "MaskedInputCollection",
                have: held.len(),
                need: t,
            });
        }
        // y_u = x_u + PRG(b_u) + Σ_{v ∈ U2} ±PRG(s_{u,v}), + if u < v.
        let seed = self.self_seed.as_ref().ok_or(Error::Internal("no self seed"))?;
        let masking = self.masking_secret.as_ref().ok_or(Error::Internal("no masking key"))?;
        // Jobs: the self mask (None) and one pairwise mask per peer in U2; key agreement and
        // expansion run in parallel.
        let jobs: Vec<Option<ClientId>> =
            std::iter::once(None).chain(held.keys().map(|&v| Some(v))).collect();
        let session = params.session;
        let masks =
            sum_masks(&jobs, params.dimension as usize, params.ring_bits, |job| match job {
                None => Ok((self_mask_seed(&session, seed, self.id), false)),
                Some(v) => {
                    let peer = self.peers.get(v).ok_or(Error::Internal("peer"))?;
                    Ok((
                        pairwise_seed(&session, masking, &peer.masking, self.id, *v)?,
                        self.id > *v,
                    ))
                }
            })?;
        let mask = params.ring_mask();
        let y: Vec<u64> =
            self.input.iter().zip(&masks).map(|(x, m)| x.wrapping_add(*m) & mask).collect();
        self.held = held;
        self.phase = Phase::Masked;
        Ok(ClientMessage::MaskedInput { session: params.session, from: self.id, masked: y })
    }

    fn check_survivors(&self, survivors: &[ClientId]) -> Result<()> {
        if survivors.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::Refused("survivor list must be sorted and distinct".into()));
        }
        let t = self.params()?.threshold as usize;
        // Survivors among the clients whose shares this client holds, plus itself.
        let known =
            survivors.iter().filter(|s| self.held.contains_key(s) || **s == self.id).count();
        if known < t {
            return Err(Error::TooFewClients { phase: "Unmasking", have: known, need: t });
        }
        Ok(())
    }

    fn on_consistency(&mut self, survivors: Vec<ClientId>) -> Result<ClientMessage> {
        if self.phase != Phase::Masked || !self.params()?.malicious {
            return Err(self.unexpected("ConsistencyCheck"));
        }
        self.check_survivors(&survivors)?;
        let params = self.params()?.clone();
        let id = self.identity.as_ref().ok_or(Error::Internal("identity"))?;
        let signature =
            id.sign(&survivors_message(&params.session, &survivors)).to_bytes().to_vec();
        self.survivors_signed = Some(survivors);
        self.phase = Phase::Checked;
        Ok(ClientMessage::ConsistencySignature {
            session: params.session,
            from: self.id,
            signature,
        })
    }

    fn on_unmask(
        &mut self,
        survivors: Vec<ClientId>,
        signatures: &[(ClientId, Vec<u8>)],
    ) -> Result<ClientMessage> {
        let params = self.params()?.clone();
        let expected = if params.malicious { Phase::Checked } else { Phase::Masked };
        if self.phase != expected {
            return Err(self.unexpected("Unmask"));
        }
        self.check_survivors(&survivors)?;
        if params.malicious {
            // The same U3 this client signed, vouched for by ≥ t members of U3.
            if self.survivors_signed.as_ref() != Some(&survivors) {
                return Err(Error::Refused("survivor list differs from the one signed".into()));
            }
            let msg = survivors_message(&params.session, &survivors);
            let mut valid = BTreeSet::new();
            for (who, sig) in signatures {
                if survivors.binary_search(who).is_ok() {
                    self.verify(*who, &msg, sig)?;
                    valid.insert(*who);
                }
            }
            if valid.len() < params.threshold as usize {
                return Err(Error::TooFewClients {
                    phase: "ConsistencyCheck",
                    have: valid.len(),
                    need: params.threshold as usize,
                });
            }
        }
        // For each neighbour this client holds shares of: a survivor's self-mask share, or a
        // dropped client's key share — never both for the same client.
        let mut key_shares = Vec::new();
        let mut self_mask_shares = Vec::new();
        for (v, h) in &self.held {
            if survivors.binary_search(v).is_ok() {
                self_mask_shares.push((*v, h.self_mask_share.clone()));
            } else {
                key_shares.push((*v, h.key_share.clone()));
            }
        }
        self.phase = Phase::Done;
        Ok(ClientMessage::UnmaskShares {
            session: params.session,
            from: self.id,
            key_shares,
            self_mask_shares,
        })
    }
}
