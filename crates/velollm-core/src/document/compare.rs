//! Before/after comparison of two runs, per step and metric: the change of the median and of p95, their
//! 95 % bootstrap confidence intervals, a Mann-Whitney U p-value, and a verdict.
//!
//! A verdict is *improved* or *regressed* only when the change is statistically significant:
//!
//! * median (`p50`) rows: the rank test gives `p < α` **and** the bootstrap interval of the difference of
//!   medians excludes 0;
//! * `p95` rows: the bootstrap interval of the difference of p95s excludes 0 (tail percentiles need at least
//!   [`MIN_TAIL_SAMPLES`] requests per run);
//! * success rate: a two-proportion z-test gives `p < α` (its interval is the Wald interval).
//!
//! Otherwise the verdict is *no significant change*, or *too few samples* below [`MIN_SAMPLES`] requests per
//! run. Per-step throughputs are one number per run: their change is shown but cannot be tested. Each row is
//! tested at level α on its own; with many rows, expect about α of the unchanged ones to be flagged by chance.

use crate::aggregate::step::StepResult;
use crate::document::result::RunResult;
use crate::judge::threshold::{step_metric, step_scalar};
use crate::measure::names::{Better, Unit};
use crate::stats::{bootstrap_diff_cis, mann_whitney_u, percentile_select, two_proportion_p};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Fewest successful requests per run for any verdict.
pub const MIN_SAMPLES: usize = 5;
/// Fewest successful requests per run for a verdict on p95.
pub const MIN_TAIL_SAMPLES: usize = 20;

/// The per-request metrics compared by default (those present in both runs).
pub const DEFAULT_METRICS: &[&str] = &[
    "ttft",
    "e2e",
    "tpot",
    "decode_tokens_per_s",
    "tokens_per_s",
    "network_overhead",
    "queue_delay",
    "server_prefill",
    "server_decode",
];

/// How to compare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompareOptions {
    /// Significance level of each test.
    pub alpha: f64,
    /// Confidence level of the intervals.
    pub level: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Per-request metrics to compare (names or aliases); empty for [`DEFAULT_METRICS`].
    pub metrics: Vec<String>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { alpha: 0.05, level: 0.95, resamples: 2000, seed: 0x5EED, metrics: Vec::new() }
    }
}

/// What a change means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Significantly better.
    Improved,
    /// Significantly worse.
    Regressed,
    /// Significantly different, for a metric that is neither better nor worse when it moves.
    Changed,
    /// Not significant at the chosen level.
    NoSignificantChange,
    /// Too few requests in one of the runs to decide.
    TooFewSamples,
    /// One value per run (throughputs), or no per-request samples: shown, not tested.
    NotTested,
}

impl Change {
    /// Short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Change::Improved => "improved",
            Change::Regressed => "regressed",
            Change::Changed => "changed",
            Change::NoSignificantChange => "no significant change",
            Change::TooFewSamples => "too few samples",
            Change::NotTested => "not tested",
        }
    }
}

/// One metric statistic compared between the runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Row {
    /// Canonical metric name (`ttft`, `success_rate`, …).
    pub metric: String,
    /// The statistic (`p50`, `p95`, or `value` for per-step scalars).
    pub stat: String,
    /// Unit of the values.
    pub unit: Unit,
    /// Which direction is better.
    pub better: Better,
    /// Values behind the baseline figure (successful requests, or requests for success rate).
    pub n_baseline: u64,
    /// Values behind the candidate figure.
    pub n_candidate: u64,
    /// Baseline figure.
    pub baseline: f64,
    /// Candidate figure.
    pub candidate: f64,
    /// candidate − baseline.
    pub delta: f64,
    /// (candidate − baseline) ÷ |baseline| × 100; absent when the baseline is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_pct: Option<f64>,
    /// Confidence interval of `delta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<(f64, f64)>,
    /// The interval relative to the baseline, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_pct: Option<(f64, f64)>,
    /// p-value of the test behind the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// The verdict.
    pub change: Change,
    /// Why the verdict is what it is, when not obvious.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// One step of the baseline against the same step of the candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepComparison {
    /// Step name in the baseline.
    pub step: String,
    /// Step name in the candidate, when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_step: Option<String>,
    /// Compared statistics.
    pub rows: Vec<Row>,
    /// Time saved (E2E median) against cost per request, when both runs were priced (`--prices`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roi: Option<crate::measure::cost::Roi>,
}

/// A candidate run compared with the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Comparison {
    /// Label of the baseline (usually its file name).
    pub baseline: String,
    /// Label of the candidate.
    pub candidate: String,
    /// Options used.
    pub options: CompareOptions,
    /// Matched steps.
    pub steps: Vec<StepComparison>,
    /// Steps present in only one of the runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmatched: Vec<String>,
    /// Warnings about the runs themselves (partial runs, different models or scenarios).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Comparison {
    /// Rows with a given verdict, with their step.
    pub fn rows_with(&self, change: Change) -> impl Iterator<Item = (&str, &Row)> {
        self.steps.iter().flat_map(move |s| s.rows.iter().filter(move |r| r.change == change).map(|r| (&*s.step, r)))
    }
}

