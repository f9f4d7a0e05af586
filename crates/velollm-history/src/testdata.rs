//! Result documents for unit tests, built with the core's own aggregation.

use velollm_core::aggregate::accumulator::StepAccumulator;
use velollm_core::aggregate::step::StepConfig;
use velollm_core::document::result::{HostInfo, RunMeta, RunResult, RunStatus, TargetInfo};
use velollm_core::measure::record::{Channel, Chunk, RequestRecord, Usage};

const MS: u64 = 1_000_000;

/// A complete run with one step per `(name, ttft_ms)`: 4 successful requests each, TTFT `ttft_ms + i`,
/// E2E `2 × ttft_ms + i`, 20 prompt and 10 output tokens each.
pub fn run(id: &str, started_at: &str, steps: &[(&str, f64)]) -> RunResult {
    let steps = steps
        .iter()
        .map(|(name, ttft)| {
            let config = StepConfig {
                prompt: "hi".into(),
                prompt_tokens: None,
                max_tokens: 10,
                exact_output: false,
                load: velollm_core::workload::load::LoadProfile::Sequential,
                bounds: velollm_core::workload::load::Bounds::default(),
                turns: None,
                tags: Default::default(),
            };
            let mut acc = StepAccumulator::new(*name, config);
            for i in 0..4u64 {
                let start = i * 10_000 * MS;
                let first = start + (*ttft as u64 + i) * MS;
                acc.push(&RequestRecord {
                    id: i,
                    scheduled: start,
                    sent: Some(start),
                    headers: Some(start + MS / 2),
                    done: Some(start + (2 * *ttft as u64 + i) * MS),
                    chunks: vec![Chunk { t: first, channel: Channel::Content, events: 1, tokens: None, bytes: 4 }],
                    status: Some(200),
                    usage: Some(Usage { prompt_tokens: Some(20), completion_tokens: Some(10), ..Default::default() }),
                    ..Default::default()
                });
            }
            acc.result(None, false)
        })
        .collect();
    RunResult {
        schema_version: velollm_core::document::result::SCHEMA_VERSION.into(),
        status: RunStatus::Complete,
        status_reason: None,
        meta: RunMeta {
            tool: "velollm".into(),
            tool_version: "0.1.0".into(),
            run_id: id.into(),
            command: vec!["velollm".into(), "bench".into()],
            started_at: started_at.into(),
            finished_at: Some(started_at.into()),
            target: TargetInfo {
                url: "http://127.0.0.1:8080".into(),
                dialect: "openai-chat".into(),
                dialect_reason: "test".into(),
                model: "m".into(),
                server: Some("llama.cpp".into()),
                server_version: None,
            },
            host: HostInfo { hostname: "box".into(), ..Default::default() },
            scenario: "standard".into(),
            seed: 1,
            slo: None,
            token_policy: "usage".into(),
            tokenizer: None,
            hardware: None,
            chunk_stamps: None,
        },
        steps,
        benchmarks: Vec::new(),
        analyses: Vec::new(),
        verdicts: Vec::new(),
        server: None,
        selfcheck: None,
        trust: None,
    }
}

/// A trend point of run `run`, step `step`, with 10 successful requests and no cost data.
pub fn point(run: &str, step: &str, value: f64) -> crate::TrendPoint {
    crate::TrendPoint {
        started_at: String::new(),
        run_id: run.into(),
        step: step.into(),
        value,
        target_url: "http://x".into(),
        model: "m".into(),
        scenario: "s".into(),
        status: RunStatus::Complete,
        run_succeeded: 10,
        run_prompt_tokens: None,
        run_output_tokens: None,
        run_cost_usd: None,
    }
}
