//! Turns a step's request records into the aggregates of the result document.

use crate::cost::{Price, StepCost};
use crate::metrics::{Sample, StepRates};
use crate::record::{ErrorClass, RequestRecord};
use crate::result::{
    ConnectionStats, CriterionStats, ErrorSummary, LegacyBenchmark, LegacyConfig, QualityStats, StepConfig,
    StepMetrics, StepResult, StepSamples,
};
use crate::slo::Slo;
use crate::stats::Summary;
use std::collections::BTreeMap;

/// Collects one step's records as they complete and summarises them on demand.
#[derive(Debug, Clone)]
pub struct StepAccumulator {
    name: String,
    config: StepConfig,
    samples: Vec<Sample>,
    server_prefill_ms: Vec<f64>,
    server_decode_ms: Vec<f64>,
    server_load_ms: Vec<f64>,
    warmup: u64,
    errors: BTreeMap<ErrorClass, ErrorSummary>,
    connections: ConnectionStats,
    criteria: Vec<CriterionStats>,
    first_answers: (u64, u64),
    corrections: u64,
    price: Option<(String, Price)>,
}

impl StepAccumulator {
    /// An empty accumulator for the step `name`.
    pub fn new(name: impl Into<String>, config: StepConfig) -> StepAccumulator {
        StepAccumulator {
            name: name.into(),
            config,
            samples: Vec::new(),
            server_prefill_ms: Vec::new(),
            server_decode_ms: Vec::new(),
            server_load_ms: Vec::new(),
            warmup: 0,
            errors: BTreeMap::new(),
            connections: ConnectionStats::default(),
            criteria: Vec::new(),
            first_answers: (0, 0),
            corrections: 0,
            price: None,
        }
    }

    /// Price the step's requests at `price` (in `currency`): results then carry the step's cost.
    pub fn with_price(mut self, currency: &str, price: Price) -> StepAccumulator {
        self.price = Some((currency.to_string(), price));
        self
    }

    /// Add a finished request. Warm-up requests are only counted; cancelled requests (Ctrl-C) are counted
    /// under their error class but are not measured requests.
    pub fn push(&mut self, r: &RequestRecord) {
        if r.warmup {
            self.warmup += 1;
            return;
        }
        if let Some(e) = &r.error {
            self.errors
                .entry(e.class)
                .and_modify(|s| s.count += 1)
                .or_insert_with(|| ErrorSummary { count: 1, example: e.message.clone() });
            if e.class == ErrorClass::Cancelled {
                return;
            }
        }
        if let Some(c) = &r.connection {
            if c.reused {
                self.connections.reused += 1;
            } else {
                self.connections.opened += 1;
            }
        }
        if let (None, Some(n)) = (&r.error, &r.native) {
            self.server_prefill_ms.extend(n.prompt_ms);
            self.server_decode_ms.extend(n.predicted_ms);
            self.server_load_ms.extend(n.load_ms);
        }
        self.push_checks(r);
        self.samples.push(Sample::of(r));
    }

    fn push_checks(&mut self, r: &RequestRecord) {
        if r.label.as_deref() == Some("correction") {
            self.corrections += 1;
        }
        if r.checks.is_empty() {
            return;
        }
        for c in &r.checks {
            let i = match self.criteria.iter().position(|x| x.name == c.name) {
                Some(i) => i,
                None => {
                    self.criteria.push(CriterionStats {
                        name: c.name.clone(),
                        passed: 0,
                        total: 0,
                        example: String::new(),
                    });
                    self.criteria.len() - 1
                }
            };
            let s = &mut self.criteria[i];
            s.total += 1;
            if c.passed {
                s.passed += 1;
            } else if s.example.is_empty() {
                s.example = c.detail.clone();
            }
        }
        // A first answer is any answer that is not a correction of a previous one.
        if r.label.as_deref() != Some("correction") {
            self.first_answers.1 += 1;
            if r.checks.iter().all(|c| c.passed) {
                self.first_answers.0 += 1;
            }
        }
    }

