//! A comparison of runs rendered as text: per step, one row per metric statistic with the change, its
//! confidence interval, the p-value and the verdict; then gates and success criteria.

use crate::document::Table;
pub use crate::format::value;
use std::fmt::Write;
use velollm_core::document::compare::{Change, Comparison, Row};
use velollm_core::document::criteria::CriterionOutcome;
use velollm_core::judge::gate::GateOutcome;
use velollm_core::measure::names::Unit;

/// A signed change in its unit: `−35.2 ms`, `+1.5 %`.
fn signed(v: f64, unit: Unit) -> String {
    let s = value(v.abs(), unit);
    if v < 0.0 { format!("−{s}") } else { format!("+{s}") }
}

fn pct(v: f64) -> String {
    if v < 0.0 { format!("−{:.1}%", -v) } else { format!("+{v:.1}%") }
}

/// The verdict with its mark.
pub fn verdict(change: Change) -> String {
    let mark = match change {
        Change::Improved => "✅",
        Change::Regressed => "❌",
        Change::Changed => "↕",
        Change::NoSignificantChange => "·",
        Change::TooFewSamples => "⚠",
        Change::NotTested => "–",
    };
    format!("{mark} {}", change.label())
}

/// The human name of a metric statistic: `TTFT p50`, `success rate` (labels from [`velollm_core::aggregate::registry`]).
pub fn label(row: &Row) -> String {
    let name = velollm_core::aggregate::registry::label(&row.metric);
    if row.stat == "value" { name.to_string() } else { format!("{name} {}", row.stat) }
}

/// A comparison row's cells: metric, baseline, candidate, change, interval, p-value, verdict (the terminal table
/// and the reports show the same cells).
pub fn cells(r: &Row) -> Vec<String> {
    vec![
        label(r),
        value(r.baseline, r.unit),
        value(r.candidate, r.unit),
        delta(r),
        interval(r),
        r.p_value.map_or("–".into(), |p| if p < 0.001 { "<0.001".into() } else { format!("{p:.3}") }),
        verdict(r.change),
    ]
}

/// The change column: `−35.2 ms (−17.6 %)`.
pub fn delta(row: &Row) -> String {
    match row.delta_pct {
        Some(p) if row.unit != Unit::Fraction => format!("{} ({})", signed(row.delta, row.unit), pct(p)),
        _ => signed(row.delta, row.unit),
    }
}

/// The interval column: `[−40.1, −30.2] %` relative to the baseline when possible.
pub fn interval(row: &Row) -> String {
    match (row.ci_pct, row.ci) {
        (Some((lo, hi)), _) => format!("[{}, {}]", pct(lo), pct(hi)),
        (None, Some((lo, hi))) => format!("[{}, {}]", signed(lo, row.unit), signed(hi, row.unit)),
        _ => "–".into(),
    }
}

/// Render one comparison.
pub fn render_comparison(c: &Comparison) -> String {
    let mut out = String::new();
    let level = c.options.level * 100.0;
    let _ = writeln!(out, "{} → {}", c.baseline, c.candidate);
    for w in &c.warnings {
        let _ = writeln!(out, "  ⚠ {w}");
    }
    for s in &c.steps {
        let name = match &s.candidate_step {
            Some(other) => format!("{} ↔ {other}", s.step),
            None => s.step.clone(),
        };
        let n = s.rows.first().map(|r| format!("  ·  n = {} vs {}", r.n_baseline, r.n_candidate)).unwrap_or_default();
        let _ = writeln!(out, "\n{name}{n}");
        let ci = format!("{level:.0}% CI");
        let mut table = Table::new(&["", "baseline", "candidate", "change", &ci, "p", "verdict"], 1);
        table.numeric[6] = false;
        table.rows.extend(s.rows.iter().map(cells));
        out.push_str(&table.terminal("  "));
        for r in s.rows.iter().filter(|r| !r.note.is_empty() && r.change == Change::TooFewSamples).take(1) {
            let _ = writeln!(out, "  ⚠ {}", r.note);
        }
        if let Some(roi) = &s.roi {
            let _ = writeln!(out, "  {}", crate::format::roi_line(roi));
        }
    }
    if !c.unmatched.is_empty() {
        let _ = writeln!(out, "\n  not compared: {}", c.unmatched.join(", "));
    }
    let improved = c.rows_with(Change::Improved).count();
    let regressed = c.rows_with(Change::Regressed).count();
    let _ = writeln!(
        out,
        "\n  {improved} improved · {regressed} regressed (α = {}, {} bootstrap resamples, seed {})",
        c.options.alpha, c.options.resamples, c.options.seed
    );
    out
}

/// Render gate outcomes.
pub fn render_gates(gates: &[GateOutcome]) -> String {
    let mut out = String::from("Gates\n");
    for g in gates {
        let mark = if g.failed { "❌ FAIL" } else { "✅ pass" };
        let shown = match (g.baseline, g.candidate) {
            (Some(b), Some(c)) => format!("{} → {}", value(b, g.unit), value(c, g.unit)),
            (None, Some(c)) => value(c, g.unit),
            _ => String::new(),
        };
        let detail = if g.detail.is_empty() { String::new() } else { format!(" — {}", g.detail) };
        let _ = writeln!(out, "  {mark}  {}  [{}]  {shown}{detail}", g.gate, g.step);
    }
    out
}

/// Render success-criteria outcomes.
pub fn render_criteria(outcomes: &[CriterionOutcome]) -> String {
    let mut out = String::new();
    let mut preset = "";
    for o in outcomes {
        if o.preset != preset {
            preset = &o.preset;
            let _ = writeln!(out, "Success criteria: {preset}");
        }
        let _ = writeln!(out, "  {} {} — {}", o.outcome.mark(), o.criterion, o.detail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_values_and_changes() {
        assert_eq!(signed(-35.25, Unit::Ms), "−35.25 ms");
        assert_eq!(pct(12.34), "+12.3%");
    }
}
