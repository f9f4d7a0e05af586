//! The library API of the original velollm, kept for programs that embed it.
//!
//! ```no_run
//! use velollm_engine::{BenchmarkConfig, BenchmarkRunner};
//!
//! # async fn demo() -> Result<(), velollm_engine::BenchError> {
//! let config = BenchmarkConfig {
//!     name: "custom_test".to_string(),
//!     model: "llama3.2:3b".to_string(),
//!     prompt: "Your prompt here".to_string(),
//!     max_tokens: 100,
//!     iterations: 5,
//! };
//! let runner = BenchmarkRunner::new("ollama"); // or a URL: BenchmarkRunner::new("http://127.0.0.1:8080")
//! let result = runner.run(&config).await?;
//! println!("Tokens/s: {}", result.tokens_per_second);
//! println!("TTFT p95: {:?} ms", result.step.metrics.ttft_ms.map(|s| s.p95));
//! # Ok(()) }
//! ```

use crate::bench::{Backend, BenchError, BenchOptions, Session};
use crate::dialect::DialectKind;
use crate::plan::StepPlan;
use crate::runner::NoObserver;
use velollm_core::aggregate::step::StepResult;
use velollm_core::document::result::legacy;
use velollm_core::document::scenario::Workload;
use velollm_core::workload::load::{Bounds, LoadProfile};

/// One benchmark: a prompt sent `iterations` times, one after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchmarkConfig {
    /// Name used in results.
    pub name: String,
    /// Model to query.
    pub model: String,
    /// The prompt.
    pub prompt: String,
    /// Maximum tokens to generate.
    pub max_tokens: u32,
    /// Sequential repetitions.
    pub iterations: u32,
}

/// The original velollm's per-benchmark figures, plus every velollm aggregate in `step`.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkResult {
    /// The configuration that ran.
    pub config: BenchmarkConfig,
    /// Mean decode speed, tokens/s (first token excluded).
    pub tokens_per_second: f64,
    /// Mean streamed time to first token, ms.
    pub time_to_first_token_ms: f64,
    /// Sum of end-to-end latencies, ms.
    pub total_time_ms: f64,
    /// Sum of output tokens.
    pub total_tokens: u64,
    /// Mean prompt tokens.
    pub prompt_eval_count: u64,
    /// Mean output tokens.
    pub eval_count: u64,
    /// When it finished (RFC 3339).
    pub timestamp: String,
    /// All aggregates of the step (percentiles, throughput, errors by class…).
    pub step: StepResult,
}

/// Runs [`BenchmarkConfig`]s against one endpoint.
#[derive(Debug, Clone)]
pub struct BenchmarkRunner {
    options: BenchOptions,
}

impl BenchmarkRunner {
    /// A runner for a backend name (`ollama` → `http://127.0.0.1:11434`, `llamacpp` → `http://127.0.0.1:8080`)
    /// or a base URL (dialect auto-detected).
    pub fn new(backend: &str) -> BenchmarkRunner {
        let options = match backend.to_ascii_lowercase().as_str() {
            "ollama" => BenchOptions {
                backend: Backend::Dialect(DialectKind::OllamaChat),
                ..BenchOptions::new("http://127.0.0.1:11434")
            },
            "llamacpp" | "llama.cpp" | "llama-server" => BenchOptions::new("http://127.0.0.1:8080"),
            url => BenchOptions::new(url),
        };
        BenchmarkRunner { options }
    }

    /// A runner with full control over the connection options.
    pub fn with_options(options: BenchOptions) -> BenchmarkRunner {
        BenchmarkRunner { options }
    }

    /// Run one benchmark.
    pub async fn run(&self, config: &BenchmarkConfig) -> Result<BenchmarkResult, BenchError> {
        let mut options = self.options.clone();
        options.model = Some(config.model.clone());
        let session = Session::connect(&options).await?;
        let step = StepPlan::simple(
            config.name.clone(),
            Workload::Prompts(vec![config.prompt.clone()]),
            config.max_tokens,
            LoadProfile::Sequential,
            Bounds { requests: Some(u64::from(config.iterations.max(1))), ..Bounds::default() },
        );
        let (_tx, cancel) = tokio::sync::watch::channel(false);
        let mut results = session.run(std::slice::from_ref(&step), 0, None, &mut NoObserver, &cancel).await?;
        let step = results.remove(0);
        let l = legacy(&step, &session.model, &jiff::Timestamp::now().to_string());
        Ok(BenchmarkResult {
            config: config.clone(),
            tokens_per_second: l.tokens_per_second,
            time_to_first_token_ms: l.time_to_first_token_ms,
            total_time_ms: l.total_time_ms,
            total_tokens: l.total_tokens,
            prompt_eval_count: l.prompt_eval_count,
            eval_count: l.eval_count,
            timestamp: l.timestamp,
            step,
        })
    }
}
