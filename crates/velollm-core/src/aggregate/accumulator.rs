//! Turns a step's request records into the aggregates of the result document.
//!
//! Memory stays flat as requests finish: every metric goes into a [`Distribution`] (exact up to
//! [`crate::stats::EXACT_CAP`] values, an HDR histogram past it), rates, cost and counts are running sums, and
//! at most [`SAMPLE_CAP`] requests are kept whole (a seeded reservoir sample, without their per-chunk gaps) for
//! analyses and the result's per-request columns.

use crate::aggregate::step::{
    ConnectionStats, CriterionStats, ErrorSummary, QualityStats, StepConfig, StepMetrics, StepResult, StepSamples,
};
use crate::measure::cost::{CostAccumulator, Price};
use crate::measure::metrics::{RateAccumulator, RequestMetrics, Sample, TokenSource};
use crate::measure::record::{ErrorClass, Nanos, RequestRecord};
use crate::measure::sessions::{Call, CallEnd, SessionAccumulator};
use crate::measure::slo::Slo;
use crate::measure::speculative::DraftCounts;
use crate::stats::Distribution;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// Measured requests a step keeps whole for analyses and the per-request columns; past it they are a uniform
/// random sample of all measured requests (reservoir sampling, Algorithm R, seeded: the same requests in the
/// same order keep the same sample).
pub const SAMPLE_CAP: usize = 100_000;

/// Seed of the reservoir sample.
const RESERVOIR_SEED: u64 = 0x7665_6c6f_6c6c_6d00;

/// One distribution per summarised metric of successful requests.
#[derive(Debug, Clone, Default)]
struct Distributions {
    ttft_ms: Distribution,
    ttft_content_ms: Distribution,
    ttfb_ms: Distribution,
    e2e_ms: Distribution,
    e2e_from_scheduled_ms: Distribution,
    ttft_from_scheduled_ms: Distribution,
    queue_delay_ms: Distribution,
    network_overhead_ms: Distribution,
    tpot_ms: Distribution,
    itl_chunk_ms: Distribution,
    itl_token_ms: Distribution,
    decode_tokens_per_s: Distribution,
    tokens_per_s: Distribution,
    output_tokens: Distribution,
    prompt_tokens: Distribution,
    cached_tokens: Distribution,
    reasoning_ms: Distribution,
    server_prefill_ms: Distribution,
    server_decode_ms: Distribution,
    server_load_ms: Distribution,
}

impl Distributions {
    /// Record a successful request's metrics.
    fn record(&mut self, m: &RequestMetrics) {
        let opt = |d: &mut Distribution, v: Option<f64>| v.into_iter().for_each(|v| d.record(v));
        opt(&mut self.ttft_ms, m.ttft_ms);
        opt(&mut self.ttft_content_ms, m.ttft_content_ms);
        opt(&mut self.ttfb_ms, m.ttfb_ms);
        opt(&mut self.e2e_ms, m.e2e_ms);
        opt(&mut self.e2e_from_scheduled_ms, m.e2e_from_scheduled_ms);
        opt(&mut self.ttft_from_scheduled_ms, m.ttft_from_scheduled_ms);
        opt(&mut self.queue_delay_ms, m.queue_delay_ms);
        opt(&mut self.network_overhead_ms, m.network_overhead_ms);
        opt(&mut self.tpot_ms, m.tpot_ms);
        m.itl_chunk_ms.iter().for_each(|&v| self.itl_chunk_ms.record(v));
        m.itl_token_ms.iter().for_each(|&v| self.itl_token_ms.record(v));
        opt(&mut self.decode_tokens_per_s, m.decode_tokens_per_s);
        opt(&mut self.tokens_per_s, m.tokens_per_s);
        self.output_tokens.record(m.output_tokens as f64);
        opt(&mut self.prompt_tokens, m.prompt_tokens.map(|n| n as f64));
        opt(&mut self.cached_tokens, m.cached_tokens.map(|n| n as f64));
        opt(&mut self.reasoning_ms, m.reasoning_ms);
    }

