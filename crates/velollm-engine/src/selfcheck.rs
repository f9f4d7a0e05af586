//! The self-check: velollm measures its own cost against its built-in loopback server
//! ([`crate::loopback`]), the same way it measures a real server (the same runner, workers and transport).
//!
//! The server runs on a thread of its own and stamps every event it writes on the client's clock, so each
//! level yields the client's added latency per request and per chunk, its request and chunk rates, and its
//! CPU time per request (the process's CPU time minus the server thread's). The *paced* levels (fixed
//! delays, rising concurrency) show the added latency under a load like a real server's; the *ceiling*
//! level (no delay) shows how fast the client can go. The figures and formulas are in
//! [`velollm_core::judge::selfcheck`].

use crate::dialect::DialectKind;
use crate::loopback::{Loopback, LoopbackConfig, process_cpu, read_stamps};
use crate::plan::StepPlan;
use crate::runner::{Observer, Runner};
use crate::target::Target;
use crate::transport::{Clock, Endpoint};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use velollm_core::document::scenario::Workload;
use velollm_core::judge::selfcheck::{SelfCheck, SelfCheckLevel};
use velollm_core::measure::record::RequestRecord;
use velollm_core::stats::Summary;
use velollm_core::workload::load::{Bounds, LoadProfile, Warmup};

/// How to run the self-check.
#[derive(Debug, Clone, PartialEq)]
pub struct SelfCheckOptions {
    /// `quick` or `full`, recorded in the result.
    pub mode: String,
    /// Closed-loop workers of each paced level, in order.
    pub levels: Vec<u32>,
    /// Closed-loop workers of the ceiling level (no delays); 0 skips it.
    pub ceiling_concurrency: u32,
    /// Measured time per level.
    pub level_duration: Duration,
    /// Warm-up per level (excluded from the latency figures, included in the CPU time).
    pub warmup: Duration,
    /// Injected delay before the first token at the paced levels.
    pub ttft: Duration,
    /// Injected delay between tokens at the paced levels.
    pub itl: Duration,
    /// Tokens per response, one per chunk.
    pub tokens: u32,
    /// Prompt length in tokens (synthetic prompts, as `bench --prompt-tokens`).
    pub prompt_tokens: u32,
}

impl SelfCheckOptions {
    /// The brief check run before a benchmark (about 2 s): paced levels at concurrency 1, 16 and 64 (first
    /// token after 2 ms, then one every 2 ms, 16 tokens: up to 32,000 chunks/s), then the ceiling at 64.
    pub fn quick() -> SelfCheckOptions {
        SelfCheckOptions {
            mode: "quick".into(),
            levels: vec![1, 16, 64],
            ceiling_concurrency: 64,
            level_duration: Duration::from_millis(400),
            warmup: Duration::from_millis(100),
            ttft: Duration::from_millis(2),
            itl: Duration::from_millis(2),
            tokens: 16,
            prompt_tokens: 128,
        }
    }

    /// `velollm selfcheck`: paced levels at concurrency 1 to 256 (5 ms delays, 64 tokens: up to 51,200
    /// chunks/s), then the ceiling at 64; 2 s each.
    pub fn full() -> SelfCheckOptions {
        SelfCheckOptions {
            mode: "full".into(),
            levels: vec![1, 4, 16, 64, 256],
            ceiling_concurrency: 64,
            level_duration: Duration::from_secs(2),
            warmup: Duration::from_millis(300),
            ttft: Duration::from_millis(5),
            itl: Duration::from_millis(5),
            tokens: 64,
            prompt_tokens: 128,
        }
    }
}

/// Why the self-check could not run.
#[derive(Debug, thiserror::Error)]
pub enum SelfCheckError {
    /// The loopback server did not start.
    #[error("the self-check's loopback server could not start: {0}")]
    Server(#[from] std::io::Error),
    /// The runner refused a level.
    #[error("the self-check could not run: {0}")]
    Run(String),
    /// Every request of a level failed.
    #[error(
        "the self-check's requests to its own loopback server failed at concurrency {concurrency}: {example} \
         (is the open-file limit too low? see `ulimit -n`)"
    )]
    Failed {
        /// The level.
        concurrency: u32,
        /// One error message.
        example: String,
    },
}

/// What one level's requests showed.
#[derive(Default)]
struct Collector {
    sent: u64,
    chunks: u64,
    added_request_ms: Vec<f64>,
    added_chunk_ms: Vec<f64>,
    itl_error_ms: Vec<f64>,
}

impl Observer for Collector {
    fn record(&mut self, r: &RequestRecord) {
        self.sent += 1;
        if r.warmup || !r.succeeded() {
            return;
        }
        let content: Vec<_> = r.chunks.iter().filter(|c| c.channel.is_output()).collect();
        self.chunks += content.len() as u64;
        let (Some(sent), Some(text)) = (r.sent, r.text.as_deref()) else { return };
        let Some((receipt, writes)) = read_stamps(text) else { return };
        let ms = |ns: i128| ns as f64 / 1e6;
        if let (Some(first), Some(w0)) = (content.first(), writes.first()) {
            let measured = i128::from(first.t) - i128::from(sent);
            let truth = i128::from(*w0) - i128::from(receipt);
            self.added_request_ms.push(ms(measured - truth));
        }
        let mut next = 0usize;
        let mut previous: Option<(u64, u64)> = None;
        for c in &content {
            next += c.events.max(1) as usize;
            let Some(&w) = writes.get(next - 1) else { break };
            self.added_chunk_ms.push(ms(i128::from(c.t) - i128::from(w)));
            if let Some((t0, w0)) = previous {
                let error = (i128::from(c.t) - i128::from(t0)) - (i128::from(w) - i128::from(w0));
                self.itl_error_ms.push(ms(error.abs()));
            }
            previous = Some((c.t, w));
        }
    }
}

