//! Every metric formula velollm reports, in exactly one place (mirrored in `docs/metrics.md`).
//!
//! Per request, from a [`RequestRecord`] (all instants on the same monotonic clock):
//!
//! | metric | formula |
//! |---|---|
//! | TTFT | first chunk carrying generated output (content, reasoning or tool call; never role-only) − sent |
//! | TTFT-content | first content chunk − sent |
//! | TTFB | headers − sent |
//! | client queue delay | sent − scheduled |
//! | network overhead | DNS + TCP connect + TLS, for a new connection; 0 for a reused one |
//! | E2E (TTR) | done − sent |
//! | E2E from schedule | done − scheduled (open-loop latency free of coordinated omission) |
//! | TTFT from schedule | first output chunk − scheduled |
//! | TPOT | (E2E − TTFT) ÷ (output tokens − 1), for output tokens > 1 |
//! | ITL per chunk | gaps between consecutive output chunks |
//! | ITL per token | each gap ÷ the tokens in the later chunk, when per-chunk tokens are known |
//! | decode speed | (output tokens − 1) ÷ (E2E − TTFT) |
//! | tokens/s | output tokens ÷ E2E |
//!
//! Per step (see [`StepRates`]): output throughput = Σ output tokens ÷ window, request throughput =
//! successful requests ÷ window, goodput = requests meeting every SLO ÷ window, where the window runs from
//! the first measured request's scheduled instant to the last measured request's done instant.

use crate::measure::record::{Channel, ErrorClass, Nanos, RequestRecord};
use crate::measure::slo::Slo;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Nanoseconds to milliseconds.
pub fn ms(ns: Nanos) -> f64 {
    ns as f64 / 1e6
}

/// Where a request's output token count came from, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// `usage.completion_tokens` or the engine's own count (Ollama `eval_count`, llama.cpp `predicted_n`).
    ServerUsage,
    /// A local `tokenizer.json` applied to the generated text.
    Tokenizer,
    /// The number of output stream events (one token per event assumed).
    Chunks,
}

impl TokenSource {
    /// The snake_case name used in results and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::ServerUsage => "server_usage",
            TokenSource::Tokenizer => "tokenizer",
            TokenSource::Chunks => "chunks",
        }
    }
}

/// Output tokens of a request and where the count came from: server usage first, then the engine's native
/// count, then a local tokenizer, then the number of output stream events. Never estimated from words.
pub fn output_tokens(r: &RequestRecord) -> (u64, TokenSource) {
    if let Some(n) = r.usage.as_ref().and_then(|u| u.completion_tokens) {
        return (n, TokenSource::ServerUsage);
    }
    if let Some(n) = r.native.as_ref().and_then(|n| n.predicted_n) {
        return (n, TokenSource::ServerUsage);
    }
    if let Some(n) = r.tokenizer_output_tokens {
        return (n, TokenSource::Tokenizer);
    }
    let events: u64 = r.output_chunks().map(|c| u64::from(c.events)).sum();
    (events, TokenSource::Chunks)
}

/// Prompt tokens of a request, when known: server usage, the engine's native count, then the tokenizer.
pub fn prompt_tokens(r: &RequestRecord) -> Option<u64> {
    r.usage
        .as_ref()
        .and_then(|u| u.prompt_tokens)
        .or_else(|| r.native.as_ref().and_then(|n| n.prompt_n))
        .or(r.tokenizer_prompt_tokens)
}

/// Prompt tokens served from the server's cache, when reported.
pub fn cached_tokens(r: &RequestRecord) -> Option<u64> {
    r.usage.as_ref().and_then(|u| u.cached_tokens).or_else(|| r.native.as_ref().and_then(|n| n.cache_n))
}

/// Tokens in each output chunk, when they can be known without guessing: the chunk's own count (server or
/// tokenizer) when every output chunk has one; otherwise one token per event when the request's token
/// total equals its number of output events. `None` otherwise.
fn tokens_per_output_chunk(r: &RequestRecord, total: u64) -> Option<Vec<u32>> {
    let chunks: Vec<_> = r.output_chunks().collect();
    if chunks.iter().all(|c| c.tokens.is_some()) {
        return Some(chunks.iter().map(|c| c.tokens.unwrap_or(0)).collect());
    }
    let events: u64 = chunks.iter().map(|c| u64::from(c.events)).sum();
    (events == total).then(|| chunks.iter().map(|c| c.events).collect())
}

