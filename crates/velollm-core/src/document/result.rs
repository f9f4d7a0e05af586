//! The versioned result document written by `velollm bench` (DESIGN §6).
//!
//! Its JSON Schema is generated from these types and committed as `docs/result-schema.json`; a test fails
//! when the committed schema is stale. The document is rewritten atomically while a run progresses, with
//! `status: "partial"` until the run ends, so a killed run still leaves a valid file.

pub use crate::aggregate::step::{
    ConnectionStats, CriterionStats, ErrorSummary, QualityStats, StepConfig, StepMetrics, StepResult, StepSamples,
};
use crate::stats::Summary;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the result document format. Bumped on incompatible changes.
pub const SCHEMA_VERSION: &str = "1.2";

/// Whether the run finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The run is in progress or was killed: the document holds what was measured so far.
    Partial,
    /// The run was interrupted (Ctrl-C) or stopped by an error; what was measured is kept.
    Interrupted,
    /// Every step ran to its end.
    Complete,
}

/// The whole result document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunResult {
    /// Format version ([`SCHEMA_VERSION`]).
    pub schema_version: String,
    /// `partial` while running or after a kill, `interrupted`, or `complete`.
    pub status: RunStatus,
    /// Why the run did not complete, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Who ran what, where, against what.
    pub meta: RunMeta,
    /// One entry per scenario step, in order (steps not yet run are absent).
    pub steps: Vec<StepResult>,
    /// The original velollm's per-benchmark fields, one entry per step.
    pub benchmarks: Vec<LegacyBenchmark>,
    /// Scenario analyses (fits, per-turn degradation, cache acceleration, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analyses: Vec<crate::analysis::AnalysisResult>,
    /// Every threshold of the scenario with its outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<crate::judge::threshold::Verdict>,
    /// What velollm observed of the server: launch, cold start, resources, metrics, health events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<crate::server::launch::ServerReport>,
    /// The client's own cost, measured against its loopback server just before the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selfcheck: Option<crate::judge::selfcheck::SelfCheck>,
    /// Whether the steps' figures can be trusted given that cost (`trustworthy: false` flags the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<crate::judge::selfcheck::Trust>,
}

/// Run metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunMeta {
    /// `velollm`.
    pub tool: String,
    /// velollm version.
    pub tool_version: String,
    /// Unique identifier of the run.
    pub run_id: String,
    /// The command line, with secrets removed.
    pub command: Vec<String>,
    /// Wall-clock start (RFC 3339, UTC).
    pub started_at: String,
    /// Wall-clock end (RFC 3339, UTC), once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The endpoint under test.
    pub target: TargetInfo,
    /// The machine velollm ran on.
    pub host: HostInfo,
    /// Scenario name or file.
    pub scenario: String,
    /// Seed of every random choice (arrivals, synthetic prompts).
    pub seed: u64,
    /// Service-level objectives used for goodput, e.g. `ttft<=2000ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<String>,
    /// Token-count policy applied to every request.
    pub token_policy: String,
    /// Local tokenizer file, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    /// The load-generating machine's hardware as `velollm detect` reports it (GPUs, CPU, memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<crate::server::hardware::Hardware>,
    /// How chunk arrivals were stamped: `kernel-arrival` (the kernel's receive stamp of the bytes, where it
    /// gives one) or `read` (when velollm read them; absent in results older than kernel stamps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_stamps: Option<String>,
}

/// The endpoint under test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetInfo {
    /// Base URL (credentials removed).
    pub url: String,
    /// API dialect used (`openai-chat`, `openai-completions`, `ollama-chat`, `ollama-generate`, `llamacpp`).
    pub dialect: String,
    /// How the dialect was chosen (`--backend` or what the auto probe saw).
    pub dialect_reason: String,
    /// Model name sent with each request.
    pub model: String,
    /// Server software, when identified (`llama.cpp`, `ollama`, `vllm`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Server-reported version, when available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
}

/// The load-generating machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostInfo {
    /// Host name.
    pub hostname: String,
    /// Operating system and version.
    pub os: String,
    /// Kernel version.
    pub kernel: String,
    /// CPU brand string.
    pub cpu: String,
    /// Logical CPU count.
    pub cpu_cores: u32,
    /// Total memory in bytes.
    pub memory_bytes: u64,
}

/// The per-benchmark fields of the original velollm JSON, so existing `jq` scripts keep working.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LegacyBenchmark {
    /// The benchmark's configuration.
    pub config: LegacyConfig,
    /// Mean decode speed of successful requests, tokens/s (first token excluded; see docs/metrics.md).
    pub tokens_per_second: f64,
    /// Mean streamed TTFT, ms.
    pub time_to_first_token_ms: f64,
    /// Sum of end-to-end latencies, ms.
    pub total_time_ms: f64,
    /// Sum of output tokens.
    pub total_tokens: u64,
    /// Mean prompt tokens per request (rounded).
    pub prompt_eval_count: u64,
    /// Mean output tokens per request (rounded).
    pub eval_count: u64,
    /// When the step finished (RFC 3339, UTC).
    pub timestamp: String,
}

/// The original velollm's benchmark configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LegacyConfig {
    /// Step name.
    pub name: String,
    /// Model.
    pub model: String,
    /// Prompt.
    pub prompt: String,
    /// `max_tokens`.
    pub max_tokens: u32,
    /// Measured requests.
    pub iterations: u64,
}

/// The JSON Schema of the result document.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RunResult)).expect("a schema serializes")
}

/// The original velollm's per-benchmark entry for a step result.
pub fn legacy(step: &StepResult, model: &str, timestamp: &str) -> LegacyBenchmark {
    let mean = |s: &Option<Summary>| s.as_ref().map_or(0.0, |s| s.mean);
    let total = |s: &Option<Summary>| s.as_ref().map_or(0.0, |s| s.mean * s.count as f64);
    LegacyBenchmark {
        config: LegacyConfig {
            name: step.name.clone(),
            model: model.to_string(),
            prompt: step.config.prompt.clone(),
            max_tokens: step.config.max_tokens,
            iterations: step.requests,
        },
        tokens_per_second: mean(&step.metrics.decode_tokens_per_s),
        time_to_first_token_ms: mean(&step.metrics.ttft_ms),
        total_time_ms: total(&step.metrics.e2e_ms),
        total_tokens: total(&step.metrics.output_tokens).round() as u64,
        prompt_eval_count: mean(&step.metrics.prompt_tokens).round() as u64,
        eval_count: mean(&step.metrics.output_tokens).round() as u64,
        timestamp: timestamp.to_string(),
    }
}
