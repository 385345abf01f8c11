//! The server state machine (Bonawitz et al., CCS 2017, Fig. 4, "Server" column). It never
//! touches a socket or clock: the transport calls [`SecAggServer::receive`] for each message and
//! [`SecAggServer::advance`] when a phase's quorum or deadline is reached; whoever has not
//! answered by then has dropped out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::client::{key_message, survivors_message};
use crate::crypto::{masking_key, pairwise_seed, self_mask_seed, sum_masks};
use crate::messages::{AdvertisedKeys, ClientMessage, ServerMessage};
use crate::shamir::{LagrangeCache, Share};
use crate::{ClientId, Error, Params, Result};

/// Where the server is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerPhase {
    /// Collecting advertised keys (U1).
    AdvertiseKeys,
    /// Collecting encrypted shares (U2).
    ShareKeys,
    /// Collecting masked inputs (U3).
    MaskedInputs,
    /// Collecting survivor-list signatures (U4; malicious variant).
    ConsistencyCheck,
    /// Collecting unmasking shares (U5).
    Unmasking,
    /// The sum is available.
    Finished,
    /// Too few clients: nothing was or will be revealed.
    Aborted,
}

impl ServerPhase {
    fn name(self) -> &'static str {
        match self {
            Self::AdvertiseKeys => "AdvertiseKeys",
            Self::ShareKeys => "ShareKeys",
            Self::MaskedInputs => "MaskedInputCollection",
            Self::ConsistencyCheck => "ConsistencyCheck",
            Self::Unmasking => "Unmasking",
            Self::Finished => "Finished",
            Self::Aborted => "Aborted",
        }
    }
}

/// The result: the exact sum over the survivors U3, in `Z_(2^b)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aggregate {
    /// `Σ_{u ∈ U3} x_u mod 2^b`.
    pub sum: Vec<u64>,
    /// U3: the clients whose inputs are in the sum.
    pub survivors: Vec<ClientId>,
}

struct UnmaskReply {
    key_shares: Vec<(ClientId, Share)>,
    self_mask_shares: Vec<(ClientId, Share)>,
}

/// The server's side of one secure-aggregation round.
pub struct SecAggServer {
    params: Params,
    phase: ServerPhase,
    identities: HashMap<ClientId, VerifyingKey>,
    neighbours: Vec<BTreeSet<ClientId>>,
    keys: BTreeMap<ClientId, AdvertisedKeys>,
    ciphertexts: BTreeMap<ClientId, Vec<(ClientId, Vec<u8>)>>,
    masked: BTreeMap<ClientId, Vec<u64>>,
    survivors: Vec<ClientId>,
    signatures: BTreeMap<ClientId, Vec<u8>>,
    unmask: BTreeMap<ClientId, UnmaskReply>,
}

impl std::fmt::Debug for SecAggServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecAggServer")
            .field("phase", &self.phase)
            .field("n", &self.params.num_clients)
            .finish_non_exhaustive()
    }
}

impl SecAggServer {
    /// A server for `params`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for invalid parameters.
    pub fn new(params: Params) -> Result<Self> {
        params.validate()?;
        let neighbours = (0..=params.num_clients)
            .map(|u| if u == 0 { BTreeSet::new() } else { params.neighbours(ClientId(u)) })
            .collect();
        Ok(Self {
            params,
            phase: ServerPhase::AdvertiseKeys,
            identities: HashMap::new(),
            neighbours,
            keys: BTreeMap::new(),
            ciphertexts: BTreeMap::new(),
            masked: BTreeMap::new(),
            survivors: Vec::new(),
            signatures: BTreeMap::new(),
            unmask: BTreeMap::new(),
        })
    }

    /// Verifying keys of the clients (required for the malicious-server variant, where the
    /// server rejects unsigned keys and survivor-list signatures early).
    #[must_use]
    pub fn with_identities(mut self, identities: HashMap<ClientId, VerifyingKey>) -> Self {
        self.identities = identities;
        self
    }

    /// The parameters.
    #[must_use]
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The current phase.
    #[must_use]
    pub fn phase(&self) -> ServerPhase {
        self.phase
    }

    /// The message that starts the round, to every client `1..=n`.
    #[must_use]
    pub fn start(&self) -> Vec<(ClientId, ServerMessage)> {
        (1..=self.params.num_clients)
            .map(|u| (ClientId(u), ServerMessage::Start(self.params.clone())))
            .collect()
    }

