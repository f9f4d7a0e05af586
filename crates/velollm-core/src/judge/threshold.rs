//! Thresholds: `ttft.p95 < 2s`, `success_rate > 0.95`, `degradation < 20%` — parsed once, evaluated
//! against a step's aggregates or a scenario's analysis figures, each giving a ✅/❌ verdict.

use crate::aggregate::step::StepResult;
use crate::measure::slo::parse_ms;
use crate::stats::Summary;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    /// Whether `a OP b`.
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        }
    }
}

pub use crate::measure::names::Unit;

/// A parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The text as written.
    pub text: String,
    /// What is compared (`ttft.p95`, `success_rate`, `degradation`).
    pub target: String,
    op: Op,
    value: String,
}

/// Why a threshold could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "invalid threshold '{0}': write it as 'METRIC OP VALUE', e.g. 'ttft.p95 < 2s', 'success_rate > 0.95', 'degradation < 20%'"
)]
pub struct ThresholdError(String);

impl ThresholdError {
    /// The error for the text `s`.
    pub fn new(s: &str) -> ThresholdError {
        ThresholdError(s.to_string())
    }
}

impl FromStr for Threshold {
    type Err = ThresholdError;

    fn from_str(s: &str) -> Result<Threshold, ThresholdError> {
        let err = || ThresholdError(s.to_string());
        let (i, op, len) = ["<=", ">=", "<", ">"]
            .iter()
            .filter_map(|o| s.find(o).map(|i| (i, *o, o.len())))
            .min_by_key(|(i, _, len)| (*i, usize::MAX - len))
            .ok_or_else(err)?;
        let op = match op {
            "<=" => Op::Le,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            _ => Op::Gt,
        };
        let target = s[..i].trim().to_string();
        let value = s[i + len..].trim().to_string();
        if target.is_empty() || value.is_empty() || !target.chars().all(|c| c.is_alphanumeric() || "._-".contains(c)) {
            return Err(err());
        }
        let t = Threshold { text: s.trim().to_string(), target, op, value };
        // Values must parse in at least one unit.
        if t.bound(Unit::Plain).is_none() && t.bound(Unit::Ms).is_none() {
            return Err(err());
        }
        Ok(t)
    }
}

impl Threshold {
    /// The bound in the unit of the looked-up value.
    fn bound(&self, unit: Unit) -> Option<f64> {
        let v = self.value.trim();
        if let Some(p) = v.strip_suffix('%') {
            let p: f64 = p.trim().parse().ok()?;
            return Some(if unit == Unit::Fraction { p / 100.0 } else { p });
        }
        match unit {
            Unit::Ms => parse_ms(v),
            _ => v.parse().ok(),
        }
    }

    /// The comparison operator.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The bound as written (`2s`, `95%`, `+10%`).
    pub fn value_text(&self) -> &str {
        &self.value
    }

    /// Whether `value` (in `unit`) satisfies the threshold; `None` when the bound is not a value in `unit`.
    pub fn holds(&self, value: f64, unit: Unit) -> Option<bool> {
        Some(self.op.holds(value, self.bound(unit)?))
    }

