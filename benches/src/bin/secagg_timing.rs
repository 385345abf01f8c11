//! Times secure-aggregation rounds: per-client and server compute for n clients with d-dimensional
//! inputs in `Z_(2^32)`, on the complete graph and on SecAgg+'s Harary graph (degree and threshold
//! from the parameter finder for 5 % adversarial clients), with a fraction of clients dropping out
//! after sharing keys — the case that makes the server reconstruct their keys and remove their
//! pairwise masks.
//!
//! `secagg_timing [N] [D] [DROPOUT,...]` (defaults 500, 100000, 0,0.1,0.3)

#![allow(
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "a benchmark reports to the terminal"
)]

use std::collections::HashMap;

use fl_secagg::sim::{DropAt, run_round};
use fl_secagg::{Adversary, ClientId, Graph, Params, SessionId, find_graph_params};
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u32 = args.first().map_or(Ok(500), |s| s.parse())?;
    let d: u32 = args.get(1).map_or(Ok(100_000), |s| s.parse())?;
    let rates: Vec<f64> =
        args.get(2).map_or(Ok(vec![0.0, 0.1, 0.3]), |s| s.split(',').map(str::parse).collect())?;
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let inputs: Vec<Vec<u64>> =
        (0..n).map(|_| (0..d).map(|_| u64::from(rng.random::<u16>())).collect()).collect();
    println!(
        "| graph | n | d | dropout | degree | t | client mean (per survivor) | client max | server |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &rate in &rates {
        let secagg_plus =
            find_graph_params(n, 0.05, rate.max(0.05), Adversary::SemiHonest, 40, 20)?;
        for (name, graph, t) in [
            ("complete", Graph::Complete, n / 2 + 1),
            (
                "SecAgg+",
                Graph::Harary { degree: secagg_plus.degree, seed: [3; 32] },
                secagg_plus.threshold,
            ),
        ] {
            let params = Params {
                session: SessionId([1; 32]),
                num_clients: n,
                threshold: t,
                dimension: d,
                ring_bits: 32,
                graph: graph.clone(),
                malicious: false,
            };
            let dropped = (rate * f64::from(n)).round() as u32;
            let drops: HashMap<ClientId, DropAt> = (1..=dropped)
                .map(|c| (ClientId(c * (n / dropped.max(1)).max(1)), DropAt::MaskedInput))
                .collect();
            let (agg, timings) = run_round(&params, inputs.clone(), &drops, 7)?;
            let survivors = agg.survivors.len() as u32;
            // Conservative: all client work (droppers' early phases included) over the clients that did it all.
            let mean = timings.clients_total.as_secs_f64() / f64::from(survivors);
            let degree = match graph {
                Graph::Harary { degree, .. } => degree,
                _ => n - 1,
            };
            println!(
                "| {name} | {n} | {d} | {:.0}% ({} dropped) | {degree} | {t} | {:.3} s | {:.3} s | {:.3} s |",
                rate * 100.0,
                n - survivors,
                mean,
                timings.client_max.as_secs_f64(),
                timings.server.as_secs_f64()
            );
        }
    }
    Ok(())
}
