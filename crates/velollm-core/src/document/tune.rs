//! `velollm tune`: a grid of server configurations, each benchmarked on the same workload and seed, turned
//! into one table of trade-offs and the best configuration by an objective (DESIGN §8).
//!
//! The objective is a per-request metric and a percentile (`ttft.p95`, `e2e.p50`, `tokens_per_s.p50`),
//! computed over every successful request of a configuration's run, all steps pooled. The best
//! configuration is the one whose objective is best (lowest for latencies, highest for speeds); its margin
//! over the runner-up comes with a bootstrap confidence interval of the difference (the same bootstrap as
//! `velollm compare`), so a "best" that is within noise says so.

use crate::aggregate::registry::{Metric, metric};
use crate::document::result::{RunResult, RunStatus};
use crate::measure::names::{Better, Unit, split_stat};
use crate::stats::{bootstrap_diff_ci, percentile_select};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Grid `key=v1,v2,…` options, expanded in order: the first key varies slowest.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Keys and their values, in the order given.
    pub axes: Vec<(String, Vec<String>)>,
}

impl Grid {
    /// Parse `--grid` options (`n_ctx=1024,2048`; an empty value is allowed: `cache=,--no-cache-prompt`).
    pub fn parse(options: &[String]) -> Result<Grid, String> {
        let mut axes: Vec<(String, Vec<String>)> = Vec::new();
        for o in options {
            let Some((k, vs)) = o.split_once('=') else {
                return Err(format!("--grid {o}: write KEY=V1,V2,… (e.g. --grid n_ctx=1024,2048)"));
            };
            let k = k.trim();
            if k.is_empty() || k == "port" {
                return Err(format!("--grid {o}: the key must name a {{placeholder}} of --launch other than {{port}}"));
            }
            if axes.iter().any(|(x, _)| x == k) {
                return Err(format!("--grid {k} is given twice: put every value in one --grid {k}=V1,V2"));
            }
            let values: Vec<String> = vs.split(',').map(|v| v.trim().to_string()).collect();
            axes.push((k.to_string(), values));
        }
        if axes.is_empty() {
            return Err("tune needs at least one --grid KEY=V1,V2".into());
        }
        Ok(Grid { axes })
    }

    /// Every configuration, in order.
    pub fn configurations(&self) -> Vec<BTreeMap<String, String>> {
        let mut out = vec![BTreeMap::new()];
        for (k, values) in &self.axes {
            out = out
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.insert(k.clone(), v.clone());
                        c
                    })
                })
                .collect();
        }
        out
    }

    /// A configuration's label, in grid order: `n_ctx=1024 cache=(empty)`.
    pub fn label(&self, config: &BTreeMap<String, String>) -> String {
        let parts: Vec<String> = self
            .axes
            .iter()
            .map(|(k, _)| match config.get(k).map(String::as_str) {
                Some("") => format!("{k}=(empty)"),
                Some(v) => format!("{k}={v}"),
                None => format!("{k}=?"),
            })
            .collect();
        parts.join(" ")
    }

    /// A file-name-safe slug of a configuration (`n_ctx-1024_cache-empty`).
    pub fn slug(&self, config: &BTreeMap<String, String>) -> String {
        let clean = |s: &str| -> String {
            let t: String =
                s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' { c } else { '-' }).collect();
            let t = t.trim_matches('-').to_string();
            if t.is_empty() { "empty".into() } else { t }
        };
        let parts: Vec<String> = self
            .axes
            .iter()
            .map(|(k, _)| format!("{}-{}", clean(k), clean(config.get(k).map_or("", String::as_str))))
            .collect();
        parts.join("_")
    }
}

/// What `tune` optimises: a per-request metric at a percentile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Objective {
    /// As written (`ttft.p95`).
    pub name: String,
    /// Canonical metric name.
    pub metric: String,
    /// The percentile, in [0, 1].
    pub q: f64,
    /// Lower or higher is better.
    pub better: Better,
    /// Unit of the values.
    pub unit: Unit,
}

