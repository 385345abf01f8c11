//! Algebraic and robustness properties of every rule: permutation invariance where the rule is
//! symmetric, identical inputs give that input, robust rules stay in the honest range when `f`
//! outliers are far away, and FLTrust / the geometric median against independent formulas.

#![allow(
    clippy::panic_in_result_fn,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    reason = "test code"
)]

use std::sync::Arc;

use fl_agg::{
    Aggregator, Bucketing, Bulyan, CenteredClipping, FedAvg, FedOpt, FlTrust, GeometricMedian,
    Krum, Median, NearestNeighborMixing, NormBound, Pipeline, TrimmedMean,
};
use fl_core::{ClientUpdate, ModelParams, ModelSpec, ModelVersion, PartnerId, Round};
use proptest::prelude::*;

fn spec(d: usize) -> Arc<ModelSpec> {
    Arc::new(ModelSpec::from_pairs([("a", vec![d / 2]), ("b", vec![d - d / 2])]).unwrap())
}

fn updates(spec: &Arc<ModelSpec>, rows: &[Vec<f64>], weights: &[u64]) -> Vec<ClientUpdate<f64>> {
    rows.iter()
        .zip(weights)
        .enumerate()
        .map(|(i, (r, &w))| {
            ClientUpdate::new(
                PartnerId::new(format!("c{i}")).unwrap(),
                Round(3),
                ModelVersion(2),
                w,
                ModelParams::from_flat(Arc::clone(spec), r.clone()).unwrap(),
            )
        })
        .collect()
}

fn close(a: &[f64], b: &[f64], rel: f64) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() <= rel * (1.0 + x.abs().max(y.abs())))
}

/// n rows of dimension d (d + 1 total params), values in [-10, 10], weights 1..100. A small
/// irrational jitter per row and coordinate keeps inputs in general position even after
/// shrinking, so distance and score ties (where "first index wins" breaks symmetry) do not occur.
fn dataset(max_n: usize) -> impl Strategy<Value = (usize, Vec<Vec<f64>>, Vec<u64>)> {
    (7usize..=max_n, 2usize..12).prop_flat_map(|(n, d)| {
        (
            Just(d),
            prop::collection::vec(prop::collection::vec(-10.0..10.0f64, d + 1), n).prop_map(
                |mut rows| {
                    for (i, r) in rows.iter_mut().enumerate() {
                        for (c, x) in r.iter_mut().enumerate() {
                            *x += 1e-3 * ((i * 31 + c * 17 + 1) as f64).sqrt().fract();
                        }
                    }
                    rows
                },
            ),
            prop::collection::vec(1u64..100, n),
        )
    })
}