    fn summaries(&self) -> StepMetrics {
        StepMetrics {
            ttft_ms: self.ttft_ms.summary(),
            ttft_content_ms: self.ttft_content_ms.summary(),
            ttfb_ms: self.ttfb_ms.summary(),
            e2e_ms: self.e2e_ms.summary(),
            e2e_from_scheduled_ms: self.e2e_from_scheduled_ms.summary(),
            ttft_from_scheduled_ms: self.ttft_from_scheduled_ms.summary(),
            queue_delay_ms: self.queue_delay_ms.summary(),
            network_overhead_ms: self.network_overhead_ms.summary(),
            tpot_ms: self.tpot_ms.summary(),
            itl_chunk_ms: self.itl_chunk_ms.summary(),
            itl_token_ms: self.itl_token_ms.summary(),
            decode_tokens_per_s: self.decode_tokens_per_s.summary(),
            tokens_per_s: self.tokens_per_s.summary(),
            output_tokens: self.output_tokens.summary(),
            prompt_tokens: self.prompt_tokens.summary(),
            cached_tokens: self.cached_tokens.summary(),
            reasoning_ms: self.reasoning_ms.summary(),
            server_prefill_ms: self.server_prefill_ms.summary(),
            server_decode_ms: self.server_decode_ms.summary(),
            server_load_ms: self.server_load_ms.summary(),
        }
    }

    #[cfg(test)]
    fn all(&self) -> [&Distribution; 20] {
        [
            &self.ttft_ms,
            &self.ttft_content_ms,
            &self.ttfb_ms,
            &self.e2e_ms,
            &self.e2e_from_scheduled_ms,
            &self.ttft_from_scheduled_ms,
            &self.queue_delay_ms,
            &self.network_overhead_ms,
            &self.tpot_ms,
            &self.itl_chunk_ms,
            &self.itl_token_ms,
            &self.decode_tokens_per_s,
            &self.tokens_per_s,
            &self.output_tokens,
            &self.prompt_tokens,
            &self.cached_tokens,
            &self.reasoning_ms,
            &self.server_prefill_ms,
            &self.server_decode_ms,
            &self.server_load_ms,
        ]
    }
}

/// Collects one step's records as they complete and summarises them on demand, in memory that does not grow
/// with the number of requests (see the module documentation).
#[derive(Debug, Clone)]
pub struct StepAccumulator {
    name: String,
    config: StepConfig,
    dists: Distributions,
    rates: RateAccumulator,
    cost: CostAccumulator,
    drafts: DraftCounts,
    proxy_cache: crate::measure::proxy_cache::ProxyCacheAccumulator,
    proxy_hedge: crate::measure::proxy_hedge::ProxyHedgeAccumulator,
    sessions: SessionAccumulator,
    slo: Option<Slo>,
    token_sources: BTreeMap<TokenSource, u64>,
    /// Σ share of criteria passed, and the number of successful requests checked.
    check_scores: (f64, u64),
    samples: Vec<Sample>,
    /// The requests the client aborted on purpose (`--cancel-share`): `done` and the output tokens received.
    aborted: Vec<(Nanos, u64)>,
    /// Arrival index of each retained sample, once the reservoir has replaced one (empty before).
    arrivals: Vec<u64>,
    sample_cap: usize,
    reservoir: StdRng,
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
            dists: Distributions::default(),
            rates: RateAccumulator::default(),
            cost: CostAccumulator::default(),
            drafts: DraftCounts::default(),
            proxy_cache: Default::default(),
            proxy_hedge: Default::default(),
            sessions: SessionAccumulator::default(),
            slo: None,
            token_sources: BTreeMap::new(),
            check_scores: (0.0, 0),
            samples: Vec::new(),
            aborted: Vec::new(),
            arrivals: Vec::new(),
            sample_cap: SAMPLE_CAP,
            reservoir: StdRng::seed_from_u64(RESERVOIR_SEED),
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