impl Objective {
    /// Parse `metric.pNN` (`ttft.p95`, `e2e.p50`, `tokens_per_s.median`).
    pub fn parse(text: &str) -> Result<Objective, String> {
        let (m, stat) = split_stat(text);
        let stat = if text.contains('.') { stat } else { "p50" };
        let name: &Metric = metric(m)
            .filter(|n| n.is_distribution() && n.better != Better::Neither)
            .ok_or_else(|| {
                format!("--objective {text}: use a per-request metric and percentile such as ttft.p95, e2e.p50, tpot.p99 or tokens_per_s.p50")
            })?;
        let q = match stat {
            "median" | "p50" => 0.5,
            s => s
                .strip_prefix('p')
                .and_then(|p| p.parse::<f64>().ok())
                .filter(|p| (0.0..=100.0).contains(p))
                .map(|p| p / 100.0)
                .ok_or_else(|| format!("--objective {text}: the statistic must be a percentile (p50, p95, p99…)"))?,
        };
        Ok(Objective { name: text.to_string(), metric: name.canonical.into(), q, better: name.better, unit: name.unit })
    }

    /// Every successful request's value of the metric in a run, all steps pooled.
    pub fn values(&self, run: &RunResult) -> Vec<f64> {
        pooled(run, &self.metric)
    }

    /// The objective's value over a run.
    pub fn value(&self, run: &RunResult) -> Option<f64> {
        percentile_select(&mut self.values(run), self.q)
    }

    /// True when `a` is better than `b`.
    fn beats(&self, a: f64, b: f64) -> bool {
        match self.better {
            Better::Higher => a > b,
            _ => a < b,
        }
    }
}

/// Every successful request's value of a per-request metric in a run, all steps pooled.
fn pooled(run: &RunResult, metric: &str) -> Vec<f64> {
    run.steps
        .iter()
        .filter_map(|s| crate::aggregate::registry::samples(&s.samples, metric))
        .flatten()
        .filter(|v| v.is_finite())
        .collect()
}

/// One configuration's row of the trade-off table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TuneRow {
    /// The configuration's label (`n_ctx=1024 n_batch=256`).
    pub label: String,
    /// Its grid values.
    pub params: BTreeMap<String, String>,
    /// Its result file.
    pub result: String,
    /// The run's status.
    pub status: RunStatus,
    /// The objective's value.
    pub objective: Option<f64>,
    /// TTFT p50 / p95, ms, all steps pooled.
    pub ttft_p50_ms: Option<f64>,
    /// TTFT p95, ms.
    pub ttft_p95_ms: Option<f64>,
    /// E2E p50, ms.
    pub e2e_p50_ms: Option<f64>,
    /// E2E p95, ms.
    pub e2e_p95_ms: Option<f64>,
    /// Output tokens per second over the measured time of every step.
    pub output_tokens_per_s: Option<f64>,
    /// Peak RSS of the server's process tree, bytes.
    pub rss_peak_bytes: Option<u64>,
    /// Spawn → ready, ms.
    pub ready_ms: Option<f64>,
    /// Measured requests.
    pub requests: u64,
    /// Failed measured requests.
    pub failed: u64,
    /// Why the configuration has no numbers (launch failed, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TuneRow {
    /// The row of a configuration whose run produced `run`.
    pub fn of(
        label: String,
        params: BTreeMap<String, String>,
        result: String,
        run: &RunResult,
        o: &Objective,
    ) -> TuneRow {
        let pooled = |m: &str, q: f64| percentile_select(&mut pooled(run, m), q);
        let (tokens, seconds) = run.steps.iter().fold((0.0, 0.0), |(t, s), step| {
            (t + step.rates.output_token_throughput * step.rates.duration_s, s + step.rates.duration_s)
        });
        let server = run.server.as_ref();
        TuneRow {
            label,
            params,
            result,
            status: run.status,
            objective: o.value(run),
            ttft_p50_ms: pooled("ttft", 0.5),
            ttft_p95_ms: pooled("ttft", 0.95),
            e2e_p50_ms: pooled("e2e", 0.5),
            e2e_p95_ms: pooled("e2e", 0.95),
            output_tokens_per_s: (seconds > 0.0).then(|| tokens / seconds),
            rss_peak_bytes: server.and_then(|s| s.resources.as_ref()).and_then(|r| r.rss_peak_bytes),
            ready_ms: server.and_then(|s| s.cold_start.as_ref()).map(|c| c.spawn_to_ready_ms),
            requests: run.steps.iter().map(|s| s.requests).sum(),
            failed: run.steps.iter().map(|s| s.failed).sum(),
            error: run.status_reason.clone().filter(|_| run.status != RunStatus::Complete),
        }
    }

    /// The row of a configuration that produced no result.
    pub fn failed(label: String, params: BTreeMap<String, String>, result: String, error: String) -> TuneRow {
        TuneRow {
            label,
            params,
            result,
            status: RunStatus::Interrupted,
            objective: None,
            ttft_p50_ms: None,
            ttft_p95_ms: None,
            e2e_p50_ms: None,
            e2e_p95_ms: None,
            output_tokens_per_s: None,
            rss_peak_bytes: None,
            ready_ms: None,
            requests: 0,
            failed: 0,
            error: Some(error),
        }
    }
}

