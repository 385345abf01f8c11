//! Writing a simulation's results: the JSON report and an SVG plot of test accuracy and ε by
//! round. The plot is a few dozen SVG elements, written directly rather than through a plotting
//! stack with font handling it does not need.

use std::fmt::Write as _;
use std::path::Path;

use crate::simulation::SimulationReport;
use crate::{Error, Result};

/// Writes `report` as pretty JSON.
///
/// # Errors
///
/// I/O errors.
pub fn write_json(report: &SimulationReport, path: &Path) -> Result<()> {
    let json = serde_json::to_string_pretty(report).map_err(|e| Error::Malformed(e.to_string()))?;
    std::fs::write(path, json)?;
    Ok(())
}

/// Renders test accuracy (left axis, %) and the largest partner ε (right axis) by round.
#[must_use]
pub fn svg(report: &SimulationReport) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 400.0, 60.0, 60.0, 40.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let done: Vec<_> = report.rounds.iter().filter(|r| r.aborted.is_none()).collect();
    #[allow(clippy::cast_precision_loss, reason = "round counts are small")]
    let max_round = report.rounds.iter().map(|r| r.round).max().unwrap_or(1).max(1) as f64;
    let eps_max = done.iter().filter_map(|r| r.epsilon_max).fold(0.0f64, f64::max);
    let eps_top = if eps_max > 0.0 { nice_ceiling(eps_max) } else { 1.0 };
    #[allow(clippy::cast_precision_loss, reason = "round counts are small")]
    let x = |round: u64| left + pw * (round as f64 / max_round);
    let y_acc = |a: f64| top + ph * (1.0 - a);
    let y_eps = |e: f64| top + ph * (1.0 - e / eps_top);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
"#,
        w / 2.0,
        escape(&format!(
            "{} clients, {}, {}, DP {}",
            report.config.num_clients,
            report.config.federation.privacy.name(),
            aggregator_label(report),
            if report.budgets.is_empty() { "off" } else { "on" }
        ))
    );
    // Grid and axes.
    for i in 0..=5 {
        let frac = f64::from(i) / 5.0;
        let yy = top + ph * (1.0 - frac);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/>"##,
            left + pw
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{:.0}%</text>"#,
            left - 6.0,
            yy + 4.0,
            frac * 100.0
        );
        if !report.budgets.is_empty() {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}">{:.2}</text>"#,
                left + pw + 6.0,
                yy + 4.0,
                frac * eps_top
            );
        }
    }
    let ticks = report.rounds.len().clamp(1, 10);
    for i in 0..=ticks {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "small tick counts"
        )]
        let r = ((i as f64 / ticks as f64) * max_round).round() as u64;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{r}</text>"#,
            x(r),
            top + ph + 18.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">round</text>"#,
        left + pw / 2.0,
        h - 10.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
    );
    // Accuracy, starting from the initial model at round 0.
    let mut acc = vec![(0, report.initial_accuracy)];
    acc.extend(done.iter().map(|r| (r.round, r.accuracy)));
    let pts: Vec<String> =
        acc.iter().map(|&(r, a)| format!("{:.1},{:.1}", x(r), y_acc(a))).collect();
    let _ = writeln!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#1f77b4" stroke-width="2.5"/>"##,
        pts.join(" ")
    );
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" fill="#1f77b4">test accuracy</text>"##,
        left + 8.0,
        top + 16.0
    );
    if !report.budgets.is_empty() {
        let mut eps = vec![(0, 0.0)];
        eps.extend(done.iter().filter_map(|r| r.epsilon_max.map(|e| (r.round, e))));
        let pts: Vec<String> =
            eps.iter().map(|&(r, e)| format!("{:.1},{:.1}", x(r), y_eps(e))).collect();
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="#d62728" stroke-width="2" stroke-dasharray="6 4"/>"##,
            pts.join(" ")
        );
        let budget = report.budgets.iter().map(|b| b.epsilon_budget).fold(0.0, f64::max);
        if budget <= eps_top {
            let by = y_eps(budget);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" y1="{by:.1}" x2="{:.1}" y2="{by:.1}" stroke="#d62728" stroke-width="1" opacity="0.5"/>"##,
                left + pw
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#d62728">largest partner ε (right axis; faint line: budget)</text>"##,
            left + 8.0,
            top + 32.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn aggregator_label(report: &SimulationReport) -> String {
    serde_json::to_value(&report.config.federation.aggregator)
        .ok()
        .and_then(|v| match v {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Object(m) => m.keys().next().cloned(),
            _ => None,
        })
        .unwrap_or_default()
}

fn nice_ceiling(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Writes [`svg`] to `path`.
///
/// # Errors
///
/// I/O errors.
pub fn write_svg(report: &SimulationReport, path: &Path) -> Result<()> {
    std::fs::write(path, svg(report))?;
    Ok(())
}
