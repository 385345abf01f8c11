//! Times fl-train training an MLP 784-128-10 with SGD + momentum on random data (10,000 examples,
//! batch 64 and 128), the work of `benches/anchors/bench_torch_mlp.py`; prints examples/s per
//! batch size as JSON lines, median of `REPS` epochs.
//!
//! `train_timing [REPS]`

#![allow(clippy::print_stdout, reason = "a benchmark reports to the terminal")]

use fl_train::{Dataset, Mlp, SgdConfig, train};
use ndarray::Array2;
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};

fn main() -> anyhow::Result<()> {
    let reps: usize = std::env::args().nth(1).map_or(Ok(5), |s| s.parse())?;
    let n = 10_000;
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let x = Array2::from_shape_fn((n, 784), |_| rng.random::<f32>());
    let y: Vec<u32> = (0..n).map(|_| rng.random_range(0..10)).collect();
    let data = Dataset::new(x, y, 10)?;
    let model = Mlp::new(&[784, 128, 10])?;
    for batch in [64usize, 128] {
        let mut params = model.init(1);
        let cfg = SgdConfig {
            learning_rate: 0.05,
            momentum: 0.9,
            batch_size: batch,
            epochs: 1,
            ..SgdConfig::default()
        };
        train(&model, &mut params, &data, &cfg, None)?;
        let mut ts = Vec::new();
        for r in 0..reps {
            let t0 = std::time::Instant::now();
            train(&model, &mut params, &data, &SgdConfig { seed: r as u64, ..cfg.clone() }, None)?;
            ts.push(t0.elapsed().as_secs_f64());
        }
        ts.sort_by(f64::total_cmp);
        #[allow(clippy::cast_precision_loss, reason = "example counts")]
        let eps = n as f64 / ts[ts.len() / 2];
        println!("{{\"batch\": {batch}, \"examples_per_s\": {eps:.1}}}");
    }
    Ok(())
}
