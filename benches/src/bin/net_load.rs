//! Load test of the networked federation: one server and N clients (default 500) in one
//! process over loopback TLS with SecAgg+, each client a separate authenticated connection
//! training its IID shard of MNIST. Prints one JSON line per round (server-side round time) and
//! the process's peak resident memory (server and all clients together).
//!
//! `cargo run --release -p fl-benches --bin net_load -- [CLIENTS] [ROUNDS] [HIDDEN]`

#![allow(clippy::print_stdout, reason = "a benchmark reports to the terminal")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fl_core::PartnerId;
use fl_net::auth::{Identity, Registry, parse_public_key};
use fl_net::network::{JoinConfig, ServeConfig, ServeEvent, join, serve};
use fl_net::simulation::SimDataset;
use fl_net::{AggregatorKind, DpSetting, FederationConfig, Participant, PrivacyMode};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let clients: usize = args.first().map(|a| a.parse()).transpose()?.unwrap_or(500);
    let rounds: u64 = args.get(1).map(|a| a.parse()).transpose()?.unwrap_or(2);
    let hidden: usize = args.get(2).map(|a| a.parse()).transpose()?.unwrap_or(32);
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state)?;
    let mut rng = fl_dp::csprng()?;
    let mut registry = Registry::open(&state.join("partners.json"))?;
    let ids: Vec<Identity> = (0..clients)
        .map(|i| {
            Identity::generate(
                PartnerId::new(format!("p{i:04}")).unwrap_or_else(|_| unreachable!()),
                &mut rng,
            )
        })
        .collect();
    for id in &ids {
        registry.enrol(id.partner().clone(), parse_public_key(&id.public_key_hex())?)?;
    }
    // Load and split once: the clients get their shards before the runtime starts, so no task
    // blocks a worker thread on file I/O while hundreds of TLS handshakes are in flight.
    let (train, test) = fl_net::simulation::load(SimDataset::Mnist, 1)?;
    let mut shards: Vec<fl_train::Dataset> =
        fl_train::partition::iid(&train, clients, 1)?.iter().map(|idx| train.subset(idx)).collect();
    let model = fl_train::Mlp::new(&[test.num_features(), hidden, test.num_classes])?;
    let files = fl_net::network::self_signed(&state)?;
    let ca = files.cert.clone();
    let federation = FederationConfig {
        name: "load".into(),
        rounds,
        clients_per_round: clients,
        min_clients: clients * 9 / 10,
        aggregator: AggregatorKind::FedAvg,
        privacy: PrivacyMode::SecAggPlus,
        dp: DpSetting::Off,
        update_clip: Some(4.0),
        quantization_bits: 16,
        learning_rate: 0.1,
        momentum: 0.9,
        batch_size: 32,
        local_epochs: 1,
        model_version: 0,
    };
    let params = model.init(1).len();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let addr_tx = Arc::new(Mutex::new(Some(addr_tx)));
        let cfg = ServeConfig {
            listen: "127.0.0.1:0".parse()?,
            state_dir: state.clone(),
            federation,
            initial: model.init(1),
            tls: Some(files),
            join_timeout: Duration::from_secs(600),
            phase_timeout: Duration::from_secs(600),
            max_frame: 64 << 20,
            evaluation: Some((model.clone(), test)),
            paillier: None,
        };
        let started = Instant::now();
        let server = tokio::spawn(async move {
            serve(cfg, &mut |ev| match ev {
                ServeEvent::Listening(a) => {
                    if let Some(tx) = addr_tx.lock().ok().and_then(|mut t| t.take()) {
                        let _ = tx.send(a);
                    }
                }
                ServeEvent::Round(r) => println!(
                    "{{\"round\": {}, \"clients\": {clients}, \"params\": {params}, \"included\": {}, \"seconds\": {:.3}, \"accuracy\": {:.4}, \"aborted\": {:?}}}",
                    r.round,
                    r.included.len(),
                    r.seconds,
                    r.accuracy.unwrap_or(f64::NAN),
                    r.aborted
                ),
                _ => {}
            })
            .await
        });
        let addr = addr_rx.await?.to_string();
        let mut tasks = Vec::with_capacity(clients);
        for (id, data) in ids.into_iter().zip(shards.drain(..)) {
            let cfg = JoinConfig {
                server: addr.clone(),
                server_name: "localhost".into(),
                ca: ca.clone(),
                max_frame: 64 << 20,
                idle_timeout: Duration::from_secs(600),
            };
            let model = model.clone();
            tasks.push(tokio::spawn(async move {
                let mut p = Participant::new(id.partner().clone(), model, data, fl_dp::csprng()?)?;
                join(&cfg, &id, &mut p).await.map_err(anyhow::Error::from)
            }));
        }
        let joined = started.elapsed().as_secs_f64();
        let report = server.await??;
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(matches!(t.await, Ok(Ok(_))));
        }
        println!(
            "{{\"summary\": true, \"clients\": {clients}, \"clients_finished\": {ok}, \"rounds\": {}, \"mean_round_s\": {:.3}, \"spawn_s\": {joined:.2}, \"total_s\": {:.2}, \"peak_rss_mib\": {:.0}}}",
            report.rounds.len(),
            report.rounds.iter().map(|r| r.seconds).sum::<f64>() / report.rounds.len().max(1) as f64,
            started.elapsed().as_secs_f64(),
            peak_rss_mib().unwrap_or(f64::NAN)
        );
        anyhow::Ok(())
    })?;
    Ok(())
}