/// The best configuration's lead over the runner-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Margin {
    /// Runner-up's objective − best's (positive = the best is better, for a lower-is-better objective;
    /// best − runner-up for a higher-is-better one).
    pub difference: f64,
    /// The difference relative to the runner-up's value.
    pub relative: f64,
    /// Confidence interval of the difference (same sign convention), from the bootstrap.
    pub ci_low: f64,
    /// Upper end.
    pub ci_high: f64,
    /// Confidence level of the interval.
    pub level: f64,
    /// True when the interval excludes 0: the best is better beyond noise.
    pub significant: bool,
}

/// The outcome of a tune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TuneSummary {
    /// The launch command template.
    pub template: String,
    /// The objective.
    pub objective: Objective,
    /// Every configuration, in grid order.
    pub rows: Vec<TuneRow>,
    /// Index of the best row (only complete runs without failures compete).
    pub best: Option<usize>,
    /// Index of the runner-up.
    pub runner_up: Option<usize>,
    /// The best's margin over the runner-up.
    pub margin: Option<Margin>,
}

/// Rank the configurations: `runs[i]` is row `i`'s result (when it has one). Only complete runs with no
/// failed request compete; the margin interval is a `level` bootstrap with `resamples` resamples.
pub fn summarise(
    template: &str,
    objective: &Objective,
    rows: Vec<TuneRow>,
    runs: &[Option<&RunResult>],
    level: f64,
    resamples: usize,
    seed: u64,
) -> TuneSummary {
    let mut ranked: Vec<(usize, f64)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == RunStatus::Complete && r.failed == 0 && r.requests > 0)
        .filter_map(|(i, r)| Some((i, r.objective?)))
        .collect();
    ranked.sort_by(|a, b| {
        if objective.beats(a.1, b.1) {
            std::cmp::Ordering::Less
        } else if objective.beats(b.1, a.1) {
            std::cmp::Ordering::Greater
        } else {
            a.0.cmp(&b.0)
        }
    });
    let best = ranked.first().map(|r| r.0);
    let runner_up = ranked.get(1).map(|r| r.0);
    let margin = match (best, runner_up) {
        (Some(b), Some(r)) => margin(objective, runs, b, r, level, resamples, seed),
        _ => None,
    };
    TuneSummary { template: template.to_string(), objective: objective.clone(), rows, best, runner_up, margin }
}

