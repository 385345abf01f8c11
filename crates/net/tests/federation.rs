//! The federation end to end in one process (the in-memory transport), and the coordinator's
//! handling of secure sums, budgets and bad messages.

#![allow(
    clippy::panic_in_result_fn,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    reason = "test code"
)]

use std::collections::BTreeMap;

use fl_audit::{Entry, read_records};
use fl_core::codec::encode_params;
use fl_core::{ModelParams, ModelVersion, PartnerId, Round};
use fl_dp::{DpEvent, Ledger, LedgerConfig, RdpAccountant};
use fl_net::messages::{ClientMsg, Protection, ServerMsg};
use fl_net::simulation::{Partition, SimDataset};
use fl_net::{
    Advance, AggregatorKind, Coordinator, DpSetting, Error, FederationConfig, PrivacyMode,
    SimulationConfig, simulate,
};
use fl_secagg::{Quantizer, SecAggClient};
use fl_train::Mlp;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

mod common;
use common::federation_config;

fn federation(
    privacy: PrivacyMode,
    dp: DpSetting,
    rounds: u64,
    clients: usize,
) -> FederationConfig {
    FederationConfig {
        clients_per_round: clients,
        aggregator: AggregatorKind::FedProx { mu: 0.01 },
        privacy,
        dp,
        ..federation_config("test", rounds, 2)
    }
}

#[test]
fn a_secure_private_federation_learns_and_its_books_balance()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // A generous budget: the point is that privacy, secure aggregation and dropouts together still
    // train, and that the books balance, not the privacy–utility trade-off on 240 examples each.
    let dp = DpSetting::LocalSgd {
        epsilon: 30.0,
        delta: 1e-5,
        clip: 1.0,
        batch_size: 32,
        plan_fraction: 0.85,
    };
    let cfg = SimulationConfig {
        federation: federation(PrivacyMode::SecAgg, dp, 8, 6),
        dataset: SimDataset::Digits,
        num_clients: 6,
        partition: Partition::Iid,
        hidden: vec![32],
        dropout_rate: 0.25,
        attack: None,
        seed: 3,
        state_dir: dir.path().join("run"),
    };
    let mut seen = Vec::new();
    let report = simulate(&cfg, &mut |r| seen.push(r.round))?;
    assert_eq!(seen.len(), report.rounds.len());
    let done: Vec<_> = report.rounds.iter().filter(|r| r.aborted.is_none()).collect();
    assert!(!done.is_empty());
    assert!(
        report.final_accuracy > report.initial_accuracy + 0.3,
        "{} → {}",
        report.initial_accuracy,
        report.final_accuracy
    );
    assert!(report.audit_verified);

    // Every partner's committed ε equals an independent accountant over the rounds the audit log
    // says it took part in, and stays within its budget.
    let records = read_records(&std::fs::read(dir.path().join("run/audit.log"))?)
        .map_err(|f| format!("{f:?}"))?;
    let mut rounds_in: BTreeMap<String, u64> = BTreeMap::new();
    for r in &records {
        if let Entry::Round(entry) = &r.entry {
            assert_eq!(entry.privacy_mode, "secagg");
            assert!(entry.update_digests.is_empty(), "the server saw no individual update");
            for p in &entry.participants {
                *rounds_in.entry(p.to_string()).or_default() += 1;
            }
        }
    }
    let ledger = Ledger::open(dir.path().join("run/budget.ledger"), &LedgerConfig::default())?;
    for line in &report.budgets {
        let partner = PartnerId::new(line.partner.clone())?;
        let status = ledger.status(&partner, ModelVersion(0))?;
        assert!(status.committed_epsilon <= 30.0);
        let k = rounds_in.get(&line.partner).copied().unwrap_or(0);
        let q = (32.0 / line.examples as f64).min(1.0);
        let steps = (1.0 / q).ceil() as u64;
        let mut acc = RdpAccountant::default();
        acc.compose(
            &DpEvent::PoissonSampledGaussian {
                sampling_rate: q,
                noise_multiplier: line.noise_multiplier,
            },
            steps * k,
        )?;
        let expected = if k == 0 { 0.0 } else { acc.get_epsilon(1e-5)?.epsilon };
        assert!(
            (status.committed_epsilon - expected).abs() <= 1e-9 * expected.max(1.0),
            "{}: {} vs {expected}",
            line.partner,
            status.committed_epsilon
        );
        assert!(ledger.open_reservations()?.is_empty(), "every reservation was settled");
    }
    // A second run into the same directory is refused, not mixed into the first.
    assert!(matches!(simulate(&cfg, &mut |_| {}), Err(Error::Config { name: "state-dir", .. })));
    Ok(())
}

