//! Central DP (DP-FedAvg): the server's noise has the calibrated scale, plaintext deltas are
//! clipped by the server, Poisson sampling varies the round size, and every partner that could
//! have been sampled is charged exactly what an independent accountant computes.

#![allow(
    clippy::panic_in_result_fn,
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    reason = "test code"
)]

use fl_audit::{Entry, read_records};
use fl_core::codec::encode_params;
use fl_core::{ModelParams, ModelVersion, PartnerId, Round};
use fl_dp::{DpEvent, Ledger, LedgerConfig, RdpAccountant};
use fl_net::messages::{ClientMsg, ServerMsg};
use fl_net::simulation::{Partition, SimDataset};
use fl_net::{
    Advance, Coordinator, DpSetting, Error, FederationConfig, PrivacyMode, SimulationConfig,
    simulate,
};
use fl_train::Mlp;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

mod common;
use common::federation_config;

const CLIP: f64 = 1.0;
const DELTA: f64 = 1e-5;

fn config(clients_per_round: usize, rounds: u64) -> FederationConfig {
    FederationConfig {
        clients_per_round,
        dp: DpSetting::Central { epsilon: 4.0, delta: DELTA, plan_fraction: 0.9 },
        update_clip: Some(CLIP),
        momentum: 0.0,
        batch_size: 8,
        ..federation_config("central", rounds, 2)
    }
}

fn coordinator(
    partners: usize,
    per_round: usize,
    rounds: u64,
    dir: &std::path::Path,
) -> (Coordinator, ModelParams<f32>) {
    let global = Mlp::new(&[200, 10]).unwrap().init(1);
    let ledger = Ledger::open(dir.join("budget.ledger"), &LedgerConfig::default()).unwrap();
    let mut c = Coordinator::new(
        config(per_round, rounds),
        global.clone(),
        Round(0),
        Some(ledger),
        None,
        ChaCha20Rng::seed_from_u64(7),
    )
    .unwrap();
    for i in 0..partners {
        c.add_partner(PartnerId::new(format!("p{i:02}")).unwrap(), 50).unwrap();
    }
    (c, global)
}

/// Answers every round start with `delta(partner)`; returns the partners selected.
fn play_round(
    c: &mut Coordinator,
    delta: impl Fn(&PartnerId, &ModelParams<f32>) -> ModelParams<f32>,
) -> Vec<PartnerId> {
    let outbox = c.begin_round().unwrap();
    answer_round(c, outbox, delta)
}

/// Answers the round starts of `outbox` with `delta(partner)` and finishes the round.
fn answer_round(
    c: &mut Coordinator,
    outbox: fl_net::coordinator::Outbox,
    delta: impl Fn(&PartnerId, &ModelParams<f32>) -> ModelParams<f32>,
) -> Vec<PartnerId> {
    let mut selected = Vec::new();
    for (p, m) in outbox {
        if let ServerMsg::RoundStart(s) = m {
            let d = delta(&p, c.global());
            let msg = ClientMsg::Update {
                round: s.round,
                model_version: s.model_version,
                num_examples: 50,
                delta: encode_params(&d).unwrap(),
            };
            c.receive(&p, msg).unwrap();
            selected.push(p);
        }
    }
    match c.advance(0).unwrap() {
        Advance::Finished(summary, _) => assert_eq!(summary.included, selected),
        other => panic!("round did not finish: {other:?}"),
    }
    selected
}

/// A zero delta: every partner leaves the model as it is.
fn zero(_: &PartnerId, global: &ModelParams<f32>) -> ModelParams<f32> {
    let mut d = global.clone();
    d.as_mut_slice().iter_mut().for_each(|v| *v = 0.0);
    d
}

fn expected_epsilon(q: f64, sigma: f64, rounds: u64) -> f64 {
    let mut acc = RdpAccountant::default();
    acc.compose(
        &DpEvent::PoissonSampledGaussian { sampling_rate: q, noise_multiplier: sigma },
        rounds,
    )
    .unwrap();
    acc.get_epsilon(DELTA).unwrap().epsilon
}

#[test]
fn the_noise_has_the_calibrated_scale_and_the_server_clips_plaintext_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20;
    let (mut c, global) = coordinator(n, n, 3, dir.path());
    let big = PartnerId::new("p00").unwrap();
    // Every delta is zero except p00's, which is 1000 on coordinate 0 (norm 1000 ≫ clip).
    play_round(&mut c, |p, g| {
        let mut d = g.clone();
        d.as_mut_slice().iter_mut().for_each(|v| *v = 0.0);
        if *p == big {
            d.as_mut_slice()[0] = 1000.0;
        }
        d
    });
    let plan = c.central_plan().unwrap();
    assert!((plan.sampling_rate - 1.0).abs() < 1e-12, "all partners per round: q = 1");
    let noise_std = plan.noise_multiplier * CLIP / n as f64;
    let moved: Vec<f64> = c
        .global()
        .as_slice()
        .iter()
        .zip(global.as_slice())
        .map(|(a, b)| f64::from(*a) - f64::from(*b))
        .collect();
    // Coordinate 0 moved by the clipped contribution (1/N), not 1000/N.
    assert!(
        (moved[0] - 1.0 / n as f64).abs() < 6.0 * noise_std,
        "{} vs {}",
        moved[0],
        1.0 / n as f64
    );
    let rest = &moved[1..];
    let mean = rest.iter().sum::<f64>() / rest.len() as f64;
    let std = (rest.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / rest.len() as f64).sqrt();
    assert!(mean.abs() < 6.0 * noise_std / (rest.len() as f64).sqrt(), "noise mean {mean}");
    assert!((std / noise_std - 1.0).abs() < 0.1, "noise std {std}, calibrated {noise_std}");
    // Every partner paid one round at (q, σ), exactly as the accountant says.
    let ledger = c.ledger().unwrap();
    let want = expected_epsilon(plan.sampling_rate, plan.noise_multiplier, 1);
    for i in 0..n {
        let s =
            ledger.status(&PartnerId::new(format!("p{i:02}")).unwrap(), ModelVersion(0)).unwrap();
        assert!(
            (s.committed_epsilon - want).abs() <= 1e-9 * want,
            "{} vs {want}",
            s.committed_epsilon
        );
    }
    // The planned three rounds spend the planned share of the budget.
    let planned = expected_epsilon(plan.sampling_rate, plan.noise_multiplier, 3);
    assert!((planned - plan.planned_epsilon).abs() < 1e-6 && planned <= 4.0 * 0.9 + 1e-6);
}

