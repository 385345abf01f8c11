//! The client side of a round as a sans-IO state machine: [`Participant::handle`] takes a server
//! message and returns the replies. It trains locally (FedProx or DP-SGD), clips the delta, and
//! either sends it in the clear or quantizes it and runs the fl-secagg client, so nothing but a
//! masked vector leaves the partner.

use fl_core::codec::{DecodeOptions, decode_params, encode_params};
use fl_core::{ModelParams, PartnerId, Round};
use fl_dp::{RdpAccountant, clip_l2};
use fl_he::{Obfuscator, Packing, PartyKey};
use fl_secagg::{Quantizer, SecAggClient};
use fl_train::{Dataset, DpSgdConfig, Mlp, SgdConfig, train, train_dp};
use rand::rngs::ChaCha20Rng;
use rayon::prelude::*;

use crate::messages::{ClientMsg, Protection, RoundStart, ServerMsg};
use crate::{Error, Result};

/// What the participant last learned about its standing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParticipantStatus {
    /// Rounds whose aggregate included this partner's update.
    pub rounds_included: u64,
    /// ε spent on the current model version, as the server's ledger reports it.
    pub epsilon_spent: Option<f64>,
    /// DP-SGD steps run on this partner's data (its own accountant holds their privacy cost).
    pub dp_sgd_steps: u64,
    /// Why the server last left this partner out, if it did.
    pub last_not_selected: Option<String>,
}

struct Active {
    round: Round,
    secagg: Option<SecAggClient>,
    /// Paillier: ciphertexts the round's sum must have, until this partner has sent its
    /// decryption shares (it answers one request per round it contributed to).
    paillier_sum_len: Option<usize>,
}

/// The Paillier key share of this partner and its encryption table.
struct PaillierKeys {
    party: PartyKey,
    fingerprint: [u8; 32],
    obfuscator: Option<Obfuscator>,
}

/// One partner's client.
pub struct Participant {
    id: PartnerId,
    model: Mlp,
    data: Dataset,
    rng: ChaCha20Rng,
    accountant: RdpAccountant,
    decode: DecodeOptions,
    active: Option<Active>,
    status: ParticipantStatus,
    paillier: Option<PaillierKeys>,
}

impl std::fmt::Debug for Participant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Participant")
            .field("id", &self.id)
            .field("examples", &self.data.len())
            .finish_non_exhaustive()
    }
}

impl Participant {
    /// A participant training `model` on its local `data`. DP noise and secure-aggregation keys
    /// draw from `rng`; seed it from the OS ([`fl_dp::csprng`]).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the data does not fit the model.
    pub fn new(id: PartnerId, model: Mlp, data: Dataset, rng: ChaCha20Rng) -> Result<Self> {
        if data.num_features() != model.inputs() || data.is_empty() {
            return Err(Error::config(
                "data",
                format!(
                    "{} examples of {} features for a model with {} inputs",
                    data.len(),
                    data.num_features(),
                    model.inputs()
                ),
            ));
        }
        Ok(Self {
            id,
            model,
            data,
            rng,
            accountant: RdpAccountant::default(),
            decode: DecodeOptions::default(),
            active: None,
            status: ParticipantStatus::default(),
            paillier: None,
        })
    }

    /// Gives the participant its share of the federation's threshold Paillier key, needed in
    /// the Paillier privacy mode.
    #[must_use]
    pub fn with_paillier(mut self, party: PartyKey) -> Self {
        let fingerprint = crate::paillier::fingerprint(&party.key);
        self.paillier = Some(PaillierKeys { party, fingerprint, obfuscator: None });
        self
    }

    /// The partner id.
    #[must_use]
    pub fn id(&self) -> &PartnerId {
        &self.id
    }

    /// Local examples.
    #[must_use]
    pub fn num_examples(&self) -> usize {
        self.data.len()
    }

    /// What the server last told this partner.
    #[must_use]
    pub fn status(&self) -> &ParticipantStatus {
        &self.status
    }

    /// This partner's own accountant over the DP-SGD steps it ran.
    #[must_use]
    pub fn accountant(&self) -> &RdpAccountant {
        &self.accountant
    }

    /// Handles one server message and returns the replies. An error leaves the round (the
    /// server sees a dropout) but never the participant's data.
    ///
    /// # Errors
    ///
    /// A message for another round, a model that does not match, training divergence, or a
    /// secure-aggregation failure.
    pub fn handle(&mut self, msg: ServerMsg) -> Result<Vec<ClientMsg>> {
        match msg {
            ServerMsg::RoundStart(start) => {
                let round = start.round;
                let result = self.start_round(*start);
                if result.is_err() {
                    self.active = None;
                }
                result.map(|m| vec![m]).or_else(|e| match e {
                    // Tell the server why instead of silently dropping.
                    Error::Train(_) | Error::Dp(_) => {
                        Ok(vec![ClientMsg::Decline { round, reason: e.to_string() }])
                    }
                    other => Err(other),
                })
            }
            ServerMsg::SecAgg { round, msg } => {
                let active =
                    self.active.as_mut().filter(|a| a.round == round).ok_or_else(|| {
                        Error::rejected(
                            "server",
                            format!(
                                "secure-aggregation step for round {round}, not the current one"
                            ),
                        )
                    })?;
                let client = active.secagg.as_mut().ok_or_else(|| {
                    Error::rejected("server", "secure-aggregation step in a plaintext round")
                })?;
                Ok(client
                    .handle(msg)?
                    .map(|m| ClientMsg::SecAgg { round, msg: m })
                    .into_iter()
                    .collect())
            }
            ServerMsg::PaillierDecrypt { round, sum } => {
                let active = self.active.as_mut().filter(|a| a.round == round);
                let expected = active.as_ref().and_then(|a| a.paillier_sum_len).ok_or_else(|| {
                    Error::rejected(
                        "server",
                        format!(
                            "decryption request for round {round}, which this partner did not send an encrypted update for or already answered"
                        ),
                    )
                })?;
                let keys = self.paillier.as_ref().ok_or_else(|| {
                    Error::config("paillier-key", "this partner holds no key share")
                })?;
                if sum.len() != expected {
                    return Err(Error::rejected(
                        "server",
                        format!("a sum of {} ciphertexts, expected {expected}", sum.len()),
                    ));
                }
                let party = &keys.party;
                let shares = sum
                    .par_iter()
                    .map(|c| party.share.decrypt_share(&party.key, c))
                    .collect::<fl_he::Result<Vec<_>>>()?;
                if let Some(a) = active {
                    a.paillier_sum_len = None;
                }
                Ok(vec![ClientMsg::PaillierShares { round, shares }])
            }
            ServerMsg::RoundEnd { round, included, epsilon_spent } => {
                if self.active.as_ref().is_some_and(|a| a.round == round) {
                    self.active = None;
                }
                if included {
                    self.status.rounds_included += 1;
                }
                if epsilon_spent.is_some() {
                    self.status.epsilon_spent = epsilon_spent;
                }
                Ok(Vec::new())
            }
            ServerMsg::NotSelected { reason, .. } => {
                self.status.last_not_selected = Some(reason);
                Ok(Vec::new())
            }
        }
    }

