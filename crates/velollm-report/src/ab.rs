//! The `velollm ab` report: per step, a table of the paired statistics (A median, B median, Δ median and
//! Δ mean with their intervals, ratio B/A, signed-rank p-value, verdict), the speedup, the proxy overhead when
//! B is a proxy in front of A, and a one-line verdict — for the terminal and as Markdown.

use crate::comparison::verdict;
use crate::document::{Block, Table};
use crate::format::value;
use crate::markdown::render_blocks;
use std::fmt::Write;
use velollm_core::document::ab::{AbResult, AbStep, AbTarget, PairCache, ProxyOverhead};
use velollm_core::document::compare::Change;
use velollm_core::document::paired::PairedRow;
use velollm_core::document::result::RunStatus;
use velollm_core::measure::names::Unit;

/// The human name of a paired metric (its label in [`velollm_core::aggregate::registry`]).
pub fn metric_label(metric: &str) -> &str {
    velollm_core::aggregate::registry::label(metric)
}

/// A signed value in its unit: `+12.3 ms`, `−0.50`.
fn signed(v: f64, unit: Unit) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let s = value(v.abs(), unit);
    if v == 0.0 {
        return s;
    }
    if v < 0.0 { format!("−{s}") } else { format!("+{s}") }
}

/// `+12.3 ms [+8.1, +15.0]`.
fn with_ci(v: f64, ci: Option<(f64, f64)>, unit: Unit) -> String {
    let head = signed(v, unit);
    match ci {
        Some((lo, hi)) => {
            let bare = |x: f64| signed(x, unit).trim_end_matches(" ms").to_string();
            format!("{head} [{}, {}]", bare(lo), bare(hi))
        }
        None => head,
    }
}

/// `1.05× [1.02, 1.08]`.
fn ratio(r: &PairedRow) -> String {
    match (r.ratio, r.ratio_ci) {
        (Some(x), Some((lo, hi))) => format!("{x:.3}× [{lo:.3}, {hi:.3}]"),
        (Some(x), None) => format!("{x:.3}×"),
        _ => "–".into(),
    }
}

fn p_value(p: Option<f64>) -> String {
    p.map_or("–".into(), |p| if p < 0.001 { "<0.001".into() } else { format!("{p:.3}") })
}

/// The table of a step's paired rows.
pub fn rows_table(rows: &[PairedRow], level: f64) -> Table {
    let ci = format!("{:.0}% CI", level * 100.0);
    let mut t = Table::new(
        &[
            "metric",
            "pairs",
            "A median",
            "B median",
            &format!("Δ median [{ci}]"),
            &format!("Δ mean [{ci}]"),
            &format!("B/A [{ci}]"),
            "p",
            "verdict",
        ],
        1,
    );
    t.numeric[8] = false;
    for r in rows {
        t.rows.push(vec![
            metric_label(&r.metric).to_string(),
            r.pairs.to_string(),
            value(r.a_median, r.unit),
            value(r.b_median, r.unit),
            with_ci(r.median_diff, r.median_diff_ci, r.unit),
            with_ci(r.mean_diff, r.mean_diff_ci, r.unit),
            ratio(r),
            p_value(r.p_value),
            verdict(r.change),
        ]);
    }
    t
}

/// The tails of a step's rows: each side's p95, p99 and p99.9 and the difference with its paired interval, one
/// line per quantile (a hedged or cached B shows here first: the median may not move while the tail does).
pub fn tails_table(rows: &[PairedRow], level: f64) -> Table {
    let ci = format!("Δ [{:.0}% CI]", level * 100.0);
    let mut t = Table::new(&["metric", "quantile", "A", "B", &ci, "Δ %"], 2);
    for r in rows {
        for tail in &r.tails {
            t.rows.push(vec![
                metric_label(&r.metric).to_string(),
                quantile_label(tail.q),
                value(tail.a, r.unit),
                value(tail.b, r.unit),
                with_ci(tail.diff, tail.diff_ci, r.unit),
                signed(tail.diff / tail.a * 100.0, Unit::Percent),
            ]);
        }
    }
    t
}

/// `p95`, `p99`, `p99.9`.
fn quantile_label(q: f64) -> String {
    let pct = format!("{:.1}", q * 100.0);
    format!("p{}", pct.trim_end_matches(".0"))
}

