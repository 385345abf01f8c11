//! Loaders and training on the real data in `../shared/data`.

#![allow(
    clippy::panic_in_result_fn,
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    reason = "test code"
)]

use fl_dp::{RdpAccountant, calibrate_noise_multiplier};
use fl_train::data::shared;
use fl_train::experiments::{digits_split, mnist_split};
use fl_train::partition::dirichlet;
use fl_train::{
    DpSgdConfig, Labels, Mlp, SgdConfig, evaluate, load_delimited, load_idx, train, train_dp,
};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn mnist_files_load_exactly() -> TestResult {
    let (img, lab) = shared::mnist_t10k();
    let t = load_idx(&img, &lab)?;
    assert_eq!((t.len(), t.num_features()), (10_000, 784));
    // The canonical MNIST test-set label counts (SOURCE.md).
    assert_eq!(t.class_counts(), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    let mean = t.features.iter().map(|&x| f64::from(x)).sum::<f64>() / (10_000.0 * 784.0 * 255.0);
    assert!((mean - 0.1325).abs() < 5e-4, "{mean}");
    let m = load_delimited(shared::mnist_5k(), Labels::Indices)?;
    assert_eq!((m.len(), m.num_features()), (5000, 784));
    assert_eq!(m.class_counts(), [500; 10]);
    // Swapped files are malformed, not a panic.
    assert!(load_idx(&lab, &img).is_err());
    Ok(())
}

#[test]
fn other_tabular_sets_load() -> TestResult {
    let d = shared::data_dir().join("tabular");
    let wine = load_delimited(d.join("linfa/winequality-red.csv.gz"), Labels::Remap)?;
    assert_eq!((wine.len(), wine.num_features(), wine.num_classes), (1599, 11, 6));
    assert_eq!(wine.class_counts(), [10, 53, 681, 638, 199, 18]);
    let bc = load_delimited(d.join("sklearn/breast_cancer.csv"), Labels::Indices)?;
    assert_eq!((bc.len(), bc.num_features(), bc.num_classes), (569, 30, 2));
    let iris = load_delimited(d.join("sklearn/iris.csv"), Labels::Indices)?;
    assert_eq!((iris.len(), iris.num_classes), (150, 3));
    Ok(())
}

#[test]
fn digits_mlp_learns() -> TestResult {
    let (tr, te) = digits_split(7)?;
    let model = Mlp::new(&[64, 64, 10])?;
    let mut p = model.init(1);
    train(&model, &mut p, &tr, &SgdConfig { epochs: 10, ..SgdConfig::default() }, None)?;
    let e = evaluate(&model, &p, &te)?;
    assert!(e.accuracy > 0.95, "{}", e.accuracy);
    Ok(())
}

#[test]
fn mnist_softmax_regression_and_dp_sgd_learn() -> TestResult {
    let (tr, te) = mnist_split(7)?;
    let model = Mlp::softmax_regression(784, 10)?;
    let mut p = model.init(1);
    train(
        &model,
        &mut p,
        &tr,
        &SgdConfig { epochs: 2, learning_rate: 0.1, ..SgdConfig::default() },
        None,
    )?;
    assert!(evaluate(&model, &p, &te)?.accuracy > 0.85);

    // DP-SGD: the accountant ends at the calibrated ε, and the model still learns.
    let (q, steps) = (0.0256, 200);
    let cal = calibrate_noise_multiplier(8.0, 1e-5, q, steps, &fl_dp::rdp::default_orders())?;
    let mut acc = RdpAccountant::default();
    let mut dp = model.init(1);
    let cfg = DpSgdConfig {
        sgd: SgdConfig { learning_rate: 2.0, momentum: 0.0, ..SgdConfig::default() },
        sampling_rate: q,
        noise_multiplier: cal.noise_multiplier,
        clip: 1.0,
        steps,
    };
    train_dp(&model, &mut dp, &tr, &cfg, None, &mut acc, &mut ChaCha20Rng::seed_from_u64(5))?;
    let eps = acc.get_epsilon(1e-5)?.epsilon;
    assert!(eps <= 8.0 && eps > 7.9, "{eps}");
    assert!(evaluate(&model, &dp, &te)?.accuracy > 0.75);
    Ok(())
}

#[test]
fn dirichlet_on_mnist_is_skewed_and_reproducible() -> TestResult {
    let (tr, _) = mnist_split(7)?;
    let parts = dirichlet(&tr, 10, 0.5, 50, 42)?;
    assert_eq!(parts, dirichlet(&tr, 10, 0.5, 50, 42)?);
    let dominant: Vec<f64> = parts
        .iter()
        .map(|p| {
            let c = tr.subset(p).class_counts();
            *c.iter().max().unwrap() as f64 / p.len() as f64
        })
        .collect();
    assert!(dominant.iter().sum::<f64>() / 10.0 > 0.25, "{dominant:?}");
    Ok(())
}
