//! The Paillier privacy mode: the server adds encrypted packed updates and t partners decrypt
//! only the sum. Exactness against the plaintext sum of the contributors' quantized deltas,
//! dropouts in both phases, refusal of malformed ciphertexts and shares, and a whole simulated
//! federation with a 2048-bit key.

#![allow(
    clippy::panic_in_result_fn,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "test code"
)]

use std::collections::BTreeMap;

use fl_audit::{Entry, read_records};
use fl_core::{ModelParams, PartnerId, Round};
use fl_he::{Ciphertext, PackedVector, Packing, PartyKey};
use fl_net::messages::{ClientMsg, Protection, RoundStart, ServerMsg};
use fl_net::paillier::{deal_insecure_for_tests, fingerprint};
use fl_net::simulation::{Partition, SimDataset};
use fl_net::{
    Advance, Coordinator, Error, FederationConfig, Participant, PrivacyMode, SimulationConfig,
    simulate,
};
use fl_train::{Dataset, Mlp};
use ndarray::Array2;
use num_bigint::BigUint;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

mod common;
use common::federation_config;

const CLIENTS: usize = 5;
const THRESHOLD: u32 = 3;

fn federation(rounds: u64) -> FederationConfig {
    FederationConfig {
        clients_per_round: CLIENTS,
        privacy: PrivacyMode::Paillier,
        batch_size: 8,
        ..federation_config("paillier", rounds, 3)
    }
}

fn partners() -> Vec<PartnerId> {
    (0..CLIENTS).map(|i| PartnerId::new(format!("p{i}")).unwrap()).collect()
}

/// A coordinator for `config` with no partners and no key yet.
fn coordinator(config: FederationConfig, global: &ModelParams<f32>) -> Result<Coordinator, Error> {
    Coordinator::new(config, global.clone(), Round(0), None, None, ChaCha20Rng::seed_from_u64(31))
}

/// A coordinator in Paillier mode with a small (insecure, fast) dealt key.
type Setup = (Coordinator, ModelParams<f32>, BTreeMap<PartnerId, PartyKey>);

fn setup(seed: u64) -> Result<Setup, Box<dyn std::error::Error>> {
    let model = Mlp::new(&[40, 6]).unwrap();
    let global = model.init(1);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (setup, keys) = deal_insecure_for_tests(&partners(), THRESHOLD, 512, &mut rng)?;
    let mut coord = coordinator(federation(1), &global)?;
    coord.set_paillier(setup)?;
    for p in partners() {
        coord.add_partner(p, 10)?;
    }
    Ok((coord, global, keys.into_iter().collect()))
}

fn starts(outbox: &[(PartnerId, ServerMsg)]) -> BTreeMap<PartnerId, RoundStart> {
    outbox
        .iter()
        .map(|(p, m)| match m {
            ServerMsg::RoundStart(s) => (p.clone(), (**s).clone()),
            other => panic!("expected a round start, got {other:?}"),
        })
        .collect()
}

/// Quantizes, packs and encrypts a delta the way a participant does, returning the quantized
/// integers too.
fn encrypt(
    start: &RoundStart,
    key: &PartyKey,
    delta: &[f32],
    seed: u64,
) -> Result<(Packing, Vec<u64>, PackedVector), Box<dyn std::error::Error>> {
    let Protection::Paillier { key_fingerprint, range, value_bits, max_terms } = &start.protection
    else {
        panic!("not a Paillier round: {:?}", start.protection)
    };
    assert_eq!(*key_fingerprint, fingerprint(&key.key));
    let pk = &key.key.public;
    let packing = Packing::new(pk, *range, u32::from(*value_bits), *max_terms)?;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let q = packing.quantize(delta, &mut rng)?;
    let ciphertexts =
        packing.pack(&q).iter().map(|m| pk.encrypt_raw(m, &mut rng)).collect::<Result<_, _>>()?;
    Ok((packing, q, PackedVector { ciphertexts, len: delta.len(), terms: 1 }))
}