    /// Count goodput against `slo` as requests arrive, so that [`StepAccumulator::result`] with the same SLO
    /// is exact however many requests there were. Without it, goodput is counted at result time over the
    /// retained requests (exact up to [`SAMPLE_CAP`] requests, estimated from the sample past it).
    pub fn with_slo(mut self, slo: Slo) -> StepAccumulator {
        self.slo = Some(slo);
        self
    }

    /// The same accumulator retaining at most `cap` requests.
    #[cfg(test)]
    fn with_sample_cap(mut self, cap: usize) -> StepAccumulator {
        self.sample_cap = cap;
        self
    }

    /// Add a finished request. Warm-up requests are only counted; cancelled requests (Ctrl-C) and requests the
    /// client aborted on purpose (`--cancel-share`) are counted under their error class but are not measured
    /// requests.
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
            if matches!(e.class, ErrorClass::Cancelled | ErrorClass::Aborted) {
                let sample = Sample::of(r);
                if e.class == ErrorClass::Aborted {
                    self.aborted.push((r.done.unwrap_or(r.scheduled), sample.metrics.output_tokens));
                }
                self.session_call(r, CallEnd::Cancelled, &sample);
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
            let d = &mut self.dists;
            n.prompt_ms.into_iter().for_each(|v| d.server_prefill_ms.record(v));
            n.predicted_ms.into_iter().for_each(|v| d.server_decode_ms.record(v));
            n.load_ms.into_iter().for_each(|v| d.server_load_ms.record(v));
        }
        self.push_checks(r);
        let mut s = Sample::of(r);
        self.session_call(r, if s.ok { CallEnd::Completed } else { CallEnd::Failed }, &s);
        self.rates.push(&s, self.slo.as_ref());
        self.cost.push(&s);
        self.drafts.add(&s);
        if s.ok {
            self.proxy_cache.push(r, s.metrics.ttft_ms);
            self.proxy_hedge.push(r);
            self.dists.record(&s.metrics);
            *self.token_sources.entry(s.metrics.token_source).or_insert(0) += 1;
            if s.checks.1 > 0 {
                self.check_scores.0 += f64::from(s.checks.0) / f64::from(s.checks.1);
                self.check_scores.1 += 1;
            }
        }
        // The gaps are in the distributions now; a retained sample keeps only their count (`output_chunks`).
        s.metrics.itl_chunk_ms = Vec::new();
        s.metrics.itl_token_ms = Vec::new();
        self.retain(s);
    }

    /// Counts a call of a session (a record with a conversation id).
    fn session_call(&mut self, r: &RequestRecord, end: CallEnd, s: &Sample) {
        if let Some(session) = r.conversation {
            self.sessions.push(Call {
                session,
                scheduled: r.scheduled,
                done: r.done,
                end,
                prompt_tokens: s.metrics.prompt_tokens,
                output_tokens: s.metrics.output_tokens,
            });
        }
    }

    /// Keep `s` in the reservoir: the first [`SAMPLE_CAP`] requests all, then the n-th (0-based) replaces a
    /// random retained one with probability cap ÷ (n + 1) (Algorithm R).
    fn retain(&mut self, s: Sample) {
        let cap = self.sample_cap;
        if self.samples.len() < cap {
            self.samples.push(s);
            return;
        }
        let n = self.rates.measured() - 1;
        let j = self.reservoir.random_range(0..=n);
        if let Ok(j) = usize::try_from(j)
            && j < cap
        {
            if self.arrivals.is_empty() {
                self.arrivals = (0..cap as u64).collect();
            }
            self.samples[j] = s;
            self.arrivals[j] = n;
        }
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
        usize::try_from(self.rates.measured()).unwrap_or(usize::MAX)
    }

    /// True before the first measured request.
    pub fn is_empty(&self) -> bool {
        self.rates.measured() == 0
    }

    /// The step's aggregates; `partial` marks a step that did not run to its end.
    pub fn result(&self, slo: Option<&Slo>, partial: bool) -> StepResult {
        let requests = self.rates.measured();
        let succeeded = self.rates.succeeded();
        StepResult {
            name: self.name.clone(),
            config: self.config.clone(),
            requests,
            succeeded,
            failed: requests - succeeded,
            success_rate: if requests == 0 { 0.0 } else { succeeded as f64 / requests as f64 },
            warmup_requests: self.warmup,
            partial,
            metrics: self.dists.summaries(),
            rates: self.rates(slo),
            errors: self.errors.clone(),
            token_sources: self.token_sources.iter().map(|(k, n)| (k.as_str().to_string(), *n)).collect(),
            connections: self.connections.clone(),
            quality: self.quality(),
            samples: self.columns(),
            server_metrics: None,
            drafts: self.drafts.nonzero(),
            proxy_cache: self.proxy_cache.stats(),
            proxy_hedge: self.proxy_hedge.stats(),
            sessions: self.sessions.stats(),
            cost: self.price.as_ref().map(|(currency, price)| self.cost.cost(currency, price)),
        }
    }

    /// The rates, goodput against `slo`: from the running count when the accumulator was built with this SLO,
    /// else from the retained requests (scaled to all measured requests when they are a sample).
    fn rates(&self, slo: Option<&Slo>) -> crate::measure::metrics::StepRates {
        match slo.filter(|s| !s.objectives.is_empty()) {
            None => self.rates.rates(None),
            Some(slo) if self.slo.as_ref() == Some(slo) => self.rates.rates(Some(slo)),
            Some(slo) => {
                let good = self.samples.iter().filter(|s| s.ok && s.metrics.meets(slo)).count() as f64;
                let scale = if self.samples.is_empty() {
                    0.0
                } else {
                    self.rates.measured() as f64 / self.samples.len() as f64
                };
                self.rates.rates_with_good(Some(good * scale))
            }
        }
    }
}

