//! Which server engine a scrape comes from, and the one table that maps each engine's metric names to
//! velollm's canonical server metrics.
//!
//! Every source name in [`MAPPING`] was checked against the source cited beside it. Names are the sample
//! names as they appear on `/metrics` (prometheus_client, used by vLLM and SGLang, appends `_total` to a
//! counter declared without it; TGI's Rust `metrics` exporter writes names as declared).

use super::parse::{Sample, Scrape};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The inference server a scrape comes from, detected from its metric-name prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// llama.cpp's `llama-server` (`llamacpp:` prefix).
    Llamacpp,
    /// vLLM (`vllm:` prefix).
    Vllm,
    /// SGLang (`sglang:` prefix).
    Sglang,
    /// Hugging Face text-generation-inference (`tgi_` prefix).
    Tgi,
    /// velollm's own gateway, `velollm proxy` (`velollm_proxy_` prefix): what it added in front of a server.
    VelollmProxy,
    /// None of the above: the scrape is kept but nothing is mapped.
    Unknown,
}

impl Engine {
    /// The metric-name prefix that identifies the engine (empty for [`Engine::Unknown`]).
    pub fn prefix(self) -> &'static str {
        match self {
            Engine::Llamacpp => "llamacpp:",
            Engine::Vllm => "vllm:",
            Engine::Sglang => "sglang:",
            Engine::Tgi => "tgi_",
            Engine::VelollmProxy => "velollm_proxy_",
            Engine::Unknown => "",
        }
    }

    /// The engine's display name.
    pub fn display_name(self) -> &'static str {
        match self {
            Engine::Llamacpp => "llama.cpp",
            Engine::Vllm => "vLLM",
            Engine::Sglang => "SGLang",
            Engine::Tgi => "TGI",
            Engine::VelollmProxy => "velollm proxy",
            Engine::Unknown => "unknown",
        }
    }

    /// Whether the engine's prompt-token counter already includes the tokens served from the prefix cache.
    ///
    /// llama.cpp's does not: its HELP text reads "Number of prompt tokens processed, excluding cached tokens"
    /// (see `testdata/prometheus/llamacpp.txt`, a real capture). SGLang counts the whole prompt and the cached
    /// part separately (`observe_one_finished_request(prompt_tokens, cached_tokens)` in
    /// sgl-project/sglang `python/sglang/srt/metrics/collector.py`); vLLM counts every prefill token
    /// (`IterationStats.update_from_output` adds `prompt_len`, vllm-project/vllm `vllm/v1/metrics/stats.py`).
    pub fn prompt_tokens_include_cached(self) -> bool {
        !matches!(self, Engine::Llamacpp)
    }

    const KNOWN: [Engine; 5] = [Engine::Llamacpp, Engine::Vllm, Engine::Sglang, Engine::Tgi, Engine::VelollmProxy];
}

/// Detect the engine: the known prefix carried by the most sample names (ties go to the first in the order
/// llama.cpp, vLLM, SGLang, TGI); [`Engine::Unknown`] when no sample carries one.
pub fn detect_engine(scrape: &Scrape) -> Engine {
    let mut counts = [0usize; Engine::KNOWN.len()];
    for sample in &scrape.samples {
        if let Some(i) = Engine::KNOWN.iter().position(|e| sample.name.starts_with(e.prefix())) {
            counts[i] += 1;
        }
    }
    let mut best = Engine::Unknown;
    let mut best_count = 0;
    for (engine, count) in Engine::KNOWN.iter().zip(counts) {
        if count > best_count {
            best = *engine;
            best_count = count;
        }
    }
    best
}

/// A canonical server-side metric velollm reports, whatever the engine calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServerMetric {
    /// Prompt tokens processed (counter; whether cached tokens are included depends on the engine, see
    /// [`Engine::prompt_tokens_include_cached`]).
    PromptTokens,
    /// Generated tokens (counter).
    GenerationTokens,
    /// Prompt tokens served from the prefix cache (counter).
    CachedPromptTokens,
    /// Prefix-cache lookups, in tokens (counter).
    PrefixCacheQueries,
    /// Prefix-cache hits, in tokens (counter).
    PrefixCacheHits,
    /// Speculative-decoding drafts, i.e. verification steps (counter).
    SpecDrafts,
    /// Speculative draft tokens proposed (counter).
    SpecDraftTokens,
    /// Speculative draft tokens accepted by the target model (counter).
    SpecAcceptedTokens,
    /// Sum of per-request queue times in seconds (a histogram's `_sum`, a counter).
    QueueSecondsSum,
    /// Number of queue-time observations (a histogram's `_count`, a counter).
    QueueCount,
    /// Time spent processing prompts, summed over requests, in seconds (counter).
    PromptSeconds,
    /// Time spent generating tokens, summed over requests, in seconds (counter).
    DecodeSeconds,
    /// KV-cache usage, 0–1 (gauge; averaged over label sets).
    KvCacheUsage,
    /// Requests waiting in the server's queue (gauge; summed over label sets).
    RequestsWaiting,
    /// Requests being processed (gauge; summed over label sets).
    RequestsRunning,
    /// A prefix-cache hit rate the server computes itself, 0–1 (gauge; averaged over label sets).
    ServerCacheHitRate,
    /// A mean speculative acceptance length the server computes itself (gauge; averaged over label sets).
    ServerSpecAcceptLength,
    /// A speculative acceptance rate the server computes itself, 0–1 (gauge; averaged over label sets).
    ServerSpecAcceptRate,
    /// Extra (hedged) requests a gateway sent (counter).
    HedgedRequests,
    /// Hedged branches a gateway cancelled because another won (counter).
    HedgesCancelled,
}