#[test]
fn the_decrypted_sum_is_exactly_the_contributors_quantized_deltas_despite_dropouts()
-> Result<(), Box<dyn std::error::Error>> {
    let (mut coord, global, keys) = setup(1)?;
    let d = global.len();
    let outbox = coord.begin_round()?;
    let starts = starts(&outbox);
    assert_eq!(starts.len(), CLIENTS);
    let never = PartnerId::new("p4")?; // drops before sending its update
    let mut sums = vec![0u64; d];
    let mut packing = None;
    for (i, (p, start)) in starts.iter().enumerate() {
        if *p == never {
            continue;
        }
        let delta: Vec<f32> = (0..d).map(|j| ((i * 11 + j) as f32 * 0.29).sin()).collect();
        let (pk, q, update) = encrypt(start, &keys[p], &delta, i as u64)?;
        for (s, v) in sums.iter_mut().zip(&q) {
            *s += v;
        }
        packing = Some(pk);
        let msg = ClientMsg::PaillierUpdate {
            round: start.round,
            model_version: start.model_version,
            update,
        };
        coord.receive(p, msg)?;
    }
    assert_eq!(coord.awaiting(), vec![never.clone()]);
    let Advance::Continue(requests) = coord.advance(0)? else { panic!("no decryption phase") };
    // t + 1 holders among the four contributors are asked; the one left out never was.
    assert_eq!(requests.len(), THRESHOLD as usize + 1);
    assert!(requests.iter().all(|(p, _)| *p != never));
    // The first asked drops in the decryption phase; the others answer.
    let mut answered = 0;
    for (p, m) in requests.iter().skip(1) {
        let ServerMsg::PaillierDecrypt { round, sum } = m else { panic!("{m:?}") };
        let k = &keys[p];
        let shares =
            sum.iter().map(|c| k.share.decrypt_share(&k.key, c)).collect::<Result<Vec<_>, _>>()?;
        coord.receive(p, ClientMsg::PaillierShares { round: *round, shares })?;
        answered += 1;
    }
    assert_eq!(answered, THRESHOLD as usize);
    assert!(coord.awaiting().is_empty(), "t shares are enough: the spare is not awaited");
    let Advance::Finished(summary, closing) = coord.advance(0)? else { panic!("not finished") };
    assert_eq!(summary.included.len(), 4);
    assert!(!summary.included.contains(&never));
    assert_eq!(closing.len(), CLIENTS);
    let mean = packing.unwrap().dequantize_sum(&sums, 4);
    for ((w, g), s) in coord.global().as_slice().iter().zip(global.as_slice()).zip(&mean) {
        assert_eq!(
            *w,
            g + (*s as f32) * 0.25,
            "bit for bit the plaintext sum of the quantized deltas"
        );
    }
    Ok(())
}