    /// Clients that have answered the current phase.
    #[must_use]
    pub fn responded(&self) -> Vec<ClientId> {
        match self.phase {
            ServerPhase::AdvertiseKeys => self.keys.keys().copied().collect(),
            ServerPhase::ShareKeys => self.ciphertexts.keys().copied().collect(),
            ServerPhase::MaskedInputs => self.masked.keys().copied().collect(),
            ServerPhase::ConsistencyCheck => self.signatures.keys().copied().collect(),
            ServerPhase::Unmasking => self.unmask.keys().copied().collect(),
            ServerPhase::Finished | ServerPhase::Aborted => Vec::new(),
        }
    }

    fn nb(&self, u: ClientId) -> &BTreeSet<ClientId> {
        &self.neighbours[u.0 as usize]
    }

    fn malformed(client: ClientId, reason: impl Into<String>) -> Error {
        Error::Malformed { client, reason: reason.into() }
    }

    /// Takes one client message. `from` is the authenticated sender as the transport knows it;
    /// the message must claim the same id. Invalid messages change nothing.
    ///
    /// # Errors
    ///
    /// [`Error::WrongSession`] (replays from other rounds), [`Error::UnexpectedMessage`] (wrong
    /// phase), [`Error::UnknownClient`], [`Error::Duplicate`], [`Error::Malformed`],
    /// [`Error::BadSignature`].
    pub fn receive(&mut self, from: ClientId, msg: ClientMessage) -> Result<()> {
        if msg.session() != &self.params.session {
            return Err(Error::WrongSession);
        }
        if msg.sender() != from || !self.params.contains(from) {
            return Err(Error::UnknownClient(from));
        }
        let unexpected = Error::UnexpectedMessage { got: msg.kind(), phase: self.phase.name() };
        match (self.phase, msg) {
            (ServerPhase::AdvertiseKeys, ClientMessage::AdvertiseKeys { keys, .. }) => {
                if self.keys.contains_key(&from) {
                    return Err(Error::Duplicate(from));
                }
                if self.params.malicious {
                    let key = self.identities.get(&from).ok_or(Error::UnknownClient(from))?;
                    let sig = keys.signature.ok_or(Error::BadSignature(from))?;
                    key.verify(
                        &key_message(&self.params.session, &keys),
                        &Signature::from_bytes(&sig),
                    )
                    .map_err(|_| Error::BadSignature(from))?;
                }
                self.keys.insert(from, keys);
            }
            (ServerPhase::ShareKeys, ClientMessage::ShareKeys { ciphertexts, .. }) => {
                if !self.keys.contains_key(&from) {
                    return Err(Error::UnknownClient(from));
                }
                if self.ciphertexts.contains_key(&from) {
                    return Err(Error::Duplicate(from));
                }
                let expected: BTreeSet<ClientId> =
                    self.nb(from).iter().filter(|v| self.keys.contains_key(v)).copied().collect();
                let got: BTreeSet<ClientId> = ciphertexts.iter().map(|(to, _)| *to).collect();
                if got != expected || got.len() != ciphertexts.len() {
                    return Err(Self::malformed(
                        from,
                        "ciphertexts must address each neighbour in U1 exactly once",
                    ));
                }
                self.ciphertexts.insert(from, ciphertexts);
            }
            (ServerPhase::MaskedInputs, ClientMessage::MaskedInput { masked, .. }) => {
                if !self.ciphertexts.contains_key(&from) {
                    return Err(Error::UnknownClient(from));
                }
                if self.masked.contains_key(&from) {
                    return Err(Error::Duplicate(from));
                }
                if masked.len() != self.params.dimension as usize {
                    return Err(Self::malformed(
                        from,
                        format!("{} values, expected {}", masked.len(), self.params.dimension),
                    ));
                }
                if masked.iter().any(|&v| v & !self.params.ring_mask() != 0) {
                    return Err(Self::malformed(from, "value outside the ring"));
                }
                self.masked.insert(from, masked);
            }
            (
                ServerPhase::ConsistencyCheck,
                ClientMessage::ConsistencySignature { signature, .. },
            ) => {
                if self.survivors.binary_search(&from).is_err() {
                    return Err(Error::UnknownClient(from));
                }
                if self.signatures.contains_key(&from) {
                    return Err(Error::Duplicate(from));
                }
                let key = self.identities.get(&from).ok_or(Error::UnknownClient(from))?;
                let sig =
                    Signature::from_slice(&signature).map_err(|_| Error::BadSignature(from))?;
                key.verify(&survivors_message(&self.params.session, &self.survivors), &sig)
                    .map_err(|_| Error::BadSignature(from))?;
                self.signatures.insert(from, signature);
            }
            (
                ServerPhase::Unmasking,
                ClientMessage::UnmaskShares { key_shares, self_mask_shares, .. },
            ) => {
                let asked = if self.params.malicious {
                    self.signatures.contains_key(&from)
                } else {
                    self.survivors.binary_search(&from).is_ok()
                };
                if !asked {
                    return Err(Error::UnknownClient(from));
                }
                if self.unmask.contains_key(&from) {
                    return Err(Error::Duplicate(from));
                }
                // `from` holds shares of the neighbours in U2 whose ciphertexts it was sent.
                let held: BTreeSet<ClientId> = self
                    .nb(from)
                    .iter()
                    .filter(|v| self.ciphertexts.contains_key(v))
                    .copied()
                    .collect();
                let mut seen = BTreeSet::new();
                for (v, share) in &key_shares {
                    if !held.contains(v)
                        || self.survivors.binary_search(v).is_ok()
                        || share.holder != from
                        || !seen.insert(*v)
                    {
                        return Err(Self::malformed(from, format!("bad key share for {v}")));
                    }
                }
                for (v, share) in &self_mask_shares {
                    if !held.contains(v)
                        || self.survivors.binary_search(v).is_err()
                        || share.holder != from
                        || !seen.insert(*v)
                    {
                        return Err(Self::malformed(from, format!("bad self-mask share for {v}")));
                    }
                }
                self.unmask.insert(from, UnmaskReply { key_shares, self_mask_shares });
            }
            _ => return Err(unexpected),
        }
        Ok(())
    }