    /// Measured requests so far.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True before the first measured request.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The step's aggregates; `partial` marks a step that did not run to its end.
    pub fn result(&self, slo: Option<&Slo>, partial: bool) -> StepResult {
        let ok: Vec<_> = self.samples.iter().filter(|s| s.ok).map(|s| &s.metrics).collect();
        let summary =
            |f: &dyn Fn(&crate::metrics::RequestMetrics) -> Option<f64>| Summary::of(ok.iter().filter_map(|m| f(m)));
        let metrics = StepMetrics {
            ttft_ms: summary(&|m| m.ttft_ms),
            ttft_content_ms: summary(&|m| m.ttft_content_ms),
            ttfb_ms: summary(&|m| m.ttfb_ms),
            e2e_ms: summary(&|m| m.e2e_ms),
            e2e_from_scheduled_ms: summary(&|m| m.e2e_from_scheduled_ms),
            ttft_from_scheduled_ms: summary(&|m| m.ttft_from_scheduled_ms),
            queue_delay_ms: summary(&|m| m.queue_delay_ms),
            network_overhead_ms: summary(&|m| m.network_overhead_ms),
            tpot_ms: summary(&|m| m.tpot_ms),
            itl_chunk_ms: Summary::of(ok.iter().flat_map(|m| m.itl_chunk_ms.iter().copied())),
            itl_token_ms: Summary::of(ok.iter().flat_map(|m| m.itl_token_ms.iter().copied())),
            decode_tokens_per_s: summary(&|m| m.decode_tokens_per_s),
            tokens_per_s: summary(&|m| m.tokens_per_s),
            output_tokens: summary(&|m| Some(m.output_tokens as f64)),
            prompt_tokens: summary(&|m| m.prompt_tokens.map(|n| n as f64)),
            cached_tokens: summary(&|m| m.cached_tokens.map(|n| n as f64)),
            reasoning_ms: summary(&|m| m.reasoning_ms),
            server_prefill_ms: Summary::of(self.server_prefill_ms.iter().copied()),
            server_decode_ms: Summary::of(self.server_decode_ms.iter().copied()),
            server_load_ms: Summary::of(self.server_load_ms.iter().copied()),
        };
        let mut token_sources = BTreeMap::new();
        for m in &ok {
            *token_sources.entry(m.token_source.as_str().to_string()).or_insert(0) += 1;
        }
        let requests = self.samples.len() as u64;
        let succeeded = ok.len() as u64;
        StepResult {
            name: self.name.clone(),
            config: self.config.clone(),
            requests,
            succeeded,
            failed: requests - succeeded,
            success_rate: if requests == 0 { 0.0 } else { succeeded as f64 / requests as f64 },
            warmup_requests: self.warmup,
            partial,
            metrics,
            rates: StepRates::of(&self.samples, slo),
            errors: self.errors.clone(),
            token_sources,
            connections: self.connections.clone(),
            quality: self.quality(),
            samples: self.columns(),
            server_metrics: None,
            drafts: crate::speculative::DraftCounts::of(&self.samples),
            cost: self.price.as_ref().map(|(currency, price)| StepCost::of(&self.samples, currency, price)),
        }
    }
}

impl StepAccumulator {
    /// The measured requests so far, for analyses.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    fn columns(&self) -> StepSamples {
        let start = self.samples.iter().map(|s| s.scheduled).min().unwrap_or(0);
        let us = |v: Option<f64>| v.map(|x| (x * 1e3).round() / 1e3);
        let mut c = StepSamples::default();
        for s in self.samples.iter().filter(|s| s.ok) {
            let m = &s.metrics;
            c.end_s.push(s.done.map_or(0.0, |d| ((d.saturating_sub(start)) as f64 / 1e6).round() / 1e3));
            c.ttft_ms.push(us(m.ttft_ms));
            c.e2e_ms.push(us(m.e2e_ms));
            c.tpot_ms.push(us(m.tpot_ms));
            c.queue_delay_ms.push(us(m.queue_delay_ms));
            c.network_overhead_ms.push(us(m.network_overhead_ms));
            c.decode_tokens_per_s.push(us(m.decode_tokens_per_s));
            c.tokens_per_s.push(us(m.tokens_per_s));
            c.prompt_tokens.push(m.prompt_tokens);
            c.output_tokens.push(m.output_tokens);
            c.cached_tokens.push(m.cached_tokens);
            c.turn.push(s.turn);
            c.server_prefill_ms.push(us(s.server_prefill_ms));
            c.server_decode_ms.push(us(s.server_decode_ms));
        }
        c
    }

    fn quality(&self) -> Option<QualityStats> {
        if self.criteria.is_empty() {
            return None;
        }
        let checked: Vec<(u32, u32)> =
            self.samples.iter().filter(|s| s.ok && s.checks.1 > 0).map(|s| s.checks).collect();
        let score = if checked.is_empty() {
            0.0
        } else {
            checked.iter().map(|(p, t)| f64::from(*p) / f64::from(*t)).sum::<f64>() / checked.len() as f64
        };
        let (ok, all) = self.first_answers;
        Some(QualityStats {
            score,
            first_try_rate: if all == 0 { 0.0 } else { ok as f64 / all as f64 },
            corrections: self.corrections,
            criteria: self.criteria.clone(),
        })
    }
}