fn margin(
    o: &Objective,
    runs: &[Option<&RunResult>],
    best: usize,
    runner: usize,
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<Margin> {
    let (b, r) = (o.values(runs.get(best).copied()??), o.values(runs.get(runner).copied()??));
    let (bv, rv) = (percentile_select(&mut b.clone(), o.q)?, percentile_select(&mut r.clone(), o.q)?);
    // bootstrap_diff_ci gives stat(y) − stat(x): runner-up − best for lower-is-better, best − runner-up else.
    let (lo, hi, difference) = match o.better {
        Better::Higher => {
            let (lo, hi) = bootstrap_diff_ci(&r, &b, o.q, level, resamples, seed)?;
            (lo, hi, bv - rv)
        }
        _ => {
            let (lo, hi) = bootstrap_diff_ci(&b, &r, o.q, level, resamples, seed)?;
            (lo, hi, rv - bv)
        }
    };
    Some(Margin {
        difference,
        relative: if rv != 0.0 { difference / rv.abs() } else { 0.0 },
        ci_low: lo,
        ci_high: hi,
        level,
        significant: lo > 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn grid(opts: &[&str]) -> Grid {
        Grid::parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn grids_expand_in_order_with_empty_values() {
        let g = grid(&["n_ctx=1024,2048", "cache=,--no-cache-prompt"]);
        let c = g.configurations();
        assert_eq!(c.len(), 4);
        assert_eq!(g.label(&c[0]), "n_ctx=1024 cache=(empty)");
        assert_eq!(g.label(&c[3]), "n_ctx=2048 cache=--no-cache-prompt");
        assert_eq!(g.slug(&c[1]), "n_ctx-1024_cache-no-cache-prompt");
        assert_eq!(g.slug(&c[0]), "n_ctx-1024_cache-empty");
    }

    #[test]
    fn grid_errors_name_the_fix() {
        let e = |o: &[&str]| Grid::parse(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap_err();
        assert!(e(&["n_ctx"]).contains("KEY=V1,V2"));
        assert!(e(&["port=1,2"]).contains("other than {port}"));
        assert!(e(&["a=1", "a=2"]).contains("twice"));
        assert!(e(&[]).contains("at least one"));
    }

    #[test]
    fn objectives_parse() {
        let o = Objective::parse("ttft.p95").unwrap();
        assert_eq!((o.metric.as_str(), o.q, o.better), ("ttft", 0.95, Better::Lower));
        assert_eq!(Objective::parse("tok_s").unwrap().q, 0.5);
        assert!(Objective::parse("ttft.mean").unwrap_err().contains("percentile"));
        assert!(Objective::parse("requests").is_err());
    }

    fn run(ttfts: &[f64]) -> RunResult {
        fixtures::run(vec![fixtures::step("s", ttfts)])
    }

    #[test]
    fn the_best_configuration_wins_with_a_significant_margin() {
        let o = Objective::parse("ttft.p50").unwrap();
        let slow: Vec<f64> = (0..40).map(|i| 200.0 + f64::from(i)).collect();
        let fast: Vec<f64> = (0..40).map(|i| 100.0 + f64::from(i)).collect();
        let runs = [run(&slow), run(&fast)];
        let rows: Vec<TuneRow> = runs
            .iter()
            .enumerate()
            .map(|(i, r)| TuneRow::of(format!("c{i}"), BTreeMap::new(), String::new(), r, &o))
            .collect();
        let s = summarise("t", &o, rows, &[Some(&runs[0]), Some(&runs[1])], 0.95, 500, 1);
        assert_eq!((s.best, s.runner_up), (Some(1), Some(0)));
        let m = s.margin.unwrap();
        assert!((m.difference - 100.0).abs() < 1e-9, "{m:?}");
        assert!(m.significant && m.ci_low > 50.0 && m.ci_high < 150.0, "{m:?}");
    }

    #[test]
    fn identical_configurations_are_not_significantly_different() {
        let o = Objective::parse("ttft.p95").unwrap();
        let v: Vec<f64> = (0..40).map(|i| 100.0 + f64::from(i * 7 % 13)).collect();
        let runs = [run(&v), run(&v)];
        let rows: Vec<TuneRow> =
            runs.iter().map(|r| TuneRow::of("c".into(), BTreeMap::new(), String::new(), r, &o)).collect();
        let s = summarise("t", &o, rows, &[Some(&runs[0]), Some(&runs[1])], 0.95, 500, 1);
        assert_eq!(s.best, Some(0), "ties go to the first configuration");
        assert!(!s.margin.unwrap().significant);
    }

    #[test]
    fn failed_configurations_do_not_compete() {
        let o = Objective::parse("ttft.p50").unwrap();
        let runs = [run(&[100.0, 110.0])];
        let rows = vec![
            TuneRow::failed("bad".into(), BTreeMap::new(), String::new(), "exited".into()),
            TuneRow::of("ok".into(), BTreeMap::new(), String::new(), &runs[0], &o),
        ];
        let s = summarise("t", &o, rows, &[None, Some(&runs[0])], 0.95, 100, 1);
        assert_eq!((s.best, s.runner_up, s.margin), (Some(1), None, None));
    }
}