#[test]
fn malformed_ciphertexts_and_shares_are_refused_and_change_nothing()
-> Result<(), Box<dyn std::error::Error>> {
    let (mut coord, global, keys) = setup(2)?;
    let d = global.len();
    let starts = starts(&coord.begin_round()?);
    let round = Round(1);
    let p0 = PartnerId::new("p0")?;
    let delta = vec![0.5f32; d];
    let (_, _, good) = encrypt(&starts[&p0], &keys[&p0], &delta, 0)?;
    let version = starts[&p0].model_version;
    let send =
        |update: PackedVector| ClientMsg::PaillierUpdate { round, model_version: version, update };
    let n_sq = keys[&p0].key.public.n_squared().clone();
    let n = keys[&p0].key.public.n().clone();
    let mut bad = Vec::new();
    for (what, edit) in [
        (
            "zero ciphertext",
            Box::new(|v: &mut PackedVector| v.ciphertexts[0] = ct(BigUint::ZERO))
                as Box<dyn Fn(&mut PackedVector)>,
        ),
        (
            "ciphertext ≥ n²",
            Box::new(move |v: &mut PackedVector| v.ciphertexts[0] = ct(n_sq.clone())),
        ),
        (
            "multiple of a factor of n",
            Box::new(move |v: &mut PackedVector| v.ciphertexts[0] = ct(n.clone())),
        ),
        ("one ciphertext short", Box::new(|v: &mut PackedVector| drop(v.ciphertexts.pop()))),
        ("claims two terms", Box::new(|v: &mut PackedVector| v.terms = 2)),
        ("wrong length", Box::new(|v: &mut PackedVector| v.len -= 1)),
    ] {
        let mut v = good.clone();
        edit(&mut v);
        bad.push((what, v));
    }
    for (what, v) in bad {
        assert!(
            matches!(coord.receive(&p0, send(v)), Err(Error::Rejected { .. })),
            "{what} accepted"
        );
    }
    // Wrong round, wrong mode, unselected partner.
    let wrong_round =
        ClientMsg::PaillierUpdate { round: Round(7), model_version: version, update: good.clone() };
    assert!(coord.receive(&p0, wrong_round).is_err());
    assert!(coord.receive(&PartnerId::new("stranger")?, send(good.clone())).is_err());
    let plaintext =
        ClientMsg::Update { round, model_version: version, num_examples: 1, delta: Vec::new() };
    assert!(coord.receive(&p0, plaintext).is_err());
    // Shares before the sum exists.
    assert!(coord.receive(&p0, ClientMsg::PaillierShares { round, shares: Vec::new() }).is_err());
    // None of that counted: p0 is still awaited; its good update is taken once.
    assert!(coord.awaiting().contains(&p0));
    coord.receive(&p0, send(good.clone()))?;
    assert!(coord.receive(&p0, send(good)).is_err(), "second update accepted");
    for p in partners().into_iter().skip(1) {
        let (_, _, u) = encrypt(&starts[&p], &keys[&p], &delta, 9)?;
        coord
            .receive(&p, ClientMsg::PaillierUpdate { round, model_version: version, update: u })?;
    }
    let Advance::Continue(requests) = coord.advance(0)? else { panic!("no decryption phase") };
    let asked: Vec<PartnerId> = requests.iter().map(|(p, _)| p.clone()).collect();
    let ServerMsg::PaillierDecrypt { sum, .. } = &requests[0].1 else { panic!() };
    let unasked = partners().into_iter().find(|p| !asked.contains(p)).unwrap();
    let shares_of = |p: &PartnerId| -> Vec<fl_he::DecryptionShare> {
        let k = &keys[p];
        sum.iter().map(|c| k.share.decrypt_share(&k.key, c).unwrap()).collect()
    };
    // A partner not asked, shares under another partner's index, the wrong count.
    assert!(
        coord
            .receive(&unasked, ClientMsg::PaillierShares { round, shares: shares_of(&unasked) })
            .is_err()
    );
    assert!(
        coord
            .receive(&asked[0], ClientMsg::PaillierShares { round, shares: shares_of(&asked[1]) })
            .is_err()
    );
    let mut short = shares_of(&asked[0]);
    short.pop();
    assert!(coord.receive(&asked[0], ClientMsg::PaillierShares { round, shares: short }).is_err());
    // A holder that lies (a share changed by one) makes the round abort with the reason, and the
    // global model stays as it was.
    let mut lie = shares_of(&asked[0]);
    lie[0].value += 1u32;
    coord.receive(&asked[0], ClientMsg::PaillierShares { round, shares: lie })?;
    for p in &asked[1..THRESHOLD as usize] {
        coord.receive(p, ClientMsg::PaillierShares { round, shares: shares_of(p) })?;
    }
    match coord.advance(0)? {
        Advance::Aborted { reason, .. } => assert!(reason.contains("wrong share"), "{reason}"),
        other => panic!("a wrong share decrypted: {other:?}"),
    }
    assert_eq!(coord.global(), &global);
    Ok(())
}

fn ct(v: BigUint) -> Ciphertext {
    serde_json::from_value(serde_json::Value::String(v.to_string())).unwrap()
}

