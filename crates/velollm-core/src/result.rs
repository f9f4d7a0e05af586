//! The versioned result document written by `velollm bench` (DESIGN §6).
//!
//! Its JSON Schema is generated from these types and committed as `docs/result-schema.json`; a test fails
//! when the committed schema is stale. The document is rewritten atomically while a run progresses, with
//! `status: "partial"` until the run ends, so a killed run still leaves a valid file.

use crate::load::{Bounds, LoadProfile};
use crate::metrics::StepRates;
use crate::record::ErrorClass;
use crate::stats::Summary;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    pub verdicts: Vec<crate::threshold::Verdict>,
    /// What velollm observed of the server: launch, cold start, resources, metrics, health events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<crate::server::ServerReport>,
    /// The client's own cost, measured against its loopback server just before the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selfcheck: Option<crate::selfcheck::SelfCheck>,
    /// Whether the steps' figures can be trusted given that cost (`trustworthy: false` flags the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<crate::selfcheck::Trust>,
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
    pub hardware: Option<crate::hardware::Hardware>,
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

/// Aggregates of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepResult {
    /// Step name.
    pub name: String,
    /// What the step sent.
    pub config: StepConfig,
    /// Measured requests (warm-up excluded).
    pub requests: u64,
    /// Successful measured requests.
    pub succeeded: u64,
    /// Failed measured requests.
    pub failed: u64,
    /// succeeded ÷ requests.
    pub success_rate: f64,
    /// Warm-up requests sent and excluded.
    pub warmup_requests: u64,
    /// True when the step did not run to its end.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// Latency and token metrics over successful requests.
    pub metrics: StepMetrics,
    /// Throughput and goodput.
    pub rates: StepRates,
    /// Failures by class.
    pub errors: BTreeMap<ErrorClass, ErrorSummary>,
    /// How many requests took their output token count from each source.
    pub token_sources: BTreeMap<String, u64>,
    /// Connections opened and reused.
    pub connections: ConnectionStats,
    /// Check results, when the step has checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityStats>,
    /// Per-request values of the successful requests, for comparisons and charts.
    #[serde(default, skip_serializing_if = "StepSamples::is_empty")]
    pub samples: StepSamples,
    /// The server's own metrics over the step (Prometheus scrapes just before and just after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_metrics: Option<crate::prom::ServerMetrics>,
    /// Speculative draft tokens summed over the step's requests, when they reported them (llama.cpp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drafts: Option<crate::speculative::DraftCounts>,
    /// What a caching proxy in front of the server declared about the answers (`x-velollm-cache`, `x-cache`,
    /// …): hits and the rest, with their mean TTFT; absent when no answer carried such a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_cache: Option<crate::proxy_cache::ProxyCacheStats>,
    /// The step's cost, when a prices file priced the model (`--prices`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::StepCost>,
}

/// Per-request values of a step's successful measured requests, one column per metric, in completion order
/// (index `i` of every column is the same request). `null` marks a value the request did not have.
///
/// These are what `velollm compare` resamples and what report charts plot; the summaries in
/// [`StepMetrics`] are computed from the same values, except in a step of more than 100,000 measured requests,
/// where the columns are a uniform random sample of them (`retained_of` says of how many). Milliseconds are
/// rounded to the microsecond.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepSamples {
    /// Seconds from the step's first scheduled request to this request's end.
    pub end_s: Vec<f64>,
    /// Time to first output, ms.
    pub ttft_ms: Vec<Option<f64>>,
    /// End-to-end latency, ms.
    pub e2e_ms: Vec<Option<f64>>,
    /// Time per output token, ms.
    pub tpot_ms: Vec<Option<f64>>,
    /// Client queue delay, ms.
    pub queue_delay_ms: Vec<Option<f64>>,
    /// DNS + connect + TLS, ms (0 on a reused connection).
    pub network_overhead_ms: Vec<Option<f64>>,
    /// Decode speed, tokens/s.
    pub decode_tokens_per_s: Vec<Option<f64>>,
    /// Output tokens ÷ E2E, tokens/s.
    pub tokens_per_s: Vec<Option<f64>>,
    /// Prompt tokens.
    pub prompt_tokens: Vec<Option<u64>>,
    /// Output tokens.
    pub output_tokens: Vec<u64>,
    /// Cached prompt tokens, when reported.
    #[serde(default, skip_serializing_if = "all_none")]
    pub cached_tokens: Vec<Option<u64>>,
    /// Turn within its conversation, for multi-turn steps.
    #[serde(default, skip_serializing_if = "all_none")]
    pub turn: Vec<Option<u32>>,
    /// Server-measured prefill time, ms.
    #[serde(default, skip_serializing_if = "all_none")]
    pub server_prefill_ms: Vec<Option<f64>>,
    /// Server-measured decode time, ms.
    #[serde(default, skip_serializing_if = "all_none")]
    pub server_decode_ms: Vec<Option<f64>>,
    /// When the columns are a sample (seeded reservoir sampling, in arrival order), the number of successful
    /// requests they were drawn from; 0 (absent) when they hold every successful request.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retained_of: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn all_none<T>(v: &[Option<T>]) -> bool {
    v.iter().all(Option::is_none)
}

