//! The success criteria of the source documents' optimization phases (`seeds/000_…txt`, "Critères de succès
//! par phase"), as presets of `velollm compare --criteria NAME`.
//!
//! Each criterion is evaluated on a candidate against the baseline over all matched steps together: every
//! successful request of those steps is pooled. A criterion passes only when its figure reaches the target
//! **and**, for a change, the change is significant (Mann-Whitney U, `p < α`); a change that reaches the
//! target without significance is *inconclusive*. What these results cannot show — costs of runs without
//! `--prices`, routing and semantic-cache figures before velollm's proxy exists, speculative acceptance from a
//! server whose counters were not scraped — is *not measured*, with the reason, never a guess.

use crate::aggregate::step::StepResult;
use crate::document::compare::match_steps;
use crate::document::result::RunResult;
use crate::stats::{mann_whitney_u, percentile_select};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The presets: name and what they check.
pub const PRESETS: &[(&str, &str)] = &[
    ("prompt-caching", "TTFT −30…60 %, cache hit rate > 60 %, cost −40…50 %"),
    ("small-models", "> 30 % of calls routed locally, > 20 % of network calls avoided, accuracy > 95 %"),
    ("speculative", "acceptance rate > 70 %, decode speedup > 1.5×"),
    ("semantic-cache", "cache hit rate > 40 %, lookup latency < 100 ms"),
    ("persistent-connections", "network overhead −30 %, TTFT −20 %"),
];

/// How a criterion fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The target is reached (significantly, for a change).
    Pass,
    /// The target is missed.
    Fail,
    /// The target is reached by the point estimate, but the change is not significant.
    Inconclusive,
    /// These results do not contain what the criterion needs.
    NotMeasured,
}

impl Outcome {
    /// ✅, ❌, ❔ or ➖.
    pub fn mark(self) -> &'static str {
        match self {
            Outcome::Pass => "✅",
            Outcome::Fail => "❌",
            Outcome::Inconclusive => "❔",
            Outcome::NotMeasured => "➖",
        }
    }
}

/// One criterion's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CriterionOutcome {
    /// The preset it belongs to.
    pub preset: String,
    /// The criterion, as the source documents state it.
    pub criterion: String,
    /// The measured figure (a change in percent, a rate in percent, or a factor), when measured.
    pub value: Option<f64>,
    /// The outcome.
    pub outcome: Outcome,
    /// How the figure was obtained, or why it could not be.
    pub detail: String,
}

/// Why a preset name was not recognised.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "unknown criteria preset '{0}': use one of prompt-caching, small-models, speculative, semantic-cache, persistent-connections"
)]
pub struct UnknownPreset(pub String);

/// Evaluate a preset on `candidate` against `baseline`.
pub fn evaluate(
    preset: &str,
    baseline: &RunResult,
    candidate: &RunResult,
    alpha: f64,
) -> Result<Vec<CriterionOutcome>, UnknownPreset> {
    let p = Pooled::new(baseline, candidate);
    let out = |criterion: &str, (value, outcome, detail): (Option<f64>, Outcome, String)| CriterionOutcome {
        preset: preset.to_string(),
        criterion: criterion.to_string(),
        value,
        outcome,
        detail,
    };
    let missing = |why: &str| (None, Outcome::NotMeasured, why.to_string());
    const NO_PROXY: &str = "needs routing figures from velollm's proxy, which these results do not contain";
    Ok(match preset {
        "prompt-caching" => vec![
            out("TTFT reduced by 30–60 %", p.reduction("ttft", 0.5, 30.0, alpha)),
            out("cache hit rate > 60 %", p.hit_rate(60.0)),
            out("cost reduced by 40–50 %", p.cost_reduction(40.0)),
        ],
        "small-models" => vec![
            out("> 30 % of calls routed to the local model", missing(NO_PROXY)),
            out("> 20 % of network calls avoided", missing(NO_PROXY)),
            out("local model accuracy > 95 %", p.accuracy(95.0)),
        ],
        "speculative" => vec![
            out("draft acceptance rate > 70 %", p.acceptance(70.0)),
            out("decode speedup > 1.5×", p.speedup("decode_tokens_per_s", 1.5, alpha)),
        ],
        "semantic-cache" => vec![
            out("semantic cache hit rate > 40 %", missing(NO_PROXY)),
            out("similarity lookup < 100 ms", missing(NO_PROXY)),
        ],
        "persistent-connections" => vec![
            out("network overhead reduced by > 30 %", p.mean_reduction("network_overhead", 30.0)),
            out("TTFT reduced by > 20 %", p.reduction("ttft", 0.5, 20.0, alpha)),
        ],
        other => return Err(UnknownPreset(other.to_string())),
    })
}

type Figure = (Option<f64>, Outcome, String);