/// The hedging sentence, when a side is a velollm proxy that hedges (its `/metrics`, scraped around the step):
/// the extra requests it sent for the step's requests, those it cancelled, and the prompt tokens the extra
/// requests carried (from its answers' `x-velollm-hedge` headers and usage). A cancelled branch lost the race to
/// the first token, so its cost is its prefill: the extra requests and their prompt tokens are the cost to weigh
/// against the tail.
pub fn hedging_line(step: &AbStep) -> Option<String> {
    let mut parts = Vec::new();
    for (side, result) in [("A", &step.a), ("B", &step.b)] {
        let Some(m) = result.server_metrics.as_ref() else { continue };
        let Some(extra) = m.hedged_requests else { continue };
        let requests = result.requests + result.warmup_requests;
        let share = if requests > 0 { extra / requests as f64 * 100.0 } else { 0.0 };
        let cancelled = m.hedges_cancelled.map_or(String::new(), |c| format!(", {c:.0} cancelled"));
        let tokens = result
            .proxy_hedge
            .as_ref()
            .and_then(|h| h.extra_prompt_tokens)
            .map_or(String::new(), |t| format!(", {t} extra prompt tokens"));
        parts.push(format!("{side} sent {extra:.0} extra requests for {requests} ({share:.1} %){cancelled}{tokens}"));
    }
    (!parts.is_empty()).then(|| format!("hedging: {}", parts.join("; ")))
}

/// The speedup sentence of a step: `B is 1.23× faster end to end (95% CI 1.18×–1.29×, 30 pairs)`.
pub fn speedup_line(step: &AbStep, level: f64) -> Option<String> {
    let s = step.speedup.as_ref()?;
    let ci = s.ci.map(|(lo, hi)| format!("{:.0}% CI {lo:.3}×–{hi:.3}×, ", level * 100.0)).unwrap_or_default();
    let (word, factor) = if s.value >= 1.0 { ("faster", s.value) } else { ("slower", 1.0 / s.value) };
    Some(format!(
        "speedup: B is {factor:.3}× {word} than A end to end (A.e2e ÷ B.e2e = {:.3}; {ci}{} pairs)",
        s.value, s.pairs
    ))
}

/// The speculative-decoding sentence of a step, when a side's server reported draft tokens (its counters, scraped
/// around the step): acceptance and length per side, then the seed's criteria (acceptance > 70 %, speedup > 1.5×).
pub fn speculative_line(step: &AbStep) -> Option<String> {
    let mut parts = Vec::new();
    let mut b_rate = None;
    for (side, result) in [("A", &step.a), ("B", &step.b)] {
        let Some(a) = result.acceptance() else { continue };
        let mut p = match (a.rate, a.accepted_tokens, a.draft_tokens) {
            (Some(r), Some(x), Some(d)) => {
                format!("{side} accepts {:.1} % of draft tokens ({x:.0} of {d:.0})", r * 100.0)
            }
            (Some(r), _, _) => format!("{side} accepts {:.1} % of draft tokens", r * 100.0),
            _ => format!("{side} drafts"),
        };
        if let Some(l) = a.mean_length {
            p.push_str(&format!(", {l:.2} tokens per verification step"));
        }
        if side == "B" {
            b_rate = a.rate;
        }
        parts.push(p);
    }
    if parts.is_empty() {
        return None;
    }
    let mark = |ok: bool| if ok { "✅" } else { "❌" };
    let mut criteria = Vec::new();
    if let Some(r) = b_rate {
        criteria.push(format!("acceptance > 70 % {}", mark(r > 0.7)));
    }
    if let Some(sp) = &step.speedup {
        criteria.push(format!("speedup > 1.5× {} ({:.2}×)", mark(sp.value > 1.5), sp.value));
    }
    let tail = if criteria.is_empty() { String::new() } else { format!("; seed criteria: {}", criteria.join(", ")) };
    Some(format!("speculative decoding: {}{tail}", parts.join("; ")))
}

/// The proxy-overhead sentence: `proxy overhead on 28 cache misses: TTFT +3.2 ms [+2.1, +4.0] …`, then what a
/// hit saves when B declared hits.
pub fn proxy_line(p: &ProxyOverhead) -> String {
    let parts = |rows: &[PairedRow]| -> Vec<String> {
        rows.iter()
            .map(|r| {
                format!(
                    "{} {} (mean, p {})",
                    metric_label(&r.metric),
                    with_ci(r.mean_diff, r.mean_diff_ci, r.unit),
                    p_value(r.p_value)
                )
            })
            .collect()
    };
    let misses = parts(&p.rows);
    let left_out = format!("{} cache hit(s) and {} repeated request(s) left out", p.hits, p.repeats);
    let mut line = if misses.is_empty() {
        format!("proxy overhead (B − A on cache misses): no miss where both sides succeeded ({left_out})")
    } else {
        format!("proxy overhead (B − A) on {} cache misses: {} ({left_out})", p.misses, misses.join(" · "))
    };
    let hits = parts(&p.hit_rows);
    if !hits.is_empty() {
        line.push_str(&format!("; on its {} cache hits (B − A): {}", p.hits, hits.join(" · ")));
    }
    line
}

