//! Every rule that Flower has, checked against outputs of Flower 1.41 itself
//! (`../shared/reference/flower_agg.json`, semantics in `flower_agg_semantics.md`).
//! Selected indices must match exactly, values within 1e-12 relative (exactly where the operation
//! order is fully determined). Set `FL_AGG_VECTORS=/path/to/file.json` to check another file of
//! the same format instead.

#![allow(
    clippy::panic_in_result_fn,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    reason = "test code"
)]

use std::path::PathBuf;
use std::sync::Arc;

use fl_agg::distance::pairwise_sq_distances;
use fl_agg::{
    Aggregator, BiasCorrection, Bulyan, FedAvgOrder, FedOpt, Krum, Median, TrimmedMean,
    bulyan_select, krum_select, weighted_average,
};
use fl_core::{ClientUpdate, ModelParams, ModelSpec, ModelVersion, PartnerId, Round};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn vectors_path() -> PathBuf {
    std::env::var_os("FL_AGG_VECTORS").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/reference/flower_agg.json")
        },
        PathBuf::from,
    )
}

fn flat(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|layer| layer.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect()
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| usize::try_from(x.as_u64().unwrap()).unwrap()).collect()
}

struct Case {
    id: String,
    spec: Arc<ModelSpec>,
    updates: Vec<ClientUpdate<f64>>,
    expected: Value,
}

fn load() -> Result<Vec<Case>, Box<dyn std::error::Error>> {
    let path = vectors_path();
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&text)?;
    let mut cases = Vec::new();
    for c in doc["cases"].as_array().ok_or("no cases")? {
        let sizes = indices(&c["layer_sizes"]);
        let spec = Arc::new(ModelSpec::from_pairs(
            sizes.iter().enumerate().map(|(i, &s)| (format!("layer{i}"), vec![s])),
        )?);
        let updates = c["clients"]
            .as_array()
            .ok_or("no clients")?
            .iter()
            .enumerate()
            .map(|(i, cl)| {
                let params = ModelParams::from_flat(Arc::clone(&spec), flat(&cl["layers"]))?;
                Ok(ClientUpdate::new(
                    PartnerId::new(format!("client{i}"))?,
                    Round(1),
                    ModelVersion(0),
                    cl["num_examples"].as_u64().ok_or("num_examples")?,
                    params,
                ))
            })
            .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
        cases.push(Case {
            id: c["id"].as_str().unwrap_or("?").to_owned(),
            spec,
            updates,
            expected: c["expected"].clone(),
        });
    }
    assert!(!cases.is_empty(), "no cases in {}", path.display());
    Ok(cases)
}

fn assert_rel(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = if rel == 0.0 { g == w } else { (g - w).abs() <= rel * g.abs().max(w.abs()) };
        assert!(ok, "{what}[{i}]: got {g:e}, Flower {w:e} (rel tol {rel:e})");
    }
}

const REL: f64 = 1e-12;

