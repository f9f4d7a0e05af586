//! The comparison report (`velollm compare --md/--html`): per candidate and step, the table of changes with
//! their confidence intervals, p-values and verdicts, before/after bars, then gates and success criteria.

use crate::charts::{BeforeAfter, CandidateValue, Chart, MetricBars, before_after_bars};
use crate::comparison::{cells, label, value};
use crate::document::{Block, Table};
use crate::markdown::{MarkdownReport, render_blocks};
use velollm_core::document::compare::{Change, Comparison, Row};
use velollm_core::document::criteria::CriterionOutcome;
use velollm_core::judge::gate::GateOutcome;
use velollm_core::measure::names::Unit;

/// What a comparison report covers: the comparisons of every candidate with the same baseline, and the
/// gates and criteria evaluated on them.
#[derive(Debug, Clone, Copy)]
pub struct ComparisonReport<'a> {
    /// One comparison per candidate, all against the same baseline.
    pub comparisons: &'a [Comparison],
    /// Gate outcomes.
    pub gates: &'a [GateOutcome],
    /// Success-criteria outcomes.
    pub criteria: &'a [CriterionOutcome],
}

/// Rows drawn as before/after bars: the medians and p95s of the latency and speed metrics.
const CHARTED: &[&str] = &["ttft", "e2e", "tpot", "decode_tokens_per_s"];

fn unit_label(unit: Unit, metric: &str) -> String {
    match unit {
        Unit::Ms => "ms".into(),
        Unit::Percent | Unit::Fraction => "%".into(),
        Unit::Plain if metric.ends_with("per_s") => "tok/s".into(),
        Unit::Plain => String::new(),
    }
}

/// One before/after chart per step of the first comparison, every candidate's bars side by side.
fn charts(c: &[Comparison]) -> Vec<Chart> {
    let Some(first) = c.first() else { return Vec::new() };
    let mut out = Vec::new();
    for (i, step) in first.steps.iter().enumerate() {
        let find = |cmp: &Comparison, metric: &str, stat: &str| -> Option<Row> {
            let s = cmp.steps.iter().find(|s| s.step == step.step)?;
            s.rows.iter().find(|r| r.metric == metric && r.stat == stat).cloned()
        };
        let mut metrics = Vec::new();
        for metric in CHARTED {
            for stat in ["p50", "p95"] {
                let Some(base) = find(first, metric, stat) else { continue };
                metrics.push(MetricBars {
                    label: label(&base),
                    unit: unit_label(base.unit, metric),
                    better: base.better,
                    baseline: base.baseline,
                    baseline_ci: None,
                    candidates: c
                        .iter()
                        .map(|cmp| {
                            find(cmp, metric, stat).map(|r| CandidateValue {
                                value: r.candidate,
                                ci: r.ci.map(|(lo, hi)| (r.baseline + lo, r.baseline + hi)),
                            })
                        })
                        .collect(),
                });
            }
        }
        if metrics.is_empty() {
            continue;
        }
        let level = first.options.level * 100.0;
        let title = format!("Before and after: {}", step.step);
        let svg = before_after_bars(&BeforeAfter {
            title: title.clone(),
            notes: vec![format!(
                "error bars: {level:.0} % bootstrap confidence interval of the candidate (baseline + interval of the difference)"
            )],
            baseline: first.baseline.clone(),
            candidates: c.iter().map(|cmp| cmp.candidate.clone()).collect(),
            metrics,
        });
        out.push(Chart { id: format!("before-after-{}", i + 1), title, svg });
    }
    out
}

