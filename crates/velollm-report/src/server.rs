//! What velollm observed of the server, as report text: the wording shared by the terminal summary
//! ([`crate::terminal`]) and the Markdown and HTML report ([`crate::document`]).
//!
//! Every figure comes from the result document (`RunResult::server`, `StepResult::server_metrics`,
//! computed in `velollm_core::server::launch`, `velollm_core::server::resources` and `velollm_core::measure::prom`); nothing is
//! computed here but the cold first request's TTFT against the warm median, through
//! [`ColdStart::ttft_penalty_ms`]. A figure the result does not hold is left out, never shown as 0.

use crate::format::{bytes, count, duration_ms, num, seconds, signed_bytes, value};
use velollm_core::document::result::RunResult;
use velollm_core::measure::names::Unit;
use velollm_core::measure::prom::ServerMetrics;
use velollm_core::server::launch::{ColdStart, LaunchReport, ServerEvent, ServerEventKind};
use velollm_core::server::resources::{GpuSummary, ResourceReport};

/// How a server-metric value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A token count: `240` (`240 tok` in a line).
    Tokens,
    /// A fraction shown as a percentage: `43.2%`.
    Fraction,
    /// Milliseconds: `3.10 ms`.
    Ms,
    /// A whole count of requests: `3`.
    Count,
    /// A plain number: `2.40`.
    Plain,
}

impl Kind {
    fn format(self, v: f64) -> String {
        match self {
            Kind::Tokens | Kind::Count => count(v),
            Kind::Fraction => value(v, Unit::Fraction),
            Kind::Ms => value(v, Unit::Ms),
            Kind::Plain => num(v),
        }
    }
}

/// One figure of [`ServerMetrics`] as the reports show it.
pub(crate) struct MetricField {
    /// Header of its column in the per-step table, with the unit.
    pub head: &'static str,
    /// Its name in a one-line summary.
    pub label: &'static str,
    /// Its value, when the server exposed it.
    pub get: fn(&ServerMetrics) -> Option<f64>,
    /// How it is written.
    pub kind: Kind,
}

/// The figures of [`ServerMetrics`] the reports show, in order (the raw counters are listed apart).
pub(crate) const METRIC_FIELDS: &[MetricField] = &[
    MetricField { head: "prompt tokens", label: "prompt", get: |m| m.prompt_tokens, kind: Kind::Tokens },
    MetricField { head: "generated tokens", label: "generated", get: |m| m.generation_tokens, kind: Kind::Tokens },
    MetricField { head: "cached tokens", label: "cached", get: |m| m.cached_prompt_tokens, kind: Kind::Tokens },
    MetricField {
        head: "prefix-cache hit rate",
        label: "prefix cache hit",
        get: |m| m.prefix_cache_hit_rate,
        kind: Kind::Fraction,
    },
    MetricField {
        head: "spec. acceptance",
        label: "spec. acceptance",
        get: |m| m.spec_acceptance_rate,
        kind: Kind::Fraction,
    },
    MetricField {
        head: "mean acceptance length",
        label: "mean acceptance length",
        get: |m| m.spec_mean_acceptance_length,
        kind: Kind::Plain,
    },
    MetricField { head: "queue mean (ms)", label: "queue mean", get: |m| m.queue_time_mean_ms, kind: Kind::Ms },
    MetricField { head: "KV cache mean", label: "KV mean", get: |m| m.kv_cache_usage_mean, kind: Kind::Fraction },
    MetricField { head: "KV cache max", label: "KV max", get: |m| m.kv_cache_usage_max, kind: Kind::Fraction },
    MetricField { head: "waiting max", label: "waiting max", get: |m| m.requests_waiting_max, kind: Kind::Count },
    MetricField { head: "running max", label: "running max", get: |m| m.requests_running_max, kind: Kind::Count },
    MetricField {
        head: "cache hit rate (server's own)",
        label: "server-reported cache hit",
        get: |m| m.server_cache_hit_rate,
        kind: Kind::Fraction,
    },
    MetricField {
        head: "acceptance rate (server's own)",
        label: "server-reported acceptance",
        get: |m| m.server_spec_accept_rate,
        kind: Kind::Fraction,
    },
    MetricField {
        head: "acceptance length (server's own)",
        label: "server-reported acceptance length",
        get: |m| m.server_spec_accept_length,
        kind: Kind::Plain,
    },
];

impl MetricField {
    /// The table cell of `m`'s value: `240`, `43.2%`; `None` when the server did not expose it.
    pub(crate) fn cell(&self, m: &ServerMetrics) -> Option<String> {
        (self.get)(m).map(|v| self.kind.format(v))
    }
}

/// Said of a step (or a run) whose server counters went down: the server restarted in between.
pub const COUNTER_RESET: &str = "⚠ the server restarted during the step; deltas counted from 0";

