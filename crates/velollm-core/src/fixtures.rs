//! Test fixtures shared by the unit tests of this crate.

use crate::aggregate::accumulator::StepAccumulator;
use crate::aggregate::step::{StepConfig, StepResult};
use crate::document::result::RunResult;
use crate::measure::record::{Channel, Chunk, RequestRecord};

/// A step config with nothing in it.
pub fn config() -> StepConfig {
    StepConfig {
        prompt: String::new(),
        prompt_tokens: None,
        max_tokens: 1,
        exact_output: false,
        load: crate::workload::load::LoadProfile::Sequential,
        bounds: crate::workload::load::Bounds::default(),
        turns: None,
        tags: Default::default(),
    }
}

/// A step whose successful requests have these TTFTs (ms), two chunks each, 20 ms apart.
pub fn step(name: &str, ttft: &[f64]) -> StepResult {
    let mut acc = StepAccumulator::new(name, config());
    for (i, &t) in ttft.iter().enumerate() {
        let start = i as u64 * 10_000_000_000;
        let first = start + (t * 1e6) as u64;
        let chunk = |t| Chunk { t, channel: Channel::Content, events: 1, tokens: None, bytes: 1 };
        acc.push(&RequestRecord {
            scheduled: start,
            sent: Some(start),
            done: Some(first + 20_000_000),
            chunks: vec![chunk(first), chunk(first + 20_000_000)],
            ..Default::default()
        });
    }
    acc.result(None, false)
}

/// A complete run of these steps.
pub fn run(steps: Vec<StepResult>) -> RunResult {
    let mut r: RunResult = serde_json::from_value(serde_json::json!({
        "schema_version": "1.1", "status": "complete",
        "meta": {"tool": "velollm", "tool_version": "0", "run_id": "x", "command": [], "started_at": "",
            "target": {"url": "", "dialect": "", "dialect_reason": "", "model": "m"},
            "host": {"hostname": "", "os": "", "kernel": "", "cpu": "", "cpu_cores": 1, "memory_bytes": 0},
            "scenario": "s", "seed": 0, "token_policy": ""},
        "steps": [], "benchmarks": []
    }))
    .expect("a valid run");
    r.steps = steps;
    r
}
