//! Speculative-decoding acceptance, normalised across engines (formulas in one place).
//!
//! - **acceptance rate** = draft tokens accepted ÷ draft tokens proposed;
//! - **mean acceptance length** = tokens emitted per verification step = 1 + accepted ÷ drafts (vLLM's
//!   definition, which counts the target model's bonus token; llama.cpp's log line "mean len" is the same).
//!
//! Sources, best first: the server's counters over the step ([`crate::measure::prom::ServerMetrics`]: llama.cpp and vLLM
//! `spec_decode_num_drafts/draft_tokens/accepted_tokens`), which give both figures; the per-request timings of
//! llama.cpp (`draft_n`, `draft_n_accepted`, summed into the step's [`DraftCounts`]), which give the rate only
//! (the number of drafts is not reported);
//! the server's own gauges (SGLang `spec_accept_length`, `spec_accept_rate`, vLLM V0
//! `spec_decode_draft_acceptance_rate`), averaged over the server's own window.

use crate::measure::metrics::Sample;
use crate::measure::prom::ServerMetrics;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Draft tokens summed over a step's successful requests, from their per-request timings (llama.cpp `draft_n`,
/// `draft_n_accepted`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DraftCounts {
    /// Requests that reported draft counts.
    pub requests: u64,
    /// Draft tokens proposed.
    pub draft_tokens: u64,
    /// Draft tokens accepted.
    pub accepted_tokens: u64,
}

impl DraftCounts {
    /// The sums over `samples`; `None` when no request drafted anything.
    pub fn of(samples: &[Sample]) -> Option<DraftCounts> {
        let mut c = DraftCounts::default();
        for s in samples {
            c.add(s);
        }
        c.nonzero()
    }

    /// Add one measured request's counts (successful requests that reported both counts only).
    pub fn add(&mut self, s: &Sample) {
        if let (true, Some(d), Some(a)) = (s.ok, s.metrics.draft_tokens, s.metrics.draft_accepted) {
            self.requests += 1;
            self.draft_tokens += d;
            self.accepted_tokens += a;
        }
    }

    /// These counts, or `None` when no request drafted anything.
    pub fn nonzero(self) -> Option<DraftCounts> {
        (self.draft_tokens > 0).then_some(self)
    }
}

/// A step's acceptance and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Acceptance {
    /// Accepted ÷ proposed draft tokens, 0–1.
    pub rate: Option<f64>,
    /// Tokens per verification step, 1 + accepted ÷ drafts.
    pub mean_length: Option<f64>,
    /// Draft tokens proposed, when counted.
    pub draft_tokens: Option<f64>,
    /// Draft tokens accepted, when counted.
    pub accepted_tokens: Option<f64>,
    /// Which source gave the figures.
    pub source: &'static str,
}

impl Acceptance {
    /// A step's acceptance from the best source available — the server's counters, else the requests' own
    /// draft counts, else the server's gauges; `None` when nothing was drafted or reported.
    pub fn of(server_metrics: Option<&ServerMetrics>, drafts: Option<&DraftCounts>) -> Option<Acceptance> {
        if let Some(m) = server_metrics
            && let (Some(d), Some(a)) = (m.spec_draft_tokens, m.spec_accepted_tokens)
            && d > 0.0
        {
            return Some(Acceptance {
                rate: Some(a / d),
                mean_length: m.spec_drafts.filter(|&n| n > 0.0).map(|n| 1.0 + a / n),
                draft_tokens: Some(d),
                accepted_tokens: Some(a),
                source: "the server's speculative-decoding counters",
            });
        }
        if let Some(c) = drafts {
            let (d, a) = (c.draft_tokens as f64, c.accepted_tokens as f64);
            return Some(Acceptance {
                rate: Some(a / d),
                mean_length: None,
                draft_tokens: Some(d),
                accepted_tokens: Some(a),
                source: "per-request timings (llama.cpp draft_n, draft_n_accepted)",
            });
        }
        let m = server_metrics?;
        (m.server_spec_accept_rate.is_some() || m.server_spec_accept_length.is_some()).then_some(Acceptance {
            rate: m.server_spec_accept_rate,
            mean_length: m.server_spec_accept_length,
            draft_tokens: None,
            accepted_tokens: None,
            source: "the server's own acceptance gauges",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::accumulator::StepAccumulator;
    use crate::measure::record::{NativeTimings, RequestRecord};

    #[test]
    fn counters_first_then_per_request_timings() {
        let mut acc = StepAccumulator::new("s", crate::fixtures::config());
        for (d, a) in [(10, 7), (20, 16)] {
            acc.push(&RequestRecord {
                sent: Some(0),
                done: Some(1),
                native: Some(NativeTimings {
                    source: "llama.cpp".into(),
                    draft_n: Some(d),
                    draft_accepted: Some(a),
                    ..NativeTimings::default()
                }),
                ..RequestRecord::default()
            });
        }
        let mut step = acc.result(None, false);
        assert_eq!(step.drafts, Some(DraftCounts { requests: 2, draft_tokens: 30, accepted_tokens: 23 }));
        let a = step.acceptance().unwrap();
        assert_eq!((a.rate, a.mean_length, a.draft_tokens), (Some(23.0 / 30.0), None, Some(30.0)));
        assert!(a.source.starts_with("per-request"));

        // The server's counters win and give the mean acceptance length: 1 + 29 accepted ÷ 10 drafts.
        let mut m: crate::measure::prom::ServerMetrics = serde_json::from_value(serde_json::json!({
            "engine": "llamacpp", "scrapes": 2
        }))
        .unwrap();
        (m.spec_drafts, m.spec_draft_tokens, m.spec_accepted_tokens) = (Some(10.0), Some(29.0), Some(29.0));
        step.server_metrics = Some(m);
        let a = step.acceptance().unwrap();
        assert_eq!((a.rate, a.mean_length), (Some(1.0), Some(3.9)));
    }
}