/// Pairs of steps to compare: by name; two single-step runs are paired whatever their names.
pub fn match_steps<'a>(a: &'a RunResult, b: &'a RunResult) -> (Vec<(&'a StepResult, &'a StepResult)>, Vec<String>) {
    if a.steps.len() == 1 && b.steps.len() == 1 {
        return (vec![(&a.steps[0], &b.steps[0])], Vec::new());
    }
    let mut pairs = Vec::new();
    let mut unmatched = Vec::new();
    for s in &a.steps {
        match b.steps.iter().find(|t| t.name == s.name) {
            Some(t) => pairs.push((s, t)),
            None => unmatched.push(format!("{} (baseline only)", s.name)),
        }
    }
    for t in b.steps.iter().filter(|t| !a.steps.iter().any(|s| s.name == t.name)) {
        unmatched.push(format!("{} (candidate only)", t.name));
    }
    (pairs, unmatched)
}

/// Compare `candidate` with `baseline`.
pub fn compare(
    baseline: &RunResult,
    candidate: &RunResult,
    labels: (&str, &str),
    options: &CompareOptions,
) -> Comparison {
    let (pairs, unmatched) = match_steps(baseline, candidate);
    let mut warnings = Vec::new();
    for (label, run) in [(labels.0, baseline), (labels.1, candidate)] {
        if run.status != crate::document::result::RunStatus::Complete {
            warnings.push(format!("{label} is {:?}: it holds only what was measured", run.status).to_lowercase());
        }
    }
    let (ma, mb) = (&baseline.meta, &candidate.meta);
    if ma.target.model != mb.target.model {
        warnings.push(format!("the models differ: {} vs {}", ma.target.model, mb.target.model));
    }
    if ma.scenario != mb.scenario {
        warnings.push(format!("the scenarios differ: {} vs {}", ma.scenario, mb.scenario));
    }
    let steps = pairs
        .into_iter()
        .map(|(a, b)| StepComparison {
            step: a.name.clone(),
            candidate_step: (a.name != b.name).then(|| b.name.clone()),
            rows: compare_steps(a, b, options),
            roi: roi(a, b),
        })
        .collect();
    Comparison {
        baseline: labels.0.to_string(),
        candidate: labels.1.to_string(),
        options: options.clone(),
        steps,
        unmatched,
        warnings,
    }
}

/// The ROI of the candidate step over the baseline step: E2E medians and costs per request.
fn roi(a: &StepResult, b: &StepResult) -> Option<crate::measure::cost::Roi> {
    let (ca, cb) = (a.cost.as_ref()?, b.cost.as_ref()?);
    let (ea, eb) = (a.metrics.e2e_ms.as_ref()?.p50, b.metrics.e2e_ms.as_ref()?.p50);
    Some(crate::measure::cost::Roi::between(ea, eb, ca, cb))
}

/// Every compared row of two steps.
pub fn compare_steps(a: &StepResult, b: &StepResult, options: &CompareOptions) -> Vec<Row> {
    let mut rows = Vec::new();
    let defaults: Vec<String>;
    let metrics = if options.metrics.is_empty() {
        defaults = DEFAULT_METRICS.iter().map(|s| s.to_string()).collect();
        &defaults
    } else {
        &options.metrics
    };
    for name in metrics {
        let Some(m) = crate::aggregate::registry::metric(name) else { continue };
        if !m.is_distribution() {
            rows.extend(scalar_row(a, b, m.canonical));
            continue;
        }
        match (
            crate::aggregate::registry::samples(&a.samples, m.canonical),
            crate::aggregate::registry::samples(&b.samples, m.canonical),
        ) {
            (Some(x), Some(y)) if !x.is_empty() && !y.is_empty() => {
                rows.extend(distribution_rows(m.canonical, m.unit, m.better, &x, &y, options));
            }
            _ => rows.extend(summary_rows(a, b, m.canonical)),
        }
    }
    if options.metrics.is_empty() {
        rows.extend(success_row(a, b, options.alpha));
        for name in ["output_throughput", "request_throughput"] {
            rows.extend(scalar_row(a, b, name));
        }
    }
    rows
}