impl ServerMetric {
    /// Whether the metric only ever increases (so a step's value is a delta).
    pub fn is_counter(self) -> bool {
        !matches!(
            self,
            ServerMetric::KvCacheUsage
                | ServerMetric::RequestsWaiting
                | ServerMetric::RequestsRunning
                | ServerMetric::ServerCacheHitRate
                | ServerMetric::ServerSpecAcceptLength
                | ServerMetric::ServerSpecAcceptRate
        )
    }

    /// How a gauge combines over label sets (engines, ranks): counts add up, ratios are averaged.
    pub(crate) fn sums_over_labels(self) -> bool {
        self.is_counter() || matches!(self, ServerMetric::RequestsWaiting | ServerMetric::RequestsRunning)
    }
}

/// What kind of sample a source name is on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A counter sample.
    Counter,
    /// A gauge sample.
    Gauge,
    /// The `_sum` sample of a histogram.
    HistogramSum,
    /// The `_count` sample of a histogram.
    HistogramCount,
}

/// One row of the mapping: `source` on `engine` is `metric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// The engine that exposes the name.
    pub engine: Engine,
    /// The sample name on `/metrics`.
    pub source: &'static str,
    /// The canonical metric it feeds.
    pub metric: ServerMetric,
    /// The kind of sample it is.
    pub kind: SourceKind,
}

const fn row(engine: Engine, source: &'static str, metric: ServerMetric, kind: SourceKind) -> Mapping {
    Mapping { engine, source, metric, kind }
}

use Engine::{Llamacpp, Sglang, Tgi, VelollmProxy, Vllm};
use ServerMetric as M;
use SourceKind::{Counter, Gauge, HistogramCount, HistogramSum};

