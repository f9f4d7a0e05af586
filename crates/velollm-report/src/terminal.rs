//! The end-of-run terminal summary: one aligned table per step, then throughput, tokens and errors, and what
//! velollm observed of the server (its `/metrics` per step; launch, cold start, resources and events at the
//! end).

use crate::document::Table;
use crate::format::{num, value};
use std::fmt::Write;
use velollm_core::aggregate::step::StepResult;
use velollm_core::analysis::AnalysisResult;
use velollm_core::document::result::{RunResult, RunStatus};
use velollm_core::document::scenario::Scenario;
use velollm_core::judge::threshold::Verdict;
use velollm_core::server::launch::ServerReport;
use velollm_core::stats::Summary;

fn metric_row(table: &mut Table, label: &str, s: Option<&Summary>) {
    let mut row = vec![label.to_string()];
    match s {
        Some(s) => row.extend([s.mean, s.p50, s.p90, s.p95, s.p99, s.max].map(num)),
        None => row.extend((0..6).map(|_| "–".to_string())),
    }
    table.rows.push(row);
}

/// Render one step's summary.
pub fn render_step(step: &StepResult) -> String {
    let mut out = String::new();
    let partial = if step.partial { "  (partial)" } else { "" };
    let _ = writeln!(
        out,
        "{}  ·  {}  ·  {} requests, {:.1}% ok{}{}",
        step.name,
        step.config.load.describe(),
        step.requests,
        step.success_rate * 100.0,
        if step.warmup_requests > 0 { format!(", {} warm-up excluded", step.warmup_requests) } else { String::new() },
        partial
    );
    let mut table = Table::new(&["", "mean", "p50", "p90", "p95", "p99", "max"], 1);
    let m = &step.metrics;
    metric_row(&mut table, "TTFT (ms)", m.ttft_ms.as_ref());
    if m.reasoning_ms.is_some() {
        metric_row(&mut table, "TTFT content (ms)", m.ttft_content_ms.as_ref());
    }
    metric_row(&mut table, "TPOT (ms)", m.tpot_ms.as_ref());
    metric_row(&mut table, "ITL/chunk (ms)", m.itl_chunk_ms.as_ref());
    if m.itl_token_ms.is_some() {
        metric_row(&mut table, "ITL/token (ms)", m.itl_token_ms.as_ref());
    }
    metric_row(&mut table, "E2E (ms)", m.e2e_ms.as_ref());
    if matches!(step.config.load, velollm_core::workload::load::LoadProfile::Rate { .. }) {
        metric_row(&mut table, "TTFT from schedule (ms)", m.ttft_from_scheduled_ms.as_ref());
        metric_row(&mut table, "E2E from schedule (ms)", m.e2e_from_scheduled_ms.as_ref());
    }
    metric_row(&mut table, "decode (tok/s)", m.decode_tokens_per_s.as_ref());
    out.push_str(&table.terminal("  "));
    let r = &step.rates;
    let mut rates = format!(
        "  throughput: {} req/s · {} output tok/s · {} total tok/s over {:.2} s",
        num(r.request_throughput),
        num(r.output_token_throughput),
        num(r.total_token_throughput),
        r.duration_s
    );
    if let (Some(g), Some(f)) = (r.goodput, r.good_fraction) {
        let _ = write!(rates, " · goodput {} req/s ({:.1}% within SLO)", num(g), f * 100.0);
    }
    let _ = writeln!(out, "{rates}");
    let sources: Vec<String> = step.token_sources.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
    let tokens = |s: &Option<Summary>| s.as_ref().map_or("–".to_string(), |s| format!("{:.1}", s.mean));
    let _ = writeln!(
        out,
        "  tokens: output {} mean of {} max{} · prompt {} mean · counted by {}",
        tokens(&m.output_tokens),
        step.config.max_tokens,
        if step.config.exact_output { " (exact requested)" } else { "" },
        tokens(&m.prompt_tokens),
        if sources.is_empty() { "–".to_string() } else { sources.join(", ") }
    );
    if let (Some(p), Some(d)) = (&m.server_prefill_ms, &m.server_decode_ms) {
        let _ =
            writeln!(out, "  server: prefill {} ms · decode {} ms (means, engine-reported)", num(p.mean), num(d.mean));
    }
    if let Some(sm) = &step.server_metrics {
        let figures = crate::server::metrics_line(sm).unwrap_or_else(|| "no metric velollm knows".into());
        let _ = writeln!(out, "  server /metrics ({}): {figures}", crate::server::metrics_source(sm));
        if sm.counter_reset {
            let _ = writeln!(out, "    {}", crate::server::COUNTER_RESET);
        }
    }
    let c = &step.connections;
    if c.opened + c.reused > 0 {
        let overhead = match m.network_overhead_ms.as_ref().filter(|_| c.opened > 0) {
            Some(n) => format!(
                " · network overhead {} ms mean on new connections",
                num(n.mean * n.count as f64 / c.opened as f64)
            ),
            None => String::new(),
        };
        let _ = writeln!(out, "  connections: {} opened, {} reused{overhead}", c.opened, c.reused);
    }
    if let Some(p) = &step.proxy_cache {
        let ttft = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |t| format!("{} ms", num(t)));
        let _ = writeln!(
            out,
            "  proxy cache (as its header says): {} hit, {} other · TTFT mean {} on hits, {} on the others",
            p.hits,
            p.others,
            ttft(p.ttft_hit_ms),
            ttft(p.ttft_other_ms)
        );
    }
    if let Some(h) = &step.proxy_hedge {
        let _ = writeln!(out, "  {}", crate::format::hedge_line(h));
    }
    if let Some(cost) = &step.cost {
        let _ = writeln!(out, "  {}", crate::format::cost_line(cost));
    }
    if let Some(q) = &step.quality {
        let _ = writeln!(
            out,
            "  quality: score {:.1}% · first try {:.1}%{}",
            q.score * 100.0,
            q.first_try_rate * 100.0,
            if q.corrections > 0 { format!(" · {} corrections", q.corrections) } else { String::new() }
        );
        for c in &q.criteria {
            let mark = if c.passed == c.total { "✅" } else { "❌" };
            let example = if c.example.is_empty() { String::new() } else { format!(" ({})", c.example) };
            let _ = writeln!(out, "    {mark} {} {}/{}{example}", c.name, c.passed, c.total);
        }
    }
    if !step.errors.is_empty() {
        let errors: Vec<String> =
            step.errors.iter().map(|(c, e)| format!("{} ×{} ({})", c.as_str(), e.count, e.example)).collect();
        let _ = writeln!(out, "  errors: {}", errors.join("; "));
    }
    out
}