fn symmetric_rules(n: usize) -> Vec<(Box<dyn Aggregator<f64, Error = fl_agg::Error>>, f64)> {
    let f = (n - 3) / 4;
    vec![
        (Box::new(FedAvg::default()), 1e-12),
        (Box::new(Median), 0.0),
        (Box::new(TrimmedMean::new(0.2).unwrap()), 1e-12),
        (Box::new(Krum::new(f)), 0.0),
        (Box::new(Krum::multi(f, n / 2)), 1e-12),
        (Box::new(Bulyan::new(f)), 1e-12),
        (Box::new(GeometricMedian::default()), 1e-7),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn permutation_invariance((d, rows, w) in dataset(13), rot in 1usize..6) {
        let s = spec(d + 1);
        let g = ModelParams::zeros(Arc::clone(&s));
        let ups = updates(&s, &rows, &w);
        let mut perm = ups.clone();
        perm.rotate_left(rot % ups.len());
        perm.swap(0, ups.len() - 1);
        for (mut rule, tol) in symmetric_rules(ups.len()) {
            // Bulyan is not symmetric: its last Krum rounds run with k = 1, where two mutually
            // nearest updates tie exactly and the first index wins (Flower's rule), so the
            // selection depends on input order. The Flower vectors pin its order-dependence.
            if rule.name() == "bulyan" {
                continue;
            }
            let a = rule.aggregate(&g, &ups).unwrap();
            let b = rule.aggregate(&g, &perm).unwrap();
            prop_assert!(close(a.as_slice(), b.as_slice(), tol), "{} not permutation invariant", rule.name());
        }
    }

    #[test]
    fn identical_inputs_give_that_input((d, rows, w) in dataset(11)) {
        let s = spec(d + 1);
        let g = ModelParams::zeros(Arc::clone(&s));
        let same = vec![rows[0].clone(); rows.len()];
        let ups = updates(&s, &same, &w);
        for (mut rule, _) in symmetric_rules(ups.len()) {
            let out = rule.aggregate(&g, &ups).unwrap();
            prop_assert!(close(out.as_slice(), &rows[0], 1e-12), "{}", rule.name());
        }
        // An update equal to the global model leaves FedOpt's model where it is. (With several
        // updates the weighted average may differ from the input by an ulp, which Adam's
        // normalised step would amplify to η: that is Adam, not a defect.)
        let at_global = updates(&s, &rows[..1], &w[..1]);
        let global = ModelParams::from_flat(Arc::clone(&s), rows[0].clone()).unwrap();
        for mut opt in [FedOpt::adam(), FedOpt::yogi(), FedOpt::adagrad()] {
            let out = opt.aggregate(&global, &at_global).unwrap();
            prop_assert_eq!(out.as_slice(), &rows[0][..]);
        }
    }

    #[test]
    fn robust_rules_stay_in_honest_range((d, rows, w) in dataset(15), far in prop::sample::select(vec![1e4, -1e5, 1e6])) {
        let n = rows.len();
        let f = (n - 3) / 4;
        let s = spec(d + 1);
        let g = ModelParams::zeros(Arc::clone(&s));
        let mut all = rows.clone();
        for (k, row) in all.iter_mut().take(f.max(1)).enumerate() {
            row.iter_mut().enumerate().for_each(|(c, x)| *x = far * (1.0 + (c + k) as f64));
        }
        let f = f.max(1);
        let ups = updates(&s, &all, &w);
        let honest = &all[f..];
        let lo: Vec<f64> = (0..=d).map(|c| honest.iter().map(|r| r[c]).fold(f64::INFINITY, f64::min)).collect();
        let hi: Vec<f64> = (0..=d).map(|c| honest.iter().map(|r| r[c]).fold(f64::NEG_INFINITY, f64::max)).collect();
        let mut rules: Vec<Box<dyn Aggregator<f64, Error = fl_agg::Error>>> = vec![
            Box::new(Median),
            Box::new(TrimmedMean::new(0.249).unwrap()),
        ];
        if n > 2 * f + 2 {
            rules.push(Box::new(Krum::new(f)));
            rules.push(Box::new(Krum::multi(f, n - f)));
            rules.push(Box::new(Pipeline::new(Box::new(Krum::new(f))).then(Box::new(NearestNeighborMixing::new(f)))));
        }
        if n >= 4 * f + 3 {
            rules.push(Box::new(Bulyan::new(f)));
        }
        for mut rule in rules {
            if rule.name() == "trimmed_mean" && ((0.249 * n as f64) as usize) < f {
                continue;
            }
            let out = rule.aggregate(&g, &ups).unwrap();
            for c in 0..=d {
                let x = out.as_slice()[c];
                prop_assert!(x >= lo[c] - 1e-9 && x <= hi[c] + 1e-9, "{} coordinate {c}: {x} outside [{}, {}]", rule.name(), lo[c], hi[c]);
            }
        }
        // The geometric median moves at most a bounded distance towards far outliers, as long
        // as they hold less than half of the weight (its breakdown point is by weight: with
        // weights 43 and 68 of 120 two outliers rightly own the weighted median). Outliers of
        // weight 1 against n − f ≥ 3f + 3 honest updates hold under a quarter, where the bound
        // ‖z − x̄‖ ≤ (1 − α)/(1 − 2α) · max‖xᵢ − x̄‖ (Minsker 2015, Lemma 2.1) gives ‖z‖ ≤ 4r.
        let mut gm_w = w.clone();
        gm_w[..f].fill(1);
        let gm = GeometricMedian::default().aggregate(&g, &updates(&s, &all, &gm_w)).unwrap();
        let radius = honest.iter().map(|r| r.iter().map(|x| x * x).sum::<f64>().sqrt()).fold(0.0, f64::max);
        let gm_norm = gm.as_slice().iter().map(|x| x * x).sum::<f64>().sqrt();
        prop_assert!(gm_norm <= 4.0 * radius + 1.0, "geometric median pulled to {gm_norm} (honest radius {radius})");
    }

    #[test]
    fn fltrust_matches_the_paper_formula((d, rows, w) in dataset(9), root in prop::collection::vec(-1.0..1.0f64, 13)) {
        let s = spec(d + 1);
        let global = ModelParams::from_flat(Arc::clone(&s), rows[0].clone()).unwrap();
        let ups = updates(&s, &rows[1..], &w[1..]);
        let g0: Vec<f64> = root[..=d].to_vec();
        let mut ft = FlTrust::new(1.0).unwrap();
        ft.set_root_update(ModelParams::from_flat(Arc::clone(&s), g0.clone()).unwrap());
        let out = ft.aggregate(&global, &ups).unwrap();
        // Independent computation of Cao et al. 2021, Algorithm 1.
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let n0 = norm(&g0);
        let mut num = vec![0.0; d + 1];
        let mut den = 0.0;
        for r in &rows[1..] {
            let gi: Vec<f64> = r.iter().zip(&rows[0]).map(|(x, w)| x - w).collect();
            let ni = norm(&gi);
            let cos = gi.iter().zip(&g0).map(|(a, b)| a * b).sum::<f64>() / (ni * n0);
            let ts = cos.max(0.0);
            den += ts;
            for (acc, x) in num.iter_mut().zip(&gi) {
                *acc += ts * x * n0 / ni;
            }
        }
        let want: Vec<f64> = rows[0].iter().zip(&num).map(|(w, a)| if den > 0.0 { w + a / den } else { *w }).collect();
        prop_assert!(close(out.as_slice(), &want, 1e-10));
        prop_assert!(ft.last_trust_scores().iter().all(|t| (0.0..=1.0).contains(t)));
    }
}

#[test]
fn fltrust_without_root_update_is_an_error() {
    let s = spec(4);
    let g = ModelParams::<f64>::zeros(Arc::clone(&s));
    let ups = updates(&s, &[vec![1.0; 4]], &[1]);
    let mut ft = FlTrust::new(1.0).unwrap();
    assert!(matches!(ft.aggregate(&g, &ups), Err(fl_agg::Error::MissingRootUpdate)));
}

#[test]
fn geometric_median_is_first_order_optimal() {
    // A triangle with all angles < 120°: the geometric median is the Fermat point, where the
    // unit vectors towards the vertices sum to zero.
    let s = Arc::new(ModelSpec::from_pairs([("p", vec![2])]).unwrap());
    let pts = vec![vec![0.0, 0.0], vec![4.0, 0.0], vec![1.0, 3.0]];
    let ups = updates(&s, &pts, &[1, 1, 1]);
    let mut gm = GeometricMedian::new(1e-12, 10_000, 1e-15).unwrap();
    let z = gm.aggregate(&ModelParams::zeros(Arc::clone(&s)), &ups).unwrap();
    let z = z.as_slice();
    let mut grad = [0.0, 0.0];
    for p in &pts {
        let (dx, dy) = (z[0] - p[0], z[1] - p[1]);
        let r = (dx * dx + dy * dy).sqrt();
        grad[0] += dx / r;
        grad[1] += dy / r;
    }
    assert!(
        grad[0].hypot(grad[1]) < 1e-6,
        "gradient {grad:?} at {z:?} after {} iterations",
        gm.last_iterations()
    );
}

#[test]
fn byzantine_bounds_and_weights_are_checked() {
    let s = spec(4);
    let g = ModelParams::<f64>::zeros(Arc::clone(&s));
    let six = updates(&s, &vec![vec![1.0; 4]; 6], &[1; 6]);
    assert!(matches!(
        Krum::new(2).aggregate(&g, &six),
        Err(fl_agg::Error::ByzantineBound { .. } | fl_agg::Error::TooFewClients { .. })
    ));
    assert!(Krum::new(1).aggregate(&g, &six).is_ok());
    assert!(Bulyan::new(1).aggregate(&g, &six).is_err());
    let seven = updates(&s, &vec![vec![1.0; 4]; 7], &[1; 7]);
    assert!(Bulyan::new(1).aggregate(&g, &seven).is_ok());
    assert!(matches!(
        Krum::multi(1, 8).aggregate(&g, &seven),
        Err(fl_agg::Error::InvalidConfig { .. })
    ));
    // The bounds a federation checks before its first round are the ones aggregation enforces.
    assert_eq!(Aggregator::<f64>::min_updates(&Krum::new(2)), 7);
    assert_eq!(Aggregator::<f64>::min_updates(&Bulyan::new(1)), 7);
    assert_eq!(Aggregator::<f64>::min_updates(&Median), 1);
    // A Byzantine count from a command line cannot overflow the bound into a small one.
    let huge = usize::MAX;
    assert_eq!(Aggregator::<f64>::min_updates(&Krum::new(huge)), usize::MAX);
    assert!(matches!(
        Krum::new(huge).aggregate(&g, &seven),
        Err(fl_agg::Error::TooFewClients { needed: usize::MAX, .. })
    ));
    assert!(Bulyan::new(huge).aggregate(&g, &seven).is_err());
    let dist = fl_agg::distance::DistanceMatrix::from_row_major(7, vec![0.0; 49]).unwrap();
    assert!(matches!(
        fl_agg::krum_select(&dist, huge, 1),
        Err(fl_agg::Error::ByzantineBound { .. })
    ));
    assert!(matches!(
        fl_agg::bulyan_select(&dist, huge, |_, _| false),
        Err(fl_agg::Error::ByzantineBound { .. })
    ));
}

#[test]
fn norm_bound_clips_deltas_and_bucketing_is_seeded() {
    let s = spec(2);
    let g = ModelParams::<f64>::from_flat(Arc::clone(&s), vec![1.0, 1.0]).unwrap();
    let ups = updates(&s, &[vec![4.0, 5.0], vec![1.5, 1.0]], &[1, 1]);
    let mut clipped =
        Pipeline::new(Box::new(FedAvg::default())).then(Box::new(NormBound::new(1.0).unwrap()));
    let out = clipped.aggregate(&g, &ups).unwrap();
    // Deltas (3, 4) → (0.6, 0.8) and (0.5, 0) unchanged; average (0.55, 0.4).
    assert!(close(out.as_slice(), &[1.55, 1.4], 1e-15));
    assert!(!clipped.is_linear());

    let many = updates(&s, &(0..9).map(|i| vec![f64::from(i), 0.0]).collect::<Vec<_>>(), &[1; 9]);
    let run = |seed| {
        Pipeline::new(Box::new(Median))
            .then(Box::new(Bucketing::new(3, seed).unwrap()))
            .aggregate(&g, &many)
            .unwrap()
    };
    assert_eq!(run(7), run(7));
    // Averages of three values from 0..9 whose overall mean is 4: the median of bucket means
    // lies within [1, 7].
    assert!((1.0..=7.0).contains(&run(8).as_slice()[0]));
}

#[test]
fn centered_clipping_bounds_outlier_influence() {
    let s = spec(2);
    let g = ModelParams::<f64>::zeros(Arc::clone(&s));
    let mut rows = vec![vec![1.0, 0.0]; 9];
    rows.push(vec![1e9, 1e9]);
    let ups = updates(&s, &rows, &[1; 10]);
    let mut cc = CenteredClipping::new(2.0, 3).unwrap();
    let out = cc.aggregate(&g, &ups).unwrap();
    // Each iteration moves the outlier's contribution by at most τ/n = 0.2.
    let drift = ((out.as_slice()[0] - 1.0).powi(2) + out.as_slice()[1].powi(2)).sqrt();
    assert!(drift <= 0.61, "drift {drift}");
    // State: the next round starts from this aggregate.
    let again = cc.aggregate(&g, &ups).unwrap();
    assert!(again.as_slice().iter().all(|x| x.is_finite()));
}

#[test]
fn every_rule_names_a_non_finite_input() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let s = spec(40_000);
        let g = ModelParams::<f64>::zeros(Arc::clone(&s));
        let rows: Vec<Vec<f64>> = (0..11)
            .map(|i| (0..40_000).map(|c| ((i * 7 + c) % 13) as f64 * 0.1).collect())
            .collect();
        let mut ups = updates(&s, &rows, &[5; 11]);
        ups[6].params.as_mut_slice()[33_333] = bad;
        let mut rules: Vec<Box<dyn Aggregator<f64, Error = fl_agg::Error>>> = vec![
            Box::new(FedAvg::default()),
            Box::new(FedAvg::with_order(fl_agg::FedAvgOrder::Reference)),
            Box::new(Median),
            Box::new(TrimmedMean::new(0.2).unwrap()),
            Box::new(Krum::new(2)),
            Box::new(Krum::multi(2, 5)),
            Box::new(Bulyan::new(2)),
            Box::new(GeometricMedian::default()),
            Box::new(CenteredClipping::new(1.0, 1).unwrap()),
            Box::new(FedOpt::adam()),
            Box::new(Pipeline::new(Box::new(Median)).then(Box::new(NearestNeighborMixing::new(2)))),
        ];
        for rule in &mut rules {
            match rule.aggregate(&g, &ups) {
                Err(fl_agg::Error::Core(fl_core::Error::NonFinite { layer, index, .. })) => {
                    assert_eq!(
                        (layer.as_str(), index),
                        ("b", vec![33_333 - 20_000]),
                        "{}",
                        rule.name()
                    );
                }
                other => panic!(
                    "{} with {bad}: expected NonFinite, got {:?}",
                    rule.name(),
                    other.map(|_| ())
                ),
            }
        }
    }
}