    fn start_round(&mut self, start: RoundStart) -> Result<ClientMsg> {
        let global: ModelParams<f32> = decode_params(&start.global, &self.decode)?;
        if *global.spec() != **self.model.spec() {
            return Err(Error::rejected(
                "server",
                "the global model does not match the local architecture",
            ));
        }
        let task = &start.task;
        let sgd = SgdConfig {
            learning_rate: task.learning_rate,
            momentum: task.momentum,
            weight_decay: 0.0,
            prox_mu: task.prox_mu,
            batch_size: task.batch_size as usize,
            epochs: task.epochs as usize,
            seed: task.seed,
        };
        let prox = (task.prox_mu > 0.0).then_some(&global);
        let mut local = global.clone();
        match task.dp_sgd {
            Some(dp) => {
                let cfg = DpSgdConfig {
                    sgd,
                    sampling_rate: dp.sampling_rate,
                    noise_multiplier: dp.noise_multiplier,
                    clip: dp.clip,
                    steps: dp.steps,
                };
                train_dp(
                    &self.model,
                    &mut local,
                    &self.data,
                    &cfg,
                    prox,
                    &mut self.accountant,
                    &mut self.rng,
                )?;
                self.status.dp_sgd_steps += dp.steps;
            }
            None => {
                train(&self.model, &mut local, &self.data, &sgd, prox)?;
            }
        }
        let mut delta = local;
        delta.sub_assign(&global)?;
        if let Some(c) = task.update_clip {
            clip_l2(delta.as_mut_slice(), c)?;
        }
        let num_examples = self.data.len() as u64;
        match start.protection {
            Protection::Plaintext => {
                self.active =
                    Some(Active { round: start.round, secagg: None, paillier_sum_len: None });
                Ok(ClientMsg::Update {
                    round: start.round,
                    model_version: start.model_version,
                    num_examples,
                    delta: encode_params(&delta)?,
                })
            }
            Protection::SecAgg { client_id, params, range, level_bits } => {
                let quantizer = Quantizer::new(range, level_bits, params.num_clients)?;
                if quantizer.ring_bits() != params.ring_bits
                    || params.dimension as usize != delta.len()
                {
                    return Err(Error::rejected(
                        "server",
                        format!(
                            "secure-aggregation ring of {} bits for {} values, expected {} bits for {}",
                            params.ring_bits,
                            params.dimension,
                            quantizer.ring_bits(),
                            delta.len()
                        ),
                    ));
                }
                let input = quantizer.quantize(delta.as_slice(), &mut self.rng);
                let keys_rng = rand::SeedableRng::from_rng(&mut self.rng);
                let mut client = SecAggClient::new(client_id, input, keys_rng);
                let reply = client
                    .handle(fl_secagg::ServerMessage::Start(params))?
                    .ok_or_else(|| Error::rejected("server", "secure aggregation did not start"))?;
                self.active = Some(Active {
                    round: start.round,
                    secagg: Some(client),
                    paillier_sum_len: None,
                });
                Ok(ClientMsg::SecAgg { round: start.round, msg: reply })
            }
            Protection::Paillier { key_fingerprint, range, value_bits, max_terms } => {
                let keys = self.paillier.as_mut().ok_or_else(|| {
                    Error::config(
                        "paillier-key",
                        "the server runs the Paillier mode, but this partner holds no key share",
                    )
                })?;
                if key_fingerprint != keys.fingerprint {
                    return Err(Error::rejected(
                        "server",
                        "the server expects a different Paillier key than the one this partner holds",
                    ));
                }
                let pk = &keys.party.key.public;
                let packing = Packing::new(pk, range, u32::from(value_bits), max_terms)?;
                // The fixed-base table is built once per key and reused every round.
                if keys.obfuscator.is_none() {
                    keys.obfuscator = Some(Obfuscator::new(pk, 8, &mut self.rng)?);
                }
                let update = packing.encrypt(
                    pk,
                    keys.obfuscator.as_ref(),
                    delta.as_slice(),
                    &mut self.rng,
                )?;
                self.active = Some(Active {
                    round: start.round,
                    secagg: None,
                    paillier_sum_len: Some(update.ciphertexts.len()),
                });
                Ok(ClientMsg::PaillierUpdate {
                    round: start.round,
                    model_version: start.model_version,
                    update,
                })
            }
        }
    }
}