/// Render one analysis: its figures, its table and its notes.
pub fn render_analysis(a: &AnalysisResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", a.title);
    for f in &a.figures {
        let _ = writeln!(out, "  {:<22} {:>12}   {}", f.name, value(f.value, f.unit), f.label);
    }
    if let Some(t) = a.table.as_ref().filter(|t| !t.rows.is_empty()) {
        let columns: Vec<&str> = t.columns.iter().map(String::as_str).collect();
        let mut table = Table::new(&columns, 1);
        for r in &t.rows {
            let mut row = vec![r.label.clone()];
            row.extend(r.values.iter().map(|v| v.map_or("–".to_string(), num)));
            table.rows.push(row);
        }
        out.push_str(&table.terminal("  "));
    }
    for n in &a.notes {
        let _ = writeln!(out, "  • {n}");
    }
    out
}

/// Render threshold verdicts as ✅/❌ lines.
pub fn render_verdicts(verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    for v in verdicts {
        let mark = if v.passed { "✅" } else { "❌" };
        let measured = v.value.map_or(String::new(), |x| format!(" (measured {})", value(x, v.unit)));
        let detail = if v.detail.is_empty() { String::new() } else { format!(" — {}", v.detail) };
        let _ = writeln!(out, "  {mark} {:<20} {}{measured}{detail}", v.scope, v.threshold);
    }
    out
}