/// The line about pairs whose sides found the upstream cache in different states, when there were any.
pub fn cache_state_line(s: &AbStep, mode: PairCache) -> Option<String> {
    (s.cache_mismatched > 0).then(|| {
        let what = if mode.is_as_is() {
            "kept in the rows (--pair-cache miss or hit puts both sides in one state)"
        } else {
            "left out of the rows"
        };
        format!(
            "{} pair(s) whose sides found the upstream cache in different states (cached tokens reported): {what}",
            s.cache_mismatched
        )
    })
}

/// One sentence: what changed from A to B in a step.
pub fn verdict_line(step: &AbStep) -> String {
    let names = |c: Change| -> Vec<&str> { step.rows_with(c).map(|r| metric_label(&r.metric)).collect() };
    let (better, worse) = (names(Change::Improved), names(Change::Regressed));
    if step.rows.is_empty() {
        return "no pair where both sides succeeded: nothing to compare".into();
    }
    if step.rows.iter().all(|r| r.change == Change::TooFewSamples) {
        return format!("too few pairs for a verdict ({} with both sides successful)", step.both_succeeded);
    }
    let mut parts = Vec::new();
    if !better.is_empty() {
        parts.push(format!("B improved {}", better.join(", ")));
    }
    if !worse.is_empty() {
        parts.push(format!("B regressed {}", worse.join(", ")));
    }
    if parts.is_empty() {
        return "no significant change between A and B".into();
    }
    let rest = step.rows_with(Change::NoSignificantChange).count();
    format!("{}; {rest} metric(s) without significant change", parts.join("; "))
}

fn failures(step: &AbStep) -> String {
    format!(
        "{} pairs, {} with both sides successful · failures: A {}/{}, B {}/{} · order {}",
        step.pairs,
        step.both_succeeded,
        step.a.failed,
        step.a.requests,
        step.b.failed,
        step.b.requests,
        order(&step.first)
    )
}

/// `ABAB…` shortened for display.
fn order(first: &str) -> String {
    if first.chars().count() <= 12 {
        first.to_string()
    } else {
        format!("{}…", first.chars().take(12).collect::<String>())
    }
}

fn target_text(t: &AbTarget) -> String {
    let mut s = t.spec.clone();
    if let Some(l) = &t.launch {
        let _ = write!(s, " (launched on port {}, log {})", l.port, l.log);
    }
    if let Some(info) = &t.target {
        let _ = write!(s, " · {} · model {}", info.dialect, info.model);
        if let Some(server) = &info.server {
            let _ = write!(s, " · {server}");
        }
    }
    s
}

/// Totals over the steps: (improved, regressed, no significant change).
fn totals(doc: &AbResult) -> (usize, usize, usize) {
    let count = |c: Change| doc.steps.iter().map(|s| s.rows_with(c).count()).sum::<usize>();
    (count(Change::Improved), count(Change::Regressed), count(Change::NoSignificantChange))
}

/// The report as blocks (Markdown, HTML).
pub fn ab_blocks(doc: &AbResult) -> Vec<Block> {
    let o = &doc.meta.options;
    let mut out = vec![Block::Heading(1, "⚖️ velollm ab: A → B, paired".into())];
    if doc.status != RunStatus::Complete {
        let why = doc.status_reason.clone().unwrap_or_else(|| "the run did not finish".into());
        out.push(Block::Notice(format!("⚠ {:?} run: {why}", doc.status).to_lowercase()));
    }
    out.push(Block::Facts(vec![
        ("A".into(), target_text(&doc.a)),
        ("B".into(), target_text(&doc.b)),
        ("scenario".into(), doc.meta.scenario.clone()),
        ("pairs per step".into(), format!("{} measured after {} warm-up", doc.meta.pairs, doc.meta.warmup_pairs)),
        ("order".into(), doc.meta.order.clone()),
        (
            "test".into(),
            format!(
                "Wilcoxon signed-rank (α = {}); {:.0} % bootstrap intervals over pairs ({} resamples, seed {}); \
                 a verdict needs p < α and the interval of the mean difference excluding 0",
                o.alpha,
                o.level * 100.0,
                o.resamples,
                o.seed
            ),
        ),
        ("run".into(), format!("{} · started {}", doc.meta.run_id, doc.meta.started_at)),
    ]));
    let (better, worse, same) = totals(doc);
    out.push(Block::Text(format!("{better} improved · {worse} regressed · {same} without significant change")));
    for s in &doc.steps {
        out.push(Block::Heading(2, s.name.clone() + if s.partial { " (partial)" } else { "" }));
        out.push(Block::Text(failures(s)));
        out.push(Block::Table(rows_table(&s.rows, o.level)));
        out.push(Block::Table(tails_table(&s.rows, o.level)));
        let mut lines = Vec::new();
        lines.extend(speedup_line(s, o.level));
        lines.extend(speculative_line(s));
        lines.extend(hedging_line(s));
        lines.extend(s.proxy_overhead.as_ref().map(proxy_line));
        lines.extend(cache_state_line(s, doc.meta.pair_cache));
        lines.push(format!("verdict: {}", verdict_line(s)));
        out.push(Block::List(lines));
    }
    crate::document::client_section(&mut out, doc.selfcheck.as_ref(), doc.trust.as_ref(), 2);
    out
}