/// The original velollm's per-benchmark entry for a step result.
pub fn legacy(step: &StepResult, model: &str, timestamp: &str) -> LegacyBenchmark {
    let mean = |s: &Option<Summary>| s.as_ref().map_or(0.0, |s| s.mean);
    let total = |s: &Option<Summary>| s.as_ref().map_or(0.0, |s| s.mean * s.count as f64);
    LegacyBenchmark {
        config: LegacyConfig {
            name: step.name.clone(),
            model: model.to_string(),
            prompt: step.config.prompt.clone(),
            max_tokens: step.config.max_tokens,
            iterations: step.requests,
        },
        tokens_per_second: mean(&step.metrics.decode_tokens_per_s),
        time_to_first_token_ms: mean(&step.metrics.ttft_ms),
        total_time_ms: total(&step.metrics.e2e_ms),
        total_tokens: total(&step.metrics.output_tokens).round() as u64,
        prompt_eval_count: mean(&step.metrics.prompt_tokens).round() as u64,
        eval_count: mean(&step.metrics.output_tokens).round() as u64,
        timestamp: timestamp.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{Bounds, LoadProfile};
    use crate::record::{Channel, Chunk, RequestError, Usage};

    const MS: u64 = 1_000_000;

    fn config() -> StepConfig {
        StepConfig {
            prompt: "hi".into(),
            prompt_tokens: None,
            max_tokens: 8,
            exact_output: false,
            load: LoadProfile::Sequential,
            bounds: Bounds::default(),
            turns: None,
            tags: Default::default(),
        }
    }

    fn ok(start_ms: u64, ttft_ms: u64, tokens: u64) -> RequestRecord {
        let chunks = (0..tokens)
            .map(|i| Chunk {
                t: (start_ms + ttft_ms + 10 * i) * MS,
                channel: Channel::Content,
                events: 1,
                tokens: None,
                bytes: 2,
            })
            .collect();
        RequestRecord {
            scheduled: start_ms * MS,
            sent: Some(start_ms * MS),
            headers: Some((start_ms + 1) * MS),
            done: Some((start_ms + ttft_ms + 10 * (tokens - 1)) * MS),
            chunks,
            usage: Some(Usage { prompt_tokens: Some(5), completion_tokens: Some(tokens), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn aggregates_successes_and_counts_errors() {
        let mut acc = StepAccumulator::new("s", config());
        acc.push(&RequestRecord { warmup: true, ..ok(0, 100, 3) });
        acc.push(&ok(0, 100, 3));
        acc.push(&ok(200, 300, 5));
        acc.push(&RequestRecord {
            scheduled: 300 * MS,
            error: Some(RequestError { class: ErrorClass::Http5xx, message: "HTTP 503".into(), retry_after_s: None }),
            ..Default::default()
        });
        let r = acc.result(None, false);
        assert_eq!((r.requests, r.succeeded, r.failed, r.warmup_requests), (3, 2, 1, 1));
        assert!((r.success_rate - 2.0 / 3.0).abs() < 1e-12);
        let ttft = r.metrics.ttft_ms.as_ref().unwrap();
        assert_eq!((ttft.count, ttft.min, ttft.max, ttft.mean), (2, 100.0, 300.0, 200.0));
        assert_eq!(r.errors[&ErrorClass::Http5xx].count, 1);
        assert_eq!(r.token_sources["server_usage"], 2);
        assert_eq!(r.metrics.itl_chunk_ms.as_ref().unwrap().count, 2 + 4);

        let l = legacy(&r, "m", "2026-01-01T00:00:00Z");
        assert_eq!(l.total_tokens, 8);
        assert_eq!(l.eval_count, 4);
        assert_eq!(l.prompt_eval_count, 5);
        assert_eq!(l.time_to_first_token_ms, 200.0);
        assert_eq!(l.total_time_ms, 120.0 + 340.0);
    }
}
