//! A result document flattened into what the database stores: one run row and long/narrow metric rows.

use crate::HistoryError;
use crate::metric::{SCALAR_STAT, STATS};
use velollm_core::aggregate::registry;
use velollm_core::aggregate::step::StepResult;
use velollm_core::document::result::{RunResult, RunStatus};
use velollm_core::judge::threshold::Lookup;
use velollm_core::stats::Summary;

/// The run-level columns of a result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunFacts {
    pub started_ms: i64,
    pub status: &'static str,
    pub requests: u64,
    pub succeeded: u64,
    /// Σ over steps of mean prompt tokens × successful requests; `None` when a step with successes lacks them.
    pub prompt_tokens: Option<f64>,
    /// Σ over steps of mean output tokens × successful requests; `None` when a step with successes lacks them.
    pub output_tokens: Option<f64>,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p95_ms: Option<f64>,
    pub e2e_p50_ms: Option<f64>,
}

/// One stored value: `(step index, step name, metric, stat, value)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricRow {
    pub step_index: usize,
    pub step: String,
    pub metric: &'static str,
    pub stat: &'static str,
    pub value: f64,
}

/// The stored name of a run status.
pub(crate) fn status_name(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Partial => "partial",
        RunStatus::Interrupted => "interrupted",
        RunStatus::Complete => "complete",
    }
}

/// A run status from its stored name.
pub(crate) fn status_from_name(s: &str) -> Option<RunStatus> {
    [RunStatus::Partial, RunStatus::Interrupted, RunStatus::Complete].into_iter().find(|x| status_name(*x) == s)
}

/// Milliseconds since the Unix epoch of an RFC 3339 time.
pub(crate) fn unix_ms(run_id: &str, time: &str) -> Result<i64, HistoryError> {
    time.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| HistoryError::BadTime { run_id: run_id.to_string(), value: time.to_string() })
}

/// The run-level facts of a result.
pub(crate) fn run_facts(run: &RunResult) -> Result<RunFacts, HistoryError> {
    let started_ms = unix_ms(&run.meta.run_id, &run.meta.started_at)?;
    let total = |name: &str| -> Option<f64> {
        run.steps
            .iter()
            .filter(|s| s.succeeded > 0)
            .map(|s| s.lookup(&format!("{name}.mean")).map(|(mean, _)| mean * s.succeeded as f64))
            .sum()
    };
    Ok(RunFacts {
        started_ms,
        status: status_name(run.status),
        requests: run.steps.iter().map(|s| s.requests).sum(),
        succeeded: run.steps.iter().map(|s| s.succeeded).sum(),
        prompt_tokens: total("prompt_tokens"),
        output_tokens: total("output_tokens"),
        ttft_p50_ms: headline(&run.steps, "ttft", "p50"),
        ttft_p95_ms: headline(&run.steps, "ttft", "p95"),
        e2e_p50_ms: headline(&run.steps, "e2e", "p50"),
    })
}

/// A run's headline statistic: the step's own summary for a one-step run, otherwise the statistic over the
/// pooled per-request samples of every step (`None` when the result has no samples).
fn headline(steps: &[StepResult], metric: &str, stat: &str) -> Option<f64> {
    match steps {
        [] => None,
        [one] => one.lookup(&format!("{metric}.{stat}")).map(|(v, _)| v),
        many => {
            let pooled: Vec<f64> = many
                .iter()
                .filter_map(|s| velollm_core::aggregate::registry::samples(&s.samples, metric))
                .flatten()
                .collect();
            Summary::of(pooled)?.get(stat)
        }
    }
}

/// Every statistic of every distribution and every scalar of every step, finite values only.
pub(crate) fn metric_rows(run: &RunResult) -> Vec<MetricRow> {
    let mut rows = Vec::new();
    for (step_index, step) in run.steps.iter().enumerate() {
        let mut push = |metric: &'static str, stat: &'static str, value: f64| {
            if value.is_finite() {
                rows.push(MetricRow { step_index, step: step.name.clone(), metric, stat, value });
            }
        };
        for metric in registry::distributions() {
            for &stat in STATS {
                if let Some((v, _)) = step.lookup(&format!("{metric}.{stat}")) {
                    push(metric, stat, v);
                }
            }
        }
        for metric in registry::scalars() {
            if let Some((v, _)) = step.lookup(metric) {
                push(metric, SCALAR_STAT, v);
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::run;

    #[test]
    fn flattens_every_summary_stat_and_scalar() {
        let r = run("a", "2026-01-01T00:00:00Z", &[("short", 100.0), ("long", 300.0)]);
        let rows = metric_rows(&r);
        let find = |step: &str, metric: &str, stat: &str| {
            rows.iter().find(|x| x.step == step && x.metric == metric && x.stat == stat).map(|x| x.value)
        };
        assert_eq!(find("short", "ttft", "p95"), r.steps[0].metrics.ttft_ms.as_ref().map(|s| s.p95));
        assert_eq!(find("long", "e2e", "p50"), r.steps[1].metrics.e2e_ms.as_ref().map(|s| s.p50));
        assert_eq!(find("short", "success_rate", SCALAR_STAT), Some(1.0));
        assert_eq!(find("long", "output_throughput", SCALAR_STAT), Some(r.steps[1].rates.output_token_throughput));
        assert_eq!(find("short", "goodput", SCALAR_STAT), None, "absent values are not stored");
        for stat in STATS {
            assert!(find("short", "ttft", stat).is_some(), "{stat}");
        }
    }

    #[test]
    fn run_facts_total_tokens_and_pool_headlines() {
        let r = run("a", "2026-01-01T00:00:00Z", &[("short", 100.0), ("long", 300.0)]);
        let f = run_facts(&r).unwrap();
        assert_eq!(f.started_ms, 1_767_225_600_000);
        assert_eq!((f.requests, f.succeeded), (8, 8));
        assert_eq!(f.prompt_tokens, Some(8.0 * 20.0));
        assert_eq!(f.output_tokens, Some(8.0 * 10.0));
        // Pooled over both steps: ttft values 100..=103 and 300..=303.
        let pooled = Summary::of([100.0, 101.0, 102.0, 103.0, 300.0, 301.0, 302.0, 303.0]).unwrap();
        assert_eq!(f.ttft_p50_ms, Some(pooled.p50));
        let one = run("b", "2026-01-01T00:00:00Z", &[("short", 100.0)]);
        assert_eq!(run_facts(&one).unwrap().ttft_p95_ms, one.steps[0].metrics.ttft_ms.as_ref().map(|s| s.p95));
        let mut bad = one.clone();
        bad.meta.started_at = "yesterday".into();
        assert!(matches!(run_facts(&bad), Err(HistoryError::BadTime { .. })));
    }
}
