//! Ten clients with Dirichlet(0.5) label skew on MNIST; FedAvg clients (μ = 0) against FedProx
//! clients (μ from the command line, default 0.01), both aggregated by fl-agg's FedAvg.
//!
//! `cargo run --release -p fl-train --example fedprox_vs_fedavg -- [ROUNDS] [LOCAL_EPOCHS] [MU]`

#![allow(
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "an example reports to the terminal and converts counts"
)]

use fl_agg::{Aggregator, FedAvg};
use fl_core::{ClientUpdate, ModelVersion, PartnerId, Round};
use fl_train::experiments::mnist_split;
use fl_train::partition::dirichlet;
use fl_train::{Mlp, SgdConfig, evaluate, train};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: u64 = args.first().map_or(Ok(20), |s| s.parse())?;
    let local_epochs: usize = args.get(1).map_or(Ok(2), |s| s.parse())?;
    let mu: f32 = args.get(2).map_or(Ok(0.01), |s| s.parse())?;
    let (train_set, test_set) = mnist_split(7)?;
    let parts = dirichlet(&train_set, 10, 0.5, 50, 42)?;
    let clients: Vec<_> = parts.iter().map(|p| train_set.subset(p)).collect();
    println!("client sizes: {:?}", clients.iter().map(fl_train::Dataset::len).collect::<Vec<_>>());
    let model = Mlp::new(&[784, 128, 10])?;
    for (name, prox) in [("FedAvg", 0.0f32), ("FedProx", mu)] {
        let mut global = model.init(1);
        let mut agg = FedAvg::default();
        let mut line = Vec::new();
        for r in 1..=rounds {
            let mut updates = Vec::new();
            for (c, data) in clients.iter().enumerate() {
                let mut local = global.clone();
                let cfg = SgdConfig {
                    learning_rate: 0.05,
                    momentum: 0.9,
                    prox_mu: prox,
                    batch_size: 32,
                    epochs: local_epochs,
                    seed: r * 100 + c as u64,
                    ..SgdConfig::default()
                };
                train(&model, &mut local, data, &cfg, Some(&global))?;
                updates.push(ClientUpdate::new(
                    PartnerId::new(format!("c{c}"))?,
                    Round(r),
                    ModelVersion(r - 1),
                    data.len() as u64,
                    local,
                ));
            }
            global = agg.aggregate(&global, &updates)?;
            let e = evaluate(&model, &global, &test_set)?;
            line.push(format!("{:.2}", 100.0 * e.accuracy));
        }
        println!("{name:8} (μ = {prox}): test accuracy by round: {}", line.join(" "));
    }
    Ok(())
}
