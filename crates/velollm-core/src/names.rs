//! Metric names as users write them (`ttft`, `e2e`, `tok_s`, `success_rate`), their one canonical form,
//! their unit, and which direction is better. Thresholds, comparisons, gates and reports all resolve names
//! here, so an alias means the same thing everywhere.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The unit of a looked-up value, so `95%` and `2s` mean the right thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Milliseconds (threshold values may be written `2s`, `250ms`).
    Ms,
    /// A fraction in [0, 1] (threshold values may be written `95%`).
    Fraction,
    /// A percentage (threshold values `20%` or `20`).
    Percent,
    /// Anything else (counts, tokens/s, ratios).
    Plain,
}

/// Which change of a metric is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Latencies, failures: lower is better.
    Lower,
    /// Speeds, rates, scores: higher is better.
    Higher,
    /// Workload descriptions (token counts, request counts): neither.
    Neither,
}

/// What a metric name resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricName {
    /// The canonical name (`ttft`, `e2e`, `decode_tokens_per_s`, `success_rate`, …).
    pub canonical: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// Which direction is better.
    pub better: Better,
    /// True for a per-request distribution (has percentiles); false for a per-step scalar.
    pub distribution: bool,
}

/// Resolve a metric name or alias; `None` for an unknown name.
pub fn metric(name: &str) -> Option<MetricName> {
    use Better::*;
    use Unit::*;
    let (canonical, unit, better, distribution) = match name {
        "ttft" => ("ttft", Ms, Lower, true),
        "ttft_content" => ("ttft_content", Ms, Lower, true),
        "ttfb" => ("ttfb", Ms, Lower, true),
        "e2e" | "ttr" | "latency" => ("e2e", Ms, Lower, true),
        "tpot" => ("tpot", Ms, Lower, true),
        "itl" | "itl_chunk" => ("itl_chunk", Ms, Lower, true),
        "itl_token" => ("itl_token", Ms, Lower, true),
        "queue" | "queue_delay" => ("queue_delay", Ms, Lower, true),
        "network" | "network_overhead" => ("network_overhead", Ms, Lower, true),
        "reasoning" => ("reasoning", Ms, Lower, true),
        "decode" | "decode_tokens_per_s" => ("decode_tokens_per_s", Plain, Higher, true),
        "tokens_per_s" | "tok_s" => ("tokens_per_s", Plain, Higher, true),
        "output_tokens" => ("output_tokens", Plain, Neither, true),
        "prompt_tokens" => ("prompt_tokens", Plain, Neither, true),
        "cached_tokens" => ("cached_tokens", Plain, Higher, true),
        "server_prefill" => ("server_prefill", Ms, Lower, true),
        "server_decode" => ("server_decode", Ms, Lower, true),
        "server_load" => ("server_load", Ms, Lower, true),
        "success_rate" => ("success_rate", Fraction, Higher, false),
        "requests" => ("requests", Plain, Neither, false),
        "failed" | "errors" => ("failed", Plain, Lower, false),
        "throughput" | "request_throughput" => ("request_throughput", Plain, Higher, false),
        "output_throughput" => ("output_throughput", Plain, Higher, false),
        "goodput" => ("goodput", Plain, Higher, false),
        "good_fraction" => ("good_fraction", Fraction, Higher, false),
        "score" => ("score", Percent, Higher, false),
        "first_try" => ("first_try", Percent, Higher, false),
        _ => return None,
    };
    Some(MetricName { canonical, unit, better, distribution })
}

/// Split `ttft.p95` into the metric and the statistic (`mean` when none is written). Metric names have no
/// dots; the statistic may (`p99.9`).
pub fn split_stat(name: &str) -> (&str, &str) {
    name.split_once('.').unwrap_or((name, "mean"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_share_one_canonical_name() {
        assert_eq!(metric("ttr").unwrap().canonical, "e2e");
        assert_eq!(metric("tok_s").unwrap().better, Better::Higher);
        assert_eq!(metric("ttft").unwrap().unit, Unit::Ms);
        assert!(metric("nope").is_none());
        assert_eq!(split_stat("ttft.p99.9"), ("ttft", "p99.9"));
        assert_eq!(split_stat("ttft"), ("ttft", "mean"));
    }
}
