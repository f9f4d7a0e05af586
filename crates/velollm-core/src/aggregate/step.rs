//! One step's aggregates in the result document: what the step sent, its counts, metric summaries, rates,
//! errors, connections, quality, kept per-request samples, server metrics, drafts, a proxy's cache verdicts and
//! cost. Judging (thresholds, the registry) and analyses read steps here; the run document
//! ([`crate::document::result`]) holds them.

use crate::measure::metrics::StepRates;
use crate::measure::record::ErrorClass;
use crate::measure::speculative::Acceptance;
use crate::stats::Summary;
use crate::workload::load::{Bounds, LoadProfile};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    pub server_metrics: Option<crate::measure::prom::ServerMetrics>,
    /// Speculative draft tokens summed over the step's requests, when they reported them (llama.cpp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drafts: Option<crate::measure::speculative::DraftCounts>,
    /// What a caching proxy in front of the server declared about the answers (`x-velollm-cache`, `x-cache`,
    /// …): hits and the rest, with their mean TTFT; absent when no answer carried such a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_cache: Option<crate::measure::proxy_cache::ProxyCacheStats>,
    /// What a hedging proxy in front of the server declared about the answers (`x-velollm-hedge`): answers
    /// raced, extra requests and their prompt tokens; absent when no answer carried the header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_hedge: Option<crate::measure::proxy_hedge::ProxyHedgeStats>,
    /// The step's sessions (calls sharing a conversation id: an agent trace's sessions, multi-turn chats);
    /// absent when no call belonged to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<crate::measure::sessions::SessionStats>,
    /// The step's cost, when a prices file priced the model (`--prices`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::measure::cost::StepCost>,
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

impl StepResult {
    /// The step's speculative-decoding acceptance from the best source it has; `None` when nothing was
    /// drafted or reported.
    pub fn acceptance(&self) -> Option<Acceptance> {
        Acceptance::of(self.server_metrics.as_ref(), self.drafts.as_ref())
    }
}