impl Row {
    /// A row of `metric` (any name or alias) comparing `baseline` with `candidate` over `n` values, not yet
    /// tested: no interval, no p-value, verdict [`Change::NotTested`].
    fn new(metric: &str, stat: &str, unit: Unit, n: (u64, u64), baseline: f64, candidate: f64) -> Row {
        let m = crate::aggregate::registry::metric(metric);
        Row {
            metric: m.map_or(metric, |m| m.canonical).to_string(),
            stat: stat.to_string(),
            unit,
            better: m.map_or(Better::Neither, |m| m.better),
            n_baseline: n.0,
            n_candidate: n.1,
            baseline,
            candidate,
            delta: candidate - baseline,
            delta_pct: pct(candidate - baseline, baseline),
            ci: None,
            ci_pct: None,
            p_value: None,
            change: Change::NotTested,
            note: String::new(),
        }
    }
}

fn pct(delta: f64, base: f64) -> Option<f64> {
    (base != 0.0 && base.is_finite()).then(|| delta / base.abs() * 100.0)
}

fn verdict(better: Better, delta: f64, significant: bool) -> Change {
    match (significant, better) {
        (false, _) => Change::NoSignificantChange,
        (true, Better::Neither) => Change::Changed,
        (true, Better::Lower) if delta < 0.0 => Change::Improved,
        (true, Better::Higher) if delta > 0.0 => Change::Improved,
        (true, _) => Change::Regressed,
    }
}

fn distribution_rows(metric: &str, unit: Unit, better: Better, x: &[f64], y: &[f64], o: &CompareOptions) -> Vec<Row> {
    let rank = mann_whitney_u(x, y);
    let (n1, n2) = (x.len(), y.len());
    let mut rows = Vec::new();
    // Both intervals from the same resamples; none when even the median has too few values.
    let cis = if n1.min(n2) >= MIN_SAMPLES {
        bootstrap_diff_cis(x, y, &[0.5, 0.95], o.level, o.resamples, o.seed)
    } else {
        None
    };
    for (i, (stat, q)) in [("p50", 0.5), ("p95", 0.95)].into_iter().enumerate() {
        let base = percentile_select(&mut x.to_vec(), q).unwrap_or(f64::NAN);
        let cand = percentile_select(&mut y.to_vec(), q).unwrap_or(f64::NAN);
        let need = if stat == "p50" { MIN_SAMPLES } else { MIN_TAIL_SAMPLES };
        let mut row = Row::new(metric, stat, unit, (n1 as u64, n2 as u64), base, cand);
        row.change = Change::TooFewSamples;
        if n1.min(n2) < need {
            row.note = format!("n = {n1} vs {n2}: {stat} needs at least {need} requests per run");
            rows.push(row);
            continue;
        }
        let ci = cis.as_ref().map(|c| c[i]);
        row.ci = ci;
        row.ci_pct = ci.and_then(|(lo, hi)| Some((pct(lo, base)?, pct(hi, base)?)));
        let excludes_zero = ci.is_some_and(|(lo, hi)| lo > 0.0 || hi < 0.0);
        let significant = if stat == "p50" {
            row.p_value = rank.map(|r| r.p);
            excludes_zero && row.p_value.is_some_and(|p| p < o.alpha)
        } else {
            excludes_zero
        };
        row.change = verdict(better, row.delta, significant);
        rows.push(row);
    }
    rows
}

/// Rows from summaries alone (results without per-request samples): shown, not tested.
fn summary_rows(a: &StepResult, b: &StepResult, metric: &str) -> Vec<Row> {
    let (Some((sa, unit)), Some((sb, _))) = (step_metric(a, metric), step_metric(b, metric)) else {
        return Vec::new();
    };
    [("p50", sa.p50, sb.p50), ("p95", sa.p95, sb.p95)]
        .into_iter()
        .map(|(stat, base, cand)| Row {
            note: "no per-request samples in a result (schema 1.0): re-run with this velollm to test it".into(),
            ..Row::new(metric, stat, unit, (sa.count, sb.count), base, cand)
        })
        .collect()
}

fn scalar_row(a: &StepResult, b: &StepResult, metric: &str) -> Option<Row> {
    let ((base, unit), (cand, _)) = (step_scalar(a, metric)?, step_scalar(b, metric)?);
    let n = (a.succeeded, b.succeeded);
    Some(Row { note: "one value per run".into(), ..Row::new(metric, "value", unit, n, base, cand) })
}