/// Metrics derived from one request. Durations in milliseconds; `None` where the formula does not apply.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMetrics {
    /// Time to first generated output (content, reasoning or tool call).
    pub ttft_ms: Option<f64>,
    /// Time to first answer content (reasoning excluded).
    pub ttft_content_ms: Option<f64>,
    /// Time to response headers.
    pub ttfb_ms: Option<f64>,
    /// Client-side queue / scheduling delay (sent − scheduled).
    pub queue_delay_ms: Option<f64>,
    /// DNS + connect + TLS (+ the WebSocket upgrade) for a new connection, 0 for a reused one.
    pub network_overhead_ms: Option<f64>,
    /// End-to-end latency (done − sent).
    pub e2e_ms: Option<f64>,
    /// End-to-end latency measured from the scheduled instant.
    pub e2e_from_scheduled_ms: Option<f64>,
    /// Time to first output measured from the scheduled instant.
    pub ttft_from_scheduled_ms: Option<f64>,
    /// Time per output token after the first.
    pub tpot_ms: Option<f64>,
    /// Gaps between consecutive output chunks.
    pub itl_chunk_ms: Vec<f64>,
    /// Gaps divided by the tokens of the later chunk (empty when per-chunk tokens are unknown).
    pub itl_token_ms: Vec<f64>,
    /// Output chunks (content, reasoning or tool call) received; kept when the ITL vectors are dropped.
    pub output_chunks: u64,
    /// Decode speed in tokens/s, first token excluded.
    pub decode_tokens_per_s: Option<f64>,
    /// Output tokens ÷ E2E, in tokens/s.
    pub tokens_per_s: Option<f64>,
    /// Output tokens.
    pub output_tokens: u64,
    /// Where `output_tokens` came from.
    pub token_source: TokenSource,
    /// Prompt tokens, when known.
    pub prompt_tokens: Option<u64>,
    /// Cached prompt tokens, when reported.
    pub cached_tokens: Option<u64>,
    /// Prompt tokens written to the prompt cache, when reported (Anthropic).
    pub cache_write_tokens: Option<u64>,
    /// Speculative draft tokens proposed for this request (llama.cpp `draft_n`).
    pub draft_tokens: Option<u64>,
    /// Speculative draft tokens accepted (llama.cpp `draft_n_accepted`).
    pub draft_accepted: Option<u64>,
    /// Time spent in reasoning before the first content chunk (first content − first reasoning).
    pub reasoning_ms: Option<f64>,
}

fn span(from: Option<Nanos>, to: Option<Nanos>) -> Option<f64> {
    Some(ms(to?.checked_sub(from?)?))
}

