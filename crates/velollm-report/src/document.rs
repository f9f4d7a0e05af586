//! The format-neutral document model: a report is a list of [`Block`]s (headings, text, notices, facts,
//! tables, lists, charts) that [`crate::html::page`] and [`crate::markdown::render_blocks`] both render, so the
//! HTML and the Markdown of a report carry the same content.
//!
//! The run report is built here from the result documents (every number comes from them; nothing is computed
//! but formatting); other reports — the comparison report, or a caller's own — build their blocks themselves:
//!
//! ```
//! use velollm_report::document::{Block, Table};
//! use velollm_report::Chart;
//!
//! let mut table = Table::new(&["run", "TTFT (ms)"], 1);
//! table.rows.push(vec!["a".into(), "123".into()]);
//! let blocks = vec![Block::Heading(1, "My report".into()), Block::Table(table), Block::Chart(0)];
//! let charts = vec![Chart { id: "ttft".into(), title: "TTFT".into(), svg: "<svg></svg>".into() }];
//! let page = velollm_report::html::page(&blocks, &charts, "my runs");
//! assert!(page.contains("<title>My report</title>") && page.contains(r#"<td class="n">123</td>"#));
//! let md = velollm_report::markdown::render_blocks(&blocks, charts, "report");
//! assert!(md.text.contains("| a | 123 |") && md.text.contains("(report-ttft.svg)"));
//! assert_eq!(md.charts[0].0, "report-ttft.svg");
//! ```

use crate::charts::{Chart, server_chart_ids};
pub(crate) use crate::format::{num, seconds, value};
use crate::server::{self as sv, METRIC_FIELDS};
use crate::target::Target;
use velollm_core::aggregate::step::{StepMetrics, StepResult};
use velollm_core::analysis::AnalysisResult;
use velollm_core::document::result::{RunResult, RunStatus};
use velollm_core::judge::threshold::Verdict;
use velollm_core::measure::prom::ServerMetrics;
use velollm_core::stats::Summary;

/// The per-step metric summaries a report shows: result field name, label with unit, accessor.
pub(crate) type MetricField = (&'static str, &'static str, fn(&StepMetrics) -> Option<&Summary>);

/// Every summary of [`StepMetrics`], in report order.
pub(crate) const STEP_METRICS: &[MetricField] = &[
    ("ttft_ms", "TTFT (ms)", |m| m.ttft_ms.as_ref()),
    ("ttft_content_ms", "TTFT of answer content (ms)", |m| m.ttft_content_ms.as_ref()),
    ("ttfb_ms", "time to headers (ms)", |m| m.ttfb_ms.as_ref()),
    ("e2e_ms", "E2E latency (ms)", |m| m.e2e_ms.as_ref()),
    ("ttft_from_scheduled_ms", "TTFT from schedule (ms)", |m| m.ttft_from_scheduled_ms.as_ref()),
    ("e2e_from_scheduled_ms", "E2E from schedule (ms)", |m| m.e2e_from_scheduled_ms.as_ref()),
    ("queue_delay_ms", "client queue delay (ms)", |m| m.queue_delay_ms.as_ref()),
    ("network_overhead_ms", "network overhead (ms)", |m| m.network_overhead_ms.as_ref()),
    ("tpot_ms", "TPOT (ms)", |m| m.tpot_ms.as_ref()),
    ("itl_chunk_ms", "ITL per chunk (ms)", |m| m.itl_chunk_ms.as_ref()),
    ("itl_token_ms", "ITL per token (ms)", |m| m.itl_token_ms.as_ref()),
    ("decode_tokens_per_s", "decode speed (tok/s)", |m| m.decode_tokens_per_s.as_ref()),
    ("tokens_per_s", "output tokens ÷ E2E (tok/s)", |m| m.tokens_per_s.as_ref()),
    ("output_tokens", "output tokens", |m| m.output_tokens.as_ref()),
    ("prompt_tokens", "prompt tokens", |m| m.prompt_tokens.as_ref()),
    ("cached_tokens", "cached prompt tokens", |m| m.cached_tokens.as_ref()),
    ("reasoning_ms", "reasoning time (ms)", |m| m.reasoning_ms.as_ref()),
    ("server_prefill_ms", "server prefill (ms)", |m| m.server_prefill_ms.as_ref()),
    ("server_decode_ms", "server decode (ms)", |m| m.server_decode_ms.as_ref()),
    ("server_load_ms", "server model load (ms)", |m| m.server_load_ms.as_ref()),
];

