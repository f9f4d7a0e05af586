//! The `velollm tune` report: the trade-off table of every configuration and the best one with its margin.

use crate::document::{Block, Table};
use crate::format::{bytes, num, value};
use velollm_core::document::result::RunStatus;
use velollm_core::document::tune::TuneSummary;
use velollm_core::measure::names::{Better, Unit};

/// The tune report as blocks (for Markdown and HTML).
pub fn tune_blocks(s: &TuneSummary) -> Vec<Block> {
    let mut blocks = vec![
        Block::Heading(1, format!("velollm tune · {}", s.objective.name)),
        Block::Facts(vec![
            ("launch command".into(), s.template.clone()),
            ("objective".into(), objective_text(s)),
            ("configurations".into(), s.rows.len().to_string()),
        ]),
    ];
    blocks.push(Block::Heading(2, "Best configuration".into()));
    blocks.push(Block::Text(verdict(s)));
    blocks.push(Block::Heading(2, "Trade-offs".into()));
    blocks.push(Block::Table(table(s)));
    let failed: Vec<String> = s
        .rows
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {}", r.label, e.lines().next().unwrap_or(""))))
        .collect();
    if !failed.is_empty() {
        blocks.push(Block::Heading(2, "Configurations without a complete result".into()));
        blocks.push(Block::List(failed));
    }
    blocks
}

fn objective_text(s: &TuneSummary) -> String {
    let dir = match s.objective.better {
        Better::Higher => "higher is better",
        _ => "lower is better",
    };
    format!("{} over every successful request of a configuration, all steps pooled ({dir})", s.objective.name)
}

/// One sentence: the best configuration and its margin over the runner-up.
pub fn verdict(s: &TuneSummary) -> String {
    let unit = s.objective.unit;
    let Some(best) = s.best.and_then(|i| s.rows.get(i)) else {
        return "No configuration completed without failures: there is no best one.".into();
    };
    let head =
        format!("{} — {} {}", best.label, s.objective.name, best.objective.map_or("–".into(), |v| value(v, unit)));
    let (Some(runner), Some(m)) = (s.runner_up.and_then(|i| s.rows.get(i)), &s.margin) else {
        return format!("{head}; no other configuration to compare with.");
    };
    let ci = format!("{:.0} % CI {} to {}", m.level * 100.0, signed(m.ci_low, unit), signed(m.ci_high, unit));
    if m.significant {
        format!(
            "{head}, {} ({:.1} %) better than the runner-up {} ({ci}).",
            value(m.difference, unit),
            m.relative * 100.0,
            runner.label
        )
    } else {
        format!(
            "{head}; the runner-up {} is within noise: {} ({:.1} %) apart, {ci} includes 0. Measure more requests \
             to separate them.",
            runner.label,
            value(m.difference, unit),
            m.relative * 100.0
        )
    }
}

fn signed(v: f64, unit: Unit) -> String {
    if v > 0.0 { format!("+{}", value(v, unit)) } else { value(v, unit) }
}

fn opt(v: Option<f64>, unit: Unit) -> String {
    v.map_or("–".into(), |v| value(v, unit))
}

/// The trade-off table: one row per configuration.
pub fn table(s: &TuneSummary) -> Table {
    let objective = format!("{} ({})", s.objective.name, if s.objective.unit == Unit::Ms { "ms" } else { "" });
    let objective = objective.replace(" ()", "");
    let mut t = Table::new(
        &[
            "",
            "configuration",
            &objective,
            "TTFT p50 (ms)",
            "TTFT p95 (ms)",
            "E2E p50 (ms)",
            "E2E p95 (ms)",
            "output tok/s",
            "RSS peak",
            "ready (ms)",
            "failed",
        ],
        2,
    );
    for (i, r) in s.rows.iter().enumerate() {
        let mark = if Some(i) == s.best {
            "best"
        } else if r.status != RunStatus::Complete || r.error.is_some() {
            "✗"
        } else {
            ""
        };
        t.rows.push(vec![
            mark.into(),
            r.label.clone(),
            opt(r.objective, s.objective.unit),
            opt(r.ttft_p50_ms, Unit::Ms),
            opt(r.ttft_p95_ms, Unit::Ms),
            opt(r.e2e_p50_ms, Unit::Ms),
            opt(r.e2e_p95_ms, Unit::Ms),
            r.output_tokens_per_s.map_or("–".into(), num),
            r.rss_peak_bytes.map_or("–".into(), bytes),
            opt(r.ready_ms, Unit::Ms),
            format!("{}/{}", r.failed, r.requests),
        ]);
    }
    t
}

/// The tune report for a terminal: the table, then the verdict.
pub fn render_tune(s: &TuneSummary) -> String {
    let t = table(s);
    let c = t.terminal(" ");
    format!("velollm tune · {}\n{c}\n{}\n", objective_text(s), verdict(s))
}
