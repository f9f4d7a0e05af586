//! The client's own cost, measured against velollm's built-in loopback server, and whether a run's figures
//! can be trusted given that cost (docs/performance.md, docs/metrics.md §10).
//!
//! The self-check drives a server that does no work: at rising concurrency with fixed delays (the *paced*
//! levels, a load like a real server's), then with no delay at all (the *ceiling* level). The server writes
//! the instant of every event it sends into the text, on the client's own clock, so the client's lateness is
//! known exactly:
//!
//! * **added latency per request** = measured TTFT − (first event written − request received): the time the
//!   request took to reach the server plus the client's lag in stamping the first chunk;
//! * **added latency per chunk** = a chunk's arrival stamp − the server's write of its last event;
//! * **ITL error** = |measured gap between two chunks − the gap between the server's writes of them|;
//! * **ceiling** = the request and chunk rates the client sustains when the server costs nothing;
//! * **CPU per request** = the process's CPU time minus the server thread's, over the requests sent.
//!
//! [`assess`] compares those figures with a run's steps: a step is **not trustworthy** when the client's p99
//! added latency exceeds [`OVERHEAD_SHARE_LIMIT`] of the step's median TTFT or median ITL, or when the step ran
//! at more than [`CEILING_SHARE_LIMIT`] of the client's ceiling.

use crate::aggregate::step::StepResult;
use crate::stats::Summary;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A step is flagged when the client's p99 added latency is more than this share of its median TTFT or ITL.
/// The added latency is the one of the paced level whose chunk rate is the first at least the step's.
pub const OVERHEAD_SHARE_LIMIT: f64 = 0.05;
/// A step is flagged when its request or chunk rate is more than this share of the client's ceiling.
pub const CEILING_SHARE_LIMIT: f64 = 0.5;

/// What the self-check measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SelfCheck {
    /// `quick` (before a run) or `full` (`velollm selfcheck`).
    pub mode: String,
    /// Injected delay before the first token at the paced levels, ms.
    pub ttft_ms: f64,
    /// Injected delay between tokens at the paced levels, ms.
    pub itl_ms: f64,
    /// Tokens (one per chunk) per response.
    pub tokens: u32,
    /// Prompt length, tokens.
    pub prompt_tokens: u32,
    /// The paced levels by rising concurrency, then the ceiling level.
    pub levels: Vec<SelfCheckLevel>,
    /// Highest successful request rate of any level, requests/s.
    pub max_request_rate: f64,
    /// Highest output chunk rate of any level, chunks/s.
    pub max_chunk_rate: f64,
    /// Client CPU time per request at the level with the highest request rate, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms_per_request: Option<f64>,
    /// Wall time of the whole self-check, s.
    pub took_s: f64,
}

/// One load level of the self-check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SelfCheckLevel {
    /// Closed-loop workers.
    pub concurrency: u32,
    /// True for the ceiling level (no delay: as fast as the client goes); false for a paced level.
    pub ceiling: bool,
    /// Measured wall time, s.
    pub duration_s: f64,
    /// Measured requests.
    pub requests: u64,
    /// Failed requests (a healthy client has none).
    pub failed: u64,
    /// Successful requests per second.
    pub request_rate: f64,
    /// Output chunks per second.
    pub chunk_rate: f64,
    /// Client CPU time per request (process minus the server's thread), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms_per_request: Option<f64>,
    /// Client CPU time per output chunk, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_chunk: Option<f64>,
    /// Added latency per request (measured TTFT − the server's own TTFT), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_request_ms: Option<Summary>,
    /// Added latency per chunk (arrival stamp − the server's write), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_chunk_ms: Option<Summary>,
    /// ITL error: |measured gap − the gap between the server's writes|, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl_error_ms: Option<Summary>,
}