impl RequestMetrics {
    /// Derive every per-request metric from the raw record.
    pub fn of(r: &RequestRecord) -> RequestMetrics {
        let (output_tokens, token_source) = output_tokens(r);
        let first_output = r.output_chunks().next().map(|c| c.t);
        let first_content = r.chunks.iter().find(|c| c.channel == Channel::Content).map(|c| c.t);
        let first_reasoning = r.chunks.iter().find(|c| c.channel == Channel::Reasoning).map(|c| c.t);
        let ttft_ms = span(r.sent, first_output);
        let e2e_ms = span(r.sent, r.done);
        let decode_ms = match (ttft_ms, e2e_ms) {
            (Some(t), Some(e)) => Some(e - t),
            _ => None,
        };
        let tpot_ms = decode_ms.filter(|_| output_tokens > 1).map(|d| d / (output_tokens - 1) as f64);
        let decode_tokens_per_s =
            decode_ms.filter(|&d| d > 0.0 && output_tokens > 1).map(|d| (output_tokens - 1) as f64 / (d / 1e3));
        let tokens_per_s = e2e_ms.filter(|&e| e > 0.0).map(|e| output_tokens as f64 / (e / 1e3));

        let out: Vec<_> = r.output_chunks().collect();
        let itl_chunk_ms: Vec<f64> = out.windows(2).map(|w| ms(w[1].t.saturating_sub(w[0].t))).collect();
        let itl_token_ms = match tokens_per_output_chunk(r, output_tokens) {
            Some(tokens) => itl_chunk_ms
                .iter()
                .zip(tokens.iter().skip(1))
                .filter(|(_, n)| **n > 0)
                .map(|(gap, n)| gap / f64::from(*n))
                .collect(),
            None => Vec::new(),
        };
        let network_overhead_ms = r.connection.as_ref().map(|c| {
            let setup = [c.dns_ns, c.connect_ns, c.tls_ns, c.upgrade_ns];
            if c.reused { 0.0 } else { ms(setup.iter().flatten().sum()) }
        });
        RequestMetrics {
            ttft_ms,
            ttft_content_ms: span(r.sent, first_content),
            ttfb_ms: span(r.sent, r.headers),
            queue_delay_ms: span(Some(r.scheduled), r.sent),
            network_overhead_ms,
            e2e_ms,
            e2e_from_scheduled_ms: span(Some(r.scheduled), r.done),
            ttft_from_scheduled_ms: span(Some(r.scheduled), first_output),
            tpot_ms,
            itl_chunk_ms,
            itl_token_ms,
            output_chunks: out.len() as u64,
            decode_tokens_per_s,
            tokens_per_s,
            output_tokens,
            token_source,
            prompt_tokens: prompt_tokens(r),
            cached_tokens: cached_tokens(r),
            cache_write_tokens: r.usage.as_ref().and_then(|u| u.cache_write_tokens),
            draft_tokens: r.native.as_ref().and_then(|n| n.draft_n),
            draft_accepted: r.native.as_ref().and_then(|n| n.draft_accepted),
            reasoning_ms: match (first_reasoning, first_content) {
                (Some(a), Some(b)) if b >= a => Some(ms(b - a)),
                _ => None,
            },
        }
    }

    /// True when this (successful) request meets every objective in `slo`.
    pub fn meets(&self, slo: &Slo) -> bool {
        slo.objectives.iter().all(|o| match self.value(o.metric) {
            Some(v) => v <= o.max_ms,
            None => false,
        })
    }

    /// The value of a per-request latency metric by SLO name.
    fn value(&self, metric: crate::measure::slo::SloMetric) -> Option<f64> {
        use crate::measure::slo::SloMetric::*;
        match metric {
            Ttft => self.ttft_ms,
            Tpot => self.tpot_ms.or(Some(0.0)),
            E2e => self.e2e_ms,
        }
    }
}

/// Step-level rates over the measurement window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepRates {
    /// Measurement window in seconds: first scheduled instant → last done instant of measured requests.
    pub duration_s: f64,
    /// Successful requests per second.
    pub request_throughput: f64,
    /// Σ output tokens of successful requests per second.
    pub output_token_throughput: f64,
    /// Σ (prompt + output) tokens of successful requests per second (prompt tokens where known).
    pub total_token_throughput: f64,
    /// Requests meeting every SLO per second (present when SLOs were given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<f64>,
    /// Requests meeting every SLO ÷ all measured requests, failures included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub good_fraction: Option<f64>,
}

/// What aggregates and analyses need to know about one measured request (the record without its chunks).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// When the request was scheduled.
    pub scheduled: Nanos,
    /// When it ended, if it did.
    pub done: Option<Nanos>,
    /// Whether it succeeded.
    pub ok: bool,
    /// Its error class, if it failed.
    pub error: Option<ErrorClass>,
    /// Conversation, for multi-turn steps.
    pub conversation: Option<u64>,
    /// Turn within the conversation.
    pub turn: Option<u32>,
    /// Turn label.
    pub label: Option<String>,
    /// Server-measured prefill time.
    pub server_prefill_ms: Option<f64>,
    /// Server-measured decode time.
    pub server_decode_ms: Option<f64>,
    /// Check outcomes: (passed, total).
    pub checks: (u32, u32),
    /// How its connection was obtained (the `connections` analysis splits DNS, TCP and TLS).
    pub connection: Option<crate::measure::record::ConnectionInfo>,
    /// The output length it asked for (`max_tokens`), when recorded.
    pub max_tokens: Option<u32>,
    /// Its derived metrics.
    pub metrics: RequestMetrics,
}

