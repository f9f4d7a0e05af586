//! CSV exports (RFC 4180: comma-separated, CRLF line ends, fields with commas, quotes or line breaks quoted
//! and inner quotes doubled). Numbers are written in full precision; a missing value is an empty cell.
//!
//! * [`steps_csv`] — one row per step: counts, success rate, throughput, and `mean`, `p50`, `p90`, `p95`,
//!   `p99` of every metric present in any step (columns named after the result document's fields, e.g.
//!   `ttft_ms_p95`).
//! * [`records_csv`] — one row per successful measured request, from the result's per-request samples
//!   (`turn` is 0-based, as in the result document).
//!
//! With several targets, a leading `target` column holds each run's label.

use crate::document::STEP_METRICS;
use crate::target::Target;
use velollm_core::aggregate::step::StepSamples;
use velollm_core::workload::load::LoadProfile;

fn field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn line(out: &mut String, cells: &[String]) {
    let cells: Vec<String> = cells.iter().map(|c| field(c)).collect();
    out.push_str(&cells.join(","));
    out.push_str("\r\n");
}

fn f(v: f64) -> String {
    if v.is_finite() { v.to_string() } else { String::new() }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

/// Per-step aggregates, one row per step.
pub fn steps_csv(targets: &[Target<'_>]) -> String {
    let multi = targets.len() > 1;
    let steps = || targets.iter().flat_map(|t| t.run.steps.iter().map(move |s| (t, s)));
    let metrics: Vec<_> =
        STEP_METRICS.iter().filter(|(_, _, get)| steps().any(|(_, s)| get(&s.metrics).is_some())).collect();
    let goodput = steps().any(|(_, s)| s.rates.goodput.is_some());
    let mut head: Vec<String> = Vec::new();
    if multi {
        head.push("target".into());
    }
    for h in [
        "step",
        "load",
        "concurrency",
        "rate",
        "max_tokens",
        "requests",
        "succeeded",
        "failed",
        "success_rate",
        "warmup_requests",
        "partial",
        "duration_s",
        "request_throughput",
        "output_token_throughput",
        "total_token_throughput",
    ] {
        head.push(h.into());
    }
    if goodput {
        head.extend(["goodput".into(), "good_fraction".into()]);
    }
    for (name, _, _) in &metrics {
        for stat in ["mean", "p50", "p90", "p95", "p99"] {
            head.push(format!("{name}_{stat}"));
        }
    }
    let mut out = String::new();
    line(&mut out, &head);
    for (t, s) in steps() {
        let mut row = Vec::with_capacity(head.len());
        if multi {
            row.push(t.label.to_string());
        }
        let (concurrency, rate) = match s.config.load {
            LoadProfile::Sequential => (Some(1), None),
            LoadProfile::Concurrency { concurrency } => (Some(concurrency), None),
            LoadProfile::Rate { rate, max_concurrency, .. } => (max_concurrency, Some(rate)),
        };
        row.extend([
            s.name.clone(),
            s.config.load.describe(),
            opt(concurrency),
            rate.map_or(String::new(), f),
            s.config.max_tokens.to_string(),
            s.requests.to_string(),
            s.succeeded.to_string(),
            s.failed.to_string(),
            f(s.success_rate),
            s.warmup_requests.to_string(),
            s.partial.to_string(),
            f(s.rates.duration_s),
            f(s.rates.request_throughput),
            f(s.rates.output_token_throughput),
            f(s.rates.total_token_throughput),
        ]);
        if goodput {
            row.push(s.rates.goodput.map_or(String::new(), f));
            row.push(s.rates.good_fraction.map_or(String::new(), f));
        }
        for (_, _, get) in &metrics {
            match get(&s.metrics) {
                Some(m) => row.extend([m.mean, m.p50, m.p90, m.p95, m.p99].map(f)),
                None => row.extend((0..5).map(|_| String::new())),
            }
        }
        line(&mut out, &row);
    }
    out
}

/// The per-request columns, in order: name and the cell of request `i`.
type Column = (&'static str, fn(&StepSamples, usize) -> String);

fn of_f(v: &[Option<f64>], i: usize) -> String {
    v.get(i).copied().flatten().map_or(String::new(), f)
}

fn of_u<T: ToString + Copy>(v: &[Option<T>], i: usize) -> String {
    opt(v.get(i).copied().flatten())
}

const COLUMNS: &[Column] = &[
    ("end_s", |s, i| s.end_s.get(i).map_or(String::new(), |v| f(*v))),
    ("ttft_ms", |s, i| of_f(&s.ttft_ms, i)),
    ("e2e_ms", |s, i| of_f(&s.e2e_ms, i)),
    ("tpot_ms", |s, i| of_f(&s.tpot_ms, i)),
    ("queue_delay_ms", |s, i| of_f(&s.queue_delay_ms, i)),
    ("network_overhead_ms", |s, i| of_f(&s.network_overhead_ms, i)),
    ("decode_tokens_per_s", |s, i| of_f(&s.decode_tokens_per_s, i)),
    ("tokens_per_s", |s, i| of_f(&s.tokens_per_s, i)),
    ("prompt_tokens", |s, i| of_u(&s.prompt_tokens, i)),
    ("output_tokens", |s, i| opt(s.output_tokens.get(i))),
    ("cached_tokens", |s, i| of_u(&s.cached_tokens, i)),
    ("turn", |s, i| of_u(&s.turn, i)),
    ("server_prefill_ms", |s, i| of_f(&s.server_prefill_ms, i)),
    ("server_decode_ms", |s, i| of_f(&s.server_decode_ms, i)),
];

/// One row per successful measured request (steps without samples, such as schema 1.0 results, give none).
pub fn records_csv(targets: &[Target<'_>]) -> String {
    let multi = targets.len() > 1;
    let mut head: Vec<String> = Vec::new();
    if multi {
        head.push("target".into());
    }
    head.extend(["step".into(), "index".into()]);
    head.extend(COLUMNS.iter().map(|(n, _)| n.to_string()));
    let mut out = String::new();
    line(&mut out, &head);
    for t in targets {
        for s in &t.run.steps {
            for i in 0..s.samples.len() {
                let mut row = Vec::with_capacity(head.len());
                if multi {
                    row.push(t.label.to_string());
                }
                row.push(s.name.clone());
                row.push(i.to_string());
                row.extend(COLUMNS.iter().map(|(_, get)| get(&s.samples, i)));
                line(&mut out, &row);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4180_quoting() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(f(f64::NAN), "");
        assert_eq!(f(0.25), "0.25");
    }
}
