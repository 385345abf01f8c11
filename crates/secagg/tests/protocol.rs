//! End-to-end protocol properties: exact sums under dropouts at every phase, masking, rejection
//! of tampered / replayed / out-of-order messages, clean aborts, and the SecAgg+ parameter finder
//! against Google's published expectations.

#![allow(
    clippy::panic_in_result_fn,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    reason = "test code"
)]

use std::collections::HashMap;
use std::path::PathBuf;

use fl_secagg::sim::{DropAt, run_round};
use fl_secagg::{
    Adversary, ClientId, ClientMessage, Error, Graph, Params, SecAggClient, SecAggServer,
    ServerMessage, SessionId, find_graph_params,
};
use proptest::prelude::*;
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};

fn params(n: u32, t: u32, d: u32, bits: u8, graph: Graph, malicious: bool) -> Params {
    Params {
        session: SessionId([7; 32]),
        num_clients: n,
        threshold: t,
        dimension: d,
        ring_bits: bits,
        graph,
        malicious,
    }
}

fn inputs(n: u32, d: u32, bits: u8, seed: u64) -> Vec<Vec<u64>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
    (0..n).map(|_| (0..d).map(|_| rng.random::<u64>() & mask).collect()).collect()
}

fn expected(inputs: &[Vec<u64>], survivors: &[ClientId], bits: u8) -> Vec<u64> {
    let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let d = inputs[0].len();
    (0..d)
        .map(|c| {
            survivors.iter().fold(0u64, |a, s| a.wrapping_add(inputs[s.0 as usize - 1][c])) & mask
        })
        .collect()
}