/// One line of the server's own figures over a step (or the run): `prompt 240 tok · generated 160 tok ·
/// prefix cache hit 43.2% · …`; `None` when the server exposed none that velollm knows.
pub fn metrics_line(m: &ServerMetrics) -> Option<String> {
    let parts: Vec<String> = METRIC_FIELDS
        .iter()
        .filter_map(|f| {
            let v = (f.get)(m)?;
            let unit = if f.kind == Kind::Tokens { " tok" } else { "" };
            Some(format!("{} {}{unit}", f.label, f.kind.format(v)))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// Where the server's figures come from: `llama.cpp, 3 scrapes`.
pub fn metrics_source(m: &ServerMetrics) -> String {
    format!("{}, {} scrape{}", m.engine.display_name(), m.scrapes, if m.scrapes == 1 { "" } else { "s" })
}

/// The warm TTFT the cold first request is compared with: the first step's TTFT median, ms.
pub fn warm_ttft_p50(run: &RunResult) -> Option<f64> {
    run.steps.first()?.metrics.ttft_ms.as_ref().map(|s| s.p50)
}

/// How the server was launched, as `(name, value)` facts.
pub fn launch_facts(l: &LaunchReport) -> Vec<(String, String)> {
    let mut facts = vec![
        ("command".to_string(), l.command.clone()),
        ("ready".to_string(), format!("{} answered 200 (port {})", l.ready_route, l.port)),
        ("spawned".to_string(), crate::document::date(&l.spawned_at)),
        ("restarts".to_string(), l.restarts.to_string()),
    ];
    if let Some(stop) = &l.stop {
        facts.push(("stopped".into(), stop.clone()));
    }
    facts.push(("log".into(), l.log.clone()));
    facts
}

/// The cold first request's TTFT, with the warm median and the difference when known:
/// `262.0 ms vs warm p50 41.00 ms (+221.0 ms)`.
pub fn cold_ttft(c: &ColdStart, warm_p50: Option<f64>) -> Option<String> {
    let cold = c.first_ttft_ms?;
    Some(match warm_p50.and_then(|w| c.ttft_penalty_ms(w).map(|d| (w, d))) {
        Some((w, d)) => format!(
            "{} vs warm p50 {} ({}{})",
            duration_ms(cold),
            duration_ms(w),
            if d < 0.0 { "-" } else { "+" },
            duration_ms(d.abs())
        ),
        None => duration_ms(cold),
    })
}

/// The cold start, as `(name, value)` facts; `warm_p50` from [`warm_ttft_p50`].
pub fn cold_start_facts(c: &ColdStart, warm_p50: Option<f64>) -> Vec<(String, String)> {
    let mut facts = Vec::new();
    if let Some(l) = c.spawn_to_listen_ms {
        facts.push(("spawn → listening".into(), duration_ms(l)));
    }
    facts.push(("spawn → ready".into(), duration_ms(c.spawn_to_ready_ms)));
    if let Some(t) = c.spawn_to_first_token_ms {
        facts.push(("spawn → first token".into(), duration_ms(t)));
    }
    if let Some(t) = cold_ttft(c, warm_p50) {
        facts.push(("first request TTFT".into(), t));
    }
    if let Some(e) = c.first_e2e_ms {
        facts.push(("first request E2E".into(), duration_ms(e)));
    }
    if let Some(n) = c.first_output_tokens {
        facts.push(("first request output".into(), format!("{n} tokens")));
    }
    if let Some(e) = &c.first_error {
        facts.push(("first request failed".into(), first_line(e)));
    }
    facts
}

/// Memory and CPU of the server's process tree over the run, as `(name, value)` facts (GPUs apart, see
/// [`gpu_text`]).
pub fn resource_facts(r: &ResourceReport) -> Vec<(String, String)> {
    let mut facts = Vec::new();
    if let Some(peak) = r.rss_peak_bytes {
        let mean = r.rss_mean_bytes.map_or(String::new(), |m| format!(" (mean {})", bytes(m)));
        facts.push(("RSS".into(), format!("peak {}{mean}", bytes(peak))));
    }
    let cpu: Vec<String> = [("mean", r.cpu_mean_percent), ("peak", r.cpu_peak_percent)]
        .into_iter()
        .filter_map(|(k, v)| Some(format!("{k} {}", value(v?, Unit::Percent))))
        .collect();
    if !cpu.is_empty() {
        facts.push(("CPU".into(), format!("{} (100% = one core)", cpu.join(" "))));
    }
    if let Some(g) = r.first_request_growth_bytes {
        let around = match (r.rss_before_first_request_bytes, r.rss_after_first_request_bytes) {
            (Some(b), Some(a)) => format!(" ({} → {})", bytes(b), bytes(a)),
            _ => String::new(),
        };
        facts.push(("first request".into(), format!("{} RSS{around}", signed_bytes(g as f64))));
    }
    if let Some(g) = &r.growth_per_request {
        facts.push((
            "growth per request".into(),
            format!(
                "{}/request (r² {:.2}; {} samples over {} requests)",
                signed_bytes(g.bytes_per_request),
                g.r2,
                g.samples,
                g.requests
            ),
        ));
    }
    if let Some(p) = r.processes_peak.filter(|p| *p > 1) {
        facts.push(("processes".into(), format!("peak {p}")));
    }
    facts
}

/// How the resources were sampled: `every 0.50 s, 60 samples` (and the merging of a long timeline).
pub fn sampling_text(r: &ResourceReport) -> String {
    let merged = if r.samples_per_point > 1 {
        format!("; the timeline merges {} samples per point", r.samples_per_point)
    } else {
        String::new()
    };
    format!("every {} s, {} samples{merged}", num(r.interval_s), r.sample_count)
}

/// One GPU over the run: `memory peak 20.1 GB of 85.9 GB · utilisation mean 63.0% peak 99.0%`.
pub fn gpu_text(g: &GpuSummary) -> String {
    let mut parts = Vec::new();
    match (g.memory_peak_bytes, g.memory_total_bytes) {
        (Some(p), Some(t)) => parts.push(format!("memory peak {} of {}", bytes(p), bytes(t))),
        (Some(p), None) => parts.push(format!("memory peak {}", bytes(p))),
        (None, Some(t)) => parts.push(format!("memory {} (use not reported)", bytes(t))),
        (None, None) => {}
    }
    let util: Vec<String> = [("mean", g.utilization_mean_percent), ("peak", g.utilization_peak_percent)]
        .into_iter()
        .filter_map(|(k, v)| Some(format!("{k} {}", value(v?, Unit::Percent))))
        .collect();
    if !util.is_empty() {
        parts.push(format!("utilisation {}", util.join(" ")));
    }
    if parts.is_empty() {
        parts.push("no reading".into());
    }
    parts.join(" · ")
}

/// What an event is called: `exited`, `down`, `up`, `restarted`, `relaunched`.
pub fn event_label(kind: ServerEventKind) -> &'static str {
    match kind {
        ServerEventKind::Exited => "exited",
        ServerEventKind::Down => "down",
        ServerEventKind::Up => "up",
        ServerEventKind::Restarted => "restarted",
        ServerEventKind::Relaunched => "relaunched",
    }
}

/// One event in a line: `t=20.2 s exited (step concurrency_4): exit status: 1; last lines of server.log …`
/// (only the first line of the details: the log tail stays in the result document).
pub fn event_line(e: &ServerEvent) -> String {
    let mut line = format!("t={} {}", seconds(e.t_s), event_label(e.kind));
    if let Some(gap) = e.gap_s {
        line.push_str(&format!(" after a {} gap", seconds(gap)));
    }
    if let Some(step) = &e.step {
        line.push_str(&format!(" (step {step})"));
    }
    if !e.detail.trim().is_empty() {
        line.push_str(": ");
        line.push_str(&first_line(&e.detail));
    }
    line
}

/// The first non-empty line of a text, without a trailing colon, `…` appended when more lines follow.
fn first_line(s: &str) -> String {
    let mut lines = s.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("").trim_end_matches(':').to_string();
    if lines.next().is_some() { format!("{first} …") } else { first }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_show_their_first_line_and_gap() {
        let e = ServerEvent {
            t_s: 20.25,
            kind: ServerEventKind::Exited,
            step: Some("c4".into()),
            detail: "exit status: 1; last lines of /tmp/s.log:\nline a\nline b".into(),
            gap_s: None,
        };
        assert_eq!(event_line(&e), "t=20.2 s exited (step c4): exit status: 1; last lines of /tmp/s.log …");
        let r = ServerEvent {
            t_s: 23.4,
            kind: ServerEventKind::Relaunched,
            step: None,
            detail: "ready via /health".into(),
            gap_s: Some(3.2),
        };
        assert_eq!(event_line(&r), "t=23.4 s relaunched after a 3.2 s gap: ready via /health");
    }

    #[test]
    fn cold_ttft_against_the_warm_median() {
        let c = ColdStart {
            spawn_to_listen_ms: None,
            spawn_to_ready_ms: 1840.0,
            spawn_to_first_token_ms: Some(2100.0),
            first_ttft_ms: Some(262.0),
            first_e2e_ms: None,
            first_output_tokens: None,
            first_error: None,
        };
        assert_eq!(cold_ttft(&c, Some(41.0)).as_deref(), Some("262.0 ms vs warm p50 41.00 ms (+221.0 ms)"));
        assert_eq!(cold_ttft(&c, None).as_deref(), Some("262.0 ms"));
        let facts = cold_start_facts(&c, Some(41.0));
        let names: Vec<&str> = facts.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names,
            ["spawn → ready", "spawn → first token", "first request TTFT"],
            "absent figures are left out"
        );
    }
}