impl SelfCheck {
    /// The paced level that best matches a step streaming `chunk_rate` chunks per second: the least loaded
    /// level at least as loaded, else the most loaded one.
    pub fn level_for(&self, chunk_rate: f64) -> Option<&SelfCheckLevel> {
        let paced = || self.levels.iter().filter(|l| !l.ceiling);
        let top = paced().max_by(|a, b| a.chunk_rate.total_cmp(&b.chunk_rate));
        paced().filter(|l| l.chunk_rate >= chunk_rate).min_by(|a, b| a.chunk_rate.total_cmp(&b.chunk_rate)).or(top)
    }
}

/// Whether the run's figures can be trusted, given the client's measured cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Trust {
    /// True when every step is.
    pub trustworthy: bool,
    /// The overhead share above which a step is flagged ([`OVERHEAD_SHARE_LIMIT`]).
    pub overhead_share_limit: f64,
    /// The ceiling share above which a step is flagged ([`CEILING_SHARE_LIMIT`]).
    pub ceiling_share_limit: f64,
    /// One entry per step.
    pub steps: Vec<StepTrust>,
}

/// One step's client-overhead verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepTrust {
    /// Step name.
    pub step: String,
    /// Concurrency of the paced self-check level used.
    pub level: u32,
    /// The step's output chunks per second (what chose the level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_rate: Option<f64>,
    /// Client's p99 added latency per request at that level, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_request_ms: Option<f64>,
    /// Client's p99 added latency per chunk at that level, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_chunk_ms: Option<f64>,
    /// overhead_request_ms ÷ the step's median TTFT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_share: Option<f64>,
    /// overhead_chunk_ms ÷ the step's median ITL per chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl_share: Option<f64>,
    /// The step's request or chunk rate ÷ the client's ceiling, whichever is higher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceiling_share: Option<f64>,
    /// True when no share is above its limit.
    pub trustworthy: bool,
    /// Why not, one line per share above its limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// Output chunks per second of a step: one chunk per success plus one per ITL gap, over the step's window.
fn chunk_rate(step: &StepResult) -> Option<f64> {
    let gaps = step.metrics.itl_chunk_ms.as_ref().map_or(0, |s| s.count);
    (step.rates.duration_s > 0.0).then(|| (step.succeeded + gaps) as f64 / step.rates.duration_s)
}

/// Judge every step of a run against the self-check.
pub fn assess(check: &SelfCheck, steps: &[StepResult]) -> Trust {
    let steps: Vec<StepTrust> = steps.iter().filter_map(|s| assess_step(check, s)).collect();
    Trust {
        trustworthy: steps.iter().all(|s| s.trustworthy),
        overhead_share_limit: OVERHEAD_SHARE_LIMIT,
        ceiling_share_limit: CEILING_SHARE_LIMIT,
        steps,
    }
}

