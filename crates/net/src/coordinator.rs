//! The server side of the federation as a sans-IO state machine. The driver (in-memory
//! simulation or network transport) calls [`Coordinator::begin_round`], delivers what clients
//! send with [`Coordinator::receive`], and calls [`Coordinator::advance`] when everyone awaited
//! has answered or the phase deadline has passed. No sockets, clocks or threads: time comes in
//! as an argument.
//!
//! One round: select partners (skipping those the ledger has paused, and telling them why),
//! reserve each selected partner's DP charge, send the global model and task; collect plaintext
//! updates or run fl-secagg on quantized, clipped deltas; aggregate; commit the charges of the
//! partners whose updates are in the aggregate and release the others; append the round to the
//! audit log.

use std::collections::{BTreeMap, BTreeSet};

use fl_audit::{AuditLog, Digest, Entry, Extension, PrivacyCharge, RoundEntry};
use fl_core::codec::{DecodeOptions, decode_params, encode_params};
use fl_core::{Aggregator, ClientUpdate, ModelParams, ModelSpec, ModelVersion, PartnerId, Round};
use fl_dp::{
    DpEvent, GaussianMechanism, Ledger, PrivacyBudget, Reservation, calibrate_noise_multiplier,
    clip_l2,
};
use fl_he::{DecryptionShare, PackedVector, Packing};
use fl_secagg::{
    Adversary, ClientId, Graph, Params, Quantizer, SecAggServer, ServerPhase, SessionId,
    find_graph_params,
};
use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::config::{DpSetting, FederationConfig, PrivacyMode};
use crate::messages::{ClientMsg, DpSgdTask, Protection, RoundStart, ServerMsg, TrainTask};
use crate::paillier::PaillierSetup;
use crate::{Error, Result};

/// Messages for partners.
pub type Outbox = Vec<(PartnerId, ServerMsg)>;

/// Partners in the aggregate, the next global model, and per-update digests (plaintext only).
type Aggregated = (Vec<PartnerId>, ModelParams<f32>, Vec<(PartnerId, Digest)>);

/// A partner's DP-SGD plan: its sampling rate, noise and steps per round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DpPlan {
    /// The DP-SGD task sent each round.
    pub task: DpSgdTask,
    /// ε the planned rounds spend (at the budget's δ).
    pub planned_epsilon: f64,
}

/// The central-DP plan of a federation ([`DpSetting::Central`]): fixed at its first round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CentralPlan {
    /// Poisson sampling rate q of partners per round.
    pub sampling_rate: f64,
    /// Noise multiplier σ (noise std over the update clip).
    pub noise_multiplier: f64,
    /// ε the planned rounds spend (at the budget's δ).
    pub planned_epsilon: f64,
}

#[derive(Clone, Debug)]
struct Partner {
    plan: Option<DpPlan>,
}

enum Collect {
    Plain { updates: BTreeMap<PartnerId, (u64, ModelParams<f32>)> },
    Secure { server: Box<SecAggServer>, ids: BTreeMap<PartnerId, ClientId>, quantizer: Quantizer },
    Paillier(Box<PaillierRound>),
}

/// A Paillier round: encrypted updates are collected, added, and the sum's decryption shares
/// collected from the contributing partners that hold a key share.
struct PaillierRound {
    packing: Packing,
    updates: BTreeMap<PartnerId, PackedVector>,
    /// Set once the updates are summed: the partners in the sum and the sum itself.
    decrypting: Option<(Vec<PartnerId>, PackedVector)>,
    shares: BTreeMap<PartnerId, Vec<DecryptionShare>>,
}

struct RoundState {
    round: Round,
    selected: Vec<PartnerId>,
    reservations: BTreeMap<PartnerId, Reservation>,
    declined: BTreeMap<PartnerId, String>,
    /// Partners sent a message in the current phase: the ones it waits for.
    sent: BTreeSet<PartnerId>,
    collect: Collect,
    /// Partners subject to sampling this round (central DP's denominator is q times this).
    population: usize,
}

/// What happened in a finished round.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundSummary {
    /// The round.
    pub round: Round,
    /// Partners selected.
    pub selected: Vec<PartnerId>,
    /// Partners whose updates are in the aggregate.
    pub included: Vec<PartnerId>,
    /// Selected partners that dropped out or declined.
    pub dropped: Vec<PartnerId>,
    /// Partners not selected and why (e.g. budget paused).
    pub not_selected: Vec<(PartnerId, String)>,
    /// ε each included partner has spent so far on this model version.
    pub epsilon_spent: BTreeMap<PartnerId, f64>,
    /// Digest of the new global model.
    pub model_digest: Digest,
    /// Audit sequence number of the round record, if an audit log is attached.
    pub audit_sequence: Option<u64>,
}

/// The result of [`Coordinator::advance`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Advance {
    /// The round continues: deliver these.
    Continue(Outbox),
    /// The round finished; deliver the closing messages.
    Finished(Box<RoundSummary>, Outbox),
    /// The round was abandoned (too few clients); the global model is unchanged and no budget
    /// was charged.
    Aborted {
        /// The round.
        round: Round,
        /// Why.
        reason: String,
        /// Closing messages.
        outbox: Outbox,
    },
}