fn success_row(a: &StepResult, b: &StepResult, alpha: f64) -> Option<Row> {
    let p = two_proportion_p(a.succeeded, a.requests, b.succeeded, b.requests)?;
    let (p1, p2) = (a.success_rate, b.success_rate);
    let (n1, n2) = (a.requests as f64, b.requests as f64);
    let half = 1.959963984540054 * (p1 * (1.0 - p1) / n1 + p2 * (1.0 - p2) / n2).sqrt();
    let delta = p2 - p1;
    let few = (a.requests as usize).min(b.requests as usize) < MIN_SAMPLES;
    let row = Row::new("success_rate", "value", Unit::Fraction, (a.requests, b.requests), p1, p2);
    let change = if few { Change::TooFewSamples } else { verdict(Better::Higher, delta, p < alpha && delta != 0.0) };
    Some(Row { ci: Some((delta - half, delta + half)), p_value: Some(p), change, ..row })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::step::StepSamples;
    use crate::fixtures::{run, step};
    use proptest::prelude::*;

    fn row<'a>(rows: &'a [Row], metric: &str, stat: &str) -> &'a Row {
        rows.iter().find(|r| r.metric == metric && r.stat == stat).unwrap()
    }

    #[test]
    fn a_clear_speedup_is_improved_and_noise_is_not() {
        let base: Vec<f64> = (0..40).map(|i| 200.0 + (i * 37 % 23) as f64).collect();
        let fast: Vec<f64> = base.iter().map(|v| v * 0.6).collect();
        let rows = compare_steps(&step("s", &base), &step("s", &fast), &CompareOptions::default());
        let r = row(&rows, "ttft", "p50");
        assert_eq!(r.change, Change::Improved, "{r:?}");
        assert!(r.delta_pct.unwrap() < -35.0 && r.p_value.unwrap() < 1e-6);
        let (lo, hi) = r.ci.unwrap();
        assert!(lo < r.delta && r.delta < hi && hi < 0.0);
        assert_eq!(row(&rows, "ttft", "p95").change, Change::Improved);
        assert_eq!(row(&rows, "success_rate", "value").change, Change::NoSignificantChange);
        assert_eq!(row(&rows, "output_throughput", "value").change, Change::NotTested);

        // The same values in another order: nothing changed.
        let shuffled: Vec<f64> = base.iter().rev().copied().collect();
        let rows = compare_steps(&step("s", &base), &step("s", &shuffled), &CompareOptions::default());
        assert!(rows.iter().all(|r| !matches!(r.change, Change::Improved | Change::Regressed)), "{rows:#?}");
    }

    #[test]
    fn small_runs_say_so() {
        let rows = compare_steps(&step("s", &[100.0, 101.0, 99.0]), &step("s", &[10.0, 11.0]), &Default::default());
        let r = row(&rows, "ttft", "p50");
        assert_eq!(r.change, Change::TooFewSamples);
        assert!(r.note.contains("at least 5"), "{}", r.note);
        let tail = row(&rows, "ttft", "p95");
        assert_eq!(tail.change, Change::TooFewSamples);
    }

    #[test]
    fn results_without_samples_are_shown_untested() {
        let mut a = step("s", &[100.0; 10]);
        let mut b = step("s", &[50.0; 10]);
        a.samples = StepSamples::default();
        b.samples = StepSamples::default();
        let r = compare_steps(&a, &b, &Default::default());
        let r = row(&r, "ttft", "p50");
        assert_eq!((r.change, r.delta), (Change::NotTested, -50.0));
    }

    #[test]
    fn steps_match_by_name_or_as_single_steps() {
        let a = run(vec![step("one", &[1.0; 5]), step("two", &[1.0; 5])]);
        let b = run(vec![step("two", &[1.0; 5]), step("three", &[1.0; 5])]);
        let c = compare(&a, &b, ("a", "b"), &Default::default());
        assert_eq!(c.steps.len(), 1);
        assert_eq!(c.unmatched, vec!["one (baseline only)", "three (candidate only)"]);
        let single = compare(
            &run(vec![step("x", &[1.0; 5])]),
            &run(vec![step("y", &[1.0; 5])]),
            ("a", "b"),
            &Default::default(),
        );
        assert_eq!(single.steps[0].candidate_step.as_deref(), Some("y"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Comparing a run's values with a reordering of themselves never yields a verdict.
        #[test]
        fn identical_distributions_never_improve(v in prop::collection::vec(1f64..1e4, 5..60), rot in 0usize..60) {
            let mut w = v.clone();
            w.rotate_left(rot % v.len());
            let rows = compare_steps(&step("s", &v), &step("s", &w), &CompareOptions { resamples: 300, ..Default::default() });
            for r in rows.iter().filter(|r| r.metric == "ttft") {
                prop_assert!(matches!(r.change, Change::NoSignificantChange | Change::TooFewSamples), "{:?}", r);
            }
        }

        /// A large, consistent slowdown is always a regression once there are enough requests.
        #[test]
        fn a_doubling_is_a_regression(v in prop::collection::vec(100f64..200.0, 10..50)) {
            let slow: Vec<f64> = v.iter().map(|x| x * 2.0 + 50.0).collect();
            let rows = compare_steps(&step("s", &v), &step("s", &slow), &CompareOptions { resamples: 300, ..Default::default() });
            prop_assert_eq!(row(&rows, "ttft", "p50").change, Change::Regressed);
        }
    }
}
