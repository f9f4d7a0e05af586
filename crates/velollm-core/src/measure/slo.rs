//! Service-level objectives, the basis of goodput.
//!
//! Written `ttft=2s`, `tpot=50ms`, `e2e=30s` (also `ttft<=2s`, or vLLM's `ttft:2000` in milliseconds),
//! several separated by commas. A request is *good* when it succeeded and meets every objective.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A latency metric an objective can bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SloMetric {
    /// Time to first token.
    Ttft,
    /// Time per output token (0 for a one-token answer, as vLLM does).
    Tpot,
    /// End-to-end latency (also accepted as `ttr` or `e2el`).
    E2e,
}

/// One objective: `metric ≤ max_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Objective {
    /// The bounded metric.
    pub metric: SloMetric,
    /// The bound, in milliseconds.
    pub max_ms: f64,
}

/// A set of objectives that all must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Slo {
    /// The objectives.
    pub objectives: Vec<Objective>,
}

/// Why an SLO text could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid SLO '{text}': {reason} (expected e.g. 'ttft=2s,tpot=50ms,e2e=30s')")]
pub struct SloError {
    text: String,
    reason: String,
}

/// Parse a duration such as `250ms`, `2s`, `1.5s`, `1m` or a bare number of milliseconds.
pub fn parse_ms(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, factor) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix("us").or_else(|| t.strip_suffix("µs")) {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1e3)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60e3)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600e3)
    } else {
        (t, 1.0)
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * factor)
}

impl FromStr for Slo {
    type Err = SloError;

    fn from_str(s: &str) -> Result<Slo, SloError> {
        let err = |reason: &str| SloError { text: s.to_string(), reason: reason.to_string() };
        let mut objectives = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once("<=")
                .or_else(|| part.split_once('='))
                .or_else(|| part.split_once('<'))
                .or_else(|| part.split_once(':'))
                .ok_or_else(|| err("each objective needs a metric and a bound"))?;
            let metric = match name.trim().to_ascii_lowercase().as_str() {
                "ttft" => SloMetric::Ttft,
                "tpot" => SloMetric::Tpot,
                "e2e" | "e2el" | "ttr" => SloMetric::E2e,
                other => return Err(err(&format!("unknown metric '{other}' (use ttft, tpot or e2e)"))),
            };
            let max_ms = parse_ms(value).ok_or_else(|| err(&format!("'{}' is not a duration", value.trim())))?;
            objectives.push(Objective { metric, max_ms });
        }
        if objectives.is_empty() {
            return Err(err("no objective given"));
        }
        Ok(Slo { objectives })
    }
}

impl Slo {
    /// Add the objectives of `other` to this set.
    pub fn extend(&mut self, other: Slo) {
        self.objectives.extend(other.objectives);
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .objectives
            .iter()
            .map(|o| {
                let name = match o.metric {
                    SloMetric::Ttft => "ttft",
                    SloMetric::Tpot => "tpot",
                    SloMetric::E2e => "e2e",
                };
                format!("{name}<={}ms", o.max_ms)
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let s: Slo = "ttft=2s, tpot<=50ms,e2el:30000".parse().unwrap();
        assert_eq!(
            s.objectives,
            vec![
                Objective { metric: SloMetric::Ttft, max_ms: 2000.0 },
                Objective { metric: SloMetric::Tpot, max_ms: 50.0 },
                Objective { metric: SloMetric::E2e, max_ms: 30000.0 },
            ]
        );
        assert_eq!(s.to_string(), "ttft<=2000ms,tpot<=50ms,e2e<=30000ms");
    }

    #[test]
    fn rejects_nonsense_with_a_hint() {
        let e = "speed=3".parse::<Slo>().unwrap_err().to_string();
        assert!(e.contains("unknown metric 'speed'"), "{e}");
        assert!("ttft=soon".parse::<Slo>().is_err());
        assert!("".parse::<Slo>().is_err());
    }
}