/// The federation server.
pub struct Coordinator {
    config: FederationConfig,
    spec: ModelSpec,
    global: ModelParams<f32>,
    completed: Round,
    aggregator: Box<dyn Aggregator<f32, Error = fl_agg::Error>>,
    ledger: Option<Ledger>,
    audit: Option<AuditLog>,
    partners: BTreeMap<PartnerId, Partner>,
    state: Option<RoundState>,
    not_selected: Vec<(PartnerId, String)>,
    offline: BTreeSet<PartnerId>,
    rng: ChaCha20Rng,
    decode: DecodeOptions,
    paillier: Option<PaillierSetup>,
    central: Option<CentralPlan>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("completed", &self.completed)
            .field("partners", &self.partners.len())
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// A coordinator for `config` starting from `initial` after `completed` rounds (0 for a new
    /// federation). `ledger` is required when DP is on; `audit` records every round. `rng`
    /// selects partners and draws session ids: seed it from the OS.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid configuration or a missing ledger.
    pub fn new(
        config: FederationConfig,
        initial: ModelParams<f32>,
        completed: Round,
        ledger: Option<Ledger>,
        audit: Option<AuditLog>,
        rng: ChaCha20Rng,
    ) -> Result<Self> {
        config.validate()?;
        if !matches!(config.dp, DpSetting::Off) && ledger.is_none() {
            return Err(Error::config("ledger", "differential privacy needs a budget ledger"));
        }
        initial.ensure_finite()?;
        let aggregator = config.aggregator.build()?;
        Ok(Self {
            spec: initial.spec().clone(),
            global: initial,
            completed,
            aggregator,
            ledger,
            audit,
            partners: BTreeMap::new(),
            state: None,
            not_selected: Vec::new(),
            offline: BTreeSet::new(),
            rng,
            decode: DecodeOptions::default(),
            paillier: None,
            central: None,
            config,
        })
    }

    /// The central-DP plan, once the first round has fixed it.
    #[must_use]
    pub fn central_plan(&self) -> Option<CentralPlan> {
        self.central
    }

    /// Fixes the central-DP plan at the first round from the partners available then:
    /// `q = min(1, clients_per_round / N)` and σ calibrated for the planned rounds.
    fn ensure_central_plan(&mut self, available: usize) -> Result<Option<CentralPlan>> {
        let DpSetting::Central { epsilon, delta, plan_fraction } = self.config.dp else {
            return Ok(None);
        };
        if let Some(plan) = self.central {
            return Ok(Some(plan));
        }
        #[allow(clippy::cast_precision_loss, reason = "partner counts are small")]
        let q = (self.config.clients_per_round as f64 / available.max(1) as f64).min(1.0);
        let orders = match &self.ledger {
            Some(l) => l.orders()?,
            None => fl_dp::rdp::default_orders(),
        };
        let cal = calibrate_noise_multiplier(
            epsilon * plan_fraction,
            delta,
            q,
            self.config.rounds,
            &orders,
        )?;
        let plan = CentralPlan {
            sampling_rate: q,
            noise_multiplier: cal.noise_multiplier,
            planned_epsilon: cal.epsilon,
        };
        self.central = Some(plan);
        Ok(Some(plan))
    }

    /// Attaches the public threshold key of the Paillier privacy mode (required before the
    /// first round in that mode).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the federation is not in Paillier mode, the setup is inconsistent,
    /// or its threshold exceeds the clients per round (no round could ever be decrypted).
    pub fn set_paillier(&mut self, setup: PaillierSetup) -> Result<()> {
        if self.config.privacy != PrivacyMode::Paillier {
            return Err(Error::config(
                "paillier-key",
                format!("given, but the privacy mode is {}", self.config.privacy.name()),
            ));
        }
        setup.validate()?;
        if setup.key.threshold as usize > self.config.clients_per_round {
            return Err(Error::config(
                "paillier-key",
                format!(
                    "{} decryption shares needed, but only {} clients take part in a round",
                    setup.key.threshold, self.config.clients_per_round
                ),
            ));
        }
        self.paillier = Some(setup);
        Ok(())
    }

    /// Marks a partner reachable or not: partners that are not are left out of the next
    /// rounds' selection (a network driver calls this as connections come and go).
    pub fn set_online(&mut self, id: &PartnerId, online: bool) {
        if online {
            self.offline.remove(id);
        } else {
            self.offline.insert(id.clone());
        }
    }

    /// The current global model.
    #[must_use]
    pub fn global(&self) -> &ModelParams<f32> {
        &self.global
    }

