//! The accountant against `../shared/reference/dp_rdp.json` (dp-accounting 0.6.0 plus mpmath
//! quadrature; its metadata explains every field). Set `FL_DP_VECTORS=/path/file.json` to check
//! another file of the same format instead.
//!
//! - `rdp_vector`: one-step RDP vs `expected_mpmath`, 1e-9 relative.
//! - `rdp_epsilon`: ε vs `expected_exact_frac` where present (dp-accounting's integer orders with
//!   exact fractional orders), else `expected`, 1e-9 relative. The optimal order is not compared:
//!   where dp-accounting over-estimates a fractional order, the optimum legitimately moves.
//! - `calibrate_sigma`: never above `sigma_bisect` (dp-accounting's fractional over-estimate can
//!   only push its σ up), equal to 1e-9 where no fractional order is involved (q = 1), and our ε at
//!   our σ within the target.
//! - `pld_epsilon`: RDP ε ≥ the PLD accountant's ε (RDP is the looser bound), except where the
//!   metadata says the PLD grid is coarser (q ≤ 1e-4 with σ ≥ 5).

#![allow(clippy::panic_in_result_fn, clippy::unwrap_used, reason = "test code")]

use std::path::PathBuf;

use fl_dp::rdp::{default_orders, rdp_subsampled_gaussian};
use fl_dp::{DpEvent, RdpAccountant, calibrate_noise_multiplier, epsilon_for_sigma};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn cases() -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let path = std::env::var_os("FL_DP_VECTORS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/dp_rdp.json"),
        PathBuf::from,
    );
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&text)?;
    let cases = doc["cases"].as_array().ok_or("no cases")?.clone();
    assert!(!cases.is_empty());
    Ok(cases)
}

/// Numbers, with non-finite values written as strings.
fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        _ => v.as_f64().unwrap(),
    }
}

fn of_kind(cases: &[Value], kind: &str) -> Vec<Value> {
    cases.iter().filter(|c| c["kind"] == kind).cloned().collect()
}

fn epsilon(c: &Value) -> Result<f64, fl_dp::Error> {
    let mut acc = RdpAccountant::default();
    let event = DpEvent::PoissonSampledGaussian {
        sampling_rate: num(&c["q"]),
        noise_multiplier: num(&c["sigma"]),
    };
    acc.compose(&event, c["steps"].as_u64().unwrap())?;
    Ok(acc.get_epsilon(num(&c["delta"]))?.epsilon)
}

fn rel(a: f64, b: f64) -> f64 {
    if a == b { 0.0 } else { (a - b).abs() / b.abs() }
}

#[test]
fn rdp_vectors_match_quadrature() -> TestResult {
    let cases = cases()?;
    for c in of_kind(&cases, "rdp_vector") {
        let orders: Vec<f64> = c["orders"].as_array().unwrap().iter().map(num).collect();
        let ours = rdp_subsampled_gaussian(num(&c["q"]), num(&c["sigma"]), &orders)?;
        let want: Vec<f64> = c["expected_mpmath"].as_array().unwrap().iter().map(num).collect();
        for ((a, o), w) in ours.iter().zip(&orders).zip(&want) {
            assert!(rel(*a, *w) <= 1e-9, "{} order {o}: {a} vs mpmath {w}", c["id"]);
        }
    }
    Ok(())
}

#[test]
fn epsilons_match_exact_fractional_reference() -> TestResult {
    let cases = cases()?;
    let list = of_kind(&cases, "rdp_epsilon");
    assert!(!list.is_empty());
    for c in list {
        let want = c.get("expected_exact_frac").map_or_else(|| num(&c["expected"]), num);
        let got = epsilon(&c)?;
        assert!(rel(got, want) <= 1e-9, "{}: ours {got}, reference {want}", c["id"]);
        // Exact fractional orders can only lower ε below dp-accounting's own value.
        assert!(got <= num(&c["expected"]) * (1.0 + 1e-9), "{}", c["id"]);
    }
    Ok(())
}

#[test]
fn calibration_against_bisection() -> TestResult {
    let cases = cases()?;
    let orders = default_orders();
    let list = of_kind(&cases, "calibrate_sigma");
    assert!(!list.is_empty());
    for c in list {
        let (target, delta, q) = (num(&c["target_epsilon"]), num(&c["delta"]), num(&c["q"]));
        let steps = c["steps"].as_u64().unwrap();
        let cal = calibrate_noise_multiplier(target, delta, q, steps, &orders)?;
        let bisect = num(&c["sigma_bisect"]);
        assert!(cal.epsilon <= target, "{}: ε(σ) = {} above target", c["id"], cal.epsilon);
        assert!(
            cal.noise_multiplier <= bisect * (1.0 + 1e-10),
            "{}: {} > {bisect}",
            c["id"],
            cal.noise_multiplier
        );
        if q == 1.0 {
            assert!(
                rel(cal.noise_multiplier, bisect) <= 1e-9,
                "{}: {} vs {bisect}",
                c["id"],
                cal.noise_multiplier
            );
        }
        // The reference σ is feasible for us too (our ε is never above dp-accounting's).
        assert!(epsilon_for_sigma(q, bisect, steps, delta, &orders)? <= target);
    }
    Ok(())
}

#[test]
fn rdp_bounds_the_pld_accountant() -> TestResult {
    let cases = cases()?;
    let list = of_kind(&cases, "pld_epsilon");
    assert!(!list.is_empty());
    let mut checked = 0;
    for c in list {
        let (q, sigma) = (num(&c["q"]), num(&c["sigma"]));
        if q <= 1e-4 && sigma >= 5.0 {
            continue; // the metadata's coarse-grid exception
        }
        let got = epsilon(&c)?;
        let pld = num(&c["expected"]);
        assert!(got >= pld * (1.0 - 1e-9), "{}: RDP ε {got} below PLD ε {pld}", c["id"]);
        checked += 1;
    }
    assert!(checked > 0);
    Ok(())
}

/// Opacus's published example (its RDP accountant docs and tests): σ = 1.5, q = 0.04, 2250 steps,
/// δ = 1e-5 → ε = 7.32911117143, over Opacus's default orders.
#[test]
fn opacus_published_value() -> TestResult {
    let mut acc = RdpAccountant::new(fl_dp::rdp::opacus_orders())?;
    acc.compose(
        &DpEvent::PoissonSampledGaussian { sampling_rate: 0.04, noise_multiplier: 1.5 },
        2250,
    )?;
    let eps = acc.get_epsilon(1e-5)?.epsilon;
    assert!(rel(eps, 7.32911117143) <= 1e-9, "{eps}");
    Ok(())
}