/// The built-in scenarios as an aligned list.
pub fn render_scenarios(scenarios: &[Scenario]) -> String {
    let mut table = Table::new(&["scenario", "purpose", "measures"], usize::MAX);
    for s in scenarios {
        table.rows.push(vec![s.name.clone(), s.description.clone(), s.measures.clone()]);
    }
    table.terminal("")
}

/// Render what velollm observed of the server over a run: launch, cold start (its first TTFT against
/// `warm_ttft_p50`, the first step's TTFT median), resources, whole-run metrics, events and notes.
pub fn render_server(s: &ServerReport, warm_ttft_p50: Option<f64>) -> String {
    use crate::server as sv;
    let mut out = String::from("server\n");
    let join = |facts: Vec<(String, String)>| facts.into_iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>();
    if let Some(l) = &s.launch {
        let mut parts = vec![l.command.clone(), format!("ready via {} on port {}", l.ready_route, l.port)];
        if l.restarts > 0 {
            parts.push(format!("{} restart{}", l.restarts, if l.restarts == 1 { "" } else { "s" }));
        }
        if let Some(stop) = &l.stop {
            parts.push(format!("stopped: {stop}"));
        }
        parts.push(format!("log {}", l.log));
        let _ = writeln!(out, "  launch: {}", parts.join(" · "));
    }
    if let Some(c) = &s.cold_start {
        let _ = writeln!(out, "  cold start: {}", join(sv::cold_start_facts(c, warm_ttft_p50)).join(" · "));
    }
    if let Some(r) = &s.resources {
        let facts = sv::resource_facts(r);
        if !facts.is_empty() {
            let _ = writeln!(out, "  resources: {}", join(facts).join(" · "));
        }
        for g in &r.gpus {
            let _ = writeln!(out, "  GPU {}: {}", g.index, sv::gpu_text(g));
        }
    }
    if let Some(m) = &s.metrics {
        let url = s.metrics_url.as_deref().map_or(String::new(), |u| format!("{u} "));
        let figures = sv::metrics_line(m).unwrap_or_else(|| "no metric velollm knows".into());
        let _ = writeln!(out, "  metrics over the run: {url}({}): {figures}", sv::metrics_source(m));
    } else if let Some(u) = &s.metrics_url {
        let _ = writeln!(out, "  metrics: {u}");
    }
    if !s.events.is_empty() {
        let _ = writeln!(out, "  events:");
        for e in &s.events {
            let _ = writeln!(out, "    {}", sv::event_line(e));
        }
    }
    let notes = s.resources.as_ref().map_or(&[][..], |r| r.notes.as_slice());
    for n in notes {
        let _ = writeln!(out, "  • {n}");
    }
    out
}