    fn abort(&mut self, have: usize, need: usize) -> Error {
        let phase = self.phase.name();
        self.phase = ServerPhase::Aborted;
        Error::TooFewClients { phase, have, need }
    }

    /// Closes the current phase with the clients that answered and returns the next phase's
    /// messages. After [`ServerPhase::Unmasking`], call [`SecAggServer::finish`] instead.
    ///
    /// # Errors
    ///
    /// [`Error::TooFewClients`] (the round aborts) if fewer than the threshold answered;
    /// [`Error::UnexpectedMessage`] when there is no next phase.
    pub fn advance(&mut self) -> Result<Vec<(ClientId, ServerMessage)>> {
        let t = self.params.threshold as usize;
        let session = self.params.session;
        match self.phase {
            ServerPhase::AdvertiseKeys => {
                if self.keys.len() < t + 1 {
                    return Err(self.abort(self.keys.len(), t + 1));
                }
                let out = self
                    .keys
                    .keys()
                    .map(|&u| {
                        let keys =
                            self.nb(u).iter().filter_map(|v| self.keys.get(v).cloned()).collect();
                        (u, ServerMessage::Keys { session, keys })
                    })
                    .collect();
                self.phase = ServerPhase::ShareKeys;
                Ok(out)
            }
            ServerPhase::ShareKeys => {
                if self.ciphertexts.len() < t + 1 {
                    return Err(self.abort(self.ciphertexts.len(), t + 1));
                }
                let mut inbox: BTreeMap<ClientId, Vec<(ClientId, Vec<u8>)>> = BTreeMap::new();
                for (&from, cts) in &self.ciphertexts {
                    for (to, ct) in cts {
                        if self.ciphertexts.contains_key(to) {
                            inbox.entry(*to).or_default().push((from, ct.clone()));
                        }
                    }
                }
                let out = self
                    .ciphertexts
                    .keys()
                    .map(|&u| {
                        (
                            u,
                            ServerMessage::Shares {
                                session,
                                shares: inbox.remove(&u).unwrap_or_default(),
                            },
                        )
                    })
                    .collect();
                self.phase = ServerPhase::MaskedInputs;
                Ok(out)
            }
            ServerPhase::MaskedInputs => {
                if self.masked.len() < t {
                    return Err(self.abort(self.masked.len(), t));
                }
                self.survivors = self.masked.keys().copied().collect();
                let survivors = self.survivors.clone();
                if self.params.malicious {
                    self.phase = ServerPhase::ConsistencyCheck;
                    Ok(survivors
                        .iter()
                        .map(|&u| {
                            (
                                u,
                                ServerMessage::ConsistencyCheck {
                                    session,
                                    survivors: survivors.clone(),
                                },
                            )
                        })
                        .collect())
                } else {
                    self.phase = ServerPhase::Unmasking;
                    Ok(survivors
                        .iter()
                        .map(|&u| {
                            (
                                u,
                                ServerMessage::Unmask {
                                    session,
                                    survivors: survivors.clone(),
                                    signatures: Vec::new(),
                                },
                            )
                        })
                        .collect())
                }
            }
            ServerPhase::ConsistencyCheck => {
                if self.signatures.len() < t {
                    return Err(self.abort(self.signatures.len(), t));
                }
                let sigs: Vec<(ClientId, Vec<u8>)> =
                    self.signatures.iter().map(|(k, v)| (*k, v.clone())).collect();
                self.phase = ServerPhase::Unmasking;
                Ok(self
                    .signatures
                    .keys()
                    .map(|&u| {
                        (
                            u,
                            ServerMessage::Unmask {
                                session,
                                survivors: self.survivors.clone(),
                                signatures: sigs.clone(),
                            },
                        )
                    })
                    .collect())
            }
            _ => Err(Error::UnexpectedMessage { got: "advance", phase: self.phase.name() }),
        }
    }

