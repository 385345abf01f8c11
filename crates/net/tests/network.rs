//! The networked federation in one process over loopback TLS: three honest partners train
//! while an unenrolled client, a garbage-sending client, an oversized frame, a replayed message,
//! a NaN update and a wrong-round message are each refused, and the federation completes.

#![allow(clippy::unwrap_used, clippy::panic_in_result_fn, reason = "test code")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fl_core::PartnerId;
use fl_net::adversary;
use fl_net::auth::{Identity, Registry, parse_public_key};
use fl_net::network::{JoinConfig, ServeConfig, ServeEvent, join, serve};
use fl_net::simulation::{Partition, SimDataset, partner_data};
use fl_net::{FederationConfig, Participant};

mod common;
use common::federation_config;

fn federation() -> FederationConfig {
    federation_config("network test", 3, 3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn honest_partners_finish_while_every_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut rng = fl_dp::csprng().unwrap();
    let honest: Vec<Identity> = (0..3)
        .map(|i| Identity::generate(PartnerId::new(format!("lab-{i}")).unwrap(), &mut rng))
        .collect();
    let mallory = Identity::generate(PartnerId::new("mallory").unwrap(), &mut rng);
    let stranger = Identity::generate(PartnerId::new("stranger").unwrap(), &mut rng);
    let mut registry = Registry::open(&state.join("partners.json")).unwrap();
    for id in honest.iter().chain([&mallory]) {
        registry
            .enrol(id.partner().clone(), parse_public_key(&id.public_key_hex()).unwrap())
            .unwrap();
    }
    let (_, test) = partner_data(SimDataset::Digits, Partition::Iid, 3, 0, 1).unwrap();
    let model = fl_train::Mlp::new(&[test.num_features(), 16, test.num_classes]).unwrap();
    let files = fl_net::network::self_signed(&state).unwrap();
    let ca = files.cert.clone();

    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let addr_tx = Arc::new(Mutex::new(Some(addr_tx)));
    let cfg = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: state.clone(),
        federation: federation(),
        initial: model.init(1),
        tls: Some(files),
        join_timeout: Duration::from_secs(60),
        phase_timeout: Duration::from_secs(5),
        max_frame: 1 << 20,
        evaluation: Some((model.clone(), test)),
        paillier: None,
    };
    let server = tokio::spawn(async move {
        let mut events = Vec::new();
        let report = serve(cfg, &mut |ev| {
            if let ServeEvent::Listening(a) = &ev
                && let Some(tx) = addr_tx.lock().unwrap().take()
            {
                let _ = tx.send(*a);
            }
            events.push(format!("{ev:?}"));
        })
        .await;
        (report, events)
    });
    let addr = addr_rx.await.unwrap().to_string();

    // Before the quorum: a stranger, and a client that sends garbage instead of a response.
    let join_cfg = JoinConfig {
        server: addr.clone(),
        server_name: "localhost".into(),
        ca: ca.clone(),
        max_frame: 64 << 20,
        idle_timeout: Duration::from_secs(60),
    };
    let (data, _) = partner_data(SimDataset::Digits, Partition::Iid, 3, 0, 1).unwrap();
    let mut p =
        Participant::new(stranger.partner().clone(), model.clone(), data, fl_dp::csprng().unwrap())
            .unwrap();
    let err = join(&join_cfg, &stranger, &mut p).await.unwrap_err();
    assert!(err.to_string().contains("not enrolled"), "{err}");
    for bytes in [&[7, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3][..], &(1u32 << 20).to_le_bytes()] {
        assert!(
            adversary::garbage(&addr, &ca, bytes).await.unwrap(),
            "the server closes the connection"
        );
    }
    // Mallory: an oversized frame once authenticated, then bad messages inside the first round.
    assert!(adversary::oversized(&addr, &ca, &mallory).await.unwrap());
    let mallory_task = {
        let (addr, ca) = (addr.clone(), ca.clone());
        tokio::spawn(async move { adversary::in_round(&addr, &ca, &mallory).await })
    };
    // Mallory is connected (and will be selected) before the honest quorum arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut clients = Vec::new();
    for (i, id) in honest.into_iter().enumerate() {
        let join_cfg = JoinConfig {
            server: addr.clone(),
            server_name: "localhost".into(),
            ca: ca.clone(),
            max_frame: 64 << 20,
            idle_timeout: Duration::from_secs(60),
        };
        let model = model.clone();
        clients.push(tokio::spawn(async move {
            let (data, _) = partner_data(SimDataset::Digits, Partition::Iid, 3, i, 1).unwrap();
            let mut p =
                Participant::new(id.partner().clone(), model, data, fl_dp::csprng().unwrap())
                    .unwrap();
            join(&join_cfg, &id, &mut p).await
        }));
    }
    for c in clients {
        let r = c.await.unwrap().unwrap();
        assert_eq!(r.rounds_included, 3, "{r:?}");
    }
    assert!(mallory_task.await.unwrap().unwrap(), "the replay closes the session");
    let (report, events) = server.await.unwrap();
    let report = report.unwrap();
    let refused = report.refused.join("\n");
    assert_eq!(report.rounds.iter().filter(|r| r.aborted.is_none()).count(), 3, "{events:?}");
    let (first, last) = (report.initial_accuracy.unwrap(), report.rounds[2].accuracy.unwrap());
    assert!(last > first + 0.2, "accuracy {first} -> {last}");
    for needle in ["not enrolled", "non-finite", "signed round", "replayed", "exceeds", "malformed"]
    {
        assert!(refused.contains(needle), "no refusal mentioning {needle:?} in:\n{refused}");
    }
    assert!(report.refused.len() >= 6, "garbage must be refused too:\n{refused}");
    assert_eq!(fl_audit::verify_file(state.join("audit.log"), None).unwrap().records, 4);
}
