//! The vocabulary of metrics: units, which direction is better, and how a name splits into a metric and a
//! statistic (`ttft.p95`). The metrics themselves are declared in [`crate::aggregate::registry`].

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

/// Split `ttft.p95` into the metric and the statistic (`mean` when none is written). Metric names have no
/// dots; the statistic may (`p99.9`).
pub fn split_stat(name: &str) -> (&str, &str) {
    name.split_once('.').unwrap_or((name, "mean"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_metric_and_statistic() {
        assert_eq!(split_stat("ttft.p99.9"), ("ttft", "p99.9"));
        assert_eq!(split_stat("ttft"), ("ttft", "mean"));
    }
}