    /// Reconstructs what the unmasking replies allow and returns the exact sum over U3.
    ///
    /// # Errors
    ///
    /// [`Error::TooFewClients`] if some secret has fewer than t shares (the round aborts);
    /// [`Error::BadShares`] if a dropped client's reconstructed key does not match its advertised
    /// key; [`Error::UnexpectedMessage`] outside the unmasking phase.
    pub fn finish(&mut self) -> Result<Aggregate> {
        if self.phase != ServerPhase::Unmasking {
            return Err(Error::UnexpectedMessage { got: "finish", phase: self.phase.name() });
        }
        let t = self.params.threshold as usize;
        let mut key_shares: BTreeMap<ClientId, Vec<&Share>> = BTreeMap::new();
        let mut seed_shares: BTreeMap<ClientId, Vec<&Share>> = BTreeMap::new();
        for reply in self.unmask.values() {
            for (v, s) in &reply.key_shares {
                key_shares.entry(*v).or_default().push(s);
            }
            for (v, s) in &reply.self_mask_shares {
                seed_shares.entry(*v).or_default().push(s);
            }
        }
        let responders: Vec<ClientId> = self.unmask.keys().copied().collect();
        let mut cache = LagrangeCache::new(t, &responders)?;
        let mut recon = |shares: &[&Share]| cache.reconstruct(shares);
        // Jobs: masks to remove from the sum — each survivor's self mask, and the pairwise masks
        // between dropped clients (whose keys are reconstructed here) and surviving neighbours.
        enum Job {
            SelfMask(zeroize::Zeroizing<[u8; 32]>),
            Pair { dropped: usize, survivor: ClientId, survivor_key: PublicKey },
        }
        let session = self.params.session;
        let mut jobs: Vec<Job> = Vec::new();
        let mut dropped_keys: Vec<(ClientId, StaticSecret)> = Vec::new();
        let survivors: BTreeSet<ClientId> = self.survivors.iter().copied().collect();
        for &u in &self.survivors {
            let shares = seed_shares.get(&u).map_or(&[][..], Vec::as_slice);
            if shares.len() < t {
                return Err(self.abort(shares.len(), t));
            }
            let b = recon(shares)?;
            jobs.push(Job::SelfMask(self_mask_seed(&session, &b, u)));
        }
        for &v in self.ciphertexts.keys().filter(|v| !survivors.contains(v)) {
            let affected: Vec<ClientId> =
                self.nb(v).iter().filter(|u| survivors.contains(u)).copied().collect();
            if affected.is_empty() {
                continue;
            }
            let shares = key_shares.get(&v).map_or(&[][..], Vec::as_slice);
            if shares.len() < t {
                return Err(self.abort(shares.len(), t));
            }
            let secret = masking_key(&session, &*recon(shares)?, v);
            let advertised = self.keys.get(&v).ok_or(Error::Internal("keys of a U2 client"))?;
            if PublicKey::from(&secret).to_bytes() != advertised.masking_key {
                return Err(Error::BadShares(v));
            }
            let idx = dropped_keys.len();
            dropped_keys.push((v, secret));
            for u in affected {
                let survivor_key = PublicKey::from(
                    self.keys.get(&u).ok_or(Error::Internal("keys of a survivor"))?.masking_key,
                );
                jobs.push(Job::Pair { dropped: idx, survivor: u, survivor_key });
            }
        }
        let d = self.params.dimension as usize;
        let mut sum = vec![0u64; d];
        for y in self.masked.values() {
            for (s, v) in sum.iter_mut().zip(y) {
                *s = s.wrapping_add(*v);
            }
        }
        // Remove with the opposite sign to the one the client applied: a self mask was added; a
        // pairwise mask was subtracted by u iff u > v.
        let correction = sum_masks(&jobs, d, self.params.ring_bits, |job| match job {
            Job::SelfMask(seed) => Ok((seed.clone(), true)),
            Job::Pair { dropped, survivor, survivor_key } => {
                let (v, secret) = &dropped_keys[*dropped];
                Ok((pairwise_seed(&session, secret, survivor_key, *v, *survivor)?, *survivor <= *v))
            }
        })?;
        let mask = self.params.ring_mask();
        for (s, c) in sum.iter_mut().zip(correction) {
            *s = s.wrapping_add(c) & mask;
        }
        self.phase = ServerPhase::Finished;
        Ok(Aggregate { sum, survivors: self.survivors.clone() })
    }
}