/// A table: header cells, which columns are numeric (right-aligned), rows of text cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The header cells, one per column.
    pub head: Vec<String>,
    /// Per column, whether it holds numbers (right-aligned); a column past the end is not numeric.
    pub numeric: Vec<bool>,
    /// The rows, each a list of cells in column order.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with header `head`, whose columns from index `numeric_from` on are numeric (pass a
    /// number past the last column for none); set [`Table::numeric`] directly for other layouts.
    pub fn new(head: &[&str], numeric_from: usize) -> Table {
        Table {
            head: head.iter().map(|h| h.to_string()).collect(),
            numeric: (0..head.len()).map(|i| i >= numeric_from).collect(),
            rows: vec![],
        }
    }

    /// The table for a terminal, in the house style: no borders, numeric columns right-aligned, every line
    /// indented by `indent` (comfy-table's one-space padding before the first column dropped) and trimmed at
    /// the end. Every terminal table of velollm is drawn here.
    pub fn terminal(&self, indent: &str) -> String {
        use comfy_table::{CellAlignment, presets::NOTHING};
        let mut t = comfy_table::Table::new();
        t.load_preset(NOTHING);
        t.set_header(self.head.clone());
        for row in &self.rows {
            t.add_row(row.clone());
        }
        for (i, _) in self.numeric.iter().enumerate().filter(|(_, numeric)| **numeric) {
            if let Some(col) = t.column_mut(i) {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
        let mut out = String::new();
        for line in t.to_string().lines() {
            out.push_str(indent);
            out.push_str(line.strip_prefix(' ').unwrap_or(line).trim_end());
            out.push('\n');
        }
        out
    }
}

/// One block of a report.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A heading of level 1–4.
    Heading(u8, String),
    /// A paragraph.
    Text(String),
    /// A warning the reader must not miss (partial run).
    Notice(String),
    /// `name: value` facts.
    Facts(Vec<(String, String)>),
    /// A table.
    Table(Table),
    /// A bulleted list.
    List(Vec<String>),
    /// Chart `i` of the report's charts (the slice given to the renderer); an index without a chart shows
    /// nothing.
    Chart(usize),
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// `2026-11-23T18:27:39.209Z` → `2026-11-23 18:27:39 UTC`; anything else is shown as written.
pub(crate) fn date(s: &str) -> String {
    let b = s.as_bytes();
    let shape = b.len() >= 19 && b[10] == b'T' && s.is_char_boundary(19);
    if shape && s.ends_with('Z') { format!("{} {} UTC", &s[..10], &s[11..19]) } else { s.to_string() }
}

fn status(run: &RunResult) -> &'static str {
    match run.status {
        RunStatus::Complete => "complete",
        RunStatus::Partial => "partial",
        RunStatus::Interrupted => "interrupted",
    }
}