impl StepAccumulator {
    /// The measured requests kept for analyses, without their per-chunk gaps (`itl_chunk_ms` and
    /// `itl_token_ms` are empty; `output_chunks` keeps their count). Every measured request in arrival order
    /// up to [`SAMPLE_CAP`]; past it a uniform random sample of them, in no particular order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The requests the client aborted on purpose (`--cancel-share`), in arrival order: when, and the output
    /// tokens received before the abort.
    pub fn aborted(&self) -> &[(Nanos, u64)] {
        &self.aborted
    }

    /// Retained samples in arrival order.
    fn ordered(&self) -> Vec<&Sample> {
        if self.arrivals.is_empty() {
            return self.samples.iter().collect();
        }
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        order.sort_unstable_by_key(|&i| self.arrivals[i]);
        order.into_iter().map(|i| &self.samples[i]).collect()
    }

    /// The per-request columns. Each column is collected from an exact-size iterator, so it is allocated once at
    /// its final length: built for every progress snapshot, columns grown by doubling left the allocator
    /// holding blocks of every intermediate size (resident memory well above the live heap).
    fn columns(&self) -> StepSamples {
        let start = self.rates.start().unwrap_or(0);
        let kept: Vec<&Sample> = self.ordered().into_iter().filter(|s| s.ok).collect();
        let column = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<Option<f64>> {
            kept.iter().map(|s| f(s).map(|x| (x * 1e3).round() / 1e3)).collect()
        };
        StepSamples {
            end_s: kept
                .iter()
                .map(|s| s.done.map_or(0.0, |d| (d.saturating_sub(start) as f64 / 1e6).round() / 1e3))
                .collect(),
            ttft_ms: column(&|s| s.metrics.ttft_ms),
            e2e_ms: column(&|s| s.metrics.e2e_ms),
            tpot_ms: column(&|s| s.metrics.tpot_ms),
            queue_delay_ms: column(&|s| s.metrics.queue_delay_ms),
            network_overhead_ms: column(&|s| s.metrics.network_overhead_ms),
            decode_tokens_per_s: column(&|s| s.metrics.decode_tokens_per_s),
            tokens_per_s: column(&|s| s.metrics.tokens_per_s),
            prompt_tokens: kept.iter().map(|s| s.metrics.prompt_tokens).collect(),
            output_tokens: kept.iter().map(|s| s.metrics.output_tokens).collect(),
            cached_tokens: kept.iter().map(|s| s.metrics.cached_tokens).collect(),
            turn: kept.iter().map(|s| s.turn).collect(),
            server_prefill_ms: column(&|s| s.server_prefill_ms),
            server_decode_ms: column(&|s| s.server_decode_ms),
            retained_of: if self.rates.measured() > self.samples.len() as u64 { self.rates.succeeded() } else { 0 },
        }
    }