fn blocks(r: &ComparisonReport<'_>, charts: &[Chart]) -> Vec<Block> {
    let mut out = Vec::new();
    let Some(first) = r.comparisons.first() else { return out };
    let candidates: Vec<&str> = r.comparisons.iter().map(|c| c.candidate.as_str()).collect();
    out.push(Block::Heading(1, format!("⚖️ velollm comparison: {} → {}", first.baseline, candidates.join(", "))));
    let o = &first.options;
    out.push(Block::Facts(vec![
        ("baseline".into(), first.baseline.clone()),
        ("candidates".into(), candidates.join(", ")),
        ("significance level α".into(), o.alpha.to_string()),
        (
            "confidence intervals".into(),
            format!("{:.0} %, {} bootstrap resamples, seed {}", o.level * 100.0, o.resamples, o.seed),
        ),
        (
            "verdict rule".into(),
            "improved/regressed only when the change is significant (rank test and interval excluding 0)".into(),
        ),
    ]));
    let failed_gates = r.gates.iter().filter(|g| g.failed).count();
    let mut summary = Vec::new();
    for c in r.comparisons {
        summary.push(format!(
            "{}: {} improved, {} regressed, {} without significant change",
            c.candidate,
            c.rows_with(Change::Improved).count(),
            c.rows_with(Change::Regressed).count(),
            c.rows_with(Change::NoSignificantChange).count()
        ));
    }
    if !r.gates.is_empty() {
        summary.push(format!("gates: {} of {} failed", failed_gates, r.gates.len()));
    }
    out.push(Block::List(summary));
    for c in r.comparisons {
        out.push(Block::Heading(2, format!("{} → {}", c.baseline, c.candidate)));
        for w in &c.warnings {
            out.push(Block::Notice(format!("⚠ {w}")));
        }
        for s in &c.steps {
            let n = s.rows.first().map(|r| format!(" (n = {} vs {})", r.n_baseline, r.n_candidate)).unwrap_or_default();
            out.push(Block::Heading(3, format!("{}{n}", s.step)));
            let mut t = Table::new(&["metric", "baseline", "candidate", "change", "95% CI", "p", "verdict"], 1);
            t.numeric[6] = false;
            t.rows.extend(s.rows.iter().map(cells));
            out.push(Block::Table(t));
            let notes: Vec<String> =
                s.rows.iter().filter(|r| r.change == Change::TooFewSamples).map(|r| r.note.clone()).collect();
            if let Some(n) = notes.first() {
                out.push(Block::Text(format!("⚠ {n}")));
            }
            if let Some(roi) = &s.roi {
                out.push(Block::Text(crate::format::roi_line(roi)));
            }
            // The chart of a step shows every candidate: it goes under the first one's table.
            let chart = charts.iter().position(|ch| ch.title == format!("Before and after: {}", s.step));
            if let Some(i) = chart.filter(|_| c.candidate == first.candidate) {
                out.push(Block::Chart(i));
            }
        }
        if !c.unmatched.is_empty() {
            out.push(Block::Text(format!("Not compared: {}.", c.unmatched.join(", "))));
        }
    }
    if !r.gates.is_empty() {
        out.push(Block::Heading(2, format!("🚦 Gates: {} of {} failed", failed_gates, r.gates.len())));
        let mut t = Table::new(&["", "gate", "step", "baseline", "candidate", "note"], 99);
        for g in r.gates {
            t.rows.push(vec![
                if g.failed { "❌".into() } else { "✅".into() },
                g.gate.clone(),
                g.step.clone(),
                g.baseline.map_or("–".into(), |v| value(v, g.unit)),
                g.candidate.map_or("–".into(), |v| value(v, g.unit)),
                g.detail.clone(),
            ]);
        }
        out.push(Block::Table(t));
    }
    if !r.criteria.is_empty() {
        out.push(Block::Heading(2, "🎯 Success criteria".into()));
        let mut t = Table::new(&["", "preset", "criterion", "measured"], 99);
        for o in r.criteria {
            t.rows.push(vec![o.outcome.mark().into(), o.preset.clone(), o.criterion.clone(), o.detail.clone()]);
        }
        out.push(Block::Table(t));
        out.push(Block::Text(
            "✅ reached · ❌ missed · ❔ reached but not significant · ➖ not in these results".into(),
        ));
    }
    out
}

/// The comparison as one self-contained HTML page.
pub fn render_comparison_html(r: &ComparisonReport<'_>) -> String {
    let charts = charts(r.comparisons);
    let names: Vec<&str> = r.comparisons.iter().map(|c| c.candidate.as_str()).collect();
    let from = format!("{} and {}", r.comparisons.first().map_or("", |c| c.baseline.as_str()), names.join(", "));
    crate::html::page(&blocks(r, &charts), &charts, &from)
}

/// The comparison as Markdown, with its charts as SVG files named `{chart_stem}-before-after-N.svg`.
pub fn render_comparison_markdown(r: &ComparisonReport<'_>, chart_stem: &str) -> MarkdownReport {
    let charts = charts(r.comparisons);
    let blocks = blocks(r, &charts);
    render_blocks(&blocks, charts, chart_stem)
}
