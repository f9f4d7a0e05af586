//! A step of a run as an llm-d Benchmark Report (schema 0.2, revision 0.2.1: PyPI `llmd-benchmark-report`,
//! whose JSON Schema and model the tests check every export against), so that the tools that collect those
//! reports read velollm's results.
//!
//! One report per step: llm-d calls a step a *stage* (`scenario.load.standardized.stage`, numbered from 0).
//! What is mapped, and how:
//!
//! | report field | from |
//! |---|---|
//! | `run.uid`, `run.eid` | `<run id>-<stage>`, and the run id shared by the run's reports |
//! | `run.time` | the run's start and end; `duration` is the step's measurement window |
//! | `scenario.stack[0]` | the target: a `generic` component with the server, its version, model, dialect and URL |
//! | `scenario.load` | `velollm` and its version, the stage, prompt and output lengths, turns, rate or concurrency, the command line |
//! | `results.request_performance.aggregate.requests` | requests, failures, prompt and output tokens per request |
//! | `…latency` | TTFT, TPOT, ITL per token and E2E, in seconds (s/token for the per-token ones) |
//! | `…throughput` | requests/s, output, input and total tokens/s over the step |
//! | `results.session_performance.sessions` | sessions (calls sharing a conversation id): counts, calls, and per session its duration, calls, aborted calls, prompt and output tokens |
//! | `results.observability.components[0].aggregate.cache_hit_rate` | prefix reuse: cached ÷ prompt tokens, as the server reported them |
//!
//! Percentiles are velollm's (p50, p90, p95, p99, p99.9); the ones velollm does not compute (p0.1, p1, p5,
//! p10, p25, p75) are left out, as the schema allows.

use serde_json::{Map, Value, json};
use velollm_core::aggregate::step::StepResult;
use velollm_core::document::result::RunResult;
use velollm_core::judge::learned_threshold::text_hash;
use velollm_core::measure::sessions::SessionStats;
use velollm_core::stats::Summary;
use velollm_core::workload::load::LoadProfile;

/// The schema revision written in `version`.
pub const VERSION: &str = "0.2.1";

/// Step `stage` (0-based) of `run` as a Benchmark Report; `None` when the run has no such step.
pub fn report(run: &RunResult, stage: usize) -> Option<Value> {
    let step = run.steps.get(stage)?;
    let meta = &run.meta;
    let mut time = Map::new();
    time.insert("start".into(), json!(meta.started_at));
    if let Some(end) = &meta.finished_at {
        time.insert("end".into(), json!(end));
    }
    if step.rates.duration_s.is_finite() {
        time.insert("duration".into(), json!(format!("PT{:.6}S", step.rates.duration_s)));
    }
    Some(json!({
        "version": VERSION,
        "run": {
            "uid": format!("{}-{stage}", meta.run_id),
            "eid": meta.run_id,
            "time": time,
            "description": format!(
                "velollm {}: step {} ({}) of scenario {} against {}",
                meta.tool_version, stage, step.name, meta.scenario, meta.target.url
            ),
            "keywords": ["velollm", meta.scenario],
        },
        "scenario": {
            "stack": [target(run)],
            "load": load(run, step, stage),
        },
        "results": results(step),
    }))
}

fn results(step: &StepResult) -> Value {
    let mut results = Map::new();
    results.insert("request_performance".into(), json!({ "aggregate": aggregate(step) }));
    if let Some(sessions) = &step.sessions {
        results.insert("session_performance".into(), json!({ "sessions": session_figures(sessions, step) }));
    }
    if let Some(reuse) = prefix_reuse(step) {
        let target = json!({
            "component_label": "target",
            "aggregate": { "cache_hit_rate": { "units": "percent", "mean": reuse } },
        });
        results.insert("observability".into(), json!({ "components": [target] }));
    }
    Value::Object(results)
}