    fn quality(&self) -> Option<QualityStats> {
        if self.criteria.is_empty() {
            return None;
        }
        let (sum, checked) = self.check_scores;
        let score = if checked == 0 { 0.0 } else { sum / checked as f64 };
        let (ok, all) = self.first_answers;
        Some(QualityStats {
            score,
            first_try_rate: if all == 0 { 0.0 } else { ok as f64 / all as f64 },
            corrections: self.corrections,
            criteria: self.criteria.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::record::{Channel, Chunk, RequestError, Usage};
    use crate::stats::Summary;
    use crate::workload::load::{Bounds, LoadProfile};

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

        let l = crate::document::result::legacy(&r, "m", "2026-01-01T00:00:00Z");
        assert_eq!(l.total_tokens, 8);
        assert_eq!(l.eval_count, 4);
        assert_eq!(l.prompt_eval_count, 5);
        assert_eq!(l.time_to_first_token_ms, 200.0);
        assert_eq!(l.total_time_ms, 120.0 + 340.0);
    }

    /// Set the times of `r`, a request of one-token content chunks, to those of the `i`-th request: gaps
    /// of 1 to 21 ms that vary with `i` and the chunk.
    fn retime(r: &mut RequestRecord, i: u64) {
        let start = i * 5 * MS;
        let mut t = start + 50 * MS;
        for (k, c) in r.chunks.iter_mut().enumerate() {
            t += MS + (i * 7919 + k as u64 * 104_729) % (20 * MS);
            c.t = t;
        }
        (r.scheduled, r.sent, r.headers, r.done) = (start, Some(start), Some(start + MS), Some(t + MS));
    }

    /// The `i`-th request of `chunks` one-token content chunks.
    fn streamed(i: u64, chunks: u32) -> RequestRecord {
        let chunk = Chunk { t: 0, channel: Channel::Content, events: 1, tokens: None, bytes: 8 };
        let usage = Usage { prompt_tokens: Some(128), completion_tokens: Some(chunks.into()), ..Default::default() };
        let mut r = RequestRecord { chunks: vec![chunk; chunks as usize], usage: Some(usage), ..Default::default() };
        retime(&mut r, i);
        r
    }

    /// Not timed: memory is checked through the lengths the accumulator keeps, not the process's size.
    #[test]
    fn memory_stays_bounded_as_requests_accumulate() {
        const N: u64 = 300_000;
        let mut acc = StepAccumulator::new("s", config());
        // One record retimed 300,000 times instead of 300,000 records.
        let mut r = streamed(0, 64);
        for i in 0..N {
            retime(&mut r, i);
            acc.push(&r);
        }
        assert_eq!(acc.len(), N as usize);
        assert_eq!(acc.samples().len(), SAMPLE_CAP);
        assert!(acc.samples().iter().all(|s| s.metrics.itl_chunk_ms.is_empty() && s.metrics.itl_token_ms.is_empty()));
        assert!(acc.samples().iter().all(|s| s.metrics.output_chunks == 64));
        assert!(acc.dists.all().iter().all(|d| d.exact_len() <= crate::stats::EXACT_CAP));
        assert!(!acc.dists.itl_chunk_ms.is_exact() && !acc.dists.ttft_ms.is_exact());
        assert_eq!(acc.arrivals.len(), SAMPLE_CAP);

        let step = acc.result(None, false);
        assert_eq!((step.requests, step.succeeded), (N, N));
        let itl = step.metrics.itl_chunk_ms.unwrap();
        assert_eq!(itl.count, 63 * N);
        assert!(itl.min >= 1.0 && itl.max <= 21.0 && itl.p50 > itl.min && itl.p50 < itl.max, "{itl:?}");
        assert_eq!(step.metrics.output_tokens.unwrap().mean, 64.0);
        assert_eq!(step.samples.len(), SAMPLE_CAP);
        assert_eq!(step.samples.retained_of, N);
        // Built for every progress snapshot: each column is allocated once, at its length.
        let c = &step.samples;
        assert_eq!((c.end_s.capacity(), c.ttft_ms.capacity(), c.turn.capacity()), (SAMPLE_CAP, SAMPLE_CAP, SAMPLE_CAP));
        assert!((step.rates.output_token_throughput * step.rates.duration_s - 64.0 * N as f64).abs() < 1e-3);
    }

    #[test]
    fn reservoir_is_seeded_and_estimates_goodput() {
        let run = || {
            let mut acc = StepAccumulator::new("s", config()).with_sample_cap(50);
            (0..1000).for_each(|i| acc.push(&ok(i * 2000, 100 + (i % 10) * 100, 3)));
            acc
        };
        let (a, b) = (run(), run());
        assert_eq!(a.samples(), b.samples());
        let step = a.result(None, false);
        assert_eq!((step.samples.len(), step.samples.retained_of, step.requests), (50, 1000, 1000));
        // A uniform sample spans the run, not its first 50 requests.
        assert!(a.arrivals.iter().any(|&n| n > 500));
        // The sampled columns are in arrival order (these requests end in the order they arrive).
        assert!(step.samples.end_s.windows(2).all(|w| w[0] < w[1]));
        // Exact goodput with the SLO given up front; estimated from the sample without it.
        let slo: Slo = "ttft=550ms".parse().unwrap();
        let exact = {
            let mut acc = StepAccumulator::new("s", config()).with_sample_cap(50).with_slo(slo.clone());
            (0..1000).for_each(|i| acc.push(&ok(i * 2000, 100 + (i % 10) * 100, 3)));
            acc.result(Some(&slo), false).rates
        };
        assert_eq!(exact.good_fraction, Some(0.5));
        let estimate = a.result(Some(&slo), false).rates.good_fraction.unwrap();
        assert!((0.25..=0.75).contains(&estimate), "{estimate}");
    }

    #[test]
    fn small_runs_keep_every_request_and_exact_summaries() {
        let records: Vec<RequestRecord> = (0..200).map(|i| streamed(i, 8)).collect();
        let mut acc = StepAccumulator::new("s", config());
        records.iter().for_each(|r| acc.push(r));
        let step = acc.result(None, false);
        let samples: Vec<Sample> = records.iter().map(Sample::of).collect();
        let itl = Summary::of(samples.iter().flat_map(|s| s.metrics.itl_chunk_ms.iter().copied()));
        assert_eq!(step.metrics.itl_chunk_ms, itl);
        assert_eq!(step.metrics.ttft_ms, Summary::of(samples.iter().filter_map(|s| s.metrics.ttft_ms)));
        assert_eq!(step.rates, crate::measure::metrics::StepRates::of(&samples, None));
        assert_eq!((step.samples.len(), step.samples.retained_of), (200, 0));
        let slo: Slo = "ttft=60ms".parse().unwrap();
        let with = {
            let mut acc = StepAccumulator::new("s", config()).with_slo(slo.clone());
            records.iter().for_each(|r| acc.push(r));
            acc.result(Some(&slo), false).rates
        };
        assert_eq!(with, acc.result(Some(&slo), false).rates);
        assert_eq!(with, crate::measure::metrics::StepRates::of(&samples, Some(&slo)));
    }
}