/// The mapping. When several rows give the same engine and metric (a renamed metric), the first one present
/// in a step's scrapes is used and the others are ignored, so a server exposing both names is not counted twice.
///
/// Sources:
/// * llama.cpp: `testdata/prometheus/llamacpp.txt` (a real capture of llama-server, llama-cpp-python 0.3.36's
///   vendored build); `llamacpp:kv_cache_usage_ratio` from older builds, documented in ggml-org/llama.cpp
///   `examples/server/README.md` ("KV-cache usage. `1` means 100 percent usage.") and since removed.
/// * vLLM: vllm-project/vllm `vllm/v1/metrics/loggers.py` (`PrometheusStatLogger`), `vllm/v1/spec_decode/metrics.py`
///   (`SpecDecodingProm`), the V0 `vllm/engine/metrics.py`, and `docs/design/metrics.md` (V0 and deprecated names).
/// * SGLang: sgl-project/sglang `python/sglang/srt/metrics/collector.py` (`SchedulerMetricsCollector`,
///   `TokenizerMetricsCollector`) and `docs/references/production_metrics.md`.
/// * TGI: huggingface/text-generation-inference `docs/source/reference/metrics.md` and `router/src/server.rs`
///   (histogram buckets for `*duration`, `tgi_request_input_length`, `tgi_request_generated_tokens`).
pub const MAPPING: &[Mapping] = &[
    // llama.cpp — all names in the real capture, except kv_cache_usage_ratio (older builds, README).
    row(Llamacpp, "llamacpp:prompt_tokens_total", M::PromptTokens, Counter),
    row(Llamacpp, "llamacpp:tokens_predicted_total", M::GenerationTokens, Counter),
    row(Llamacpp, "llamacpp:prompt_tokens_cached_total", M::CachedPromptTokens, Counter),
    row(Llamacpp, "llamacpp:prompt_seconds_total", M::PromptSeconds, Counter),
    row(Llamacpp, "llamacpp:tokens_predicted_seconds_total", M::DecodeSeconds, Counter),
    row(Llamacpp, "llamacpp:spec_decode_num_drafts_total", M::SpecDrafts, Counter),
    row(Llamacpp, "llamacpp:spec_decode_num_draft_tokens_total", M::SpecDraftTokens, Counter),
    row(Llamacpp, "llamacpp:spec_decode_num_accepted_tokens_total", M::SpecAcceptedTokens, Counter),
    row(Llamacpp, "llamacpp:kv_cache_usage_ratio", M::KvCacheUsage, Gauge),
    row(Llamacpp, "llamacpp:requests_deferred", M::RequestsWaiting, Gauge),
    row(Llamacpp, "llamacpp:requests_processing", M::RequestsRunning, Gauge),
    // vLLM — loggers.py declares counters without `_total` ("vllm:prompt_tokens"); the exposition adds it.
    row(Vllm, "vllm:prompt_tokens_total", M::PromptTokens, Counter),
    row(Vllm, "vllm:generation_tokens_total", M::GenerationTokens, Counter),
    // Recent loggers.py: "vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external)".
    row(Vllm, "vllm:prompt_tokens_cached_total", M::CachedPromptTokens, Counter),
    row(Vllm, "vllm:prefix_cache_queries_total", M::PrefixCacheQueries, Counter),
    // Deprecated in 0.9 ("Renamed as vllm:prefix_cache_queries"), loggers.py.
    row(Vllm, "vllm:gpu_prefix_cache_queries_total", M::PrefixCacheQueries, Counter),
    row(Vllm, "vllm:prefix_cache_hits_total", M::PrefixCacheHits, Counter),
    row(Vllm, "vllm:gpu_prefix_cache_hits_total", M::PrefixCacheHits, Counter),
    // V0 gauge, listed under "v0 Metrics" in docs/design/metrics.md.
    row(Vllm, "vllm:gpu_prefix_cache_hit_rate", M::ServerCacheHitRate, Gauge),
    row(Vllm, "vllm:spec_decode_num_drafts_total", M::SpecDrafts, Counter),
    row(Vllm, "vllm:spec_decode_num_draft_tokens_total", M::SpecDraftTokens, Counter),
    row(Vllm, "vllm:spec_decode_num_accepted_tokens_total", M::SpecAcceptedTokens, Counter),
    // V0 gauge, legacy speculative-decoding list in docs/design/metrics.md.
    row(Vllm, "vllm:spec_decode_draft_acceptance_rate", M::ServerSpecAcceptRate, Gauge),
    row(Vllm, "vllm:request_queue_time_seconds_sum", M::QueueSecondsSum, HistogramSum),
    row(Vllm, "vllm:request_queue_time_seconds_count", M::QueueCount, HistogramCount),
    row(Vllm, "vllm:request_prefill_time_seconds_sum", M::PromptSeconds, HistogramSum),
    row(Vllm, "vllm:request_decode_time_seconds_sum", M::DecodeSeconds, HistogramSum),
    row(Vllm, "vllm:kv_cache_usage_perc", M::KvCacheUsage, Gauge),
    // Deprecated in 0.9 ("Renamed as vllm:kv_cache_usage_perc"), loggers.py; the V0 name.
    row(Vllm, "vllm:gpu_cache_usage_perc", M::KvCacheUsage, Gauge),
    row(Vllm, "vllm:num_requests_waiting", M::RequestsWaiting, Gauge),
    row(Vllm, "vllm:num_requests_running", M::RequestsRunning, Gauge),
    // SGLang — collector.py declares the counters with `_total` already.
    row(Sglang, "sglang:prompt_tokens_total", M::PromptTokens, Counter),
    row(Sglang, "sglang:generation_tokens_total", M::GenerationTokens, Counter),
    row(Sglang, "sglang:cached_tokens_total", M::CachedPromptTokens, Counter),
    row(Sglang, "sglang:cache_hit_rate", M::ServerCacheHitRate, Gauge),
    row(Sglang, "sglang:spec_accept_length", M::ServerSpecAcceptLength, Gauge),
    row(Sglang, "sglang:spec_accept_rate", M::ServerSpecAcceptRate, Gauge),
    row(Sglang, "sglang:queue_time_seconds_sum", M::QueueSecondsSum, HistogramSum),
    row(Sglang, "sglang:queue_time_seconds_count", M::QueueCount, HistogramCount),
    row(Sglang, "sglang:token_usage", M::KvCacheUsage, Gauge),
    row(Sglang, "sglang:num_queue_reqs", M::RequestsWaiting, Gauge),
    row(Sglang, "sglang:num_running_reqs", M::RequestsRunning, Gauge),
    // TGI — no token counters: the per-request histograms' sums stand in ("Input token length per request",
    // "Generated tokens per request"). TGI exposes no KV-cache, prefix-cache or acceptance metric.
    row(Tgi, "tgi_request_input_length_sum", M::PromptTokens, HistogramSum),
    row(Tgi, "tgi_request_generated_tokens_sum", M::GenerationTokens, HistogramSum),
    row(Tgi, "tgi_request_queue_duration_sum", M::QueueSecondsSum, HistogramSum),
    row(Tgi, "tgi_request_queue_duration_count", M::QueueCount, HistogramCount),
    row(Tgi, "tgi_queue_size", M::RequestsWaiting, Gauge),
    row(Tgi, "tgi_batch_current_size", M::RequestsRunning, Gauge),
    // velollm proxy — its own exposition (crates/velollm-proxy/src/metrics.rs).
    row(VelollmProxy, "velollm_proxy_hedges_total", M::HedgedRequests, Counter),
    row(VelollmProxy, "velollm_proxy_hedge_cancelled_total", M::HedgesCancelled, Counter),
];