fn tiny() -> (Mlp, ModelParams<f32>) {
    let model = Mlp::new(&[3, 2]).unwrap();
    let global = model.init(1);
    (model, global)
}

fn partners(n: usize) -> Vec<PartnerId> {
    (0..n).map(|i| PartnerId::new(format!("p{i}")).unwrap()).collect()
}

fn start_of(msg: &ServerMsg) -> &fl_net::messages::RoundStart {
    match msg {
        ServerMsg::RoundStart(s) => s,
        other => panic!("expected a round start, got {other:?}"),
    }
}

#[test]
fn the_secure_aggregate_is_exactly_the_mean_of_the_survivors_quantized_deltas()
-> Result<(), Box<dyn std::error::Error>> {
    let (_, global) = tiny();
    let d = global.len();
    let cfg = federation(PrivacyMode::SecAgg, DpSetting::Off, 1, 5);
    let mut coord =
        Coordinator::new(cfg, global.clone(), Round(0), None, None, ChaCha20Rng::seed_from_u64(9))?;
    for p in partners(5) {
        coord.add_partner(p, 10)?;
    }
    let outbox = coord.begin_round()?;
    assert_eq!(outbox.len(), 5);
    let mut clients = BTreeMap::new();
    let mut inputs = BTreeMap::new();
    let mut quantizer = None;
    let mut replies = Vec::new();
    for (i, (p, msg)) in outbox.iter().enumerate() {
        let start = start_of(msg);
        let Protection::SecAgg { client_id, params, range, level_bits } = &start.protection else {
            panic!("plaintext")
        };
        let q = Quantizer::new(*range, *level_bits, params.num_clients)?;
        let delta: Vec<f32> = (0..d).map(|j| ((i * 7 + j) as f32 * 0.37).sin()).collect();
        let x = q.quantize(&delta, &mut ChaCha20Rng::seed_from_u64(i as u64));
        inputs.insert(p.clone(), x.clone());
        let mut c = SecAggClient::new(*client_id, x, ChaCha20Rng::seed_from_u64(100 + i as u64));
        let reply = c.handle(fl_secagg::ServerMessage::Start(params.clone()))?.unwrap();
        replies.push((p.clone(), ClientMsg::SecAgg { round: start.round, msg: reply }));
        clients.insert(p.clone(), c);
        quantizer = Some(q);
    }
    // p4 drops after sharing its keys: its masks must be removed, its input left out.
    let dropper = PartnerId::new("p4")?;
    let mut phase = 0;
    loop {
        for (p, m) in replies.drain(..) {
            coord.receive(&p, m)?;
        }
        let waiting = coord.awaiting();
        assert!(waiting.is_empty() || (phase >= 2 && waiting == [dropper.clone()]), "{waiting:?}");
        match coord.advance(0)? {
            Advance::Continue(out) => {
                phase += 1;
                for (p, m) in out {
                    if p == dropper && phase >= 2 {
                        continue;
                    }
                    let ServerMsg::SecAgg { round, msg } = m else {
                        panic!("secagg step expected")
                    };
                    if let Some(r) = clients.get_mut(&p).unwrap().handle(msg)? {
                        replies.push((p, ClientMsg::SecAgg { round, msg: r }));
                    }
                }
            }
            Advance::Finished(summary, _) => {
                assert_eq!(summary.included.len(), 4);
                assert!(!summary.included.contains(&dropper));
                break;
            }
            other => panic!("round did not finish: {other:?}"),
        }
    }
    let q = quantizer.unwrap();
    let mask = (1u64 << q.ring_bits()) - 1;
    let mut sum = vec![0u64; d];
    for (p, x) in &inputs {
        if *p != dropper {
            for (s, v) in sum.iter_mut().zip(x) {
                *s = (*s + v) & mask;
            }
        }
    }
    let mean = q.dequantize_sum(&sum, 4);
    for ((w, g), s) in coord.global().as_slice().iter().zip(global.as_slice()).zip(&mean) {
        assert_eq!(
            *w,
            g + s * 0.25,
            "bit-for-bit the server's view of the plaintext survivors' sum"
        );
    }
    Ok(())
}