#[test]
fn fedavg_both_orders_are_bit_identical() -> TestResult {
    let mut checked = 0;
    for c in load()? {
        let g = ModelParams::zeros(Arc::clone(&c.spec));
        if let Some(e) = c.expected.get("fedavg") {
            let out = weighted_average(&g, &c.updates, FedAvgOrder::Reference)?;
            assert_rel(&format!("{} fedavg", c.id), out.as_slice(), &flat(&e["output"]), 0.0);
            checked += 1;
        }
        if let Some(e) = c.expected.get("fedavg_inplace") {
            let out = weighted_average(&g, &c.updates, FedAvgOrder::InPlace)?;
            assert_rel(
                &format!("{} fedavg_inplace", c.id),
                out.as_slice(),
                &flat(&e["output"]),
                0.0,
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
    Ok(())
}

#[test]
fn krum_selection_scores_and_distances() -> TestResult {
    let mut checked = 0;
    for c in load()? {
        let Some(e) = c.expected.get("krum") else { continue };
        let rows: Vec<&[f64]> = c.updates.iter().map(|u| u.params.as_slice()).collect();
        let dist = pairwise_sq_distances(&rows);
        let want_d = flat(&e["sq_distance_matrix"]);
        let n = rows.len();
        let got_d: Vec<f64> = (0..n).flat_map(|i| dist.row(i).to_vec()).collect();
        assert_rel(&format!("{} distances", c.id), &got_d, &want_d, REL);
        let f = usize::try_from(e["f"].as_u64().unwrap())?;
        let sel = krum_select(&dist, f, 1)?;
        assert_eq!(
            sel.selected,
            [usize::try_from(e["selected_index"].as_u64().unwrap())?],
            "{} krum index",
            c.id
        );
        assert_rel(
            &format!("{} krum scores", c.id),
            &sel.scores,
            &e["scores"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect::<Vec<_>>(),
            REL,
        );
        let out = Krum::new(f).aggregate(&ModelParams::zeros(Arc::clone(&c.spec)), &c.updates)?;
        assert_rel(&format!("{} krum output", c.id), out.as_slice(), &flat(&e["output"]), 0.0);
        checked += 1;
    }
    assert!(checked > 0);
    Ok(())
}

#[test]
fn multikrum_order_and_output() -> TestResult {
    let mut checked = 0;
    for c in load()? {
        let Some(e) = c.expected.get("multikrum") else { continue };
        let f = usize::try_from(e["f"].as_u64().unwrap())?;
        let m = usize::try_from(e["m"].as_u64().unwrap())?;
        let rows: Vec<&[f64]> = c.updates.iter().map(|u| u.params.as_slice()).collect();
        let sel = krum_select(&pairwise_sq_distances(&rows), f, m)?;
        assert_eq!(
            sel.selected,
            indices(&e["selected_indices_in_sum_order"]),
            "{} multikrum order",
            c.id
        );
        let out =
            Krum::multi(f, m).aggregate(&ModelParams::zeros(Arc::clone(&c.spec)), &c.updates)?;
        assert_rel(&format!("{} multikrum", c.id), out.as_slice(), &flat(&e["output"]), REL);
        checked += 1;
    }
    assert!(checked > 0);
    Ok(())
}

#[test]
fn bulyan_selection_and_output() -> TestResult {
    let mut checked = 0;
    for c in load()? {
        let Some(e) = c.expected.get("bulyan") else { continue };
        let f = usize::try_from(e["f"].as_u64().unwrap())?;
        let rows: Vec<&[f64]> = c.updates.iter().map(|u| u.params.as_slice()).collect();
        let sel = bulyan_select(&pairwise_sq_distances(&rows), f, |a, b| rows[a] == rows[b])?;
        assert_eq!(sel, indices(&e["selected_indices_in_order"]), "{} bulyan selection", c.id);
        assert_eq!(sel.len(), usize::try_from(e["theta"].as_u64().unwrap())?);
        let out = Bulyan::new(f).aggregate(&ModelParams::zeros(Arc::clone(&c.spec)), &c.updates)?;
        assert_rel(&format!("{} bulyan", c.id), out.as_slice(), &flat(&e["output"]), REL);
        // The median of the selected set is the coordinate median of those updates.
        let chosen: Vec<_> = sel.iter().map(|&i| c.updates[i].clone()).collect();
        let med = Median.aggregate(&ModelParams::zeros(Arc::clone(&c.spec)), &chosen)?;
        assert_rel(
            &format!("{} bulyan median", c.id),
            med.as_slice(),
            &flat(&e["median_of_selected"]),
            0.0,
        );
        checked += 1;
    }
    assert!(checked > 0);
    Ok(())
}

#[test]
fn trimmed_mean_and_median() -> TestResult {
    let mut checked = 0;
    for c in load()? {
        let g = ModelParams::zeros(Arc::clone(&c.spec));
        if let Some(e) = c.expected.get("trimmed_mean") {
            let mut t = TrimmedMean::new(e["proportiontocut"].as_f64().unwrap())?;
            assert_eq!(
                t.cut(c.updates.len()) as u64,
                e["lowercut"].as_u64().unwrap(),
                "{} lowercut",
                c.id
            );
            let out = t.aggregate(&g, &c.updates)?;
            assert_rel(&format!("{} trimmed_mean", c.id), out.as_slice(), &flat(&e["output"]), REL);
            checked += 1;
        }
        if let Some(e) = c.expected.get("median") {
            let out = Median.aggregate(&g, &c.updates)?;
            assert_rel(&format!("{} median", c.id), out.as_slice(), &flat(&e["output"]), 0.0);
            checked += 1;
        }
    }
    assert!(checked > 0);
    Ok(())
}

fn run_fedopt(name: &str, mut opt: FedOpt<f64>, c: &Case, e: &Value) -> TestResult {
    let h = &e["hyper"];
    opt = opt
        .with_eta(h["eta"].as_f64().unwrap())?
        .with_betas(h["beta_1"].as_f64().unwrap(), h["beta_2"].as_f64().unwrap())?
        .with_tau(h["tau"].as_f64().unwrap())?;
    let initial = ModelParams::from_flat(Arc::clone(&c.spec), flat(&e["initial"]))?;
    let r1 = opt.aggregate(&initial, &c.updates)?;
    assert_rel(&format!("{} {name} round1", c.id), r1.as_slice(), &flat(&e["round1"]), REL);
    let r2 = opt.aggregate(&r1, &c.updates)?;
    assert_rel(&format!("{} {name} round2", c.id), r2.as_slice(), &flat(&e["round2"]), REL);
    let (m, v) = opt.moments().ok_or("no moments")?;
    assert_rel(&format!("{} {name} m", c.id), m, &flat(&e["m_t_after_round2"]), REL);
    assert_rel(&format!("{} {name} v", c.id), v, &flat(&e["v_t_after_round2"]), REL);
    Ok(())
}

#[test]
fn fedadam_and_fedyogi_two_rounds() -> TestResult {
    let mut checked = 0;
    for c in load()? {
        if let Some(e) = c.expected.get("fedadam") {
            let adam = FedOpt::adam().with_bias_correction(BiasCorrection::FlowerCompat);
            run_fedopt("fedadam", adam, &c, e)?;
            // The default (textbook) correction differs from Flower's from round 1 on.
            let mut ours = FedOpt::<f64>::adam();
            let initial = ModelParams::from_flat(Arc::clone(&c.spec), flat(&e["initial"]))?;
            assert_ne!(
                ours.aggregate(&initial, &c.updates)?.as_slice(),
                flat(&e["round1"]).as_slice()
            );
            checked += 1;
        }
        if let Some(e) = c.expected.get("fedyogi") {
            run_fedopt("fedyogi", FedOpt::yogi(), &c, e)?;
            checked += 1;
        }
    }
    assert!(checked > 0);
    Ok(())
}