fn p_text(p: f64) -> String {
    if p < 0.001 { "p < 0.001".into() } else { format!("p = {p:.3}") }
}

/// Per-request values of the matched steps of both runs, pooled.
struct Pooled<'a> {
    pairs: Vec<(&'a crate::aggregate::step::StepResult, &'a crate::aggregate::step::StepResult)>,
}

impl<'a> Pooled<'a> {
    fn new(a: &'a RunResult, b: &'a RunResult) -> Pooled<'a> {
        Pooled { pairs: match_steps(a, b).0 }
    }

    fn values(&self, metric: &str) -> (Vec<f64>, Vec<f64>) {
        let mut out = (Vec::new(), Vec::new());
        for (a, b) in &self.pairs {
            out.0.extend(crate::aggregate::registry::samples(&a.samples, metric).unwrap_or_default());
            out.1.extend(crate::aggregate::registry::samples(&b.samples, metric).unwrap_or_default());
        }
        out
    }

    /// The `q` percentile fell by at least `target` percent, significantly.
    fn reduction(&self, metric: &str, q: f64, target: f64, alpha: f64) -> Figure {
        let (mut x, mut y) = self.values(metric);
        if x.len() < crate::document::compare::MIN_SAMPLES || y.len() < crate::document::compare::MIN_SAMPLES {
            return (None, Outcome::NotMeasured, format!("too few {metric} values: {} vs {}", x.len(), y.len()));
        }
        let p = mann_whitney_u(&x, &y).map_or(1.0, |t| t.p);
        let (Some(a), Some(b)) = (percentile_select(&mut x, q), percentile_select(&mut y, q)) else {
            return (None, Outcome::NotMeasured, String::new());
        };
        if a <= 0.0 {
            return (None, Outcome::NotMeasured, format!("baseline {metric} is 0"));
        }
        let change = (b - a) / a * 100.0;
        let detail = format!("median {a:.1} → {b:.1} ({change:+.1} %, {})", p_text(p));
        let outcome = match (-change >= target, p < alpha) {
            (false, _) => Outcome::Fail,
            (true, true) => Outcome::Pass,
            (true, false) => Outcome::Inconclusive,
        };
        (Some(change), outcome, detail)
    }

    /// The mean fell by at least `target` percent (for metrics that are mostly 0, like network overhead on
    /// reused connections, where the median says nothing).
    fn mean_reduction(&self, metric: &str, target: f64) -> Figure {
        let (x, y) = self.values(metric);
        if x.is_empty() || y.is_empty() {
            return (None, Outcome::NotMeasured, format!("{metric} was not measured in both runs"));
        }
        let (a, b) = (x.iter().sum::<f64>() / x.len() as f64, y.iter().sum::<f64>() / y.len() as f64);
        if a <= 0.0 {
            return (None, Outcome::NotMeasured, format!("baseline mean {metric} is 0"));
        }
        let change = (b - a) / a * 100.0;
        let outcome = if -change >= target { Outcome::Pass } else { Outcome::Fail };
        (Some(change), outcome, format!("mean {a:.2} → {b:.2} ms ({change:+.1} %)"))
    }

    /// The ratio of medians candidate ÷ baseline is at least `target`, significantly.
    fn speedup(&self, metric: &str, target: f64, alpha: f64) -> Figure {
        let (mut x, mut y) = self.values(metric);
        if x.len() < crate::document::compare::MIN_SAMPLES || y.len() < crate::document::compare::MIN_SAMPLES {
            return (None, Outcome::NotMeasured, format!("too few {metric} values: {} vs {}", x.len(), y.len()));
        }
        let p = mann_whitney_u(&x, &y).map_or(1.0, |t| t.p);
        let (Some(a), Some(b)) = (percentile_select(&mut x, 0.5), percentile_select(&mut y, 0.5)) else {
            return (None, Outcome::NotMeasured, String::new());
        };
        if a <= 0.0 {
            return (None, Outcome::NotMeasured, format!("baseline {metric} is 0"));
        }
        let factor = b / a;
        let outcome = match (factor >= target, p < alpha) {
            (false, _) => Outcome::Fail,
            (true, true) => Outcome::Pass,
            (true, false) => Outcome::Inconclusive,
        };
        (Some(factor), outcome, format!("median {a:.1} → {b:.1} tokens/s (×{factor:.2}, p = {p:.3})"))
    }

    /// Share of the candidate's requests served with cached prompt tokens.
    fn hit_rate(&self, target: f64) -> Figure {
        let reported: Vec<u64> =
            self.pairs.iter().flat_map(|(_, b)| b.samples.cached_tokens.iter().flatten().copied()).collect();
        if reported.is_empty() {
            return (None, Outcome::NotMeasured, "the server reported no cached-token counts".into());
        }
        let hits = reported.iter().filter(|&&n| n > 0).count();
        let rate = hits as f64 / reported.len() as f64 * 100.0;
        let outcome = if rate > target { Outcome::Pass } else { Outcome::Fail };
        (Some(rate), outcome, format!("{hits} of {} requests reused cached prompt tokens", reported.len()))
    }

    /// Cost per request fell by at least `target` percent (both runs priced with `--prices`).
    fn cost_reduction(&self, target: f64) -> Figure {
        let per_request = |candidate: bool| {
            let (mut total, mut n) = (0.0, 0u64);
            for (a, b) in &self.pairs {
                let step: &StepResult = if candidate { b } else { a };
                let c = step.cost.as_ref()?;
                total += c.total;
                n += c.priced_requests;
            }
            (n > 0).then(|| total / n as f64)
        };
        match (per_request(false), per_request(true)) {
            (Some(a), Some(b)) if a > 0.0 => {
                let change = (b - a) / a * 100.0;
                let outcome = if -change >= target { Outcome::Pass } else { Outcome::Fail };
                (Some(change), outcome, format!("cost per request {a:.6} → {b:.6} ({change:+.1} %)"))
            }
            _ => (None, Outcome::NotMeasured, "no cost in both results: run both with --prices FILE".into()),
        }
    }

    /// The candidate's speculative acceptance rate over its steps (server counters, else per-request timings).
    fn acceptance(&self, target: f64) -> Figure {
        let (mut accepted, mut drafted) = (0.0, 0.0);
        for (_, b) in &self.pairs {
            if let Some(a) = b.acceptance()
                && let (Some(x), Some(d)) = (a.accepted_tokens, a.draft_tokens)
            {
                accepted += x;
                drafted += d;
            }
        }
        if drafted == 0.0 {
            return (
                None,
                Outcome::NotMeasured,
                "the candidate reported no draft tokens (per-request timings or /metrics counters)".into(),
            );
        }
        let rate = accepted / drafted * 100.0;
        let outcome = if rate > target { Outcome::Pass } else { Outcome::Fail };
        (Some(rate), outcome, format!("{accepted:.0} of {drafted:.0} draft tokens accepted"))
    }

    /// The candidate's check score.
    fn accuracy(&self, target: f64) -> Figure {
        let (mut passed, mut total) = (0.0, 0.0);
        for (_, b) in &self.pairs {
            if let Some(q) = &b.quality {
                passed += q.score * b.succeeded as f64;
                total += b.succeeded as f64;
            }
        }
        if total == 0.0 {
            return (None, Outcome::NotMeasured, "the candidate's steps have no checks to score answers".into());
        }
        let score = passed / total * 100.0;
        let outcome = if score > target { Outcome::Pass } else { Outcome::Fail };
        (Some(score), outcome, format!("check score over {total} answers"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ttft: &[f64], cached: &[Option<u64>]) -> RunResult {
        let mut step = crate::fixtures::step("s", ttft);
        step.samples.cached_tokens = cached.to_vec();
        crate::fixtures::run(vec![step])
    }

    #[test]
    fn prompt_caching_preset() {
        let base: Vec<f64> = (0..20).map(|i| 600.0 + i as f64).collect();
        let fast: Vec<f64> = (0..20).map(|i| 150.0 + i as f64).collect();
        let hits: Vec<Option<u64>> = (0..20).map(|i| Some(if i < 15 { 512 } else { 0 })).collect();
        let out = evaluate("prompt-caching", &run(&base, &[]), &run(&fast, &hits), 0.05).unwrap();
        assert_eq!(out[0].outcome, Outcome::Pass, "{:?}", out[0]);
        assert!(out[0].value.unwrap() < -70.0);
        assert_eq!((out[1].outcome, out[1].value), (Outcome::Pass, Some(75.0)));
        assert_eq!(out[2].outcome, Outcome::NotMeasured);

        // A 10 % gain misses the target; a large gain on 5 noisy requests is inconclusive.
        let slight: Vec<f64> = base.iter().map(|v| v * 0.9).collect();
        assert_eq!(
            evaluate("prompt-caching", &run(&base, &[]), &run(&slight, &[]), 0.05).unwrap()[0].outcome,
            Outcome::Fail
        );
        let few = evaluate(
            "prompt-caching",
            &run(&[100., 900., 120., 800., 110.], &[]),
            &run(&[60., 70., 500., 65., 400.], &[]),
            0.05,
        )
        .unwrap();
        assert_eq!(few[0].outcome, Outcome::Inconclusive, "{:?}", few[0]);
        assert_eq!(few[1].outcome, Outcome::NotMeasured);
        assert!(evaluate("nope", &run(&base, &[]), &run(&base, &[]), 0.05).is_err());
    }
}