fn plain_coordinator(
    dp: DpSetting,
    ledger: Option<Ledger>,
    rounds: u64,
) -> Result<(Coordinator, ModelParams<f32>), Error> {
    let (_, global) = tiny();
    let mut cfg = federation(PrivacyMode::None, dp, rounds, 3);
    cfg.aggregator = AggregatorKind::FedAvg;
    let mut coord = Coordinator::new(
        cfg,
        global.clone(),
        Round(0),
        ledger,
        None,
        ChaCha20Rng::seed_from_u64(2),
    )?;
    for p in partners(3) {
        coord.add_partner(p, 100)?;
    }
    Ok((coord, global))
}

#[test]
fn bad_messages_are_rejected_and_change_nothing() -> Result<(), Box<dyn std::error::Error>> {
    let (mut coord, global) = plain_coordinator(DpSetting::Off, None, 3)?;
    let outbox = coord.begin_round()?;
    let start = start_of(&outbox[0].1).clone();
    let ps = partners(3);
    let delta = |v: f32| {
        let mut d = ModelParams::<f32>::zeros(global.spec().clone());
        d.as_mut_slice().fill(v);
        encode_params(&d).unwrap()
    };
    let update = |round: u64, bytes: Vec<u8>| ClientMsg::Update {
        round: Round(round),
        model_version: start.model_version,
        num_examples: 10,
        delta: bytes,
    };
    // Wrong round (a replay of an old round), an outsider, garbage, NaN, a wrong shape.
    assert!(matches!(coord.receive(&ps[0], update(7, delta(0.1))), Err(Error::Rejected { .. })));
    assert!(coord.receive(&PartnerId::new("mallory")?, update(1, delta(0.1))).is_err());
    assert!(coord.receive(&ps[0], update(1, vec![1, 2, 3])).is_err());
    assert!(coord.receive(&ps[0], update(1, delta(f32::NAN))).is_err());
    let other = Mlp::new(&[4, 2])?.init(1);
    assert!(coord.receive(&ps[0], update(1, encode_params(&other)?)).is_err());
    assert!(
        coord
            .receive(
                &ps[0],
                ClientMsg::SecAgg {
                    round: Round(1),
                    msg: fl_secagg::ClientMessage::AdvertiseKeys {
                        session: fl_secagg::SessionId([0; 32]),
                        keys: fl_secagg::messages::AdvertisedKeys {
                            client: fl_secagg::ClientId(1),
                            encryption_key: [9; 32],
                            masking_key: [9; 32],
                            signature: None
                        }
                    }
                }
            )
            .is_err()
    );
    assert_eq!(coord.awaiting().len(), 3, "nothing was accepted");
    // Good updates, then a duplicate.
    coord.receive(&ps[0], update(1, delta(0.5)))?;
    assert!(coord.receive(&ps[0], update(1, delta(9.0))).is_err());
    coord.receive(&ps[1], update(1, delta(0.25)))?;
    coord.receive(&ps[2], ClientMsg::Decline { round: Round(1), reason: "busy".into() })?;
    assert!(coord.awaiting().is_empty());
    let Advance::Finished(summary, closing) = coord.advance(0)? else {
        panic!("round 1 should finish")
    };
    assert_eq!(summary.included, vec![ps[0].clone(), ps[1].clone()]);
    assert_eq!(summary.dropped, vec![ps[2].clone()]);
    assert_eq!(closing.len(), 3);
    for (w, g) in coord.global().as_slice().iter().zip(global.as_slice()) {
        assert!((w - (g + 0.375)).abs() < 1e-6, "FedAvg of the two accepted deltas only");
    }
    // A message for the finished round is now a replay.
    assert!(coord.receive(&ps[0], update(1, delta(0.5))).is_err());
    Ok(())
}

