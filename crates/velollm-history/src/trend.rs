//! A metric over time: points (one per run and step), grouped into series of comparable runs.

use crate::metric::MetricSpec;
use crate::roi::{Prices, Roi};
use serde::Serialize;
use velollm_core::document::result::RunStatus;
use velollm_core::measure::names::Better;

/// One run's value of the trended metric in one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    /// When the run started (RFC 3339, as recorded).
    pub started_at: String,
    /// The run.
    pub run_id: String,
    /// The step.
    pub step: String,
    /// The metric's value in the step.
    pub value: f64,
    /// Target base URL.
    pub target_url: String,
    /// Model.
    pub model: String,
    /// Scenario.
    pub scenario: String,
    /// Run status.
    pub status: RunStatus,
    /// Successful requests of the whole run (the denominator of cost per request).
    pub run_succeeded: u64,
    /// Prompt tokens of the run's successful requests, when known.
    pub run_prompt_tokens: Option<f64>,
    /// Output tokens of the run's successful requests, when known.
    pub run_output_tokens: Option<f64>,
    /// What the run cost in US dollars, when recorded.
    pub run_cost_usd: Option<f64>,
}

/// A metric over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    /// The metric.
    pub metric: MetricSpec,
    /// Every point, oldest first (runs in start order, steps in run order).
    pub points: Vec<TrendPoint>,
}

/// The points of one target, scenario and step: values that can be compared over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series<'a> {
    /// Target base URL.
    pub target_url: &'a str,
    /// Scenario.
    pub scenario: &'a str,
    /// Step.
    pub step: &'a str,
    /// Points, oldest first.
    pub points: Vec<&'a TrendPoint>,
}

impl Trend {
    /// The points grouped by target, scenario and step, in order of first appearance.
    pub fn series(&self) -> Vec<Series<'_>> {
        let mut out: Vec<Series<'_>> = Vec::new();
        for p in &self.points {
            let key = (p.target_url.as_str(), p.scenario.as_str(), p.step.as_str());
            match out.iter_mut().find(|s| (s.target_url, s.scenario, s.step) == key) {
                Some(s) => s.points.push(p),
                None => out.push(Series { target_url: key.0, scenario: key.1, step: key.2, points: vec![p] }),
            }
        }
        out
    }
}

/// Whether a change of a metric is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Changed the better way.
    Better,
    /// Changed the worse way.
    Worse,
    /// No change, or the metric has no better direction.
    Neutral,
}

impl Series<'_> {
    /// The oldest point.
    pub fn first(&self) -> &TrendPoint {
        self.points[0]
    }

    /// The newest point.
    pub fn last(&self) -> &TrendPoint {
        self.points[self.points.len() - 1]
    }

    /// Change from the first to the last value in percent of the first; `None` when the first is 0.
    pub fn change_pct(&self) -> Option<f64> {
        let (a, b) = (self.first().value, self.last().value);
        (a != 0.0).then(|| (b - a) / a.abs() * 100.0)
    }

    /// Whether the last value is better than the first.
    pub fn direction(&self, metric: &MetricSpec) -> Direction {
        let d = self.last().value - self.first().value;
        match metric.better {
            _ if d == 0.0 => Direction::Neutral,
            Better::Lower if d < 0.0 => Direction::Better,
            Better::Higher if d > 0.0 => Direction::Better,
            Better::Neither => Direction::Neutral,
            _ => Direction::Worse,
        }
    }

    /// The return on investment between the first and the last run (see the crate documentation); `None`
    /// for a metric that is not a latency, or when the series spans fewer than two runs.
    pub fn roi(&self, metric: &MetricSpec, prices: Option<&Prices>) -> Option<Roi> {
        (metric.is_latency() && self.first().run_id != self.last().run_id)
            .then(|| Roi::between(self.first(), self.last(), prices))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::point;

    #[test]
    fn groups_by_step_and_summarises_change() {
        let trend = Trend {
            metric: MetricSpec::parse("ttft.p95").unwrap(),
            points: vec![point("a", "short", 200.0), point("a", "long", 900.0), point("b", "short", 150.0)],
        };
        let series = trend.series();
        assert_eq!(series.len(), 2);
        let short = &series[0];
        assert_eq!((short.step, short.points.len()), ("short", 2));
        assert_eq!(short.change_pct(), Some(-25.0));
        assert_eq!(short.direction(&trend.metric), Direction::Better);
        assert!(short.roi(&trend.metric, None).is_some());
        assert!(series[1].roi(&trend.metric, None).is_none(), "one run: nothing to compare");
        let tput = MetricSpec::parse("output_throughput").unwrap();
        assert_eq!(short.direction(&tput), Direction::Worse);
        assert!(short.roi(&tput, None).is_none(), "ROI is defined for latencies only");
    }
}