/// The report as Markdown.
pub fn render_ab_markdown(doc: &AbResult) -> String {
    render_blocks(&ab_blocks(doc), Vec::new(), "ab").text
}

/// The report for a terminal.
pub fn render_ab(doc: &AbResult) -> String {
    let o = &doc.meta.options;
    let mut out = String::new();
    let _ = writeln!(out, "A: {}\nB: {}", target_text(&doc.a), target_text(&doc.b));
    for s in &doc.steps {
        let _ = writeln!(out, "\n{}{}  ·  {}", s.name, if s.partial { " (partial)" } else { "" }, failures(s));
        let t = rows_table(&s.rows, o.level);
        out.push_str(&t.terminal("  "));
        out.push_str(&tails_table(&s.rows, o.level).terminal("  "));
        for r in s.rows.iter().filter(|r| !r.note.is_empty()).take(2) {
            let _ = writeln!(out, "  note: {}: {}", metric_label(&r.metric), r.note);
        }
        if let Some(line) = speedup_line(s, o.level) {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(line) = speculative_line(s) {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(line) = hedging_line(s) {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(p) = &s.proxy_overhead {
            let _ = writeln!(out, "  {}", proxy_line(p));
        }
        if let Some(line) = cache_state_line(s, doc.meta.pair_cache) {
            let _ = writeln!(out, "  {line}");
        }
        let _ = writeln!(out, "  verdict: {}", verdict_line(s));
    }
    let (better, worse, same) = totals(doc);
    let _ = writeln!(
        out,
        "\nB vs A: {better} improved · {worse} regressed · {same} without significant change (Wilcoxon signed-rank, \
         α = {}; order alternating A→B, B→A)",
        o.alpha
    );
    if let Some(t) = &doc.trust {
        let _ = writeln!(out);
        out.push_str(&crate::selfcheck::trust_lines(t));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use velollm_core::document::paired::{PairedOptions, row};

    #[test]
    fn rows_render_signed_intervals_and_verdicts() {
        let pairs: Vec<(f64, f64)> = (0..20).map(|i| (100.0 + i as f64, 112.0 + i as f64)).collect();
        let r = row("ttft", &pairs, &PairedOptions::default());
        let t = rows_table(std::slice::from_ref(&r), 0.95);
        let cells = &t.rows[0];
        assert_eq!(cells[0], "TTFT");
        assert!(cells[4].starts_with("+12.00 ms ["), "{}", cells[4]);
        assert!(cells[6].starts_with("1.1"), "{}", cells[6]);
        assert!(cells[8].contains("regressed"), "{}", cells[8]);
        assert_eq!(signed(0.0, Unit::Ms), "0.00 ms");
        assert_eq!(signed(-3.0, Unit::Plain), "−3.00");
    }

    #[test]
    fn tails_are_one_line_per_quantile_with_the_relative_change() {
        // A: every 100th value 300 ms (a 1 % tail); B: the same pairs with the tail cut to 60 ms.
        let pairs: Vec<(f64, f64)> =
            (0..1000).map(|k| if k % 100 == 99 { (300.0, 60.0) } else { (30.0, 30.0) }).collect();
        let r = row("ttft", &pairs, &PairedOptions::default());
        let t = tails_table(std::slice::from_ref(&r), 0.95);
        let quantiles: Vec<&str> = t.rows.iter().map(|c| c[1].as_str()).collect();
        assert_eq!(quantiles, ["p95", "p99", "p99.9"]);
        // The 1 % tail lies beyond the p99 (interpolated 1 % of the way into it) and shows at p99.9.
        assert_eq!(t.rows[1][5], "−7.3%");
        let p999 = &t.rows[2];
        assert_eq!((p999[2].as_str(), p999[3].as_str(), p999[5].as_str()), ("300.0 ms", "60.00 ms", "−80.0%"));
    }
}