#[test]
fn poisson_sampling_varies_the_round_size_and_charges_everyone_who_could_be_sampled() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, _) = coordinator(40, 10, 4, dir.path());
    let sizes: Vec<usize> = (0..4).map(|_| play_round(&mut c, zero).len()).collect();
    let plan = c.central_plan().unwrap();
    assert!((plan.sampling_rate - 0.25).abs() < 1e-12);
    assert!(sizes.iter().any(|&s| s != 10), "fixed-size rounds {sizes:?} under Poisson sampling");
    let want = expected_epsilon(0.25, plan.noise_multiplier, 4);
    let ledger = c.ledger().unwrap();
    for i in 0..40 {
        let s =
            ledger.status(&PartnerId::new(format!("p{i:02}")).unwrap(), ModelVersion(0)).unwrap();
        assert!(
            (s.committed_epsilon - want).abs() <= 1e-9 * want,
            "p{i:02}: {} vs {want}",
            s.committed_epsilon
        );
    }
    assert!(ledger.open_reservations().unwrap().is_empty());
}

#[test]
fn a_sample_below_the_quorum_skips_the_round_without_charging_and_the_next_can_run() {
    let dir = tempfile::tempdir().unwrap();
    // q = 2/40: the expected sample is the quorum, so some draws fall short.
    let (mut c, _) = coordinator(40, 2, 30, dir.path());
    let spent = |c: &Coordinator| -> Vec<f64> {
        let ledger = c.ledger().unwrap();
        (0..40)
            .map(|i| {
                let p = PartnerId::new(format!("p{i:02}")).unwrap();
                ledger.status(&p, ModelVersion(0)).unwrap().committed_epsilon
            })
            .collect()
    };
    let (mut skipped, mut played) = (0, 0);
    for _ in 0..12 {
        let before = spent(&c);
        let round = c.completed().0 + 1;
        match c.begin_round() {
            Err(Error::TooFewSampled { round: r, sampled, need }) => {
                assert_eq!((r.0, need), (round, 2));
                assert!(sampled < 2);
                // Reservations were aborted (their release rounds up, so `spent` may keep an
                // ulp); nothing was committed.
                assert_eq!(spent(&c), before, "a skipped round charged");
                assert!(c.ledger().unwrap().open_reservations().unwrap().is_empty());
                skipped += 1;
            }
            Ok(outbox) => {
                answer_round(&mut c, outbox, zero);
                assert_eq!(c.completed().0, round);
                played += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(skipped > 0 && played > 0, "skipped {skipped}, played {played}");
}

#[test]
fn a_secure_federation_with_central_dp_learns_and_records_its_charges() {
    let dir = tempfile::tempdir().unwrap();
    let mut federation = config(30, 6);
    federation.privacy = PrivacyMode::SecAgg;
    federation.dp = DpSetting::Central { epsilon: 8.0, delta: DELTA, plan_fraction: 0.85 };
    federation.min_clients = 10;
    federation.batch_size = 32;
    federation.momentum = 0.9;
    let cfg = SimulationConfig {
        federation,
        dataset: SimDataset::Digits,
        num_clients: 30,
        partition: Partition::Iid,
        hidden: Vec::new(),
        dropout_rate: 0.1,
        attack: None,
        seed: 2,
        state_dir: dir.path().join("run"),
    };
    let report = simulate(&cfg, &mut |_| {}).unwrap();
    assert!(
        report.final_accuracy > report.initial_accuracy + 0.3,
        "{} → {}",
        report.initial_accuracy,
        report.final_accuracy
    );
    assert!(report.budgets.iter().all(|b| b.epsilon_spent <= 8.0 * 0.85 + 1e-6));
    let records = read_records(&std::fs::read(dir.path().join("run/audit.log")).unwrap()).unwrap();
    let rounds: Vec<_> = records
        .iter()
        .filter_map(|r| if let Entry::Round(e) = &r.entry { Some(e) } else { None })
        .collect();
    assert!(!rounds.is_empty());
    for e in rounds {
        // Everyone is charged, including the partners that dropped out of the round.
        assert_eq!(e.charges.len(), 30);
        assert!(e.charges.iter().all(|ch| ch.event.starts_with("central")));
    }
}