/// Render the whole run: a header line, then every step.
pub fn render_run(run: &RunResult) -> String {
    let mut out = String::new();
    let t = &run.meta.target;
    let server = match (&t.server, &t.server_version) {
        (Some(s), Some(v)) => format!(", {s} {v}"),
        (Some(s), None) => format!(", {s}"),
        _ => String::new(),
    };
    let _ = writeln!(out, "velollm {} · {} · model {} · {}{}", run.meta.scenario, t.url, t.model, t.dialect, server);
    if let Some(hw) = &run.meta.hardware {
        let _ = writeln!(out, "hardware: {}", hw.summary());
    }
    for step in &run.steps {
        let _ = writeln!(out);
        out.push_str(&render_step(step));
    }
    for a in &run.analyses {
        let _ = writeln!(out);
        out.push_str(&render_analysis(a));
    }
    if let Some(s) = run.server.as_ref().filter(|s| !s.is_empty()) {
        let _ = writeln!(out);
        out.push_str(&render_server(s, crate::server::warm_ttft_p50(run)));
    }
    if let Some(t) = &run.trust {
        let _ = writeln!(out);
        out.push_str(&crate::selfcheck::trust_lines(t));
    }
    if !run.verdicts.is_empty() {
        let passed = run.verdicts.iter().filter(|v| v.passed).count();
        let _ = writeln!(out, "\nthresholds: {passed}/{} passed", run.verdicts.len());
        out.push_str(&render_verdicts(&run.verdicts));
    }
    match run.status {
        RunStatus::Complete => {}
        RunStatus::Partial | RunStatus::Interrupted => {
            let _ = writeln!(
                out,
                "\n{} run: {}",
                if run.status == RunStatus::Partial { "Partial" } else { "Interrupted" },
                run.status_reason.as_deref().unwrap_or("not every step ran to its end")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use velollm_core::aggregate::step::{ConnectionStats, ErrorSummary, StepConfig, StepMetrics};
    use velollm_core::measure::metrics::StepRates;
    use velollm_core::measure::record::ErrorClass;
    use velollm_core::workload::load::{Bounds, LoadProfile};

    fn s(mean: f64) -> Option<Summary> {
        Summary::of([mean * 0.9, mean, mean * 1.1])
    }

    #[test]
    fn step_summary_is_aligned_and_complete() {
        let step = StepResult {
            name: "short_completion".into(),
            config: StepConfig {
                prompt: "Write a hello world program in Python".into(),
                prompt_tokens: None,
                max_tokens: 50,
                exact_output: false,
                load: LoadProfile::Sequential,
                bounds: Bounds { requests: Some(5), ..Bounds::default() },
                turns: None,
                tags: Default::default(),
            },
            requests: 5,
            succeeded: 4,
            failed: 1,
            success_rate: 0.8,
            warmup_requests: 0,
            partial: false,
            metrics: StepMetrics {
                ttft_ms: s(35.0),
                tpot_ms: s(7.2),
                itl_chunk_ms: s(7.1),
                itl_token_ms: s(7.1),
                e2e_ms: s(390.0),
                decode_tokens_per_s: s(139.0),
                output_tokens: s(50.0),
                prompt_tokens: s(31.0),
                server_prefill_ms: s(30.0),
                server_decode_ms: s(350.0),
                ..StepMetrics::default()
            },
            rates: StepRates {
                duration_s: 1.95,
                request_throughput: 2.05,
                output_token_throughput: 102.5,
                total_token_throughput: 166.2,
                goodput: None,
                good_fraction: None,
            },
            errors: BTreeMap::from([(
                ErrorClass::Http5xx,
                ErrorSummary { count: 1, example: "HTTP 503: busy".into() },
            )]),
            token_sources: BTreeMap::from([("server_usage".to_string(), 4)]),
            connections: ConnectionStats { opened: 1, reused: 4 },
            quality: None,
            samples: Default::default(),
            server_metrics: None,
            drafts: None,
            proxy_cache: None,
            proxy_hedge: None,
            sessions: None,
            cost: None,
        };
        insta::assert_snapshot!(render_step(&step), @r"
        short_completion  ·  sequential  ·  5 requests, 80.0% ok
                           mean    p50    p90    p95    p99    max
          TTFT (ms)       35.00  35.00  37.80  38.15  38.43  38.50
          TPOT (ms)        7.20   7.20   7.78   7.85   7.91   7.92
          ITL/chunk (ms)   7.10   7.10   7.67   7.74   7.80   7.81
          ITL/token (ms)   7.10   7.10   7.67   7.74   7.80   7.81
          E2E (ms)        390.0  390.0  421.2  425.1  428.2  429.0
          decode (tok/s)  139.0  139.0  150.1  151.5  152.6  152.9
          throughput: 2.05 req/s · 102.5 output tok/s · 166.2 total tok/s over 1.95 s
          tokens: output 50.0 mean of 50 max · prompt 31.0 mean · counted by server_usage ×4
          server: prefill 30.00 ms · decode 350.0 ms (means, engine-reported)
          connections: 1 opened, 4 reused
          errors: http_5xx ×1 (HTTP 503: busy)
        ");
    }
}
