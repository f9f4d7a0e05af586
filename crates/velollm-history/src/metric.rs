//! Which metrics the database stores, and how a name such as `ttft.p95` maps to a stored `(metric, stat)`.
//!
//! Every metric of [`velollm_core::aggregate::registry`] is stored: each distribution with every statistic of [`STATS`],
//! each per-step scalar with [`SCALAR_STAT`]. Names, aliases, units and directions come from the registry;
//! values are read from step results with [`velollm_core::judge::threshold::Lookup`], so `ttft.p95` means here what
//! it means in thresholds and gates.

use crate::HistoryError;
use serde::Serialize;
use velollm_core::aggregate::registry;
use velollm_core::measure::names::{self, Better, Unit};

/// The statistics stored for every distribution (the names [`velollm_core::stats::Summary::get`] accepts,
/// without aliases).
pub const STATS: &[&str] = &["count", "mean", "stddev", "min", "p50", "p90", "p95", "p99", "p999", "max"];

/// The `stat` column of a per-step scalar.
pub const SCALAR_STAT: &str = "value";

/// A metric as the database stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MetricSpec {
    /// Canonical metric name (`ttft`, `success_rate`).
    pub metric: &'static str,
    /// Statistic (`p95`, `mean`), or [`SCALAR_STAT`] for a per-step scalar.
    pub stat: &'static str,
    /// Unit of the values.
    pub unit: Unit,
    /// Which direction is an improvement.
    pub better: Better,
}

impl MetricSpec {
    /// Parse `METRIC[.STAT]` (`ttft.p95`, `e2e.median`, `tok_s`, `success_rate`). A distribution without a
    /// statistic means its mean, as in thresholds.
    pub fn parse(text: &str) -> Result<MetricSpec, HistoryError> {
        let text = text.trim();
        let (name, stat) = names::split_stat(text);
        let resolved = registry::metric(name).ok_or_else(|| HistoryError::UnknownMetric(text.to_string()))?;
        let metric = resolved.canonical;
        let stat = if resolved.is_distribution() {
            canonical_stat(stat)
                .ok_or_else(|| HistoryError::UnknownStat { text: text.to_string(), stat: stat.to_string() })?
        } else if text.contains('.') {
            return Err(HistoryError::ScalarWithStat { metric: name.to_string(), stat: stat.to_string() });
        } else {
            SCALAR_STAT
        };
        Ok(MetricSpec { metric, stat, unit: resolved.unit, better: resolved.better })
    }

    /// The name as it is written back: `ttft.p95`, `success_rate`.
    pub fn name(&self) -> String {
        if self.stat == SCALAR_STAT { self.metric.to_string() } else { format!("{}.{}", self.metric, self.stat) }
    }

    /// True for a latency (milliseconds, lower is better): the metrics ROI is defined for.
    pub fn is_latency(&self) -> bool {
        self.unit == Unit::Ms && self.better == Better::Lower
    }
}

/// The stored name of a statistic or one of its aliases (`median` → `p50`, `p99.9` → `p999`).
fn canonical_stat(stat: &str) -> Option<&'static str> {
    let s = match stat {
        "avg" => "mean",
        "std" => "stddev",
        "median" => "p50",
        "p99.9" => "p999",
        other => other,
    };
    STATS.iter().copied().find(|x| *x == s)
}

/// Every metric name, for error messages.
pub(crate) fn known_names() -> String {
    registry::METRICS.iter().map(|m| m.canonical).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use velollm_core::stats::Summary;

    #[test]
    fn stat_aliases_mean_what_summary_get_means() {
        let s = Summary::of([1.0, 2.0, 3.0, 4.0, 10.0]).unwrap();
        for alias in
            ["mean", "avg", "std", "stddev", "min", "max", "median", "p50", "p90", "p95", "p99", "p99.9", "p999"]
        {
            let stored = canonical_stat(alias).unwrap();
            assert_eq!(s.get(alias), s.get(stored), "{alias} → {stored}");
        }
        for s_name in STATS {
            assert!(s.get(s_name).is_some(), "{s_name}");
        }
    }

    #[test]
    fn parses_names_aliases_and_scalars() {
        let t = MetricSpec::parse("ttft.p95").unwrap();
        assert_eq!((t.metric, t.stat, t.unit), ("ttft", "p95", Unit::Ms));
        assert!(t.is_latency());
        assert_eq!(MetricSpec::parse("ttr.median").unwrap().name(), "e2e.p50");
        assert_eq!(MetricSpec::parse("tok_s").unwrap().name(), "tokens_per_s.mean");
        assert_eq!(MetricSpec::parse("ttft.p99.9").unwrap().stat, "p999");
        let s = MetricSpec::parse("output_throughput").unwrap();
        assert_eq!((s.metric, s.stat), ("output_throughput", SCALAR_STAT));
        assert!(!s.is_latency());
        assert!(matches!(MetricSpec::parse("nope.p95"), Err(HistoryError::UnknownMetric(_))));
        assert!(matches!(MetricSpec::parse("ttft.p42"), Err(HistoryError::UnknownStat { .. })));
        assert!(matches!(MetricSpec::parse("success_rate.p95"), Err(HistoryError::ScalarWithStat { .. })));
        let msg = MetricSpec::parse("nope").unwrap_err().to_string();
        assert!(msg.contains("ttft") && msg.contains("success_rate"), "{msg}");
    }
}