/// The report of `targets`, charts referenced by index into `charts`. One run: its metadata, summary and
/// thresholds, the charts, then errors, step details and analyses. Several runs: a table of the runs, the
/// charts overlaying them, then each run's section.
pub(crate) fn build(targets: &[Target<'_>], charts: &[Chart]) -> Vec<Block> {
    let mut out = Vec::new();
    // Server charts belong to their run's server section; the others to the charts section.
    let is_server = |c: &Chart| c.id.starts_with("server-");
    let charts_section = |out: &mut Vec<Block>| {
        let general: Vec<usize> = (0..charts.len()).filter(|i| !is_server(&charts[*i])).collect();
        if !general.is_empty() {
            out.push(Block::Heading(2, "📈 Charts".into()));
            out.extend(general.into_iter().map(Block::Chart));
        }
    };
    let server_charts = |i: usize| -> Vec<usize> {
        let ids = server_chart_ids(targets.len(), i);
        (0..charts.len()).filter(|k| ids.contains(&charts[*k].id)).collect()
    };
    match targets {
        [t] => {
            let r = &t.run;
            out.push(Block::Heading(1, format!("📊 velollm report: {} on {}", r.meta.scenario, r.meta.target.model)));
            run_overview(&mut out, r, 2);
            charts_section(&mut out);
            run_details(&mut out, r, 2, &server_charts(0));
        }
        _ => {
            out.push(Block::Heading(1, format!("📊 velollm report: {} runs", targets.len())));
            let mut table = Table::new(&["run", "model", "target", "server", "scenario", "started", "status"], 99);
            for t in targets {
                let m = &t.run.meta;
                table.rows.push(vec![
                    t.label.to_string(),
                    m.target.model.clone(),
                    m.target.url.clone(),
                    server(t.run).unwrap_or_else(|| "–".into()),
                    m.scenario.clone(),
                    date(&m.started_at),
                    status(t.run).into(),
                ]);
            }
            out.push(Block::Table(table));
            charts_section(&mut out);
            for (i, t) in targets.iter().enumerate() {
                out.push(Block::Heading(2, t.label.to_string()));
                run_overview(&mut out, t.run, 3);
                run_details(&mut out, t.run, 3, &server_charts(i));
            }
        }
    }
    out
}

fn server(run: &RunResult) -> Option<String> {
    let t = &run.meta.target;
    t.server.as_ref().map(|s| match &t.server_version {
        Some(v) => format!("{s} {v}"),
        None => s.clone(),
    })
}

/// Status notice, metadata, summary table and thresholds.
fn run_overview(out: &mut Vec<Block>, r: &RunResult, level: u8) {
    let m = &r.meta;
    match r.status {
        RunStatus::Complete => {}
        RunStatus::Partial | RunStatus::Interrupted => {
            let partial: Vec<&str> = r.steps.iter().filter(|s| s.partial).map(|s| s.name.as_str()).collect();
            let what = if r.status == RunStatus::Partial { "Partial run" } else { "Interrupted run" };
            let reason = r.status_reason.as_deref().unwrap_or(if r.status == RunStatus::Partial {
                "the run was still in progress or was killed"
            } else {
                "the run was stopped before every step ran to its end"
            });
            let steps =
                if partial.is_empty() { String::new() } else { format!(" Steps cut short: {}.", partial.join(", ")) };
            out.push(Block::Notice(format!(
                "⚠️ {what}: {reason}. The figures below cover only the requests measured before it stopped.{steps}"
            )));
        }
    }
    let mut facts = vec![
        (
            "status".to_string(),
            match &r.status_reason {
                Some(reason) if r.status != RunStatus::Complete => format!("{} ({reason})", status(r)),
                _ => status(r).to_string(),
            },
        ),
        ("model".into(), m.target.model.clone()),
        ("target".into(), format!("{} ({})", m.target.url, m.target.dialect)),
    ];
    if let Some(s) = server(r) {
        facts.push(("server".into(), s));
    }
    facts.push(("scenario".into(), m.scenario.clone()));
    facts.push(("started".into(), date(&m.started_at)));
    if let Some(f) = &m.finished_at {
        facts.push(("finished".into(), date(f)));
    }
    facts
        .push(("velollm".into(), format!("{} (result schema {}, run {})", m.tool_version, r.schema_version, m.run_id)));
    let h = &m.host;
    if !h.cpu.is_empty() || !h.os.is_empty() {
        facts.push(("load generator".into(), format!("{}, {} cores, {}", h.cpu, h.cpu_cores, h.os)));
    }
    if let Some(hw) = &m.hardware {
        facts.push(("hardware".into(), hw.summary()));
    }
    facts.push(("seed".into(), m.seed.to_string()));
    if let Some(slo) = &m.slo {
        facts.push(("SLO".into(), slo.clone()));
    }
    out.push(Block::Facts(facts));

    if !r.steps.is_empty() {
        out.push(Block::Heading(level, "Summary".into()));
        out.push(Block::Table(summary_table(&r.steps)));
    }
    if !r.verdicts.is_empty() {
        out.push(Block::Heading(level, thresholds_heading(&r.verdicts)));
        out.push(Block::Table(thresholds_table(&r.verdicts)));
    }
}

/// The server section (with the run's server charts, indices into the report's charts), errors by class,
/// per-step details and analyses.
fn run_details(out: &mut Vec<Block>, r: &RunResult, level: u8, server_charts: &[usize]) {
    server_section(out, r, level, server_charts);
    client_section(out, r.selfcheck.as_ref(), r.trust.as_ref(), level);
    if r.steps.iter().any(|s| !s.errors.is_empty()) {
        out.push(Block::Heading(level, "Errors".into()));
        out.push(Block::Table(errors_table(&r.steps)));
    }
    if !r.steps.is_empty() {
        out.push(Block::Heading(level, "Steps".into()));
        for s in &r.steps {
            step_detail(out, s, level + 1);
        }
    }
    if !r.analyses.is_empty() {
        out.push(Block::Heading(level, "Analyses".into()));
        for a in &r.analyses {
            analysis(out, a, level + 1);
        }
    }
}

fn stat(s: Option<&Summary>, f: fn(&Summary) -> f64) -> String {
    s.map_or("–".into(), |s| num(f(s)))
}

fn summary_table(steps: &[StepResult]) -> Table {
    let mut t = Table::new(
        &[
            "step",
            "load",
            "requests",
            "success",
            "TTFT p50 (ms)",
            "TTFT p95 (ms)",
            "E2E p50 (ms)",
            "E2E p95 (ms)",
            "TPOT p50 (ms)",
            "output tok/s",
        ],
        2,
    );
    for s in steps {
        let m = &s.metrics;
        t.rows.push(vec![
            if s.partial { format!("{} (partial)", s.name) } else { s.name.clone() },
            s.config.load.describe(),
            s.requests.to_string(),
            pct(s.success_rate),
            stat(m.ttft_ms.as_ref(), |s| s.p50),
            stat(m.ttft_ms.as_ref(), |s| s.p95),
            stat(m.e2e_ms.as_ref(), |s| s.p50),
            stat(m.e2e_ms.as_ref(), |s| s.p95),
            stat(m.tpot_ms.as_ref(), |s| s.p50),
            num(s.rates.output_token_throughput),
        ]);
    }
    t
}

fn thresholds_heading(verdicts: &[Verdict]) -> String {
    let passed = verdicts.iter().filter(|v| v.passed).count();
    let mark = if passed == verdicts.len() { "✅" } else { "❌" };
    format!("🎯 Thresholds: {mark} {passed}/{} passed", verdicts.len())
}

fn thresholds_table(verdicts: &[Verdict]) -> Table {
    let mut t = Table::new(&["", "scope", "threshold", "measured", "note"], 99);
    for v in verdicts {
        t.rows.push(vec![
            if v.passed { "✅" } else { "❌" }.into(),
            v.scope.clone(),
            v.threshold.clone(),
            v.value.map_or("not measured".into(), |x| value(x, v.unit)),
            v.detail.clone(),
        ]);
    }
    t
}

/// Error messages are shortened to this many characters in tables.
const MESSAGE_CHARS: usize = 160;

fn short(s: &str) -> String {
    if s.chars().count() <= MESSAGE_CHARS {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MESSAGE_CHARS - 1).collect();
        out.push('…');
        out
    }
}