/// Run the self-check; stops early (with what was measured) when `cancel` becomes true.
pub async fn run(opts: &SelfCheckOptions, cancel: &watch::Receiver<bool>) -> Result<SelfCheck, SelfCheckError> {
    let began = Instant::now();
    let mut levels: Vec<(u32, Duration, Duration, bool)> =
        opts.levels.iter().map(|&c| (c, opts.ttft, opts.itl, false)).collect();
    if opts.ceiling_concurrency > 0 {
        levels.push((opts.ceiling_concurrency, Duration::ZERO, Duration::ZERO, true));
    }
    let mut measured = Vec::new();
    for (index, (concurrency, ttft, itl, ceiling)) in levels.into_iter().enumerate() {
        if *cancel.borrow() {
            break;
        }
        measured.push(level(opts, index, concurrency, ttft, itl, ceiling, cancel).await?);
    }
    let best = measured.iter().max_by(|a, b| a.request_rate.total_cmp(&b.request_rate));
    Ok(SelfCheck {
        mode: opts.mode.clone(),
        ttft_ms: opts.ttft.as_secs_f64() * 1e3,
        itl_ms: opts.itl.as_secs_f64() * 1e3,
        tokens: opts.tokens,
        prompt_tokens: opts.prompt_tokens,
        max_request_rate: best.map_or(0.0, |l| l.request_rate),
        max_chunk_rate: measured.iter().map(|l| l.chunk_rate).fold(0.0, f64::max),
        cpu_ms_per_request: best.and_then(|l| l.cpu_ms_per_request),
        took_s: began.elapsed().as_secs_f64(),
        levels: measured,
    })
}

/// One level, against a fresh loopback server of its own.
async fn level(
    opts: &SelfCheckOptions,
    index: usize,
    concurrency: u32,
    ttft: Duration,
    itl: Duration,
    ceiling: bool,
    cancel: &watch::Receiver<bool>,
) -> Result<SelfCheckLevel, SelfCheckError> {
    let clock = Clock::start();
    let server =
        Loopback::start(LoopbackConfig { ttft, itl, tokens: opts.tokens, stamps: Some(clock), events_per_write: 1 })?;
    let endpoint =
        Endpoint::parse(&format!("http://{}", server.addr())).map_err(|e| SelfCheckError::Run(e.to_string()))?;
    let mut target = Target::new(endpoint, DialectKind::OpenAiChat, clock);
    target.keep_text = true;
    let mut runner = Runner::new(Arc::new(target), "loopback".into(), 0, None);
    let load = if concurrency <= 1 { LoadProfile::Sequential } else { LoadProfile::Concurrency { concurrency } };
    let bounds = Bounds {
        requests: None,
        duration_s: Some(opts.level_duration.as_secs_f64()),
        warmup: Warmup::Seconds(opts.warmup.as_secs_f64()),
    };
    let name = format!("selfcheck {} c{concurrency}", if ceiling { "ceiling" } else { "paced" });
    let mut plan =
        StepPlan::simple(name, Workload::Synthetic { prompt_tokens: opts.prompt_tokens }, opts.tokens, load, bounds);
    plan.exact_output = true;
    let mut collector = Collector::default();
    let (cpu0, server0) = (process_cpu(), server.cpu_time().await);
    let (step, _) =
        runner.run_step(index, &plan, &mut collector, cancel).await.map_err(|e| SelfCheckError::Run(e.to_string()))?;
    let cpu = process_cpu().saturating_sub(cpu0).saturating_sub(server.cpu_time().await.saturating_sub(server0));
    if step.requests > 0 && step.succeeded == 0 {
        let example = step.errors.values().next().map_or_else(String::new, |e| e.example.clone());
        return Err(SelfCheckError::Failed { concurrency, example });
    }
    let per = |n: u64, scale: f64| (n > 0).then(|| cpu.as_secs_f64() * scale / n as f64);
    let duration_s = step.rates.duration_s;
    Ok(SelfCheckLevel {
        concurrency,
        ceiling,
        duration_s,
        requests: step.requests,
        failed: step.failed,
        request_rate: step.rates.request_throughput,
        chunk_rate: if duration_s > 0.0 { collector.chunks as f64 / duration_s } else { 0.0 },
        cpu_ms_per_request: per(collector.sent, 1e3),
        cpu_us_per_chunk: per(collector.sent * u64::from(opts.tokens), 1e6),
        added_request_ms: Summary::of(collector.added_request_ms),
        added_chunk_ms: Summary::of(collector.added_chunk_ms),
        itl_error_ms: Summary::of(collector.itl_error_ms),
    })
}