#[test]
fn keys_are_checked_at_start_and_by_the_participant() -> Result<(), Box<dyn std::error::Error>> {
    let model = Mlp::new(&[40, 6]).unwrap();
    let global = model.init(1);
    let mut no_key = coordinator(federation(1), &global)?;
    for p in partners() {
        no_key.add_partner(p, 10)?;
    }
    assert!(matches!(no_key.begin_round(), Err(Error::Config { name: "paillier-key", .. })));
    let (setup, keys) =
        deal_insecure_for_tests(&partners(), THRESHOLD, 512, &mut ChaCha20Rng::seed_from_u64(30))?;
    let mut secagg = federation(1);
    secagg.privacy = PrivacyMode::SecAgg;
    let mut c = coordinator(secagg, &global)?;
    assert!(c.set_paillier(setup.clone()).is_err(), "a key accepted in SecAgg mode");
    let mut small = federation(1);
    small.clients_per_round = 2;
    small.min_clients = 2;
    let mut c = coordinator(small, &global)?;
    assert!(
        c.set_paillier(setup.clone()).is_err(),
        "threshold 3 accepted with 2 clients per round"
    );
    let mut broken = setup.clone();
    broken.parties.clear();
    assert!(no_key.set_paillier(broken).is_err());

    // A participant holding another key refuses to encrypt for this server.
    no_key.set_paillier(setup)?;
    let outbox = no_key.begin_round()?;
    let (_, other) =
        deal_insecure_for_tests(&partners(), THRESHOLD, 512, &mut ChaCha20Rng::seed_from_u64(4))?;
    let data = Dataset::new(Array2::from_elem((4, 40), 0.5), vec![0, 1, 2, 3], 6)?;
    let (p0, msg) = outbox.into_iter().next().unwrap();
    let stranger_key = other.into_iter().next().unwrap().1;
    let mut part =
        Participant::new(p0.clone(), model.clone(), data.clone(), ChaCha20Rng::seed_from_u64(31))?
            .with_paillier(stranger_key);
    let e = part.handle(msg.clone()).unwrap_err().to_string();
    assert!(e.contains("different Paillier key"), "{e}");
    // And one without a key says so.
    let mut keyless =
        Participant::new(p0.clone(), model.clone(), data.clone(), ChaCha20Rng::seed_from_u64(31))?;
    assert!(keyless.handle(msg.clone()).unwrap_err().to_string().contains("no key share"));
    // The right key encrypts; a decryption request for a sum of another size is refused.
    let mut part = Participant::new(p0.clone(), model, data, ChaCha20Rng::seed_from_u64(32))?
        .with_paillier(keys.into_iter().next().unwrap().1);
    let reply = part.handle(msg)?;
    assert!(matches!(reply.as_slice(), [ClientMsg::PaillierUpdate { .. }]));
    let bogus = ServerMsg::PaillierDecrypt { round: Round(1), sum: Vec::new() };
    assert!(part.handle(bogus).is_err());
    let wrong_round = ServerMsg::PaillierDecrypt { round: Round(2), sum: Vec::new() };
    assert!(part.handle(wrong_round).is_err());
    Ok(())
}

#[test]
fn a_paillier_federation_with_a_2048_bit_key_learns() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut federation = federation(4);
    federation.clients_per_round = 6;
    federation.local_epochs = 2;
    federation.batch_size = 16;
    let cfg = SimulationConfig {
        federation,
        dataset: SimDataset::Digits,
        num_clients: 6,
        partition: Partition::Iid,
        hidden: Vec::new(),
        dropout_rate: 0.2,
        attack: None,
        seed: 4,
        state_dir: dir.path().join("run"),
    };
    let report = simulate(&cfg, &mut |_| {})?;
    assert!(report.rounds.iter().any(|r| r.aborted.is_none()));
    assert!(
        report.final_accuracy > report.initial_accuracy + 0.4,
        "{} → {}",
        report.initial_accuracy,
        report.final_accuracy
    );
    assert!(report.audit_verified);
    let records = read_records(&std::fs::read(dir.path().join("run/audit.log"))?)
        .map_err(|f| format!("{f:?}"))?;
    for r in &records {
        if let Entry::Round(e) = &r.entry {
            assert_eq!(e.privacy_mode, "paillier");
            assert!(e.update_digests.is_empty(), "the server saw no individual update");
        }
    }
    Ok(())
}