/// The rows for one engine, in table (priority) order.
pub fn mappings_for(engine: Engine) -> impl Iterator<Item = &'static Mapping> {
    MAPPING.iter().filter(move |m| m.engine == engine)
}

/// A stable identity for one series (label set) of a sample name.
pub(crate) fn series_key(sample: &Sample) -> Vec<(String, String)> {
    let mut labels = sample.labels.clone();
    labels.sort();
    labels
}

/// The value of one mapped metric in one scrape, combined over label sets; `None` when no sample has the name.
pub fn scrape_value(scrape: &Scrape, mapping: &Mapping) -> Option<f64> {
    let values: Vec<f64> = scrape.samples_named(mapping.source).map(|s| s.value).filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return None;
    }
    let sum: f64 = values.iter().sum();
    Some(if mapping.metric.sums_over_labels() { sum } else { sum / values.len() as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::prom::parse;
    use std::collections::BTreeSet;

    #[test]
    fn table_kinds_agree_with_metrics() {
        for m in MAPPING {
            let counter_like = matches!(m.kind, Counter | HistogramSum | HistogramCount);
            assert_eq!(counter_like, m.metric.is_counter(), "{m:?}");
            assert!(m.source.starts_with(m.engine.prefix()), "{m:?}");
            match m.kind {
                HistogramSum => assert!(m.source.ends_with("_sum"), "{m:?}"),
                HistogramCount => assert!(m.source.ends_with("_count"), "{m:?}"),
                _ => {}
            }
        }
        let unique: BTreeSet<_> = MAPPING.iter().map(|m| (m.engine, m.source)).collect();
        assert_eq!(unique.len(), MAPPING.len(), "a source is mapped twice");
    }

    #[test]
    fn detection_by_prefix() {
        let p = |t: &str| parse(t).unwrap();
        assert_eq!(detect_engine(&p("llamacpp:prompt_tokens_total 1\n")), Engine::Llamacpp);
        assert_eq!(
            detect_engine(&p("python_gc_objects_collected_total 1\nvllm:num_requests_running{engine=\"0\"} 0\n")),
            Engine::Vllm
        );
        assert_eq!(detect_engine(&p("sglang:token_usage 0.1\n")), Engine::Sglang);
        assert_eq!(detect_engine(&p("tgi_queue_size 0\n")), Engine::Tgi);
        assert_eq!(detect_engine(&p("process_cpu_seconds_total 3\n")), Engine::Unknown);
        assert_eq!(detect_engine(&Scrape::default()), Engine::Unknown);
    }

    #[test]
    fn values_combine_over_label_sets() {
        let scrape = parse(
            "vllm:num_requests_running{engine=\"0\"} 2\nvllm:num_requests_running{engine=\"1\"} 3\n\
             vllm:kv_cache_usage_perc{engine=\"0\"} 0.2\nvllm:kv_cache_usage_perc{engine=\"1\"} 0.4\n\
             vllm:kv_cache_usage_perc{engine=\"2\"} NaN\n",
        )
        .unwrap();
        let find = |source: &str| MAPPING.iter().find(|m| m.source == source).unwrap();
        assert_eq!(scrape_value(&scrape, find("vllm:num_requests_running")), Some(5.0));
        let kv = scrape_value(&scrape, find("vllm:kv_cache_usage_perc")).unwrap();
        assert!((kv - 0.3).abs() < 1e-12);
        assert_eq!(scrape_value(&scrape, find("vllm:num_requests_waiting")), None);
    }
}