fn errors_table(steps: &[StepResult]) -> Table {
    let mut t = Table::new(&["step", "class", "requests", "share", "first message"], 2);
    t.numeric[4] = false;
    for s in steps {
        for (class, e) in &s.errors {
            let share = if s.requests > 0 { pct(e.count as f64 / s.requests as f64) } else { "–".into() };
            t.rows.push(vec![s.name.clone(), class.as_str().into(), e.count.to_string(), share, short(&e.example)]);
        }
    }
    t
}

fn step_detail(out: &mut Vec<Block>, s: &StepResult, level: u8) {
    out.push(Block::Heading(level, if s.partial { format!("{} (partial)", s.name) } else { s.name.clone() }));
    let c = &s.config;
    let mut what =
        vec![c.load.describe(), format!("max_tokens {}{}", c.max_tokens, if c.exact_output { " (exact)" } else { "" })];
    if let Some(p) = c.prompt_tokens {
        what.push(format!("synthetic prompts of {p} tokens"));
    }
    if let Some(turns) = c.turns {
        what.push(format!("{turns} turns per conversation"));
    }
    what.push(format!(
        "{} requests: {} succeeded, {} failed ({} ok)",
        s.requests,
        s.succeeded,
        s.failed,
        pct(s.success_rate)
    ));
    if s.warmup_requests > 0 {
        what.push(format!("{} warm-up requests excluded", s.warmup_requests));
    }
    if !c.tags.is_empty() {
        what.push(c.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "));
    }
    out.push(Block::Text(what.join(" · ")));
    let mut t = Table::new(&["metric", "n", "mean", "p50", "p90", "p95", "p99", "max"], 1);
    for (_, label, get) in STEP_METRICS {
        if let Some(x) = get(&s.metrics) {
            t.rows.push(vec![
                label.to_string(),
                x.count.to_string(),
                num(x.mean),
                num(x.p50),
                num(x.p90),
                num(x.p95),
                num(x.p99),
                num(x.max),
            ]);
        }
    }
    if !t.rows.is_empty() {
        out.push(Block::Table(t));
    }
    let r = &s.rates;
    let mut lines = vec![format!(
        "throughput: {} req/s, {} output tok/s, {} total tok/s over {:.2} s",
        num(r.request_throughput),
        num(r.output_token_throughput),
        num(r.total_token_throughput),
        r.duration_s
    )];
    if let (Some(g), Some(f)) = (r.goodput, r.good_fraction) {
        lines.push(format!("goodput: {} req/s ({} of requests within the SLO)", num(g), pct(f)));
    }
    let cn = &s.connections;
    if cn.opened + cn.reused > 0 {
        lines.push(format!("connections: {} opened, {} reused", cn.opened, cn.reused));
    }
    if let Some(c) = &s.cost {
        lines.push(crate::format::cost_line(c));
    }
    if !s.token_sources.is_empty() {
        let src: Vec<String> = s.token_sources.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
        lines.push(format!("output tokens counted by: {}", src.join(", ")));
    }
    if let Some(q) = &s.quality {
        let mut l = format!("quality: score {}, first try {}", pct(q.score), pct(q.first_try_rate));
        if q.corrections > 0 {
            l.push_str(&format!(", {} corrections", q.corrections));
        }
        lines.push(l);
        for c in &q.criteria {
            let mark = if c.passed == c.total { "✅" } else { "❌" };
            let ex = if c.example.is_empty() { String::new() } else { format!(" ({})", short(&c.example)) };
            lines.push(format!("{mark} {}: {}/{}{ex}", c.name, c.passed, c.total));
        }
    }
    out.push(Block::List(lines));
}

fn analysis(out: &mut Vec<Block>, a: &AnalysisResult, level: u8) {
    out.push(Block::Heading(level, a.title.clone()));
    if !a.figures.is_empty() {
        let mut t = Table::new(&["figure", "value", "meaning"], 1);
        t.numeric[2] = false;
        for f in &a.figures {
            t.rows.push(vec![f.name.clone(), value(f.value, f.unit), f.label.clone()]);
        }
        out.push(Block::Table(t));
    }
    if let Some(table) = a.table.as_ref().filter(|t| !t.rows.is_empty() && !t.columns.is_empty()) {
        let width = table.rows.iter().map(|r| r.values.len() + 1).fold(table.columns.len(), usize::max);
        let mut head: Vec<&str> = table.columns.iter().map(String::as_str).collect();
        head.resize(width, "");
        let mut t = Table::new(&head, 1);
        for r in &table.rows {
            let mut row = vec![r.label.clone()];
            row.extend(r.values.iter().map(|v| v.map_or(String::new(), num)));
            row.resize(width, String::new());
            t.rows.push(row);
        }
        out.push(Block::Table(t));
    }
    if !a.notes.is_empty() {
        out.push(Block::List(a.notes.clone()));
    }
}

/// The client's own overhead (the self-check before the run) and whether each step's figures can be trusted.
pub(crate) fn client_section(
    out: &mut Vec<Block>,
    selfcheck: Option<&velollm_core::judge::selfcheck::SelfCheck>,
    trust: Option<&velollm_core::judge::selfcheck::Trust>,
    level: u8,
) {
    let Some(check) = selfcheck else { return };
    out.push(Block::Heading(level, "Client overhead".into()));
    if let Some(t) = trust.filter(|t| !t.trustworthy) {
        let steps: Vec<&str> = t.steps.iter().filter(|s| !s.trustworthy).map(|s| s.step.as_str()).collect();
        out.push(Block::Notice(format!(
            "Not trustworthy: the client's own overhead is not negligible in {} (see below).",
            steps.join(", ")
        )));
    }
    out.push(Block::Text(format!(
        "Measured just before the run against velollm's loopback server ({} tokens per response; paced levels \
         {} ms to the first token and {} ms between tokens; ceiling level without delay). Added latency: measured \
         TTFT − the server's own, and each chunk's arrival − the server's write.",
        check.tokens,
        num(check.ttft_ms),
        num(check.itl_ms)
    )));
    let mut levels = Table::new(
        &["level", "req/s", "chunks/s", "CPU ms/req", "added/req p50 (ms)", "p99", "added/chunk p50 (ms)", "p99"],
        1,
    );
    let ms = |s: Option<&velollm_core::stats::Summary>, p99: bool| {
        s.map_or("–".to_string(), |s| format!("{:.3}", if p99 { s.p99 } else { s.p50 }))
    };
    for l in &check.levels {
        levels.rows.push(vec![
            format!("{} c{}", if l.ceiling { "ceiling" } else { "paced" }, l.concurrency),
            num(l.request_rate),
            num(l.chunk_rate),
            l.cpu_ms_per_request.map_or("–".into(), |c| format!("{c:.3}")),
            ms(l.added_request_ms.as_ref(), false),
            ms(l.added_request_ms.as_ref(), true),
            ms(l.added_chunk_ms.as_ref(), false),
            ms(l.added_chunk_ms.as_ref(), true),
        ]);
    }
    out.push(Block::Table(levels));
    let Some(trust) = trust else { return };
    let mut steps = Table::new(&["step", "overhead ÷ TTFT p50", "overhead ÷ ITL p50", "rate ÷ ceiling", "verdict"], 1);
    steps.numeric = vec![false, true, true, true, false];
    let share = |x: Option<f64>| x.map_or("–".to_string(), pct);
    for s in &trust.steps {
        steps.rows.push(vec![
            s.step.clone(),
            share(s.ttft_share),
            share(s.itl_share),
            share(s.ceiling_share),
            if s.trustworthy { "negligible".into() } else { s.reasons.join("; ") },
        ]);
    }
    out.push(Block::Table(steps));
}

/// What velollm observed of the server: launch, cold start, the server's metrics per step, resources (with
/// `charts`) and events. Nothing when the run holds none of it.
fn server_section(out: &mut Vec<Block>, r: &RunResult, level: u8, charts: &[usize]) {
    let server = r.server.as_ref().filter(|s| !s.is_empty());
    let mut rows: Vec<(String, &ServerMetrics)> =
        r.steps.iter().filter_map(|s| Some((s.name.clone(), s.server_metrics.as_ref()?))).collect();
    if let Some(m) = server.and_then(|s| s.metrics.as_ref()) {
        rows.push(("whole run".into(), m));
    }
    if server.is_none() && rows.is_empty() {
        return;
    }
    out.push(Block::Heading(level, "Server".into()));
    let sub = level + 1;
    let mut facts = server.and_then(|s| s.launch.as_ref()).map(sv::launch_facts).unwrap_or_default();
    let engine = rows.first().map(|(_, m)| m.engine.display_name());
    match (server.and_then(|s| s.metrics_url.as_ref()), engine) {
        (Some(u), Some(e)) => facts.push(("metrics".into(), format!("{u} ({e})"))),
        (Some(u), None) => facts.push(("metrics".into(), u.clone())),
        (None, Some(e)) => facts.push(("metrics".into(), e.to_string())),
        (None, None) => {}
    }
    if !facts.is_empty() {
        out.push(Block::Facts(facts));
    }
    if let Some(c) = server.and_then(|s| s.cold_start.as_ref()) {
        out.push(Block::Heading(sub, "Cold start".into()));
        out.push(Block::Facts(sv::cold_start_facts(c, sv::warm_ttft_p50(r))));
        out.push(Block::Text(
            "The first request is sent as soon as the server is ready, before any step and its warm-up, and is in \
             no step's figures; warm p50 is the first step's TTFT median."
                .into(),
        ));
    }
    if !rows.is_empty() {
        out.push(Block::Heading(sub, "Server metrics per step".into()));
        out.push(Block::Text(
            "From the server's own Prometheus metrics: counters are deltas between the scrape before and the scrape \
             after each step; KV cache and queue lengths are over every scrape of the step."
                .into(),
        ));
        out.push(Block::Table(server_metrics_table(&rows)));
        if let Some(t) = raw_counters_table(&rows) {
            out.push(Block::Heading(sub, "Server counters (raw deltas)".into()));
            out.push(Block::Table(t));
        }
    }
    if let Some(res) = server.and_then(|s| s.resources.as_ref()) {
        out.push(Block::Heading(sub, "Resources".into()));
        let mut facts = sv::resource_facts(res);
        facts.extend(res.gpus.iter().map(|g| (format!("GPU {}", g.index), sv::gpu_text(g))));
        facts.push(("sampling".into(), sv::sampling_text(res)));
        out.push(Block::Facts(facts));
        out.extend(charts.iter().copied().map(Block::Chart));
        if !res.notes.is_empty() {
            out.push(Block::List(res.notes.clone()));
        }
    }
    if let Some(s) = server.filter(|s| !s.events.is_empty()) {
        out.push(Block::Heading(sub, "Events".into()));
        out.push(Block::List(s.events.iter().map(sv::event_line).collect()));
        let down = s.downtime_s();
        if down > 0.0 {
            out.push(Block::Text(format!("Unavailable for {} in all.", seconds(down))));
        }
    }
}

/// One row per step with server metrics (and the whole run): the figures some row has, and a note where the
/// server restarted.
fn server_metrics_table(rows: &[(String, &ServerMetrics)]) -> Table {
    let fields: Vec<_> = METRIC_FIELDS.iter().filter(|f| rows.iter().any(|(_, m)| (f.get)(m).is_some())).collect();
    let reset = rows.iter().any(|(_, m)| m.counter_reset);
    let mut head = vec!["step", "scrapes"];
    head.extend(fields.iter().map(|f| f.head));
    if reset {
        head.push("note");
    }
    let mut t = Table::new(&head, 1);
    if reset && let Some(n) = t.numeric.last_mut() {
        *n = false;
    }
    for (name, m) in rows {
        let mut row = vec![name.clone(), m.scrapes.to_string()];
        row.extend(fields.iter().map(|f| f.cell(m).unwrap_or_else(|| "–".into())));
        if reset {
            row.push(if m.counter_reset { sv::COUNTER_RESET.into() } else { String::new() });
        }
        t.rows.push(row);
    }
    t
}

/// Every mapped counter's delta by its name on the server, one column per step; `None` when there are none.
fn raw_counters_table(rows: &[(String, &ServerMetrics)]) -> Option<Table> {
    let names: std::collections::BTreeSet<&String> = rows.iter().flat_map(|(_, m)| m.source_deltas.keys()).collect();
    if names.is_empty() {
        return None;
    }
    let mut head = vec!["counter"];
    head.extend(rows.iter().map(|(n, _)| n.as_str()));
    let mut t = Table::new(&head, 1);
    for name in names {
        let mut row = vec![name.clone()];
        // Token and request counters are whole; time counters (seconds) are not.
        let cell = |v: f64| if v.fract() == 0.0 { crate::format::count(v) } else { num(v) };
        row.extend(rows.iter().map(|(_, m)| m.source_deltas.get(name).map_or("–".into(), |v| cell(*v))));
        t.rows.push(row);
    }
    Some(t)
}
