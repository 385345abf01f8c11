//! Centralized training on the shipped data: MNIST (train on mnist_5k + 5,000 t10k images, test on
//! the other 5,000) and digits.
//!
//! `cargo run --release -p fl-train --example central -- [mnist|digits] [EPOCHS] [HIDDEN]`

#![allow(
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "an example reports to the terminal and converts counts"
)]

use fl_train::experiments::{digits_split, mnist_split};
use fl_train::{Mlp, SgdConfig, evaluate, train};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map_or("mnist", String::as_str);
    let epochs: usize = args.get(1).map_or(Ok(20), |s| s.parse())?;
    let hidden: usize = args.get(2).map_or(Ok(256), |s| s.parse())?;
    let (train_set, test_set) = match which {
        "mnist" => mnist_split(7)?,
        "digits" => digits_split(7)?,
        other => anyhow::bail!("unknown dataset {other}; use mnist or digits"),
    };
    let model = Mlp::new(&[train_set.num_features(), hidden, train_set.num_classes])?;
    let mut params = model.init(1);
    let cfg = SgdConfig {
        learning_rate: 0.05,
        momentum: 0.9,
        weight_decay: 1e-4,
        batch_size: 64,
        epochs: 1,
        ..SgdConfig::default()
    };
    println!(
        "{which}: {} train / {} test, MLP {:?}",
        train_set.len(),
        test_set.len(),
        model.widths()
    );
    let t0 = std::time::Instant::now();
    for epoch in 1..=epochs {
        let cfg = SgdConfig {
            seed: epoch as u64,
            learning_rate: cfg.learning_rate * if epoch > epochs * 3 / 4 { 0.1 } else { 1.0 },
            ..cfg.clone()
        };
        let r = train(&model, &mut params, &train_set, &cfg, None)?;
        let e = evaluate(&model, &params, &test_set)?;
        println!(
            "epoch {epoch:2}: train loss {:.4}  test loss {:.4}  test accuracy {:.2}%",
            r.mean_loss,
            e.loss,
            100.0 * e.accuracy
        );
    }
    let e = evaluate(&model, &params, &test_set)?;
    println!(
        "final test accuracy {:.2}% ({:.1} s)",
        100.0 * e.accuracy,
        t0.elapsed().as_secs_f64()
    );
    let per_class: Vec<String> =
        e.per_class_accuracy.iter().map(|a| format!("{:.1}", 100.0 * a)).collect();
    println!("per-class accuracy %: {}", per_class.join(" "));
    Ok(())
}