impl Sample {
    /// Derive the sample of a record.
    pub fn of(r: &RequestRecord) -> Sample {
        Sample {
            scheduled: r.scheduled,
            done: r.done,
            ok: r.succeeded(),
            error: r.error.as_ref().map(|e| e.class),
            conversation: r.conversation,
            turn: r.turn,
            label: r.label.clone(),
            server_prefill_ms: r.native.as_ref().and_then(|n| n.prompt_ms),
            server_decode_ms: r.native.as_ref().and_then(|n| n.predicted_ms),
            checks: (r.checks.iter().filter(|c| c.passed).count() as u32, r.checks.len() as u32),
            connection: r.connection.clone(),
            max_tokens: r.max_tokens,
            metrics: RequestMetrics::of(r),
        }
    }
}

impl StepRates {
    /// Compute the rates of a step from its measured (non-warm-up) requests.
    pub fn of(samples: &[Sample], slo: Option<&Slo>) -> StepRates {
        let mut acc = RateAccumulator::default();
        for s in samples {
            acc.push(s, slo);
        }
        acc.rates(slo)
    }
}

/// The running sums behind [`StepRates`], fed one measured request at a time: memory does not grow with the
/// number of requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateAccumulator {
    start: Option<Nanos>,
    end: Option<Nanos>,
    measured: u64,
    succeeded: u64,
    output_tokens: u64,
    prompt_tokens: u64,
    good: u64,
}

impl RateAccumulator {
    /// Add a measured request; it counts as good when it succeeded and meets every objective of `slo`.
    pub fn push(&mut self, s: &Sample, slo: Option<&Slo>) {
        self.start = Some(self.start.map_or(s.scheduled, |t| t.min(s.scheduled)));
        self.end = self.end.max(s.done);
        self.measured += 1;
        if !s.ok {
            return;
        }
        let m = &s.metrics;
        self.succeeded += 1;
        self.output_tokens += m.output_tokens;
        self.prompt_tokens += m.prompt_tokens.unwrap_or(0);
        if slo.is_some_and(|slo| m.meets(slo)) {
            self.good += 1;
        }
    }

    /// The first measured request's scheduled instant.
    pub fn start(&self) -> Option<Nanos> {
        self.start
    }

    /// Measured requests so far.
    pub fn measured(&self) -> u64 {
        self.measured
    }

    /// Successful measured requests so far.
    pub fn succeeded(&self) -> u64 {
        self.succeeded
    }

    /// The rates, goodput counted against the `slo` the requests were pushed with (none without objectives).
    pub fn rates(&self, slo: Option<&Slo>) -> StepRates {
        let good = slo.filter(|s| !s.objectives.is_empty()).map(|_| self.good as f64);
        self.rates_with_good(good)
    }

    /// The rates with `good` requests meeting the SLO (`None`: no SLO, no goodput).
    pub fn rates_with_good(&self, good: Option<f64>) -> StepRates {
        let duration_s = match (self.start, self.end) {
            (Some(s), Some(e)) if e > s => (e - s) as f64 / 1e9,
            _ => 0.0,
        };
        let per_s = |x: f64| if duration_s > 0.0 { x / duration_s } else { 0.0 };
        let good_fraction = |good: f64| if self.measured == 0 { 0.0 } else { good / self.measured as f64 };
        StepRates {
            duration_s,
            request_throughput: per_s(self.succeeded as f64),
            output_token_throughput: per_s(self.output_tokens as f64),
            total_token_throughput: per_s((self.output_tokens + self.prompt_tokens) as f64),
            goodput: good.map(per_s),
            good_fraction: good.map(good_fraction),
        }
    }
}