fn assess_step(check: &SelfCheck, step: &StepResult) -> Option<StepTrust> {
    let chunk_rate = chunk_rate(step);
    let level = check.level_for(chunk_rate.unwrap_or(0.0))?;
    let overhead_request_ms = level.added_request_ms.as_ref().map(|s| s.p99);
    let overhead_chunk_ms = level.added_chunk_ms.as_ref().map(|s| s.p99);
    let share = |overhead: Option<f64>, of: Option<f64>| match (overhead, of) {
        (Some(o), Some(m)) if m > 0.0 => Some(o.max(0.0) / m),
        _ => None,
    };
    let ttft_share = share(overhead_request_ms, step.metrics.ttft_ms.as_ref().map(|s| s.p50));
    let itl_share = share(overhead_chunk_ms, step.metrics.itl_chunk_ms.as_ref().map(|s| s.p50));
    let ratio = |rate: Option<f64>, ceiling: f64| rate.filter(|_| ceiling > 0.0).map(|r| r / ceiling);
    let ceiling_share =
        [ratio(Some(step.rates.request_throughput), check.max_request_rate), ratio(chunk_rate, check.max_chunk_rate)]
            .into_iter()
            .flatten()
            .reduce(f64::max);
    let mut reasons = Vec::new();
    let pct = |x: f64| format!("{:.1} %", x * 100.0);
    if let Some(s) = ttft_share.filter(|s| *s > OVERHEAD_SHARE_LIMIT) {
        reasons.push(format!(
            "client overhead (p99 {:.3} ms per request) is {} of the median TTFT (limit {})",
            overhead_request_ms.unwrap_or_default(),
            pct(s),
            pct(OVERHEAD_SHARE_LIMIT)
        ));
    }
    if let Some(s) = itl_share.filter(|s| *s > OVERHEAD_SHARE_LIMIT) {
        reasons.push(format!(
            "client overhead (p99 {:.3} ms per chunk) is {} of the median ITL (limit {})",
            overhead_chunk_ms.unwrap_or_default(),
            pct(s),
            pct(OVERHEAD_SHARE_LIMIT)
        ));
    }
    if let Some(s) = ceiling_share.filter(|s| *s > CEILING_SHARE_LIMIT) {
        reasons.push(format!(
            "the step ran at {} of the client's ceiling (limit {}): the client may be the bottleneck",
            pct(s),
            pct(CEILING_SHARE_LIMIT)
        ));
    }
    Some(StepTrust {
        step: step.name.clone(),
        level: level.concurrency,
        chunk_rate,
        overhead_request_ms,
        overhead_chunk_ms,
        ttft_share,
        itl_share,
        ceiling_share,
        trustworthy: reasons.is_empty(),
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(p99: f64) -> Summary {
        let mut s = Summary::of([p99 / 2.0, p99]).expect("two values");
        s.p99 = p99;
        s
    }

    fn level(concurrency: u32, request_ms: f64, chunk_ms: f64) -> SelfCheckLevel {
        SelfCheckLevel {
            concurrency,
            ceiling: false,
            duration_s: 1.0,
            requests: 100,
            failed: 0,
            request_rate: 1000.0,
            chunk_rate: 500.0 * f64::from(concurrency),
            cpu_ms_per_request: Some(0.2),
            cpu_us_per_chunk: Some(3.0),
            added_request_ms: Some(summary(request_ms)),
            added_chunk_ms: Some(summary(chunk_ms)),
            itl_error_ms: Some(summary(chunk_ms)),
        }
    }

    fn check() -> SelfCheck {
        SelfCheck {
            mode: "quick".into(),
            ttft_ms: 0.0,
            itl_ms: 0.0,
            tokens: 64,
            prompt_tokens: 128,
            levels: vec![level(1, 0.1, 0.02), level(16, 0.3, 0.05), level(64, 2.0, 0.5), {
                let mut c = level(64, 30.0, 5.0);
                c.ceiling = true;
                c.chunk_rate = 120_000.0;
                c
            }],
            max_request_rate: 2000.0,
            max_chunk_rate: 120_000.0,
            cpu_ms_per_request: Some(0.2),
            took_s: 1.0,
        }
    }

    #[test]
    fn the_level_is_the_least_loaded_paced_one_at_least_as_loaded() {
        let c = check();
        let level = |rate| c.level_for(rate).map(|l| (l.concurrency, l.ceiling));
        assert_eq!(level(100.0), Some((1, false)));
        assert_eq!(level(4_000.0), Some((16, false)));
        assert_eq!(level(1e6), Some((64, false)), "never the ceiling level");
    }

    #[test]
    fn a_slow_server_is_trusted_and_a_fast_one_is_flagged() {
        let step = crate::fixtures::step("s", &[100.0, 120.0]);
        let t = assess(&check(), std::slice::from_ref(&step));
        assert!(t.trustworthy, "{t:?}");
        assert!((t.steps[0].ttft_share.unwrap_or_default() - 0.1 / 110.0).abs() < 1e-3);

        let fast = crate::fixtures::step("fast", &[1.0, 1.0]);
        let t = assess(&check(), &[fast]);
        assert!(!t.trustworthy);
        assert!(t.steps[0].reasons.iter().any(|r| r.contains("median TTFT")), "{:?}", t.steps[0].reasons);
    }
}
