//! A benchmark session: probe the endpoint, choose the dialect and model, run the steps, describe the run.

use crate::dialect::DialectKind;
use crate::plan::StepPlan;
use crate::probe::{ProbeError, ServerInfo, probe, resolve_model};
use crate::runner::{Observer, Resume, RunError, Runner};
use crate::secrets::Secret;
use crate::target::{Target, Timeouts};
use crate::tokenize::TokenCounter;
use crate::transport::{Clock, Endpoint, UrlError};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use velollm_core::aggregate::step::StepResult;
use velollm_core::analysis::{AnalysisResult, AnalysisSpec, StepData};
use velollm_core::document::result::{RunMeta, RunResult, RunStatus, SCHEMA_VERSION, TargetInfo};
use velollm_core::judge::threshold::{Lookup, Threshold, Verdict};
use velollm_core::measure::slo::Slo;

/// Which dialect to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Probe the endpoint and pick.
    Auto,
    /// Use this dialect.
    Dialect(DialectKind),
}

/// How to reach the endpoint under test.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Base URL.
    pub url: String,
    /// Dialect choice.
    pub backend: Backend,
    /// Model; `None` picks the server's only model.
    pub model: Option<String>,
    /// API key (sent as `Authorization: Bearer`), never stored.
    pub api_key: Option<Secret>,
    /// Request timeouts.
    pub timeouts: Timeouts,
    /// Local `tokenizer.json` for token counts when the server reports none.
    pub tokenizer: Option<PathBuf>,
    /// Keep generated text in records.
    pub keep_text: bool,
    /// Zero of the run's clock (a launched server's spawn); `None` = when the session connects.
    pub origin: Option<std::time::Instant>,
    /// Requests wait while this is false (a launched server being restarted).
    pub gate: Option<watch::Receiver<bool>>,
    /// A PEM certificate to trust besides the public roots (`--ca-cert`, e.g. a self-signed local server).
    pub ca_cert: Option<PathBuf>,
    /// Abort a share of the requests mid-stream (`--cancel-share`).
    pub aborts: Option<crate::target::Aborts>,
    /// Header fields added to every request (name, value).
    pub headers: Vec<(String, String)>,
    /// A response header that says whether a cache answered (besides `x-velollm-cache`, `x-cache`, …).
    pub cache_header: Option<String>,
}