impl StepSamples {
    /// No request recorded.
    pub fn is_empty(&self) -> bool {
        self.end_s.is_empty()
    }

    /// Number of requests.
    pub fn len(&self) -> usize {
        self.end_s.len()
    }
}

/// How the step's answers fared against its checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QualityStats {
    /// Mean share of criteria passed per successful request (0–1).
    pub score: f64,
    /// Share of conversations whose first answer passed every check (0–1).
    pub first_try_rate: f64,
    /// Correction turns sent after failed checks.
    pub corrections: u64,
    /// Each criterion's pass count.
    pub criteria: Vec<CriterionStats>,
}

/// One criterion over a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CriterionStats {
    /// Criterion name.
    pub name: String,
    /// Requests that passed it.
    pub passed: u64,
    /// Requests it was checked on.
    pub total: u64,
    /// A failure detail seen, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub example: String,
}

/// What a step sent and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepConfig {
    /// First prompt, or a description of the synthetic workload.
    pub prompt: String,
    /// Requested synthetic prompt length in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u32>,
    /// `max_tokens` requested.
    pub max_tokens: u32,
    /// Whether exact output length was requested.
    pub exact_output: bool,
    /// Load profile.
    pub load: LoadProfile,
    /// Request count, duration and warm-up.
    pub bounds: Bounds,
    /// Turns per conversation, for multi-turn steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<u32>,
    /// Tags (provider, task type, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Per-step metric summaries (milliseconds unless the name says otherwise).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepMetrics {
    /// Time to first generated output.
    pub ttft_ms: Option<Summary>,
    /// Time to first answer content (reasoning excluded).
    pub ttft_content_ms: Option<Summary>,
    /// Time to response headers.
    pub ttfb_ms: Option<Summary>,
    /// End-to-end latency (done − sent).
    pub e2e_ms: Option<Summary>,
    /// End-to-end latency from the scheduled instant.
    pub e2e_from_scheduled_ms: Option<Summary>,
    /// Time to first output from the scheduled instant.
    pub ttft_from_scheduled_ms: Option<Summary>,
    /// Client queue delay (sent − scheduled).
    pub queue_delay_ms: Option<Summary>,
    /// DNS + connect + TLS (0 for reused connections).
    pub network_overhead_ms: Option<Summary>,
    /// Time per output token after the first.
    pub tpot_ms: Option<Summary>,
    /// Gaps between output chunks, pooled over requests.
    pub itl_chunk_ms: Option<Summary>,
    /// Gaps per token, pooled over requests (when per-chunk tokens are known).
    pub itl_token_ms: Option<Summary>,
    /// Decode speed, tokens/s.
    pub decode_tokens_per_s: Option<Summary>,
    /// Output tokens ÷ E2E, tokens/s.
    pub tokens_per_s: Option<Summary>,
    /// Output tokens per request.
    pub output_tokens: Option<Summary>,
    /// Prompt tokens per request.
    pub prompt_tokens: Option<Summary>,
    /// Cached prompt tokens per request.
    pub cached_tokens: Option<Summary>,
    /// Reasoning time before the first content chunk.
    pub reasoning_ms: Option<Summary>,
    /// Server-measured prefill time (Ollama `prompt_eval_duration`, llama.cpp `prompt_ms`).
    pub server_prefill_ms: Option<Summary>,
    /// Server-measured decode time (Ollama `eval_duration`, llama.cpp `predicted_ms`).
    pub server_decode_ms: Option<Summary>,
    /// Server-measured model load time (Ollama `load_duration`).
    pub server_load_ms: Option<Summary>,
}

/// Failures of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorSummary {
    /// Number of requests that failed this way.
    pub count: u64,
    /// The first message seen.
    pub example: String,
}

/// Connection reuse during a step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectionStats {
    /// New connections opened.
    pub opened: u64,
    /// Requests that reused an open connection.
    pub reused: u64,
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