/// The step's sessions in the schema's `SessionRequests` shape.
fn session_figures(s: &SessionStats, step: &StepResult) -> Value {
    let mut out = Map::new();
    out.insert("total".into(), json!(s.total));
    out.insert("succeeded".into(), json!(s.succeeded));
    out.insert("failed".into(), json!(s.failed));
    out.insert("total_events".into(), json!(s.calls));
    out.insert("total_events_completed".into(), json!(s.calls_completed));
    out.insert("total_events_cancelled".into(), json!(s.calls_cancelled));
    let window = step.rates.duration_s;
    if window.is_finite() && window > 0.0 {
        out.insert("session_rate".into(), json!({ "units": "queries/s", "mean": s.total as f64 / window }));
    }
    out.insert("session_duration".into(), stats(&s.duration_s, "s", 1.0));
    out.insert("events_per_session".into(), stats(&s.calls_per_session, "count", 1.0));
    out.insert("events_cancelled_per_session".into(), stats(&s.cancelled_per_session, "count", 1.0));
    insert(&mut out, "input_tokens_per_session", s.prompt_tokens_per_session.as_ref().map(|p| stats(p, "count", 1.0)));
    out.insert("output_tokens_per_session".into(), stats(&s.output_tokens_per_session, "count", 1.0));
    Value::Object(out)
}

/// The share of prompt tokens the server found in its prefix cache (cached ÷ prompt tokens, in percent, over
/// the requests whose answer reported both).
fn prefix_reuse(step: &StepResult) -> Option<f64> {
    let s = &step.samples;
    let (mut prompt, mut cached) = (0u64, 0u64);
    for (p, c) in s.prompt_tokens.iter().zip(&s.cached_tokens) {
        if let (Some(p), Some(c)) = (p, c) {
            prompt += p;
            cached += c;
        }
    }
    (prompt > 0).then(|| cached as f64 / prompt as f64 * 100.0)
}

/// The server measured, as a `generic` component (the schema's `inference_engine` asks for accelerators and
/// parallelism that a client does not know).
fn target(run: &RunResult) -> Value {
    let t = &run.meta.target;
    let tool = t.server.clone().unwrap_or_else(|| t.dialect.clone());
    let version = t.server_version.clone().unwrap_or_else(|| "unknown".into());
    let id = config_id(&[&t.url, &t.dialect, &t.model, &tool, &version]);
    json!({
        "metadata": {
            "schema_version": "0.0.1",
            "label": "target",
            "cfg_id": id,
            "description": "the server velollm measured",
        },
        "standardized": {
            "kind": "generic",
            "tool": tool,
            "tool_version": version,
            "model": t.model,
            "dialect": t.dialect,
            "url": t.url,
        },
        "native": {},
    })
}

fn load(run: &RunResult, step: &StepResult, stage: usize) -> Value {
    let c = &step.config;
    let mut standardized = Map::new();
    standardized.insert("tool".into(), json!(run.meta.tool));
    standardized.insert("tool_version".into(), json!(run.meta.tool_version));
    standardized.insert("stage".into(), json!(stage));
    // velollm's prompts are words, a dataset's or a trace's: not random token ids, and not the schema's
    // "sampled" from a named corpus either.
    standardized.insert("source".into(), json!("unknown"));
    let input = match (&step.metrics.prompt_tokens, c.prompt_tokens) {
        (Some(s), _) => length(s),
        (None, Some(n)) => json!({ "distribution": "fixed", "value": n }),
        (None, None) => json!({ "distribution": "other", "value": 0 }),
    };
    standardized.insert("input_seq_len".into(), input);
    if c.exact_output {
        standardized.insert("output_seq_len".into(), json!({ "distribution": "fixed", "value": c.max_tokens }));
    }
    if let Some(turns) = c.turns.filter(|&t| t > 1) {
        standardized.insert(
            "multi_turn".into(),
            json!({ "enabled": true, "max_turns": { "distribution": "fixed", "value": turns } }),
        );
    }
    if let LoadProfile::Rate { rate, .. } = c.load {
        standardized.insert("rate_qps".into(), json!(rate));
    }
    if let Some(workers) = c.load.workers() {
        standardized.insert("concurrency".into(), json!(workers));
    }
    let described = serde_json::to_string(c).unwrap_or_default();
    json!({
        "metadata": {
            "schema_version": "0.0.1",
            "cfg_id": config_id(&[&described]),
            "description": format!("{}: {}", step.name, c.load.describe()),
        },
        "standardized": standardized,
        "native": { "args": { "argv": run.meta.command } },
    })
}