impl BenchOptions {
    /// Options for `url` with everything else at its default.
    pub fn new(url: impl Into<String>) -> BenchOptions {
        BenchOptions {
            url: url.into(),
            backend: Backend::Auto,
            model: None,
            api_key: None,
            timeouts: Timeouts::default(),
            tokenizer: None,
            keep_text: false,
            origin: None,
            gate: None,
            ca_cert: None,
            aborts: None,
            headers: Vec::new(),
            cache_header: None,
        }
    }
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The URL is invalid.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The `--ca-cert` file is unusable.
    #[error("{0}")]
    CaCert(String),
    /// The server is unreachable or unrecognised.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// The model is not served.
    #[error("{0}")]
    Model(String),
    /// The tokenizer file is unusable.
    #[error("{0}")]
    Tokenizer(String),
    /// A header name or value cannot be sent.
    #[error("{0}")]
    Header(String),
    /// A step could not start.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// A connected, identified target with its model chosen.
pub struct Session {
    /// The target requests go to.
    pub target: Arc<Target>,
    /// What the probe learned.
    pub server: ServerInfo,
    /// The model sent with each request.
    pub model: String,
    /// How the dialect was chosen.
    pub dialect_reason: String,
    /// The server watcher, whose scrapes bracket every step (set after [`Session::connect`]).
    pub monitor: Option<Arc<crate::health::Monitor>>,
    /// Token prices: every step's result then carries its cost (set after [`Session::connect`]).
    pub prices: Option<Arc<velollm_core::measure::cost::PriceTable>>,
    /// The run's nonce (see [`run_nonce`]); `None` draws one from the clock.
    pub nonce: Option<u64>,
    /// What an interrupted run already measured, when this run continues it (`--resume`).
    pub resume: Option<Arc<Resume>>,
}

impl Session {
    /// Probe the endpoint, choose the dialect and the model.
    pub async fn connect(opts: &BenchOptions) -> Result<Session, BenchError> {
        let mut endpoint = Endpoint::parse(&opts.url)?;
        if let Some(path) = &opts.ca_cert {
            let certs = crate::transport::read_ca_cert(path).map_err(BenchError::CaCert)?;
            endpoint.trust(&certs).map_err(BenchError::CaCert)?;
        }
        let clock = opts.origin.map_or_else(Clock::start, Clock::since);
        // An explicit dialect already decides the probe's headers (Anthropic's `x-api-key`, `anthropic-version`).
        let first = match opts.backend {
            Backend::Dialect(d) => d,
            Backend::Auto => DialectKind::OpenAiChat,
        };
        let mut target = Target::new(endpoint, first, clock);
        target.gate = opts.gate.clone();
        target.api_key = opts.api_key.clone();
        target.timeouts = opts.timeouts;
        target.keep_text = opts.keep_text;
        target.aborts = opts.aborts;
        let bad = |what: &str, text: &str| BenchError::Header(format!("{what} {text:?} cannot be sent in HTTP"));
        for (name, value) in &opts.headers {
            let name = hyper::header::HeaderName::try_from(name.as_str()).map_err(|_| bad("header name", name))?;
            let value = hyper::header::HeaderValue::try_from(value.as_str()).map_err(|_| bad("header value", value))?;
            target.headers.push((name, value));
        }
        if let Some(name) = &opts.cache_header {
            let header = hyper::header::HeaderName::try_from(name.as_str()).map_err(|_| bad("header name", name))?;
            target.cache_header = Some(header);
        }
        if let Some(p) = &opts.tokenizer {
            target.tokenizer = Some(Arc::new(TokenCounter::from_file(p).map_err(BenchError::Tokenizer)?));
        }
        let url = target.endpoint.display().to_string();
        let (server, dialect, reason) = match opts.backend {
            Backend::Auto => {
                let info = probe(&target).await?;
                let d = info.dialect.unwrap_or(DialectKind::OpenAiChat);
                let reason = info.reason.clone();
                (info, d, reason)
            }
            Backend::Dialect(d) => match probe(&target).await {
                Ok(info) => (info, d, "--backend".to_string()),
                Err(e @ ProbeError::Unreachable { .. }) => return Err(e.into()),
                Err(ProbeError::Unrecognised { .. }) => (ServerInfo::default(), d, "--backend".to_string()),
            },
        };
        target.dialect = dialect;
        let model = if dialect == DialectKind::LlamaCpp && opts.model.is_none() {
            server.models.first().cloned().unwrap_or_else(|| "default".to_string())
        } else {
            resolve_model(opts.model.as_deref(), &server, &url).map_err(BenchError::Model)?
        };
        Ok(Session {
            target: Arc::new(target),
            server,
            model,
            dialect_reason: reason,
            monitor: None,
            prices: None,
            nonce: None,
            resume: None,
        })
    }

    /// Send the first request of `step` on its own, outside any step: the cold request of a server that
    /// was just launched.
    pub async fn first_request(
        &self,
        step: &StepPlan,
        seed: u64,
        cancel: &watch::Receiver<bool>,
    ) -> velollm_core::measure::record::RequestRecord {
        let prompts = crate::prompts::PromptSource::new(step.workload.clone(), seed);
        let req = crate::dialect::GenRequest {
            model: self.model.clone(),
            system: step.system.clone(),
            context: step.context.clone().or_else(|| {
                step.context_tokens.map(|n| crate::prompts::synthetic(n, seed, self.target.tokenizer.as_deref()))
            }),
            cache: step.cache.clone(),
            history: Vec::new(),
            prompt: prompts.prompt(0, self.target.tokenizer.as_deref()),
            max_tokens: step.max_tokens,
            exact_output: step.exact_output,
            temperature: step.temperature,
            tools: step.tools.clone(),
            recorded: None,
        };
        self.send_alone(&req, cancel).await
    }