/// Classify an HTTP status code that is not a success.
pub fn classify_status(status: u16) -> ErrorClass {
    match status {
        429 => ErrorClass::RateLimited,
        500..=599 => ErrorClass::Http5xx,
        _ => ErrorClass::Http4xx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::record::{Chunk, ConnectionInfo, Usage};

    const MS: u64 = 1_000_000;

    fn chunk(t_ms: u64, channel: Channel) -> Chunk {
        Chunk { t: t_ms * MS, channel, events: 1, tokens: None, bytes: 3 }
    }

    fn record() -> RequestRecord {
        RequestRecord {
            scheduled: 0,
            sent: Some(2 * MS),
            headers: Some(10 * MS),
            done: Some(142 * MS),
            chunks: vec![
                chunk(11, Channel::Role),
                chunk(52, Channel::Content),
                chunk(62, Channel::Content),
                chunk(72, Channel::Content),
                chunk(142, Channel::Usage),
            ],
            usage: Some(Usage { prompt_tokens: Some(7), completion_tokens: Some(3), ..Default::default() }),
            connection: Some(ConnectionInfo {
                id: 1,
                reused: false,
                dns_ns: Some(MS),
                connect_ns: Some(MS / 2),
                tls_ns: None,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ttft_skips_role_only_chunks() {
        let m = RequestMetrics::of(&record());
        assert_eq!(m.ttft_ms, Some(50.0));
        assert_eq!(m.ttft_content_ms, Some(50.0));
        assert_eq!(m.ttfb_ms, Some(8.0));
        assert_eq!(m.queue_delay_ms, Some(2.0));
        assert_eq!(m.e2e_ms, Some(140.0));
        assert_eq!(m.e2e_from_scheduled_ms, Some(142.0));
        assert_eq!(m.ttft_from_scheduled_ms, Some(52.0));
        assert_eq!(m.network_overhead_ms, Some(1.5));
    }

    #[test]
    fn tpot_and_itl() {
        let m = RequestMetrics::of(&record());
        assert_eq!(m.output_tokens, 3);
        assert_eq!(m.token_source, TokenSource::ServerUsage);
        assert_eq!(m.tpot_ms, Some(45.0)); // (140 − 50) / 2
        assert_eq!(m.itl_chunk_ms, vec![10.0, 10.0]);
        assert_eq!(m.itl_token_ms, vec![10.0, 10.0]);
        assert!((m.decode_tokens_per_s.unwrap() - 2.0 / 0.090).abs() < 1e-9);
        assert!((m.tokens_per_s.unwrap() - 3.0 / 0.140).abs() < 1e-9);
    }

    #[test]
    fn reasoning_starts_ttft_but_not_ttft_content() {
        let mut r = record();
        r.chunks[1].channel = Channel::Reasoning;
        let m = RequestMetrics::of(&r);
        assert_eq!(m.ttft_ms, Some(50.0));
        assert_eq!(m.ttft_content_ms, Some(60.0));
        assert_eq!(m.reasoning_ms, Some(10.0));
    }

    #[test]
    fn per_token_itl_with_multi_token_chunks() {
        let mut r = record();
        r.usage = Some(Usage { completion_tokens: Some(6), ..Default::default() });
        for (c, n) in r.chunks[1..4].iter_mut().zip([2, 2, 2]) {
            c.tokens = Some(n);
        }
        let m = RequestMetrics::of(&r);
        assert_eq!(m.itl_chunk_ms, vec![10.0, 10.0]);
        assert_eq!(m.itl_token_ms, vec![5.0, 5.0]);
        // Unknown per-chunk split: no per-token ITL is invented.
        r.chunks.iter_mut().for_each(|c| c.tokens = None);
        assert!(RequestMetrics::of(&r).itl_token_ms.is_empty());
    }

    #[test]
    fn token_source_fallbacks() {
        let mut r = record();
        r.usage = None;
        assert_eq!(output_tokens(&r), (3, TokenSource::Chunks));
        r.tokenizer_output_tokens = Some(4);
        assert_eq!(output_tokens(&r), (4, TokenSource::Tokenizer));
    }

    #[test]
    fn reused_connection_has_no_network_overhead() {
        let mut r = record();
        r.connection = Some(ConnectionInfo { id: 1, reused: true, ..Default::default() });
        assert_eq!(RequestMetrics::of(&r).network_overhead_ms, Some(0.0));
    }

    #[test]
    fn rates_and_goodput() {
        let a = record();
        let mut b = record();
        b.scheduled = 100 * MS;
        b.sent = Some(100 * MS);
        b.chunks = vec![chunk(3100, Channel::Content)];
        b.done = Some(4100 * MS);
        b.usage = Some(Usage { completion_tokens: Some(1), ..Default::default() });
        let slo: Slo = "ttft=2s".parse().unwrap();
        let rates = StepRates::of(&[Sample::of(&a), Sample::of(&b)], Some(&slo));
        assert!((rates.duration_s - 4.1).abs() < 1e-9);
        assert!((rates.request_throughput - 2.0 / 4.1).abs() < 1e-9);
        assert!((rates.output_token_throughput - 4.0 / 4.1).abs() < 1e-9);
        assert_eq!(rates.good_fraction, Some(0.5));
    }
}