/// A length per request as the schema describes one: fixed when every request had the same, else its mean and
/// range.
fn length(s: &Summary) -> Value {
    if s.min == s.max {
        json!({ "distribution": "fixed", "value": s.min.round() as u64 })
    } else {
        json!({
            "distribution": "other",
            "value": s.mean,
            "std_dev": s.stddev,
            "min": s.min.floor() as u64,
            "max": s.max.ceil() as u64,
        })
    }
}

fn aggregate(step: &StepResult) -> Value {
    let m = &step.metrics;
    let mut requests = Map::new();
    requests.insert("total".into(), json!(step.requests));
    requests.insert("failures".into(), json!(step.failed));
    insert(&mut requests, "input_length", m.prompt_tokens.as_ref().map(|s| stats(s, "count", 1.0)));
    insert(&mut requests, "output_length", m.output_tokens.as_ref().map(|s| stats(s, "count", 1.0)));
    let mut latency = Map::new();
    insert(&mut latency, "time_to_first_token", m.ttft_ms.as_ref().map(|s| stats(s, "s", 1e-3)));
    insert(&mut latency, "time_per_output_token", m.tpot_ms.as_ref().map(|s| stats(s, "s/token", 1e-3)));
    insert(&mut latency, "inter_token_latency", m.itl_token_ms.as_ref().map(|s| stats(s, "s/token", 1e-3)));
    insert(&mut latency, "request_latency", m.e2e_ms.as_ref().map(|s| stats(s, "s", 1e-3)));
    let r = &step.rates;
    let mut throughput = Map::new();
    let mut rate = |name: &str, units: &str, value: f64| {
        if value.is_finite() {
            throughput.insert(name.into(), json!({ "units": units, "mean": value }));
        }
    };
    rate("request_rate", "queries/s", r.request_throughput);
    rate("output_token_rate", "tokens/s", r.output_token_throughput);
    // Without prompt tokens from the server, the total is the output alone: no input or total rate to give.
    if m.prompt_tokens.is_some() {
        rate("input_token_rate", "tokens/s", r.total_token_throughput - r.output_token_throughput);
        rate("total_token_rate", "tokens/s", r.total_token_throughput);
    }
    json!({ "requests": requests, "latency": latency, "throughput": throughput })
}

fn insert(map: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(name.into(), v);
    }
}

/// A summary in the schema's `Statistics` shape, each value times `scale` (ms → s: 1e-3).
fn stats(s: &Summary, units: &str, scale: f64) -> Value {
    json!({
        "units": units,
        "mean": s.mean * scale,
        "stddev": s.stddev * scale,
        "min": s.min * scale,
        "p50": s.p50 * scale,
        "p90": s.p90 * scale,
        "p95": s.p95 * scale,
        "p99": s.p99 * scale,
        "p99p9": s.p999 * scale,
        "max": s.max * scale,
    })
}

/// A configuration's id as the schema asks for one (a hash of it): core's 64-bit text hash of the parts, each
/// ended by a NUL so that `["a", "bc"]` and `["ab", "c"]` differ, in hex.
fn config_id(parts: &[&str]) -> String {
    let text: String = parts.iter().flat_map(|p| [*p, "\0"]).collect();
    let h = u64::from_le_bytes(text_hash(&text));
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_is_scaled_and_named_as_the_schema_names_percentiles() {
        let s = Summary::of([10.0, 20.0, 30.0]).unwrap();
        let v = stats(&s, "s", 1e-3);
        assert_eq!(v["units"], "s");
        assert!((v["mean"].as_f64().unwrap() - 0.02).abs() < 1e-12);
        assert!(v.get("p99p9").is_some() && v.get("p999").is_none());
    }

    #[test]
    fn equal_lengths_are_fixed_and_others_keep_their_range() {
        assert_eq!(length(&Summary::of([8.0, 8.0]).unwrap()), json!({ "distribution": "fixed", "value": 8 }));
        let v = length(&Summary::of([4.0, 12.0]).unwrap());
        assert_eq!(
            (v["distribution"].as_str(), v["min"].as_u64(), v["max"].as_u64()),
            (Some("other"), Some(4), Some(12))
        );
    }

    #[test]
    fn config_ids_differ_when_the_configuration_does() {
        assert_ne!(config_id(&["a", "bc"]), config_id(&["ab", "c"]));
        assert_eq!(config_id(&["x"]).len(), 16);
    }
}