    /// Evaluate against a value source; `scope` names the step (or `run`) in the verdict.
    pub fn evaluate(&self, scope: &str, source: &dyn Lookup) -> Verdict {
        let (value, unit, passed, detail) = match source.lookup(&self.target) {
            None => (None, Unit::Plain, false, format!("'{}' was not measured here", self.target)),
            Some((v, unit)) => match self.bound(unit) {
                Some(b) => (Some(v), unit, self.op.holds(v, b), String::new()),
                None => (Some(v), unit, false, format!("'{}' is not a value in {unit:?}", self.value)),
            },
        };
        Verdict { scope: scope.to_string(), threshold: self.text.clone(), value, unit, passed, detail }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One threshold's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    /// The step it applies to, or `run` for scenario figures.
    pub scope: String,
    /// The threshold as written.
    pub threshold: String,
    /// The measured value, when it was measured.
    pub value: Option<f64>,
    /// The value's unit.
    pub unit: Unit,
    /// Whether the threshold holds.
    pub passed: bool,
    /// Why it could not be evaluated, when it could not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Something thresholds can be evaluated against.
pub trait Lookup {
    /// The value named `name` and its unit.
    fn lookup(&self, name: &str) -> Option<(f64, Unit)>;
}

/// The summary a step metric name refers to (`ttft`, `e2e`, `tpot`, `itl`, … and their aliases).
pub fn step_metric<'a>(step: &'a StepResult, name: &str) -> Option<(&'a Summary, Unit)> {
    let m = crate::aggregate::registry::metric(name)?;
    m.summary(step).map(|s| (s, m.unit))
}

/// A per-step scalar (`success_rate`, `throughput`, `goodput`, `score`, …) and its unit.
pub fn step_scalar(step: &StepResult, name: &str) -> Option<(f64, Unit)> {
    let m = crate::aggregate::registry::metric(name)?;
    m.scalar(step).map(|v| (v, m.unit))
}

impl Lookup for StepResult {
    fn lookup(&self, name: &str) -> Option<(f64, Unit)> {
        if let Some(v) = step_scalar(self, name) {
            return Some(v);
        }
        let (metric, stat) = crate::measure::names::split_stat(name);
        let (summary, unit) = step_metric(self, metric)?;
        summary.get(stat).map(|v| (v, unit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<(&'static str, f64, Unit)>);
    impl Lookup for Fixed {
        fn lookup(&self, name: &str) -> Option<(f64, Unit)> {
            self.0.iter().find(|(n, _, _)| *n == name).map(|(_, v, u)| (*v, *u))
        }
    }

    #[test]
    fn parses_and_evaluates_with_units() {
        let src = Fixed(vec![
            ("ttft.p95", 1500.0, Unit::Ms),
            ("success_rate", 0.97, Unit::Fraction),
            ("degradation", 13.7, Unit::Percent),
        ]);
        let cases = [
            ("ttft.p95 < 2s", true),
            ("ttft.p95 <= 1500ms", true),
            ("ttft.p95 < 1.2s", false),
            ("success_rate > 0.95", true),
            ("success_rate > 95%", true),
            ("success_rate >= 99%", false),
            ("degradation < 20%", true),
            ("degradation < 10", false),
        ];
        for (text, want) in cases {
            let t: Threshold = text.parse().unwrap();
            let v = t.evaluate("s", &src);
            assert_eq!(v.passed, want, "{text}: {v:?}");
        }
        let missing = "tpot.p99 < 50ms".parse::<Threshold>().unwrap().evaluate("s", &src);
        assert!(!missing.passed && missing.detail.contains("not measured"));
    }

    #[test]
    fn looks_up_step_metrics_including_p99_9() {
        use crate::aggregate::accumulator::StepAccumulator;
        use crate::measure::record::{Channel, Chunk, RequestRecord};
        let config = crate::fixtures::config();
        let mut acc = StepAccumulator::new("s", config);
        acc.push(&RequestRecord {
            sent: Some(0),
            done: Some(30_000_000),
            chunks: vec![Chunk { t: 20_000_000, channel: Channel::Content, events: 1, tokens: None, bytes: 1 }],
            ..Default::default()
        });
        let step = acc.result(None, false);
        for (name, want) in [("ttft.p99.9", 20.0), ("ttft", 20.0), ("e2e.max", 30.0), ("success_rate", 1.0)] {
            assert_eq!(step.lookup(name).map(|v| v.0), Some(want), "{name}");
        }
        assert!("ttft.p99.9 < 25ms".parse::<Threshold>().unwrap().evaluate("s", &step).passed);
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["ttft", "ttft.p95 2s", "< 2s", "ttft.p95 < soon", "a b < 3"] {
            assert!(bad.parse::<Threshold>().is_err(), "{bad}");
        }
    }
}