    /// Send one chat request outside any step (temperature 0, on a fresh slot): what the semantic cache's
    /// and routing evaluations send, one labelled question at a time. The record keeps the answer's text.
    pub async fn ask(
        &self,
        system: Option<&str>,
        prompt: &str,
        max_tokens: u32,
        cancel: &watch::Receiver<bool>,
    ) -> velollm_core::measure::record::RequestRecord {
        let req = crate::dialect::GenRequest {
            model: self.model.clone(),
            system: system.map(str::to_owned),
            context: None,
            cache: Default::default(),
            history: Vec::new(),
            prompt: prompt.to_owned(),
            max_tokens,
            exact_output: false,
            temperature: Some(0.0),
            tools: None,
            recorded: None,
        };
        self.send_alone(&req, cancel).await
    }

    /// One request on a fresh slot, scheduled now; an error's message has the key redacted.
    async fn send_alone(
        &self,
        req: &crate::dialect::GenRequest,
        cancel: &watch::Receiver<bool>,
    ) -> velollm_core::measure::record::RequestRecord {
        let record =
            velollm_core::measure::record::RequestRecord { scheduled: self.target.clock.now(), ..Default::default() };
        let mut record =
            crate::exec::execute(&self.target, &mut crate::pool::Slot::default(), req, record, cancel).await;
        if let (Some(key), Some(e)) = (&self.target.api_key, record.error.as_mut()) {
            e.message = key.redact(&e.message).into_owned();
        }
        record
    }

    /// The target description stored in results.
    pub fn target_info(&self) -> TargetInfo {
        TargetInfo {
            url: self.target.endpoint.display().to_string(),
            dialect: self.target.dialect.name().to_string(),
            dialect_reason: self.dialect_reason.clone(),
            model: self.model.clone(),
            server: self.server.server.clone(),
            server_version: self.server.version.clone(),
        }
    }

    /// A new result document for this session, with no steps yet.
    pub fn new_result(&self, command: Vec<String>, scenario: &str, seed: u64, slo: Option<&Slo>) -> RunResult {
        RunResult {
            schema_version: SCHEMA_VERSION.to_string(),
            status: RunStatus::Partial,
            status_reason: None,
            meta: RunMeta {
                tool: "velollm".into(),
                tool_version: env!("CARGO_PKG_VERSION").into(),
                run_id: run_id(),
                command,
                started_at: jiff::Timestamp::now().to_string(),
                finished_at: None,
                target: self.target_info(),
                host: crate::host::host_info(),
                scenario: scenario.to_string(),
                seed,
                slo: slo.map(ToString::to_string),
                token_policy: "server usage > engine-native count > local tokenizer > output chunk count".into(),
                tokenizer: None,
                hardware: None,
                chunk_stamps: Some(crate::rxstamp::stamping().into()),
            },
            steps: Vec::new(),
            benchmarks: Vec::new(),
            analyses: Vec::new(),
            verdicts: Vec::new(),
            server: None,
            selfcheck: None,
            trust: None,
        }
    }

    /// Run `steps` in order. Stops after the step during which `cancel` turned true; the results of the
    /// steps that ran are returned either way.
    pub async fn run(
        &self,
        steps: &[StepPlan],
        seed: u64,
        slo: Option<Slo>,
        observer: &mut dyn Observer,
        cancel: &watch::Receiver<bool>,
    ) -> Result<Vec<StepResult>, BenchError> {
        Ok(self.run_scenario(steps, &[], &[], seed, slo, observer, cancel).await?.steps)
    }