#[test]
fn robust_rules_under_secure_aggregation_are_refused_at_start() {
    let (_, global) = tiny();
    let mut cfg = federation(PrivacyMode::SecAggPlus, DpSetting::Off, 1, 3);
    cfg.aggregator = AggregatorKind::Median;
    let err = Coordinator::new(cfg, global, Round(0), None, None, ChaCha20Rng::seed_from_u64(1))
        .unwrap_err();
    assert!(err.to_string().contains("secagg+"), "{err}");
}

#[test]
fn a_partner_below_ten_percent_is_paused_and_told_why() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let ledger = Ledger::open(
        dir.path().join("l"),
        &LedgerConfig { sync: false, ..LedgerConfig::default() },
    )?;
    let dp = DpSetting::LocalSgd {
        epsilon: 2.0,
        delta: 1e-5,
        clip: 1.0,
        batch_size: 10,
        plan_fraction: 1.0,
    };
    let (mut coord, global) = plain_coordinator(dp, Some(ledger), 2)?;
    let ps = partners(3);
    for round in 1..=2u64 {
        let outbox = coord.begin_round()?;
        assert!(outbox.iter().all(|(_, m)| matches!(m, ServerMsg::RoundStart(_))), "round {round}");
        for p in &ps {
            let mut d = ModelParams::<f32>::zeros(global.spec().clone());
            d.as_mut_slice().fill(0.01);
            coord.receive(
                p,
                ClientMsg::Update {
                    round: Round(round),
                    model_version: ModelVersion(0),
                    num_examples: 100,
                    delta: encode_params(&d)?,
                },
            )?;
        }
        assert!(matches!(coord.advance(0)?, Advance::Finished(..)));
    }
    // The plan spent the whole budget: every partner is paused, the round cannot start, and
    // nothing was reserved for it.
    for p in &ps {
        let s = coord.ledger().unwrap().status(p, ModelVersion(0))?;
        assert!(s.paused && s.committed_epsilon <= 2.0 && s.committed_epsilon > 1.8, "{s:?}");
    }
    match coord.begin_round() {
        Err(Error::NotEnoughPartners { available: 0, reason, .. }) => {
            assert!(reason.contains("paused"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(coord.ledger().unwrap().open_reservations()?.is_empty());
    Ok(())
}

#[test]
fn plaintext_rounds_record_update_digests_and_robust_rules_resist_an_attacker()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut fed = federation(PrivacyMode::None, DpSetting::Off, 4, 6);
    fed.aggregator = AggregatorKind::Median;
    let cfg = SimulationConfig {
        federation: fed,
        dataset: SimDataset::Digits,
        num_clients: 6,
        partition: Partition::Iid,
        hidden: vec![],
        dropout_rate: 0.0,
        attack: Some(fl_net::simulation::SimAttack {
            attack: fl_net::simulation::AttackKind::SignFlip { scale: 10.0 },
            attackers: 1,
        }),
        seed: 5,
        state_dir: dir.path().join("run"),
    };
    let report = simulate(&cfg, &mut |_| {})?;
    assert!(
        report.final_accuracy > report.initial_accuracy + 0.5,
        "{} → {}",
        report.initial_accuracy,
        report.final_accuracy
    );
    let records = read_records(&std::fs::read(dir.path().join("run/audit.log"))?)
        .map_err(|f| format!("{f:?}"))?;
    let rounds: Vec<_> = records
        .iter()
        .filter_map(|r| if let Entry::Round(e) = &r.entry { Some(e) } else { None })
        .collect();
    assert_eq!(rounds.len(), 4);
    assert!(rounds.iter().all(|e| e.update_digests.len() == 6 && e.aggregator == "median"));
    // The same attack under secure aggregation is refused: attackers there cannot see others.
    let mut secure = cfg.clone();
    secure.federation.privacy = PrivacyMode::SecAggPlus;
    secure.federation.aggregator = AggregatorKind::FedAvg;
    secure.state_dir = dir.path().join("other");
    assert!(matches!(simulate(&secure, &mut |_| {}), Err(Error::Config { name: "attack", .. })));
    Ok(())
}
