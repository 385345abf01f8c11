//! Micro-benchmarks of the secure-aggregation primitives: mask expansion (ChaCha20 keystream
//! added into a 100,000-element vector), Shamir split and reconstruction, and a whole small round
//! (n = 50, d = 10,000) with client and server time measured separately. Rounds at n = 500 / 1000
//! cost minutes of client work each, too long for criterion's sampling; they are timed by
//! `cargo run --release -p fl-benches --bin secagg_timing`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fl_secagg::crypto::apply_mask;
use fl_secagg::shamir::{reconstruct, split};
use fl_secagg::sim::{DropAt, Timings, run_round};
use fl_secagg::{ClientId, Graph, Params, SessionId};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("secagg");
    let mut acc = vec![0u64; 100_000];
    g.throughput(Throughput::Bytes(400_000));
    g.bench_function("apply_mask_100k_32bit", |b| {
        b.iter(|| apply_mask(black_box(&[7; 32]), 32, false, &mut acc))
    });
    g.throughput(Throughput::Elements(1));
    let holders: Vec<ClientId> = (1..=100).map(ClientId).collect();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    g.bench_function("shamir_split_t51_n100", |b| {
        b.iter(|| split(black_box(&[9; 16]), &holders, 51, &mut rng))
    });
    let shares = split(&[9; 16], &holders, 51, &mut rng).expect("split");
    g.bench_function("shamir_reconstruct_t51", |b| b.iter(|| reconstruct(black_box(&shares), 51)));
    g.finish();

    let mut g = c.benchmark_group("secagg_round_n50_d10k_30pct_dropout");
    g.sample_size(10);
    for (name, graph, t) in [
        ("complete", Graph::Complete, 26),
        ("harary_k16", Graph::Harary { degree: 16, seed: [3; 32] }, 9),
    ] {
        let params = Params {
            session: SessionId([1; 32]),
            num_clients: 50,
            threshold: t,
            dimension: 10_000,
            ring_bits: 32,
            graph,
            malicious: false,
        };
        let inputs: Vec<Vec<u64>> =
            (0..50u64).map(|i| (0..10_000).map(|j| (i * j) & 0xffff).collect()).collect();
        let drops: HashMap<ClientId, DropAt> =
            (1..=15).map(|c| (ClientId(c * 3), DropAt::MaskedInput)).collect();
        let round = |iters: u64, pick: fn(&Timings) -> Duration| -> Duration {
            (0..iters)
                .map(|i| pick(&run_round(&params, inputs.clone(), &drops, i).expect("round").1))
                .sum()
        };
        g.bench_function(format!("{name}/server"), |b| {
            b.iter_custom(|iters| round(iters, |t| t.server))
        });
        g.bench_function(format!("{name}/client_mean"), |b| {
            b.iter_custom(|iters| round(iters, |t| t.clients_total / 50))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