    /// Run `steps`, then the scenario's analyses and every threshold (the steps' and the scenario's).
    #[allow(clippy::too_many_arguments)]
    pub async fn run_scenario(
        &self,
        steps: &[StepPlan],
        analyses: &[AnalysisSpec],
        thresholds: &[Threshold],
        seed: u64,
        slo: Option<Slo>,
        observer: &mut dyn Observer,
        cancel: &watch::Receiver<bool>,
    ) -> Result<RunOutput, BenchError> {
        let mut runner = Runner::new(self.target.clone(), self.model.clone(), seed, slo);
        if let Some(nonce) = self.nonce {
            runner = runner.with_nonce(nonce);
        }
        runner.prices = self.prices.clone();
        if let Some(r) = &self.resume {
            runner.resume(r.clone());
        }
        let mut ran = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            // A step that finished before the interruption of a resumed run: its stored result is kept.
            if let Some(done) = self.resume.as_ref().and_then(|r| r.steps.get(i)) {
                ran.push((done.clone(), runner.replay(i, step)));
                continue;
            }
            if *cancel.borrow() {
                break;
            }
            if let Some(m) = &self.monitor {
                m.step_started(&step.name).await;
            }
            ran.push(runner.run_step(i, step, observer, cancel).await?);
            if let Some(metrics) = match &self.monitor {
                Some(m) => m.step_finished().await,
                None => None,
            } {
                observer.server_metrics(i, &metrics);
                if let Some((result, _)) = ran.last_mut() {
                    result.server_metrics = Some(metrics);
                }
            }
        }
        let data: Vec<StepData> = ran
            .iter()
            .zip(steps)
            .map(|((result, acc), plan)| StepData {
                name: &plan.name,
                tags: &plan.tags,
                result,
                samples: acc.samples(),
                aborted: acc.aborted(),
            })
            .collect();
        let mut specs: Vec<AnalysisSpec> = analyses.to_vec();
        if steps.iter().any(|s| !s.tags.is_empty()) && !specs.contains(&AnalysisSpec::Plan) {
            specs.push(AnalysisSpec::Plan);
        }
        let analyses: Vec<AnalysisResult> = specs.iter().map(|a| velollm_core::analysis::run(a, &data)).collect();
        let mut verdicts = Vec::new();
        for ((result, _), plan) in ran.iter().zip(steps) {
            verdicts.extend(plan.thresholds.iter().map(|t| t.evaluate(&plan.name, result)));
        }
        for t in thresholds {
            // A scenario threshold names an analysis figure, or else applies to every step.
            if analyses.lookup(&t.target).is_none() && ran.iter().any(|(r, _)| r.lookup(&t.target).is_some()) {
                verdicts.extend(ran.iter().map(|(result, _)| t.evaluate(&result.name, result)));
            } else {
                // An analysis figure — or a name nothing measured, which one verdict says.
                verdicts.push(t.evaluate("run", &analyses));
            }
        }
        observer.finished(&analyses, &verdicts);
        Ok(RunOutput { steps: ran.into_iter().map(|(r, _)| r).collect(), analyses, verdicts })
    }
}

/// What a scenario run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Per-step aggregates, in order.
    pub steps: Vec<StepResult>,
    /// Scenario analyses.
    pub analyses: Vec<AnalysisResult>,
    /// Threshold verdicts.
    pub verdicts: Vec<Verdict>,
}

/// The nonce of the run `run_id` (FNV-1a of the identifier): unique to the run, so its synthetic prompts
/// are new to the server's prefix cache, and derived from what the result stores, so `--resume` can send
/// the prompts the interrupted run would have sent.
pub fn run_nonce(run_id: &str) -> u64 {
    run_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// A unique, time-ordered run identifier.
fn run_id() -> String {
    let now = jiff::Timestamp::now();
    let nanos = now.as_nanosecond() as u128;
    format!("{}-{:08x}", now.strftime("%Y%m%dT%H%M%SZ"), (nanos ^ u128::from(std::process::id())) as u32)
}