    /// Rounds completed.
    #[must_use]
    pub fn completed(&self) -> Round {
        self.completed
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &FederationConfig {
        &self.config
    }

    /// The ledger, if DP is on.
    #[must_use]
    pub fn ledger(&self) -> Option<&Ledger> {
        self.ledger.as_ref()
    }

    /// The audit log, if attached.
    #[must_use]
    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// The model version budgets are kept against.
    #[must_use]
    pub fn model_version(&self) -> ModelVersion {
        ModelVersion(self.config.model_version)
    }

    /// A partner's DP plan.
    #[must_use]
    pub fn plan(&self, partner: &PartnerId) -> Option<DpPlan> {
        self.partners.get(partner).and_then(|p| p.plan)
    }

    /// Registers an (already authenticated) partner holding `num_examples` examples. Under
    /// DP-SGD this calibrates its noise so that the planned rounds spend the configured share of
    /// its budget, and opens its ledger account (an existing account, after a restart, is kept).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for zero examples; calibration or ledger errors.
    pub fn add_partner(&mut self, id: PartnerId, num_examples: u64) -> Result<DpPlan> {
        if num_examples == 0 {
            return Err(Error::config("examples", format!("partner {id} has none")));
        }
        let plan = match self.config.dp {
            DpSetting::Off => None,
            DpSetting::Central { epsilon, delta, .. } => {
                if let Some(ledger) = &self.ledger {
                    match ledger.register(
                        &id,
                        self.model_version(),
                        PrivacyBudget::new(epsilon, delta)?,
                    ) {
                        Ok(()) | Err(fl_dp::Error::AlreadyRegistered { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                None
            }
            DpSetting::LocalSgd { epsilon, delta, clip, batch_size, plan_fraction } => {
                #[allow(clippy::cast_precision_loss, reason = "example counts are far below 2^53")]
                let q = (f64::from(batch_size) / num_examples as f64).min(1.0);
                // One local epoch in expectation per configured epoch.
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "small positive step counts"
                )]
                let steps = ((f64::from(self.config.local_epochs) / q).ceil() as u64).max(1);
                let total = steps.saturating_mul(self.config.rounds);
                let orders = match &self.ledger {
                    Some(l) => l.orders()?,
                    None => fl_dp::rdp::default_orders(),
                };
                let cal =
                    calibrate_noise_multiplier(epsilon * plan_fraction, delta, q, total, &orders)?;
                let budget = PrivacyBudget::new(epsilon, delta)?;
                if let Some(ledger) = &self.ledger {
                    match ledger.register(&id, self.model_version(), budget) {
                        Ok(()) | Err(fl_dp::Error::AlreadyRegistered { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Some(DpPlan {
                    task: DpSgdTask {
                        sampling_rate: q,
                        noise_multiplier: cal.noise_multiplier,
                        clip,
                        steps,
                    },
                    planned_epsilon: cal.epsilon,
                })
            }
        };
        self.partners.insert(id, Partner { plan });
        Ok(plan.unwrap_or(DpPlan {
            task: DpSgdTask { sampling_rate: 0.0, noise_multiplier: 0.0, clip: 0.0, steps: 0 },
            planned_epsilon: 0.0,
        }))
    }

    /// Starts the next round: picks partners, reserves their budgets, and returns the messages
    /// (a [`ServerMsg::RoundStart`] for each selected partner, [`ServerMsg::NotSelected`] with
    /// the reason for paused ones).
    ///
    /// # Errors
    ///
    /// [`Error::NotEnoughPartners`] if fewer than the quorum can take part (nothing is
    /// reserved); [`Error::Rejected`] if a round is already running.
    pub fn begin_round(&mut self) -> Result<Outbox> {
        if self.state.is_some() {
            return Err(Error::rejected("driver", "a round is already running"));
        }
        let round = Round(self.completed.0 + 1);
        let version = self.model_version();
        let mut outbox = Vec::new();
        self.not_selected.clear();
        let mut candidates = Vec::new();
        for id in self.partners.keys() {
            if self.offline.contains(id) {
                continue;
            }
            if let Some(ledger) = &self.ledger {
                let status = ledger.status(id, version)?;
                if status.paused {
                    let reason = format!(
                        "privacy budget paused: {:.1} % of ε = {} remains (below {:.0} %)",
                        status.remaining_fraction * 100.0,
                        status.budget.epsilon(),
                        10.0
                    );
                    self.not_selected.push((id.clone(), reason));
                    continue;
                }
            }
            candidates.push(id.clone());
        }
        candidates.shuffle(&mut self.rng);
        let mut selected = Vec::new();
        let mut reservations = BTreeMap::new();
        let mut population = candidates.len();
        let central =
            if candidates.is_empty() { None } else { self.ensure_central_plan(candidates.len())? };
        if let Some(plan) = central {
            // Poisson sampling; every partner that could be sampled is charged (the
            // amplification-by-sampling bound covers all of them, selected or not).
            let ledger = self
                .ledger
                .as_ref()
                .ok_or_else(|| Error::config("ledger", "central DP needs one"))?;
            let event = DpEvent::PoissonSampledGaussian {
                sampling_rate: plan.sampling_rate,
                noise_multiplier: plan.noise_multiplier,
            };
            population = 0;
            for id in std::mem::take(&mut candidates) {
                match ledger.reserve(&id, version, &event, 1) {
                    Ok(r) => {
                        reservations.insert(id.clone(), r);
                        population += 1;
                        if self.rng.random_bool(plan.sampling_rate) {
                            selected.push(id);
                        } else {
                            self.not_selected.push((id, "not sampled this round".into()));
                        }
                    }
                    Err(
                        e @ (fl_dp::Error::Paused { .. } | fl_dp::Error::BudgetExceeded { .. }),
                    ) => {
                        self.not_selected.push((id, e.to_string()));
                    }
                    Err(e) => {
                        self.release(&reservations);
                        return Err(e.into());
                    }
                }
            }
        }
        for id in candidates {
            if selected.len() == self.config.clients_per_round {
                self.not_selected.push((id, "not sampled this round".into()));
                continue;
            }
            if let (Some(ledger), Some(plan)) =
                (&self.ledger, self.partners.get(&id).and_then(|p| p.plan))
            {
                let event = DpEvent::PoissonSampledGaussian {
                    sampling_rate: plan.task.sampling_rate,
                    noise_multiplier: plan.task.noise_multiplier,
                };
                match ledger.reserve(&id, version, &event, plan.task.steps) {
                    Ok(r) => {
                        reservations.insert(id.clone(), r);
                    }
                    Err(
                        e @ (fl_dp::Error::Paused { .. } | fl_dp::Error::BudgetExceeded { .. }),
                    ) => {
                        self.not_selected.push((id, e.to_string()));
                        continue;
                    }
                    Err(e) => {
                        self.release(&reservations);
                        return Err(e.into());
                    }
                }
            }
            selected.push(id);
        }
        let need = self.config.quorum();
        if central.is_some() && selected.len() < need && population >= need {
            self.release(&reservations);
            return Err(Error::TooFewSampled { round, sampled: selected.len(), need });
        }
        if selected.len() < need {
            self.release(&reservations);
            return Err(Error::NotEnoughPartners {
                round,
                available: selected.len(),
                need,
                reason: self
                    .not_selected
                    .first()
                    .map_or_else(|| "too few enrolled".into(), |(p, r)| format!("{p}: {r}")),
            });
        }
        selected.sort();
        for (id, reason) in &self.not_selected {
            outbox.push((id.clone(), ServerMsg::NotSelected { round, reason: reason.clone() }));
        }
        let global = encode_params(&self.global)?;
        let (collect, protections) = self.protection_for(&selected)?;
        for (id, protection) in selected.iter().zip(protections) {
            let task = TrainTask {
                learning_rate: self.config.learning_rate,
                momentum: self.config.momentum,
                #[allow(clippy::cast_possible_truncation, reason = "μ is a small coefficient")]
                prox_mu: self.config.aggregator.prox_mu() as f32,
                batch_size: self.config.batch_size,
                epochs: self.config.local_epochs,
                dp_sgd: self.partners.get(id).and_then(|p| p.plan).map(|p| p.task),
                update_clip: self.config.update_clip,
                seed: self.rng.random(),
            };
            let start = RoundStart {
                round,
                model_version: version,
                global: global.clone(),
                task,
                protection,
            };
            outbox.push((id.clone(), ServerMsg::RoundStart(Box::new(start))));
        }
        let sent = selected.iter().cloned().collect();
        self.state = Some(RoundState {
            round,
            selected,
            reservations,
            declined: BTreeMap::new(),
            sent,
            collect,
            population,
        });
        Ok(outbox)
    }

    fn protection_for(&mut self, selected: &[PartnerId]) -> Result<(Collect, Vec<Protection>)> {
        if !self.config.privacy.is_secure() {
            return Ok((
                Collect::Plain { updates: BTreeMap::new() },
                vec![Protection::Plaintext; selected.len()],
            ));
        }
        let n = u32::try_from(selected.len())
            .map_err(|_| Error::config("clients", "too many for one round"))?;
        let range =
            self.config.update_clip.ok_or_else(|| Error::config("update-clip", "required"))?;
        if self.config.privacy == PrivacyMode::Paillier {
            let setup = self.paillier.as_ref().ok_or_else(|| {
                Error::config("paillier-key", "the Paillier mode needs the threshold public key")
            })?;
            let max_terms = u64::from(n);
            let value_bits = self.config.quantization_bits;
            let packing = Packing::new(&setup.key.public, range, u32::from(value_bits), max_terms)?;
            let protection = Protection::Paillier {
                key_fingerprint: crate::paillier::fingerprint(&setup.key),
                range,
                value_bits,
                max_terms,
            };
            let round = PaillierRound {
                packing,
                updates: BTreeMap::new(),
                decrypting: None,
                shares: BTreeMap::new(),
            };
            return Ok((Collect::Paillier(Box::new(round)), vec![protection; selected.len()]));
        }
        let quantizer = Quantizer::new(range, self.config.quantization_bits, n)?;
        let complete = (Graph::Complete, n / 2 + 1);
        let (graph, threshold) = match self.config.privacy {
            PrivacyMode::SecAggPlus => {
                match find_graph_params(n, 0.05, 0.1, Adversary::SemiHonest, 40, 20) {
                    Ok(p) if p.degree + 1 < n => {
                        (Graph::Harary { degree: p.degree, seed: self.rng.random() }, p.threshold)
                    }
                    // Small federations: the sparse graph would be complete anyway.
                    _ => complete,
                }
            }
            _ => complete,
        };
        let params = Params {
            session: SessionId(self.rng.random()),
            num_clients: n,
            threshold: threshold.max(1).min(n),
            dimension: u32::try_from(self.global.len())
                .map_err(|_| Error::config("model", "too large for secure aggregation"))?,
            ring_bits: quantizer.ring_bits(),
            graph,
            malicious: false,
        };
        let server = SecAggServer::new(params.clone())?;
        let ids: BTreeMap<PartnerId, ClientId> =
            selected.iter().zip(1..=n).map(|(p, i)| (p.clone(), ClientId(i))).collect();
        let protections = (1..=n)
            .map(|i| Protection::SecAgg {
                client_id: ClientId(i),
                params: params.clone(),
                range,
                level_bits: self.config.quantization_bits,
            })
            .collect();
        Ok((Collect::Secure { server: Box::new(server), ids, quantizer }, protections))
    }

    fn release(&self, reservations: &BTreeMap<PartnerId, Reservation>) {
        if let Some(ledger) = &self.ledger {
            for r in reservations.values() {
                // Best effort: an abort that fails leaves an open reservation, which counts
                // against the budget (the safe side) and is listed by the ledger.
                let _ = ledger.abort(*r);
            }
        }
    }

    /// Partners the current phase is still waiting for; when empty, call [`Self::advance`].
    #[must_use]
    pub fn awaiting(&self) -> Vec<PartnerId> {
        let Some(state) = &self.state else { return Vec::new() };
        let answered: BTreeSet<PartnerId> = match &state.collect {
            Collect::Plain { updates } => updates.keys().cloned().collect(),
            Collect::Secure { server, ids, .. } => {
                let r: BTreeSet<ClientId> = server.responded().into_iter().collect();
                ids.iter().filter(|(_, c)| r.contains(c)).map(|(p, _)| p.clone()).collect()
            }
            // Any t sets of shares decrypt: stop waiting for the spare once t are in.
            Collect::Paillier(r) if r.decrypting.is_some() => {
                if r.shares.len() >= self.paillier.as_ref().map_or(0, |s| s.key.threshold as usize)
                {
                    return Vec::new();
                }
                r.shares.keys().cloned().collect()
            }
            Collect::Paillier(r) => r.updates.keys().cloned().collect(),
        };
        state
            .sent
            .iter()
            .filter(|p| !answered.contains(*p) && !state.declined.contains_key(*p))
            .cloned()
            .collect()
    }

    /// Takes a message from an authenticated partner. Invalid messages are rejected and change
    /// nothing; the partner is then treated as not having answered.
    ///
    /// # Errors
    ///
    /// [`Error::Rejected`] for a partner not selected, a message for another round or model
    /// version, a second update, a malformed or non-finite delta or one of the wrong shape;
    /// fl-secagg's typed errors for secure-aggregation steps.
    pub fn receive(&mut self, from: &PartnerId, msg: ClientMsg) -> Result<()> {
        let decode = self.decode.clone();
        let version = self.model_version();
        let spec = self.spec.clone();
        let paillier = self.paillier.as_ref();
        let state =
            self.state.as_mut().ok_or_else(|| Error::rejected(from, "no round is running"))?;
        if msg.round() != state.round {
            return Err(Error::rejected(
                from,
                format!("message for round {}, current round is {}", msg.round(), state.round),
            ));
        }
        if state.selected.binary_search(from).is_err() {
            return Err(Error::rejected(from, "not selected for this round"));
        }
        match (msg, &mut state.collect) {
            (ClientMsg::Decline { reason, .. }, _) => {
                state.declined.insert(from.clone(), reason);
                Ok(())
            }
            (
                ClientMsg::Update { model_version, num_examples, delta, .. },
                Collect::Plain { updates },
            ) => {
                if model_version != version {
                    return Err(Error::rejected(
                        from,
                        format!("update for model version {model_version}, expected {version}"),
                    ));
                }
                if updates.contains_key(from) {
                    return Err(Error::rejected(from, "second update in one round"));
                }
                if num_examples == 0 {
                    return Err(Error::rejected(from, "update from zero examples"));
                }
                let delta: ModelParams<f32> = decode_params(&delta, &decode)
                    .map_err(|e| Error::rejected(from, e.to_string()))?;
                if *delta.spec() != spec {
                    return Err(Error::rejected(from, "update does not match the model's layers"));
                }
                delta.ensure_finite().map_err(|e| Error::rejected(from, e.to_string()))?;
                updates.insert(from.clone(), (num_examples, delta));
                Ok(())
            }
            (ClientMsg::SecAgg { msg, .. }, Collect::Secure { server, ids, .. }) => {
                let id = *ids
                    .get(from)
                    .ok_or_else(|| Error::rejected(from, "no secure-aggregation id"))?;
                server.receive(id, msg)?;
                Ok(())
            }
            (ClientMsg::PaillierUpdate { model_version, update, .. }, Collect::Paillier(r)) => {
                if model_version != version {
                    return Err(Error::rejected(
                        from,
                        format!("update for model version {model_version}, expected {version}"),
                    ));
                }
                let setup =
                    paillier.ok_or_else(|| Error::rejected(from, "no Paillier key attached"))?;
                if r.decrypting.is_some() {
                    return Err(Error::rejected(from, "encrypted update after the sum was formed"));
                }
                if r.updates.contains_key(from) {
                    return Err(Error::rejected(from, "second update in one round"));
                }
                let expected = r.packing.ciphertexts_for(spec.num_params());
                if update.len != spec.num_params()
                    || update.terms != 1
                    || update.ciphertexts.len() != expected
                {
                    return Err(Error::rejected(
                        from,
                        format!(
                            "encrypted update of {} values in {} ciphertexts summing {} terms; expected {} values in {expected} ciphertexts, 1 term",
                            update.len,
                            update.ciphertexts.len(),
                            update.terms,
                            spec.num_params()
                        ),
                    ));
                }
                let pk = &setup.key.public;
                update
                    .ciphertexts
                    .par_iter()
                    .try_for_each(|c| pk.validate(c))
                    .map_err(|e| Error::rejected(from, e.to_string()))?;
                r.updates.insert(from.clone(), update);
                Ok(())
            }
            (ClientMsg::PaillierShares { shares, .. }, Collect::Paillier(r)) => {
                let setup =
                    paillier.ok_or_else(|| Error::rejected(from, "no Paillier key attached"))?;
                let Some((included, sum)) = &r.decrypting else {
                    return Err(Error::rejected(from, "decryption shares before the sum"));
                };
                if !state.sent.contains(from) || included.binary_search(from).is_err() {
                    return Err(Error::rejected(from, "decryption shares were not asked of it"));
                }
                if r.shares.contains_key(from) {
                    return Err(Error::rejected(from, "second set of decryption shares"));
                }
                let index = setup.parties.get(from).copied();
                let n_sq = setup.key.public.n_squared();
                if shares.len() != sum.ciphertexts.len()
                    || shares
                        .iter()
                        .any(|s| Some(s.index) != index || s.value.bits() == 0 || &s.value >= n_sq)
                {
                    return Err(Error::rejected(
                        from,
                        format!(
                            "{} decryption shares for {} ciphertexts, or shares that are not its own (index {index:?}) or not in [1, n²)",
                            shares.len(),
                            sum.ciphertexts.len()
                        ),
                    ));
                }
                r.shares.insert(from.clone(), shares);
                Ok(())
            }
            (ClientMsg::Update { .. }, _) => {
                Err(Error::rejected(from, "plaintext update in a secure round"))
            }
            (ClientMsg::PaillierUpdate { .. } | ClientMsg::PaillierShares { .. }, _) => {
                Err(Error::rejected(from, "Paillier message in a round of another mode"))
            }
            (ClientMsg::SecAgg { .. }, _) => {
                Err(Error::rejected(from, "secure-aggregation step in a round of another mode"))
            }
        }
    }

    /// Closes the current phase with whoever answered. `now_unix_ms` timestamps the audit record.
    ///
    /// # Errors
    ///
    /// [`Error::Rejected`] without a running round; aggregation, ledger or audit failures (the
    /// round is then abandoned and its reservations released).
    pub fn advance(&mut self, now_unix_ms: u64) -> Result<Advance> {
        let mut state =
            self.state.take().ok_or_else(|| Error::rejected("driver", "no round is running"))?;
        let step = match &mut state.collect {
            Collect::Plain { updates } => {
                let got = updates.len();
                if got < self.config.min_clients {
                    Err(format!("{got} usable updates, {} needed", self.config.min_clients))
                } else {
                    let updates = std::mem::take(updates);
                    Ok(Some(self.aggregate_plain(state.round, state.population, updates)?))
                }
            }
            Collect::Secure { server, ids, quantizer } => {
                if server.phase() == ServerPhase::Unmasking {
                    match server.finish() {
                        Ok(agg) => {
                            let by_id: BTreeMap<ClientId, PartnerId> =
                                ids.iter().map(|(p, c)| (*c, p.clone())).collect();
                            let included: Vec<PartnerId> = agg
                                .survivors
                                .iter()
                                .filter_map(|c| by_id.get(c).cloned())
                                .collect();
                            if included.len() < self.config.min_clients {
                                Err(format!(
                                    "{} clients in the secure sum, {} needed",
                                    included.len(),
                                    self.config.min_clients
                                ))
                            } else {
                                let count = u32::try_from(included.len()).unwrap_or(u32::MAX);
                                let sum = quantizer.dequantize_sum(&agg.sum, count);
                                Ok(Some(self.aggregate_mean(state.population, included, sum)?))
                            }
                        }
                        Err(e) => Err(e.to_string()),
                    }
                } else {
                    match server.advance() {
                        Ok(msgs) => {
                            let by_id: BTreeMap<ClientId, PartnerId> =
                                ids.iter().map(|(p, c)| (*c, p.clone())).collect();
                            let round = state.round;
                            let outbox: Outbox = msgs
                                .into_iter()
                                .filter_map(|(c, m)| {
                                    by_id
                                        .get(&c)
                                        .map(|p| (p.clone(), ServerMsg::SecAgg { round, msg: m }))
                                })
                                .collect();
                            state.sent = outbox.iter().map(|(p, _)| p.clone()).collect();
                            self.state = Some(state);
                            return Ok(Advance::Continue(outbox));
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
            }
            Collect::Paillier(r) => {
                let setup = self
                    .paillier
                    .as_ref()
                    .ok_or_else(|| Error::config("paillier-key", "not attached"))?;
                let threshold = setup.key.threshold as usize;
                match r.decrypting.take() {
                    None => match Self::paillier_sum(r, setup, self.config.min_clients) {
                        Ok((included, sum)) => {
                            let round = state.round;
                            let mut holders: Vec<PartnerId> = included
                                .iter()
                                .filter(|p| setup.parties.contains_key(*p))
                                .cloned()
                                .collect();
                            // t shares decrypt; one spare covers a dropout. Computing a share
                            // costs a 4096-bit exponentiation per ciphertext, so the others are
                            // spared the work.
                            holders.shuffle(&mut self.rng);
                            holders.truncate(threshold + 1);
                            holders.sort();
                            if holders.len() < threshold {
                                Err(format!(
                                    "{} key-share holders among the {} partners in the sum, {threshold} needed to decrypt",
                                    holders.len(),
                                    included.len()
                                ))
                            } else {
                                let outbox: Outbox = holders
                                    .iter()
                                    .map(|p| {
                                        let m = ServerMsg::PaillierDecrypt {
                                            round,
                                            sum: sum.ciphertexts.clone(),
                                        };
                                        (p.clone(), m)
                                    })
                                    .collect();
                                state.sent = holders.into_iter().collect();
                                r.decrypting = Some((included, sum));
                                self.state = Some(state);
                                return Ok(Advance::Continue(outbox));
                            }
                        }
                        Err(reason) => Err(reason),
                    },
                    Some((included, sum)) => {
                        if r.shares.len() < threshold {
                            Err(format!(
                                "{} partners sent decryption shares, {threshold} needed",
                                r.shares.len()
                            ))
                        } else {
                            match Self::paillier_decrypt(r, setup, &sum) {
                                Ok(values) => Ok(Some(self.aggregate_mean(
                                    state.population,
                                    included,
                                    values,
                                )?)),
                                Err(e) => Err(e.to_string()),
                            }
                        }
                    }
                }
            }
        };
        match step {
            Ok(Some((included, new_global, update_digests))) => {
                self.finish_round(state, included, new_global, update_digests, now_unix_ms)
            }
            Ok(None) | Err(_) => {
                let reason = step.err().unwrap_or_else(|| "no aggregate".into());
                self.release(&state.reservations);
                if let Some(audit) = &mut self.audit {
                    let fields = BTreeMap::from([
                        (
                            "round".to_owned(),
                            Extension::Int(i64::try_from(state.round.0).unwrap_or(i64::MAX)),
                        ),
                        ("reason".to_owned(), Extension::Text(reason.clone())),
                    ]);
                    audit.append(
                        Entry::Event { kind: "round-aborted".into(), fields },
                        now_unix_ms,
                    )?;
                }
                let outbox = state
                    .selected
                    .iter()
                    .map(|p| {
                        (
                            p.clone(),
                            ServerMsg::RoundEnd {
                                round: state.round,
                                included: false,
                                epsilon_spent: None,
                            },
                        )
                    })
                    .collect();
                Ok(Advance::Aborted { round: state.round, reason, outbox })
            }
        }
    }

    /// Adds the round's encrypted updates (partners in id order).
    fn paillier_sum(
        r: &mut PaillierRound,
        setup: &PaillierSetup,
        quorum: usize,
    ) -> std::result::Result<(Vec<PartnerId>, PackedVector), String> {
        let got = r.updates.len();
        if got < quorum {
            return Err(format!("{got} usable encrypted updates, {quorum} needed"));
        }
        let updates = std::mem::take(&mut r.updates);
        let mut included = Vec::with_capacity(got);
        let mut sum: Option<PackedVector> = None;
        for (p, v) in updates {
            sum = Some(match sum {
                None => v,
                Some(acc) => {
                    r.packing.add(&setup.key.public, &acc, &v).map_err(|e| e.to_string())?
                }
            });
            included.push(p);
        }
        let sum = sum.ok_or_else(|| "no encrypted update".to_owned())?;
        Ok((included, sum))
    }

    /// Combines t partners' decryption shares of every ciphertext of the sum and unpacks it.
    fn paillier_decrypt(
        r: &PaillierRound,
        setup: &PaillierSetup,
        sum: &PackedVector,
    ) -> Result<Vec<f32>> {
        let t = setup.key.threshold as usize;
        let chosen: Vec<&Vec<DecryptionShare>> = r.shares.values().take(t).collect();
        let plains = (0..sum.ciphertexts.len())
            .into_par_iter()
            .map(|i| {
                let shares: Vec<DecryptionShare> = chosen.iter().map(|s| s[i].clone()).collect();
                setup.key.combine(&shares)
            })
            .collect::<fl_he::Result<Vec<_>>>()
            .map_err(|e| {
                Error::rejected(
                    "key-share holders",
                    format!(
                        "decryption shares do not combine ({e}): a share holder sent a wrong share"
                    ),
                )
            })?;
        let ints = r.packing.unpack(&plains, sum.len);
        #[allow(clippy::cast_possible_truncation, reason = "model weights are f32")]
        Ok(r.packing.dequantize_sum(&ints, sum.terms).into_iter().map(|x| x as f32).collect())
    }

    fn aggregate_plain(
        &mut self,
        round: Round,
        population: usize,
        updates: BTreeMap<PartnerId, (u64, ModelParams<f32>)>,
    ) -> Result<Aggregated> {
        let digests: Vec<(PartnerId, Digest)> =
            updates.iter().map(|(p, (_, d))| (p.clone(), Digest::of_params(d))).collect();
        if let (Some(_), Some(clip)) = (self.central, self.config.update_clip) {
            // The server sees these deltas: it enforces the clip the noise is calibrated to
            // rather than trusting the clients' (unweighted, as the sensitivity bound needs).
            let mut sum = vec![0.0f32; self.global.len()];
            let mut included = Vec::with_capacity(updates.len());
            for (p, (_, mut delta)) in updates {
                clip_l2(delta.as_mut_slice(), clip)?;
                for (s, d) in sum.iter_mut().zip(delta.as_slice()) {
                    *s += d;
                }
                included.push(p);
            }
            let (included, next, _) = self.aggregate_mean(population, included, sum)?;
            return Ok((included, next, digests));
        }
        let mut client_updates = Vec::with_capacity(updates.len());
        let mut included = Vec::with_capacity(updates.len());
        for (p, (n, delta)) in updates {
            let mut params = self.global.clone();
            params.add_assign(&delta)?;
            included.push(p.clone());
            client_updates.push(ClientUpdate::new(p, round, self.model_version(), n, params));
        }
        let next = self.aggregator.aggregate(&self.global, &client_updates)?;
        Ok((included, next, digests))
    }

    fn aggregate_mean(
        &mut self,
        population: usize,
        included: Vec<PartnerId>,
        mut sum: Vec<f32>,
    ) -> Result<Aggregated> {
        // Unweighted mean of the clipped deltas: the server learns only the sum, and example
        // counts are not revealed.
        #[allow(clippy::cast_precision_loss, reason = "client counts are small")]
        let mut inv = 1.0 / included.len() as f32;
        if let (Some(plan), Some(clip)) = (self.central, self.config.update_clip) {
            // DP-FedAvg (McMahan et al., ICLR 2018, Alg. 1): Gaussian noise of std σ·S on the
            // sum of deltas clipped to S, over the fixed denominator q·N. Noise always comes
            // from the OS-seeded CSPRNG, never from the selection RNG.
            GaussianMechanism::new(plan.noise_multiplier, clip)?
                .add_noise(&mut sum, &mut fl_dp::csprng()?)?;
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_precision_loss,
                reason = "a positive expected count"
            )]
            {
                inv = (1.0 / (plan.sampling_rate * population.max(1) as f64)) as f32;
            }
        }
        let mut params = self.global.clone();
        for (w, s) in params.as_mut_slice().iter_mut().zip(&sum) {
            *w += s * inv;
        }
        let anchor = PartnerId::new("secure-aggregate")?;
        let update =
            ClientUpdate::new(anchor, Round(self.completed.0 + 1), self.model_version(), 1, params);
        let next = self.aggregator.aggregate(&self.global, std::slice::from_ref(&update))?;
        Ok((included, next, Vec::new()))
    }

    fn finish_round(
        &mut self,
        state: RoundState,
        included: Vec<PartnerId>,
        next: ModelParams<f32>,
        update_digests: Vec<(PartnerId, Digest)>,
        now_unix_ms: u64,
    ) -> Result<Advance> {
        next.ensure_finite()?;
        let version = self.model_version();
        let included_set: BTreeSet<&PartnerId> = included.iter().collect();
        let mut charges = Vec::new();
        let mut epsilon_spent = BTreeMap::new();
        let central = self.central;
        if let Some(ledger) = &self.ledger {
            for (p, r) in &state.reservations {
                // Central DP charges everyone who could have been sampled.
                if included_set.contains(p) || central.is_some() {
                    let before = ledger.status(p, version)?.committed_epsilon;
                    ledger.commit(*r)?;
                    let after = ledger.status(p, version)?;
                    epsilon_spent.insert(p.clone(), after.committed_epsilon);
                    let plan = self.partners.get(p).and_then(|x| x.plan);
                    let event = match (central, plan) {
                        (Some(c), _) => format!(
                            "central PoissonSampledGaussian {{ q: {}, σ: {} }} x1",
                            c.sampling_rate, c.noise_multiplier
                        ),
                        (None, Some(pl)) => format!(
                            "PoissonSampledGaussian {{ q: {}, σ: {} }} x{}",
                            pl.task.sampling_rate, pl.task.noise_multiplier, pl.task.steps
                        ),
                        (None, None) => String::new(),
                    };
                    charges.push(PrivacyCharge {
                        partner: p.clone(),
                        epsilon: after.committed_epsilon - before,
                        delta: after.budget.delta(),
                        event,
                    });
                } else {
                    ledger.abort(*r)?;
                }
            }
        }
        let model_digest = Digest::of_params(&next);
        let dropped: Vec<PartnerId> =
            state.selected.iter().filter(|p| !included_set.contains(p)).cloned().collect();
        let mut audit_sequence = None;
        if let Some(audit) = &mut self.audit {
            let mut extensions = BTreeMap::new();
            extensions.insert(
                "dropped".to_owned(),
                Extension::Int(i64::try_from(dropped.len()).unwrap_or(i64::MAX)),
            );
            extensions.insert(
                "selected".to_owned(),
                Extension::Int(i64::try_from(state.selected.len()).unwrap_or(i64::MAX)),
            );
            let entry = RoundEntry {
                round: state.round,
                model_version: version,
                participants: included.clone(),
                charges,
                aggregator: self.aggregator.name().to_owned(),
                privacy_mode: self.config.privacy.name().to_owned(),
                incoming_model: Digest::of_params(&self.global),
                aggregate: model_digest,
                update_digests,
                extensions,
            };
            audit_sequence =
                Some(audit.append(Entry::Round(Box::new(entry)), now_unix_ms)?.sequence);
        }
        self.global = next;
        self.completed = state.round;
        let outbox = state
            .selected
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    ServerMsg::RoundEnd {
                        round: state.round,
                        included: included_set.contains(p),
                        epsilon_spent: epsilon_spent.get(p).copied(),
                    },
                )
            })
            .collect();
        let summary = RoundSummary {
            round: state.round,
            selected: state.selected,
            included,
            dropped,
            not_selected: std::mem::take(&mut self.not_selected),
            epsilon_spent,
            model_digest,
            audit_sequence,
        };
        Ok(Advance::Finished(Box::new(summary), outbox))
    }
}
