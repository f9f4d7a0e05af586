//! CI gates of `velollm compare --fail-if`: a condition on a candidate run, alone or against the baseline,
//! that fails the comparison when it holds.
//!
//! `METRIC OP VALUE`, where the value decides what is compared:
//!
//! * a signed percentage (`ttft.p95 > +10%`, `decode.p50 < -5%`) is the relative change from the baseline,
//!   (candidate − baseline) ÷ |baseline| × 100;
//! * another signed value (`e2e.p50 > +50ms`, `output_throughput < -2`) is the absolute change
//!   candidate − baseline, in the metric's unit;
//! * an unsigned value (`success_rate < 0.99`, `ttft.p95 > 2s`) is the candidate's own value.
//!
//! Gates compare point estimates, so they are predictable in CI; `velollm compare` prints the confidence
//! interval beside each so a failing gate can be told from noise.

use crate::aggregate::step::StepResult;
use crate::judge::threshold::{Lookup, Threshold, ThresholdError};
use crate::measure::names::Unit;
use crate::measure::slo::parse_ms;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// What a gate's value is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// The candidate's own value.
    Absolute,
    /// Relative change from the baseline, in percent.
    Relative(f64),
    /// Absolute change from the baseline, as written without its sign.
    Delta(f64),
}

/// A parsed `--fail-if` expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    threshold: Threshold,
    kind: Kind,
    magnitude: String,
}

impl FromStr for Gate {
    type Err = ThresholdError;

    fn from_str(s: &str) -> Result<Gate, ThresholdError> {
        let threshold: Threshold = s.parse()?;
        let value = threshold.value_text().trim().to_string();
        let sign = match value.chars().next() {
            Some('+') => 1.0,
            Some('-') => -1.0,
            _ => return Ok(Gate { threshold, kind: Kind::Absolute, magnitude: value }),
        };
        let magnitude = value[1..].trim().to_string();
        let kind = match magnitude.strip_suffix('%') {
            Some(p) => Kind::Relative(sign * p.trim().parse::<f64>().map_err(|_| ThresholdError::new(s))?),
            None => Kind::Delta(sign),
        };
        Ok(Gate { threshold, kind, magnitude })
    }
}

/// One gate evaluated on one step of a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateOutcome {
    /// The gate as written.
    pub gate: String,
    /// The step it was evaluated on.
    pub step: String,
    /// The baseline's value.
    pub baseline: Option<f64>,
    /// The candidate's value.
    pub candidate: Option<f64>,
    /// The compared quantity: the candidate's value, the change in percent, or the change in the metric's unit.
    pub compared: Option<f64>,
    /// Unit of the values.
    pub unit: Unit,
    /// True when the condition holds: the gate fails the comparison.
    pub failed: bool,
    /// Why it could not be evaluated, when it could not (an unevaluable gate fails).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Gate {
    /// The gate as written.
    pub fn text(&self) -> &str {
        &self.threshold.text
    }

    /// Evaluate on a step of the candidate against the same step of the baseline.
    pub fn evaluate(&self, step: &str, baseline: &StepResult, candidate: &StepResult) -> GateOutcome {
        let target = &self.threshold.target;
        let (b, c) = (baseline.lookup(target), candidate.lookup(target));
        let mut out = GateOutcome {
            gate: self.text().to_string(),
            step: step.to_string(),
            baseline: b.map(|v| v.0),
            candidate: c.map(|v| v.0),
            compared: None,
            unit: c.or(b).map_or(Unit::Plain, |v| v.1),
            failed: true,
            detail: String::new(),
        };
        let Some((cv, unit)) = c else {
            out.detail = format!("'{target}' was not measured in the candidate");
            return out;
        };
        let compared = match self.kind {
            Kind::Absolute => Some((cv, self.threshold.holds(cv, unit))),
            Kind::Relative(bound) => match b {
                Some((bv, _)) if bv != 0.0 => {
                    let change = (cv - bv) / bv.abs() * 100.0;
                    Some((change, Some(self.threshold.op().holds(change, bound))))
                }
                Some(_) => {
                    out.detail = "the baseline value is 0: a relative change is undefined".into();
                    None
                }
                None => {
                    out.detail = format!("'{target}' was not measured in the baseline");
                    None
                }
            },
            Kind::Delta(sign) => match b {
                Some((bv, _)) => {
                    let magnitude =
                        if unit == Unit::Ms { parse_ms(&self.magnitude) } else { self.magnitude.parse().ok() };
                    let delta = cv - bv;
                    Some((delta, magnitude.map(|m| self.threshold.op().holds(delta, sign * m))))
                }
                None => {
                    out.detail = format!("'{target}' was not measured in the baseline");
                    None
                }
            },
        };
        if let Some((value, holds)) = compared {
            out.compared = Some(value);
            match holds {
                Some(h) => out.failed = h,
                None => out.detail = format!("'{}' is not a value in {unit:?}", self.threshold.value_text()),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::record::{Channel, Chunk, RequestRecord};

    fn step(ttft_ms: u64, ok: u64, failed: u64) -> StepResult {
        let config = crate::fixtures::config();
        let mut acc = crate::aggregate::accumulator::StepAccumulator::new("s", config);
        for _ in 0..ok {
            let t = ttft_ms * 1_000_000;
            acc.push(&RequestRecord {
                sent: Some(0),
                done: Some(t),
                chunks: vec![Chunk { t, channel: Channel::Content, events: 1, tokens: None, bytes: 1 }],
                ..Default::default()
            });
        }
        for _ in 0..failed {
            acc.push(&RequestRecord {
                error: Some(crate::measure::record::RequestError {
                    class: crate::measure::record::ErrorClass::Http5xx,
                    message: "HTTP 500".into(),
                    retry_after_s: None,
                }),
                ..Default::default()
            });
        }
        acc.result(None, false)
    }

    #[test]
    fn relative_delta_and_absolute_gates() {
        let base = step(100, 10, 0);
        let cand = step(115, 9, 1);
        let cases = [
            ("ttft.p95 > +10%", true),
            ("ttft.p95 > +20%", false),
            ("ttft.p50 > +10ms", true),
            ("ttft.p50 > +20ms", false),
            ("ttft.p50 < -5%", false),
            ("success_rate < 0.99", true),
            ("success_rate < 90%", false),
            ("ttft.p95 > 2s", false),
        ];
        for (text, fails) in cases {
            let g: Gate = text.parse().unwrap();
            let o = g.evaluate("s", &base, &cand);
            assert_eq!(o.failed, fails, "{text}: {o:?}");
            assert!(o.detail.is_empty(), "{text}: {o:?}");
        }
        let o = "ttft.p95 > +10%".parse::<Gate>().unwrap().evaluate("s", &base, &cand);
        assert!((o.compared.unwrap() - 15.0).abs() < 1e-9);
    }

    #[test]
    fn unmeasured_metrics_fail_with_a_reason() {
        let o = "tpot.p95 > +10%".parse::<Gate>().unwrap().evaluate("s", &step(1, 1, 0), &step(1, 1, 0));
        assert!(o.failed && o.detail.contains("not measured"), "{o:?}");
        assert!("ttft.p95 > +ten%".parse::<Gate>().is_err());
    }
}