fn drop_phase() -> impl Strategy<Value = DropAt> {
    prop::sample::select(vec![
        DropAt::AdvertiseKeys,
        DropAt::ShareKeys,
        DropAt::MaskedInput,
        DropAt::ConsistencyCheck,
        DropAt::Unmasking,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The integer sum equals the plaintext sum of the survivors bit for bit, for random n, t,
    /// vector lengths, ring sizes, graphs and dropouts at every phase — or the round aborts
    /// cleanly when too few remain.
    #[test]
    fn sums_are_exact_under_dropouts(
        n in 3u32..14,
        t_frac in 0.0..1.0f64,
        d in 1u32..40,
        bits in prop::sample::select(vec![1u8, 13, 32, 33, 64]),
        harary in any::<bool>(),
        malicious in any::<bool>(),
        drops in prop::collection::vec((1u32..14, drop_phase()), 0..5),
        seed in any::<u64>(),
    ) {
        let graph = if harary && n >= 5 { Graph::Harary { degree: 4, seed: [seed as u8; 32] } } else { Graph::Complete };
        let max_t = match graph { Graph::Complete => n - 1, _ => 4 };
        let t = 2 + ((max_t - 2) as f64 * t_frac) as u32;
        let p = params(n, t, d, bits, graph, malicious);
        let xs = inputs(n, d, bits, seed);
        let drops: HashMap<ClientId, DropAt> = drops.into_iter().filter(|(c, _)| *c <= n).map(|(c, p)| (ClientId(c), p)).collect();
        match run_round(&p, xs.clone(), &drops, seed) {
            Ok((agg, _)) => {
                // Survivors: everyone who sent a masked input.
                for s in &agg.survivors {
                    prop_assert!(drops.get(s).is_none_or(|&d| d > DropAt::MaskedInput));
                }
                prop_assert_eq!(agg.sum, expected(&xs, &agg.survivors, bits));
            }
            Err(Error::TooFewClients { .. }) => {
                prop_assert!(!drops.is_empty(), "aborted without dropouts");
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}

#[test]
fn no_dropouts_sum_everyone_and_many_dropouts_recover() -> Result<(), Error> {
    let p = params(12, 6, 100, 32, Graph::Complete, false);
    let xs = inputs(12, 100, 32, 1);
    let (agg, _) = run_round(&p, xs.clone(), &HashMap::new(), 1)?;
    assert_eq!(agg.survivors.len(), 12);
    assert_eq!(agg.sum, expected(&xs, &agg.survivors, 32));
    // Three drop after sharing keys (their pairwise masks must be removed), two before.
    let drops: HashMap<_, _> = [
        (2, DropAt::MaskedInput),
        (5, DropAt::MaskedInput),
        (9, DropAt::MaskedInput),
        (1, DropAt::ShareKeys),
        (12, DropAt::Unmasking),
    ]
    .into_iter()
    .map(|(c, d)| (ClientId(c), d))
    .collect();
    let (agg, _) = run_round(&p, xs.clone(), &drops, 2)?;
    assert_eq!(agg.survivors.len(), 8);
    assert_eq!(agg.sum, expected(&xs, &agg.survivors, 32));
    Ok(())
}

#[test]
fn too_few_survivors_abort_cleanly() {
    let p = params(6, 5, 10, 32, Graph::Complete, false);
    let drops: HashMap<_, _> = [(1, DropAt::MaskedInput), (2, DropAt::MaskedInput)]
        .into_iter()
        .map(|(c, d)| (ClientId(c), d))
        .collect();
    assert!(matches!(
        run_round(&p, inputs(6, 10, 32, 3), &drops, 3),
        Err(Error::TooFewClients { phase: "MaskedInputCollection", .. })
    ));
    let early: HashMap<_, _> = (1..=3).map(|c| (ClientId(c), DropAt::AdvertiseKeys)).collect();
    assert!(matches!(
        run_round(&p, inputs(6, 10, 32, 3), &early, 3),
        Err(Error::TooFewClients { phase: "AdvertiseKeys", .. })
    ));
}

/// Drives a round by hand up to the masked inputs, returning the server and clients.
fn to_masked(
    p: &Params,
    xs: Vec<Vec<u64>>,
) -> (SecAggServer, Vec<SecAggClient>, Vec<(ClientId, ClientMessage)>) {
    let mut clients: Vec<SecAggClient> = xs
        .into_iter()
        .enumerate()
        .map(|(i, x)| {
            SecAggClient::new(ClientId(i as u32 + 1), x, ChaCha20Rng::seed_from_u64(i as u64))
        })
        .collect();
    let mut server = SecAggServer::new(p.clone()).unwrap();
    let mut outbox = server.start();
    for round in 0..3 {
        let mut replies = Vec::new();
        for (to, msg) in outbox {
            let r = clients[to.0 as usize - 1].handle(msg).unwrap().unwrap();
            replies.push((to, r));
        }
        if round == 2 {
            return (server, clients, replies);
        }
        for (from, r) in replies {
            server.receive(from, r).unwrap();
        }
        outbox = server.advance().unwrap();
    }
    unreachable!()
}

#[test]
fn the_server_sees_only_masked_inputs() {
    // A client whose input is all zeros sends a vector indistinguishable from uniform: χ² of its
    // bytes' high nibble over 16 bins, α = 1e-6 (critical value 54.05 at 15 dof).
    let p = params(5, 3, 50_000, 32, Graph::Complete, false);
    let mut xs = inputs(5, 50_000, 32, 4);
    xs[2] = vec![0; 50_000];
    let (_, _, replies) = to_masked(&p, xs.clone());
    let y = match &replies[2].1 {
        ClientMessage::MaskedInput { masked, .. } => masked.clone(),
        _ => panic!("expected a masked input"),
    };
    assert_ne!(y, xs[2]);
    let mut bins = [0f64; 16];
    y.iter().for_each(|v| bins[(v >> 28) as usize] += 1.0);
    let e = 50_000.0 / 16.0;
    let chi2: f64 = bins.iter().map(|o| (o - e).powi(2) / e).sum();
    assert!(chi2 < 54.05, "χ² = {chi2}");
}

#[test]
fn tampered_replayed_and_misordered_messages_are_rejected() {
    let p = params(4, 2, 8, 32, Graph::Complete, false);
    let xs = inputs(4, 8, 32, 5);
    let mut clients: Vec<SecAggClient> = xs
        .iter()
        .enumerate()
        .map(|(i, x)| {
            SecAggClient::new(
                ClientId(i as u32 + 1),
                x.clone(),
                ChaCha20Rng::seed_from_u64(i as u64),
            )
        })
        .collect();
    let mut server = SecAggServer::new(p.clone()).unwrap();
    let start = server.start();
    let mut adverts = Vec::new();
    for (to, msg) in start.clone() {
        adverts.push((to, clients[to.0 as usize - 1].handle(msg).unwrap().unwrap()));
    }
    // Client side: a second Start is out of order; a message for another session is refused.
    assert!(matches!(clients[0].handle(start[0].1.clone()), Err(Error::UnexpectedMessage { .. })));
    let foreign = ServerMessage::Keys { session: SessionId([8; 32]), keys: vec![] };
    assert!(matches!(clients[0].handle(foreign), Err(Error::WrongSession)));
    // Server side: a claimed sender that is not the transport's, a duplicate, a wrong session.
    assert!(matches!(
        server.receive(ClientId(2), adverts[0].1.clone()),
        Err(Error::UnknownClient(_))
    ));
    server.receive(ClientId(1), adverts[0].1.clone()).unwrap();
    assert!(matches!(server.receive(ClientId(1), adverts[0].1.clone()), Err(Error::Duplicate(_))));
    let mut replay = adverts[1].1.clone();
    if let ClientMessage::AdvertiseKeys { session, .. } = &mut replay {
        *session = SessionId([9; 32]);
    }
    assert!(matches!(server.receive(ClientId(2), replay), Err(Error::WrongSession)));
    for (from, m) in adverts.into_iter().skip(1) {
        server.receive(from, m).unwrap();
    }
    // A masked input during key sharing is out of phase.
    let early =
        ClientMessage::MaskedInput { session: p.session, from: ClientId(1), masked: vec![0; 8] };
    assert!(matches!(server.receive(ClientId(1), early), Err(Error::UnexpectedMessage { .. })));
    let keys = server.advance().unwrap();
    let mut shares = Vec::new();
    for (to, msg) in keys {
        shares.push((to, clients[to.0 as usize - 1].handle(msg).unwrap().unwrap()));
    }
    for (from, m) in shares {
        server.receive(from, m).unwrap();
    }
    let mut routed = server.advance().unwrap();
    // Flip a bit in a share ciphertext addressed to client 1: decryption fails, opaquely.
    if let ServerMessage::Shares { shares, .. } = &mut routed[0].1 {
        shares[0].1[5] ^= 1;
    }
    let (to, msg) = routed.remove(0);
    assert!(matches!(clients[to.0 as usize - 1].handle(msg), Err(Error::Decryption)));
    // A ciphertext moved to another recipient fails too.
    if let (ServerMessage::Shares { shares: a, .. }, ServerMessage::Shares { shares: b, .. }) =
        (&routed[0].1.clone(), &mut routed[1].1)
    {
        b[0] = a[0].clone();
    }
    let (to, msg) = routed.remove(1);
    assert!(clients[to.0 as usize - 1].handle(msg).is_err());
}

#[test]
fn a_client_refuses_an_unmasking_request_without_enough_survivors() {
    let p = params(5, 3, 4, 32, Graph::Complete, false);
    let (_, mut clients, _) = to_masked(&p, inputs(5, 4, 32, 6));
    let bad = ServerMessage::Unmask {
        session: p.session,
        survivors: vec![ClientId(1)],
        signatures: vec![],
    };
    assert!(matches!(clients[0].handle(bad), Err(Error::TooFewClients { .. })));
    let unsorted = ServerMessage::Unmask {
        session: p.session,
        survivors: vec![ClientId(3), ClientId(2), ClientId(1)],
        signatures: vec![],
    };
    assert!(matches!(clients[1].handle(unsorted), Err(Error::Refused(_))));
}

#[test]
fn malicious_variant_rejects_unsigned_and_inconsistent_views() -> Result<(), Error> {
    let p = params(6, 3, 16, 32, Graph::Complete, true);
    let xs = inputs(6, 16, 32, 7);
    let drops: HashMap<_, _> = [(3, DropAt::ConsistencyCheck), (4, DropAt::MaskedInput)]
        .into_iter()
        .map(|(c, d)| (ClientId(c), d))
        .collect();
    let (agg, _) = run_round(&p, xs.clone(), &drops, 7)?;
    assert_eq!(agg.sum, expected(&xs, &agg.survivors, 32));
    // Without identities the client cannot join a malicious-variant round.
    let mut c = SecAggClient::new(ClientId(1), xs[0].clone(), ChaCha20Rng::seed_from_u64(1));
    assert!(matches!(c.handle(ServerMessage::Start(p)), Err(Error::InvalidParameter { .. })));
    Ok(())
}

fn vectors_path() -> PathBuf {
    std::env::var_os("FL_SECAGG_GRAPH_VECTORS").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/reference/secagg_graph.json")
        },
        PathBuf::from,
    )
}

/// Google's published finder expectations: degree equal, threshold ≤ the expected bound. Set
/// `FL_SECAGG_GRAPH_VECTORS` to check another file of the same format.
#[test]
fn graph_parameter_finder_matches_reference() -> Result<(), Box<dyn std::error::Error>> {
    let path = vectors_path();
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    )?;
    let cases = doc["cases"].as_array().ok_or("no cases")?;
    assert!(!cases.is_empty());
    for c in cases {
        let adversary = match c["adversary"].as_str().ok_or("adversary")? {
            "none" | "NONE" => Adversary::None,
            "semi-honest" => Adversary::SemiHonest,
            "semi-malicious" => Adversary::SemiMalicious,
            other => return Err(format!("unknown adversary {other}").into()),
        };
        let got = find_graph_params(
            u32::try_from(c["n"].as_u64().ok_or("n")?)?,
            c["adversarial_rate"].as_f64().ok_or("rate")?,
            c["dropout_rate"].as_f64().ok_or("rate")?,
            adversary,
            u32::try_from(c["security_bits"].as_u64().ok_or("sec")?)?,
            u32::try_from(c["correctness_bits"].as_u64().ok_or("cor")?)?,
        )?;
        assert_eq!(u64::from(got.degree), c["expected_degree"].as_u64().ok_or("degree")?, "{c}");
        assert!(
            u64::from(got.threshold) <= c["max_threshold"].as_u64().ok_or("threshold")?,
            "{c}: {got:?}"
        );
    }
    assert!(find_graph_params(3, 0.0, 0.1, Adversary::None, 40, 20).is_err());
    assert!(find_graph_params(100, 0.1, 0.1, Adversary::None, 40, 20).is_err());
    assert!(find_graph_params(100, 0.3, 0.4, Adversary::SemiMalicious, 40, 20).is_err());
    Ok(())
}
