//! DP-SGD on MNIST at a target ε (default 8, δ = 1e-5): σ is calibrated by fl-dp for Poisson
//! sampling at the expected batch size over the given epochs, and every step is accounted.
//!
//! `cargo run --release -p fl-train --example dp_sgd -- [EPSILON] [EPOCHS] [BATCH] [CLIP]`

#![allow(
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "an example reports to the terminal and converts counts"
)]

use fl_dp::rdp::default_orders;
use fl_dp::{RdpAccountant, calibrate_noise_multiplier, csprng};
use fl_train::experiments::mnist_split;
use fl_train::{DpSgdConfig, Mlp, SgdConfig, evaluate, train_dp};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let target: f64 = args.first().map_or(Ok(8.0), |s| s.parse())?;
    let epochs: f64 = args.get(1).map_or(Ok(15.0), |s| s.parse())?;
    let batch: f64 = args.get(2).map_or(Ok(256.0), |s| s.parse())?;
    let clip: f64 = args.get(3).map_or(Ok(1.0), |s| s.parse())?;
    let (train_set, test_set) = mnist_split(7)?;
    let n = train_set.len() as f64;
    let q = batch / n;
    let steps = (epochs / q).round() as u64;
    let delta = 1e-5;
    let cal = calibrate_noise_multiplier(target, delta, q, steps, &default_orders())?;
    println!(
        "DP-SGD: N = {n}, q = {q:.4}, {steps} steps, C = {clip}, σ = {:.4} for ε = {target}",
        cal.noise_multiplier
    );
    let model = Mlp::new(&[784, 128, 10])?;
    let mut params = model.init(1);
    let mut acc = RdpAccountant::default();
    let mut rng = csprng()?;
    let cfg = DpSgdConfig {
        sgd: SgdConfig { learning_rate: 2.0, momentum: 0.0, ..SgdConfig::default() },
        sampling_rate: q,
        noise_multiplier: cal.noise_multiplier,
        clip,
        steps: steps / 5,
    };
    for chunk in 1..=5 {
        train_dp(&model, &mut params, &train_set, &cfg, None, &mut acc, &mut rng)?;
        let e = evaluate(&model, &params, &test_set)?;
        println!(
            "after {:5} steps: ε = {:.3}, test accuracy {:.2}%",
            chunk * cfg.steps,
            acc.get_epsilon(delta)?.epsilon,
            100.0 * e.accuracy
        );
    }
    Ok(())
}
